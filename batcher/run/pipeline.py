"""The asyncio submission pipeline: manifests in, one settled ledger line per task out.

Design, in the order a task travels:

1. One *lane* per service (vod, mps), side by side. A lane's producer streams the tasks of its
   service from every job (one job = one manifest with its own ledger), taking them round-robin
   so several manifests share the service fairly, and skipping what the ledger says is done
   (`batcher.run.resume`). It puts tasks into a small bounded queue, so memory stays flat whatever
   the manifest's size, and the number of requests in flight is bounded by the lane's workers.
2. A worker takes a task and reserves a send slot from the lane's rate limiter (at most R
   requests in any second, no burst); just before the slot it writes a durable `sending` line,
   at the slot it sends (the client signs at send time).
3. The outcome settles the task: `submitted`, `duplicate` or `failed` in the ledger; retryable
   errors wait with jittered back-off and try again within their budgets; a failure after the
   request may have reached the server is retried only when a SessionId makes it safe (vod),
   and otherwise left *in doubt* (the ledger's last line stays `sending`).
4. Stops: SIGINT/SIGTERM and `--max-runtime` stop the taking of new tasks, let in-flight requests
   settle and return; an error that will fail every task (bad credentials, wrong SubAppId) stops
   the run at once. A second SIGINT abandons in-flight requests (they stay in doubt).

Nothing here parses arguments, prints, or knows the ledger's format: the face passes a
`RunSettings`, an `AigcClient`, the jobs and a `RunObserver`, and reads back a `RunResult`.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import random
import signal
from collections import Counter
from collections.abc import AsyncGenerator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from batcher.api.services import DEFAULT_RATE, SERVICE_NAMES, Service, ServiceName, get_service
from batcher.manifest import Manifest, Task
from batcher.run.limiter import PREPARE_AHEAD, RateLimiter
from batcher.run.rate_stores.memory import MemoryStore
from batcher.run.resume import Decision, ResumeRules, ServicePlan, decide_task, is_resend_safe
from batcher.run.retry import RetryBudget, RetryPolicy
from batcher.state.ledger import LedgerReplay, LedgerWriter
from batcher.state.regeneration import Regeneration
from batcher.wire.client import AigcClient
from batcher.wire.errors import Accepted, ApiError, ErrorClass, TransportError, is_throttling

log = logging.getLogger("batcher")

YIELD_EVERY = 256
"""Skipped tasks between two yields to the event loop, so a long resume scan never starves it."""


class Result(enum.StrEnum):
    """How a task ended in this run."""

    SUBMITTED = "submitted"
    DUPLICATE = "duplicate"
    FAILED = "failed"
    IN_DOUBT = "in_doubt"


class StopReason(enum.StrEnum):
    SIGINT = "SIGINT"
    SIGTERM = "SIGTERM"
    MAX_RUNTIME = "max_runtime"
    RUN_STOPPING_ERROR = "run_stopping_error"


@dataclass(frozen=True, slots=True)
class RunSettings:
    """Everything a run is configured with; built once by the CLI and passed down."""

    rate: float = DEFAULT_RATE
    """Requests per second per service; 0 lifts the cap (benchmarks against the emulator)."""
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    rules: ResumeRules = field(default_factory=ResumeRules)
    max_runtime: float | None = None
    workers_per_service: int = 32
    handle_signals: bool = True
    seed: int | None = None


@dataclass(slots=True)
class Job:
    """One manifest in a run, with the ledger its tasks are settled in."""

    name: str
    manifest: Manifest
    replay: LedgerReplay
    ledger: LedgerWriter
    plans: Mapping[str, ServicePlan]
    """service → what the validating pass decided for each of its tasks (`batcher.run.resume`):
    a lane streams only the tasks to send, and stops once it has them all."""
    results: Counter[tuple[str, Result]] = field(default_factory=Counter)
    """(service, result) → how many tasks ended so in this run."""
    left: Counter[str] = field(default_factory=Counter)
    """service → tasks this run meant to send but did not start (stopped)."""
    held: Counter[tuple[str, Decision]] = field(default_factory=Counter)
    """(service, decision) → tasks not sent by rule (done, held failed, held in doubt)."""
    regenerations: Mapping[str, Regeneration] = field(default_factory=dict)
    """key → the regeneration its next submission is (`batcher.state.regeneration`)."""

    @property
    def tasks_per_service(self) -> dict[str, int]:
        return {service: plan.total for service, plan in self.plans.items()}


class RunObserver(Protocol):
    """What the face wants to hear while a run goes on (progress, logs, metrics)."""

    def task_settled(self, job: Job, service: str, result: Result) -> None: ...

    def tasks_skipped(self, job: Job, service: str, decision: Decision, count: int) -> None:
        """`count` tasks are not sent, by rule: done before, or held (see `batcher.run.resume`)."""
        ...

    def request_answered(self, job: Job, service: str, code: str) -> None:
        """One HTTP exchange ended; `code` is `ok` or the error code."""
        ...


@dataclass(frozen=True, slots=True)
class StopCause:
    reason: StopReason
    detail: str = ""


@dataclass(slots=True)
class RunResult:
    jobs: Sequence[Job]
    stop: StopCause | None


@dataclass(slots=True)
class _Lane:
    service: Service
    limiter: RateLimiter
    queue: asyncio.Queue[tuple[Job, Task]]


class Pipeline:
    """Runs the jobs through one client under one set of settings. Use `await run()` once."""

    def __init__(
        self,
        client: AigcClient,
        jobs: Sequence[Job],
        settings: RunSettings,
        observer: RunObserver,
    ) -> None:
        self._client = client
        self._jobs = jobs
        self._settings = settings
        self._observer = observer
        self._rng = random.Random(settings.seed)
        self._stopping = asyncio.Event()
        self._stop: StopCause | None = None
        self._lanes_done: asyncio.Future[list[None]] | None = None
        self._abandoned = False

    # --- the run -------------------------------------------------------------------------

    async def run(self) -> RunResult:
        self._account_skipped()
        lanes = [self._make_lane(get_service(name)) for name in SERVICE_NAMES]
        loop = asyncio.get_running_loop()
        timer = None
        if self._settings.max_runtime is not None:
            timer = loop.call_later(
                self._settings.max_runtime, self.request_stop, StopCause(StopReason.MAX_RUNTIME)
            )
        lanes_done = asyncio.gather(*(self._run_lane(lane) for lane in lanes))
        self._lanes_done = lanes_done
        with self._signal_handlers(loop):
            try:
                await lanes_done
            except asyncio.CancelledError:
                if not self._abandoned:
                    raise
            finally:
                if timer is not None:
                    timer.cancel()
        return RunResult(self._jobs, self._stop)

    def request_stop(self, cause: StopCause) -> None:
        """Stop taking new tasks; in-flight ones settle. The first cause is the one reported."""
        if self._stop is None:
            self._stop = cause
            log.warning("stopping (%s%s): settling requests in flight", cause.reason,
                        f": {cause.detail}" if cause.detail else "")
        self._stopping.set()

    def _make_lane(self, service: Service) -> _Lane:
        queue: asyncio.Queue[tuple[Job, Task]] = asyncio.Queue(
            maxsize=self._settings.workers_per_service
        )
        limiter = RateLimiter(MemoryStore(), scope="pipeline", service=service.name,
                              action=service.action, rate=self._settings.rate)
        return _Lane(service, limiter, queue)

    def _account_skipped(self) -> None:
        """Count the tasks no lane will send (done, held), from the plans, before any is sent."""
        for job in self._jobs:
            for service, plan in job.plans.items():
                for decision, count in plan.decisions.items():
                    if decision is not Decision.SEND and count:
                        job.held[(service, decision)] += count
                        self._observer.tasks_skipped(job, service, decision, count)

    async def _run_lane(self, lane: _Lane) -> None:
        workers = [
            asyncio.create_task(self._worker(lane), name=f"{lane.service.name}-worker-{n}")
            for n in range(self._settings.workers_per_service)
        ]
        try:
            await self._produce(lane)
            await lane.queue.join()
        finally:
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            self._count_left(lane)

    def _count_left(self, lane: _Lane) -> None:
        # Every task to send either ended in this run (a result) or was left: the difference
        # is exact without reading the rest of the manifest, whenever the run stopped.
        service = lane.service.name
        for job in self._jobs:
            plan = job.plans.get(service)
            if plan is not None:
                ended = sum(job.results[(service, result)] for result in Result)
                job.left[service] = plan.to_send - ended

    # --- producer ------------------------------------------------------------------------

    async def _produce(self, lane: _Lane) -> None:
        """Deal the tasks to send into the lane's queue, round-robin over the jobs."""
        service = lane.service.name
        streams = [
            self._tasks_to_send(job, service, plan.to_send)
            for job in self._jobs
            if (plan := job.plans.get(service)) is not None and plan.to_send
        ]
        while streams and not self._stopping.is_set():
            still_open = []
            for stream in streams:
                item = await anext(stream, None)
                if item is None:
                    continue
                still_open.append(stream)
                await lane.queue.put(item)
                if self._stopping.is_set():
                    break
            streams = still_open
        for stream in streams:
            await stream.aclose()

    async def _tasks_to_send(
        self, job: Job, service: ServiceName, count: int
    ) -> AsyncGenerator[tuple[Job, Task], None]:
        """The job's `count` tasks of `service` to send: the manifest is read no further than
        the last of them, and the tasks passed over (done, held) are not counted again."""
        rules = self._settings.rules
        passed_over = 0
        for task in job.manifest.tasks(service):
            state = job.replay.state_of(task.key)
            decision, task = decide_task(task, state, job.regenerations.get(task.key), rules)
            if decision is Decision.SEND:
                yield job, task
                count -= 1
                if count == 0:
                    return
            else:
                passed_over += 1
                if passed_over % YIELD_EVERY == 0:
                    await asyncio.sleep(0)  # a long resume scan never starves the event loop

    # --- workers -------------------------------------------------------------------------

    async def _worker(self, lane: _Lane) -> None:
        while True:
            job, task = await lane.queue.get()
            try:
                if not self._stopping.is_set():
                    await self._settle(lane, job, task)
            finally:
                lane.queue.task_done()

    async def _settle(self, lane: _Lane, job: Job, task: Task) -> None:
        """Send one task until it ends: submitted, duplicate, failed, in doubt, or left."""
        budget = RetryBudget(self._settings.retry, self._rng)
        first_attempt = job.replay.last_attempt(task.key) + 1
        limiter = lane.limiter
        while True:
            async with limiter.turn(ahead=PREPARE_AHEAD) as turn:
                assert turn is not None  # no stop event given: a turn always comes
                if self._stopping.is_set() and budget.attempts_made == 0:
                    return
                attempt = first_attempt + budget.attempts_made
                await job.ledger.sending(task.key, task.service, attempt, task.session_id)
                if not limiter.unlimited:  # Turn.ready() divides by the rate (rate's to mend)
                    await turn.ready()
                request = asyncio.ensure_future(
                    self._client.create_task(lane.service, task.params))
            outcome = await request
            code = "ok" if isinstance(outcome, Accepted) else outcome.code
            self._observer.request_answered(job, lane.service.name, code)
            result = await self._record(lane, job, task, outcome, budget)
            if result is not None:
                job.results[(lane.service.name, result)] += 1
                self._observer.task_settled(job, lane.service.name, result)
                return
            if await self._stopped_during(budget.delay()):
                await job.ledger.failed(
                    task.key, task.service, code,
                    f"run stopped before retrying: {_message(outcome)}", True, _request_id(outcome),
                )
                job.results[(lane.service.name, Result.FAILED)] += 1
                self._observer.task_settled(job, lane.service.name, Result.FAILED)
                return

    async def _record(
        self,
        lane: _Lane,
        job: Job,
        task: Task,
        outcome: Accepted | ApiError | TransportError,
        budget: RetryBudget,
    ) -> Result | None:
        """Write what the outcome settles; None means "try again"."""
        ledger = job.ledger
        if isinstance(outcome, Accepted):
            await ledger.submitted(
                task.key, task.service, outcome.task_id, outcome.request_id, task.session_id
            )
            return Result.SUBMITTED
        if isinstance(outcome, TransportError):
            if outcome.may_have_reached_server and not is_resend_safe(
                task.service, task.session_id
            ):
                # The task may exist: its last line stays `sending`, so the next run reports it.
                log.warning("%s task %s in doubt after %s (%s)", task.service, task.key,
                            outcome.code, outcome.message)
                return Result.IN_DOUBT
            if budget.failed():
                return None
            await ledger.failed(
                task.key, task.service, outcome.code, outcome.message, True, None
            )
            return Result.FAILED
        if outcome.error_class is ErrorClass.DUPLICATE:
            await ledger.duplicate(
                task.key, task.service, outcome.request_id or "", task.session_id or ""
            )
            return Result.DUPLICATE
        if outcome.error_class is ErrorClass.RETRYABLE:
            if is_throttling(outcome.code):
                lane.limiter.throttled()
                may_retry = budget.throttled()
            else:
                may_retry = budget.failed()
            if may_retry:
                return None
            await ledger.failed(
                task.key, task.service, outcome.code, outcome.message, True, outcome.request_id
            )
            return Result.FAILED
        if outcome.error_class is ErrorClass.RUN_STOPPING:
            # Recorded as retryable: once the account is fixed, the next run sends it again.
            await ledger.failed(
                task.key, task.service, outcome.code, outcome.message, True, outcome.request_id
            )
            self.request_stop(
                StopCause(StopReason.RUN_STOPPING_ERROR, f"{outcome.code}: {outcome.message}")
            )
            return Result.FAILED
        await ledger.failed(
            task.key, task.service, outcome.code, outcome.message, False, outcome.request_id
        )
        return Result.FAILED

    async def _stopped_during(self, seconds: float) -> bool:
        """Sleep `seconds` unless the run is stopped first; True if it was."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)
        return self._stopping.is_set()

    # --- signals -------------------------------------------------------------------------

    @contextlib.contextmanager
    def _signal_handlers(self, loop: asyncio.AbstractEventLoop) -> Iterator[None]:
        if not self._settings.handle_signals:
            yield
            return
        handled = {signal.SIGINT: StopReason.SIGINT, signal.SIGTERM: StopReason.SIGTERM}
        for signum, reason in handled.items():
            loop.add_signal_handler(signum, self._on_signal, StopCause(reason))
        try:
            yield
        finally:
            for signum in handled:
                loop.remove_signal_handler(signum)

    def _on_signal(self, cause: StopCause) -> None:
        if self._stopping.is_set() and cause.reason is StopReason.SIGINT:
            # A second Ctrl-C: do not wait for in-flight requests (their tasks stay in doubt,
            # which the next run resolves), but the ledger lines already written are durable.
            log.warning("second SIGINT: abandoning requests in flight")
            self._abandoned = True
            if self._lanes_done is not None:
                self._lanes_done.cancel()
            return
        self.request_stop(cause)


def _message(outcome: ApiError | TransportError | Accepted) -> str:
    return "" if isinstance(outcome, Accepted) else outcome.message


def _request_id(outcome: ApiError | TransportError | Accepted) -> str | None:
    return outcome.request_id if isinstance(outcome, ApiError | Accepted) else None
