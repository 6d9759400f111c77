"""The asyncio submission pipeline: manifests in, one settled ledger line per task out.

Design, in the order a task travels:

1. One *lane* per service (vod, mps), side by side. A lane's producer streams the tasks of its
   service from every job (one job = one manifest with its own ledger), taking them round-robin
   so several manifests share the service fairly, and skipping what the ledger says is done
   (`batcher.run.resume`). It puts tasks into a small bounded queue, so memory stays flat whatever
   the manifest's size, and the number of requests in flight is bounded by the lane's workers.
2. A worker takes a task and waits for its lane's *turn* at the rate limiter, shared through
   the rate store with every process on the account (at most R requests in any second, no
   burst; `batcher.run.limiter`). The turn reserves one slot just in time: 50 ms before it the
   worker writes a durable `sending` line, at the slot it sends (the client signs at send
   time), and only then may the next worker reserve. A lane grows its workers while all of them
   are busy (up to a bound): with slots paced at R, the requests in flight settle at R times
   the API's latency (Little's law), so the cap is reached at any latency up to the bound.
3. The outcome settles the task: `submitted`, `duplicate` or `failed` in the ledger; retryable
   errors wait with jittered back-off and try again within their budgets; a failure after the
   request may have reached the server is retried only when a SessionId makes it safe (vod),
   and otherwise left *in doubt* (the ledger's last line stays `sending`).
4. Stops: SIGINT/SIGTERM and `--max-runtime` stop the taking of new tasks at once (a worker
   waiting for its turn stops waiting), let in-flight requests settle and return; an error that
   will fail every task (bad credentials, wrong SubAppId) stops the run at once, and so do a rate
   store that stays down and an endpoint that cannot be reached (`batcher.run.reachability`).
   A second SIGINT abandons in-flight requests (they stay in doubt).

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

from batcher.api.services import SERVICE_NAMES, Service, ServiceName, get_service
from batcher.manifest import Manifest, Task
from batcher.run.limiter import (
    PREPARE_AHEAD,
    RateLimiter,
    StoreUnreachable,
    Turn,
)
from batcher.run.rate_stores import MemoryStore, RateStore
from batcher.run.reachability import Reachability
from batcher.run.resume import Decision, ServicePlan, decide_task, is_resend_safe, regenerated
from batcher.run.retry import RetryBudget
from batcher.run.settings import RunSettings as RunSettings
from batcher.state.ledger import LedgerReplay, LedgerWriter
from batcher.state.regeneration import Regeneration
from batcher.wire.client import AigcClient
from batcher.wire.errors import Accepted, ApiError, ErrorClass, TransportError, is_throttling

log = logging.getLogger("batcher")

YIELD_EVERY = 256
"""Skipped tasks between two yields to the event loop, so a long resume scan never starves it."""

INITIAL_WORKERS = 4
"""Workers a lane starts with; it adds one whenever all of them wait for answers."""

QUEUE_SIZE = 32
"""Tasks read ahead of the workers per lane: memory stays flat whatever the manifest's size."""


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
    STORE_UNREACHABLE = "store_unreachable"
    ENDPOINT_UNREACHABLE = "endpoint_unreachable"


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
    workers: list[asyncio.Task[None]] = field(default_factory=list)
    idle: int = 0  # workers not waiting for an answer: when none is left, start another


