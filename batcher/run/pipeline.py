"""The asyncio submission pipeline: manifests in, one settled ledger line per task out.

Design, in the order a task travels:

1. One *lane* per service (vod, mps), side by side. A lane's producer (`batcher.run.producer`)
   streams the tasks of its service from every job (one job = one manifest with its own
   ledger, `batcher.run.jobs`) into a small bounded queue, so memory stays flat whatever the
   manifest's size, and the number of requests in flight is bounded by the lane's workers.
2. A worker takes a task and waits for its lane's *turn* at the rate limiter, shared through
   the rate store with every process on the account (at most R requests in any second, no
   burst; `batcher.run.limiter`). The turn reserves one slot just in time: 50 ms before it the
   worker writes a durable `sending` line, at the slot it sends (the client signs at send
   time), and only then may the next worker reserve. A lane grows its workers while all of them
   are busy (up to a bound): with slots paced at R, the requests in flight settle at R times
   the API's latency (Little's law), so the cap is reached at any latency up to the bound.
3. The answer is judged (`batcher.run.verdict`): `submitted`, `duplicate` or `failed` in the
   ledger; retryable errors wait with jittered back-off within their budgets; a task refused
   for capacity waits in its lane at the pace tasks finish (`batcher.run.capacity`); a failure
   after the request may have reached the server is retried only when a SessionId makes it
   safe (vod), and otherwise left *in doubt* (the ledger's last line stays `sending`). An
   answer the client cannot read at all is that task's problem, judged like a lost answer.
4. Stops: SIGINT/SIGTERM and `--max-runtime` stop the taking of new tasks at once (every wait
   gives way, the producer's `put` included), let in-flight requests settle and return; an error
   that will fail every task (bad credentials, arrears, a service not activated) stops the run
   at once, and so do a rate store that stays down, an endpoint that cannot be reached
   (`batcher.run.reachability`) and any unexpected error in a worker (a full disk under the
   ledger): the worker records it as the run's stop and goes on draining its queue, so nothing
   waits for a worker that is gone. A second SIGINT abandons in-flight requests (in doubt).

Nothing here parses arguments, prints, or knows the ledger's format: the face passes a
`RunSettings`, an `AigcClient`, the jobs and a `RunObserver`, and reads back a `RunResult`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import signal
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from batcher.api.services import SERVICE_NAMES, Service, get_service
from batcher.manifest import Task
from batcher.manifest.images import task_images
from batcher.run.capacity import Capacity
from batcher.run.image_budget import Claim, ImageBudget
from batcher.run.jobs import Job, Result, RunObserver, RunResult, StopCause, StopReason
from batcher.run.limiter import PREPARE_AHEAD, RateLimiter, StoreUnreachable, Turn
from batcher.run.producer import produce
from batcher.run.rate_stores import MemoryStore, RateStore, StoreUnavailable
from batcher.run.reachability import Reachability
from batcher.run.resume import Decision
from batcher.run.retry import RetryBudget
from batcher.run.settings import RunSettings as RunSettings
from batcher.run.verdict import Outcome, Verdict, code_of, message_of, record, request_id_of
from batcher.wire.client import AigcClient
from batcher.wire.errors import Accepted, ApiError, TransportError, is_capacity_refusal

__all__ = [
    "Job", "Pipeline", "Result", "RunObserver", "RunResult", "RunSettings", "StopCause",
    "StopReason",
]

log = logging.getLogger("batcher")

INITIAL_WORKERS = 4
"""Workers a lane starts with; it adds one whenever all of them wait for answers."""

QUEUE_SIZE = 32
"""Tasks read ahead of the workers per lane: memory stays flat whatever the manifest's size."""