class Pipeline:
    """Runs the jobs through one client under one set of settings. Use `await run()` once."""

    def __init__(
        self,
        client: AigcClient,
        jobs: Sequence[Job],
        settings: RunSettings,
        observer: RunObserver,
        store: RateStore | None = None,
        scope: str = "",
    ) -> None:
        """`store` holds the send slots (default: memory); `scope`, the SecretId, scopes them."""
        self._client = client
        self._store = store if store is not None else MemoryStore()
        self._scope = scope
        self._reachability = Reachability(settings.unreachable_window)
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
        queue: asyncio.Queue[tuple[Job, Task]] = asyncio.Queue(maxsize=QUEUE_SIZE)
        limiter = RateLimiter(
            self._store,
            scope=self._scope,
            service=service.name,
            action=service.action,
            rate=self._settings.rate,
            store_timeout=self._settings.store_timeout,
        )
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
        for _ in range(INITIAL_WORKERS):
            self._add_worker(lane)
        try:
            await self._produce(lane)
            await lane.queue.join()
        finally:
            for worker in lane.workers:
                worker.cancel()
            await asyncio.gather(*lane.workers, return_exceptions=True)
            self._count_left(lane)

    def _add_worker(self, lane: _Lane) -> None:
        name = f"{lane.service.name}-worker-{len(lane.workers)}"
        lane.workers.append(asyncio.create_task(self._worker(lane), name=name))
        lane.idle += 1

    def _request_leaves(self, lane: _Lane) -> None:
        # Little's law, measured rather than computed: a lane whose workers are all waiting for
        # answers starts one more, so the requests in flight follow rate × latency.
        lane.idle -= 1
        if lane.idle == 0 and len(lane.workers) < self._settings.workers_per_service:
            self._add_worker(lane)

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
        for task in job.manifest.tasks(service, start=job.plans[service].send_from or 0):
            state = job.replay.state_of(task.key)
            regeneration = job.regenerations.get(task.key)
            if decide_task(task, state, regeneration, rules) is Decision.SEND:
                yield job, task if regeneration is None else regenerated(task, regeneration.number)
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
        reachability = self._reachability
        if not reachability.suspected:
            await self._send_until_settled(lane, job, task)
            return
        async with reachability.probe:  # the endpoint refuses: one task at a time tries it
            if not self._stopping.is_set():
                await self._send_until_settled(lane, job, task)

    async def _send_until_settled(self, lane: _Lane, job: Job, task: Task) -> None:
        budget = RetryBudget(self._settings.retry, self._rng)
        first_attempt = job.replay.last_attempt(task.key) + 1
        outcome: Accepted | ApiError | TransportError | None = None
        while True:
            prepared = False
            try:
                async with lane.limiter.turn(ahead=PREPARE_AHEAD, stop=self._stopping) as turn:
                    if turn is not None:
                        attempt = first_attempt + budget.attempts_made
                        prepared = await self._prepare(turn, lane, job, task, attempt)
            except StoreUnreachable as error:
                self.request_stop(StopCause(StopReason.STORE_UNREACHABLE, str(error)))
                turn = None
            if turn is not None and not prepared:  # recorded as not sent
                return
            if turn is None:  # stopped while waiting for a slot: nothing sent
                if outcome is not None:
                    await self._stopped_before_retrying(lane, job, task, outcome)
                return
            self._request_leaves(lane)
            try:
                outcome = await self._client.create_task(lane.service, task.params)
            finally:
                lane.idle += 1
            code = "ok" if isinstance(outcome, Accepted) else outcome.code
            self._observer.request_answered(job, lane.service.name, code)
            if self._reachability.answered(outcome):
                self.request_stop(StopCause(
                    StopReason.ENDPOINT_UNREACHABLE,
                    f"the {lane.service.name} endpoint cannot be reached: every request of the "
                    f"last {self._settings.unreachable_window:g} s failed before it was sent "
                    f"({code}: {_message(outcome)})",
                ))
            result = await self._record(lane, job, task, outcome, budget)
            if result is not None:
                job.results[(lane.service.name, result)] += 1
                self._observer.task_settled(job, lane.service.name, result)
                return
            if await self._stopped_during(budget.delay()):
                await self._stopped_before_retrying(lane, job, task, outcome)
                return

    async def _prepare(self, turn: Turn, lane: _Lane, job: Job, task: Task, attempt: int) -> bool:
        """The durable `sending` line, then the slot (a fresh one if the write made it stale:
        sending late would bunch this request up with the next slot's, 21 in one second).
        False when the store failed meanwhile: the task is recorded as not sent, to send again."""
        await job.ledger.sending(task.key, task.service, attempt, task.session_id)
        try:
            await turn.ready()
        except StoreUnreachable as error:
            await job.ledger.failed(task.key, task.service, "RateStoreUnreachable",
                                    f"not sent: {error}", True, None)
            job.results[(lane.service.name, Result.FAILED)] += 1
            self._observer.task_settled(job, lane.service.name, Result.FAILED)
            self.request_stop(StopCause(StopReason.STORE_UNREACHABLE, str(error)))
            return False
        return True

    async def _stopped_before_retrying(
        self, lane: _Lane, job: Job, task: Task, outcome: Accepted | ApiError | TransportError
    ) -> None:
        await job.ledger.failed(
            task.key, task.service, "ok" if isinstance(outcome, Accepted) else outcome.code,
            f"run stopped before retrying: {_message(outcome)}", True, _request_id(outcome),
        )
        job.results[(lane.service.name, Result.FAILED)] += 1
        self._observer.task_settled(job, lane.service.name, Result.FAILED)

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