@dataclass(slots=True)
class _Lane:
    service: Service
    limiter: RateLimiter
    queue: asyncio.Queue[tuple[Job, Task]]
    capacity: Capacity = field(default_factory=Capacity)
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
        """Set by every stop but a reached image limit: every wait gives way."""
        self._closing = asyncio.Event()
        """Set by every stop: no new task is taken (a task that holds its images still goes)."""
        self._stop: StopCause | None = None
        self._images = ImageBudget(self._store, scope, settings.max_images,
                                   settings.daily_images)
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
        """Stop taking new tasks; in-flight ones settle. The first cause is the one reported.
        A reached image limit lets the tasks that hold their images go on: they fit."""
        if self._stop is None:
            self._stop = cause
            log.warning("stopping (%s%s): settling requests in flight", cause.reason,
                        f": {cause.detail}" if cause.detail else "")
        self._closing.set()
        if cause.reason is not StopReason.IMAGE_LIMIT:
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
            try:
                await produce(self._jobs, lane.service.name, self._settings.rules, lane.queue,
                              self._closing)
            except Exception as error:  # a manifest that changed under the run, ...
                self._unexpected(error)
            await lane.queue.join()  # workers drain the queue whatever happened, stopped or not
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

    def _unexpected(self, error: Exception) -> None:
        """An error no rule covers ends the run (its class decides the exit code), never a
        worker alone: a dead worker would leave the producer and the lane waiting for ever."""
        detail = str(error) or type(error).__name__
        if not isinstance(error, OSError | ArithmeticError | LookupError | ValueError):
            detail = f"{type(error).__name__}: {detail}"
        self.request_stop(StopCause(StopReason.UNEXPECTED_ERROR, detail, error))

    def _settled(self, lane: _Lane, job: Job, result: Result) -> None:
        job.results[(lane.service.name, result)] += 1
        self._observer.task_settled(job, lane.service.name, result)

    # --- workers -------------------------------------------------------------------------

    async def _worker(self, lane: _Lane) -> None:
        while True:
            job, task = await lane.queue.get()
            try:
                if not self._closing.is_set():
                    await self._settle(lane, job, task)
            except Exception as error:  # a full disk under the ledger, ...: the run ends
                self._unexpected(error)
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
        """Within the run's image budget: the task's claim is given back unless it may have
        created something (docs/spend.md)."""
        if not self._images.limited:
            await self._send_within_claim(lane, job, task, [False])
            return
        claim = await self._claim(task)
        if claim is None:
            return  # over a limit (the run stops) or stopped: not sent, counted as left
        may_have_billed = [False]
        try:
            await self._send_within_claim(lane, job, task, may_have_billed)
        finally:
            if not may_have_billed[0]:
                await self._give_back(claim)

    async def _claim(self, task: Task) -> Claim | None:
        if self._closing.is_set():
            return None
        try:
            claim = await self._images.claim(task_images(task.service, task.params))
        except StoreUnavailable as error:
            self.request_stop(StopCause(StopReason.STORE_UNREACHABLE, str(error)))
            return None
        if isinstance(claim, str):
            self.request_stop(StopCause(StopReason.IMAGE_LIMIT, claim))
            return None
        return claim

    async def _give_back(self, claim: Claim) -> None:
        try:
            await self._images.give_back(claim)
        except StoreUnavailable as error:  # counted high, never low: the limit still holds
            log.warning("cannot give back %d image(s) to the daily count: %s", claim.images,
                        error)

    async def _send_within_claim(
        self, lane: _Lane, job: Job, task: Task, may_have_billed: list[bool]
    ) -> None:
        budget = RetryBudget(self._settings.retry, self._rng)
        first_attempt = job.replay.last_attempt(task.key) + 1
        holds = 0  # refusals for capacity: they use no budget, but each attempt has its number
        outcome: Outcome | None = None
        verdict = Verdict()
        while True:
            if not await lane.capacity.admit(self._stopping):
                turn = None
            else:
                prepared = False
                try:
                    async with lane.limiter.turn(ahead=PREPARE_AHEAD, stop=self._stopping) as turn:
                        if turn is not None:
                            attempt = first_attempt + budget.attempts_made + holds
                            prepared = await self._prepare(turn, lane, job, task, attempt)
                except StoreUnreachable as error:
                    self.request_stop(StopCause(StopReason.STORE_UNREACHABLE, str(error)))
                    turn = None
                if turn is not None and not prepared:  # recorded as not sent
                    return
            if turn is None:  # stopped while waiting for a slot: nothing sent
                if outcome is not None:
                    await self._stopped_before_retrying(lane, job, task, outcome, verdict.held)
                return
            billed_before = may_have_billed[0]
            may_have_billed[0] = True  # from here until an answer says it created nothing
            outcome = await self._send(lane, task)
            if _created_nothing(outcome):
                may_have_billed[0] = billed_before
            self._observer.request_answered(job, lane.service.name, code_of(outcome))
            try:
                verdict = await record(job.ledger, task, outcome, budget)
            except BaseException:
                # The request was sent and its answer not written (a full disk): the last
                # line is `sending`, so the next run resolves it; this run counts it in doubt.
                self._settled(lane, job, Result.IN_DOUBT)
                raise
            self._heed(lane, verdict, outcome)
            if verdict.result is not None:
                self._settled(lane, job, verdict.result)
                return
            if verdict.stop is not None:
                return  # written as not sent: counted as left
            if verdict.held:
                holds += 1
                continue  # the capacity gate is this retry's back-off
            if await self._stopped_during(budget.delay()):
                await self._stopped_before_retrying(lane, job, task, outcome, False)
                return

    async def _send(self, lane: _Lane, task: Task) -> Outcome:
        """One request; an answer the client cannot read at all is judged as a lost answer."""
        self._request_leaves(lane)
        sent_at = lane.capacity.now()
        try:
            outcome: Outcome = await self._client.create_task(lane.service, task.params)
        except Exception as error:  # e.g. RecursionError on a hostile, deeply nested body
            log.warning("%s task %s: unreadable answer (%s)", task.service, task.key,
                        type(error).__name__)
            outcome = TransportError("BadResponse", f"unreadable answer ({type(error).__name__})",
                                     may_have_reached_server=True)
        finally:
            lane.idle += 1
        if isinstance(outcome, Accepted):
            lane.capacity.accepted()
        elif isinstance(outcome, ApiError) and is_capacity_refusal(task.service, outcome.code):
            lane.capacity.refused(sent_at)
        return outcome

    def _heed(self, lane: _Lane, verdict: Verdict, outcome: Outcome) -> None:
        """What an answer means for the lane and the run, beyond its task."""
        if verdict.throttled:
            lane.limiter.throttled()
        if verdict.stop is not None:
            self.request_stop(verdict.stop)
        if self._reachability.answered(outcome):
            self.request_stop(StopCause(
                StopReason.ENDPOINT_UNREACHABLE,
                f"the {lane.service.name} endpoint cannot be reached: every request of the "
                f"last {self._settings.unreachable_window:g} s failed before it was sent "
                f"({code_of(outcome)}: {message_of(outcome)})",
            ))

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
            self._settled(lane, job, Result.FAILED)
            self.request_stop(StopCause(StopReason.STORE_UNREACHABLE, str(error)))
            return False
        return True

    async def _stopped_before_retrying(
        self, lane: _Lane, job: Job, task: Task, outcome: Outcome, held: bool
    ) -> None:
        """The run stopped before the next attempt: a retryable line, so the next run sends it.
        A task held for capacity was certainly not created: it counts as not sent."""
        await job.ledger.failed(
            task.key, task.service, code_of(outcome),
            f"run stopped before retrying: {message_of(outcome)}", True, request_id_of(outcome),
        )
        if not held:
            self._settled(lane, job, Result.FAILED)

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


def _created_nothing(outcome: Outcome) -> bool:
    """An error answer, or a request that provably never left: nothing was created."""
    if isinstance(outcome, ApiError):
        return True
    return isinstance(outcome, TransportError) and not outcome.may_have_reached_server
