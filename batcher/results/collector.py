"""A `collect` run (docs/results.md): recover duplicates, poll the unfinished tasks, download,
report.

For each manifest: its results ledger is locked (a second collect exits 3; a running `submit`
holds only the submit ledger, which is read without a lock), the manifest is validated, and every
task is placed from the two ledgers (`tracking`): counted, and held only if this run has work
for it (memory follows the unfinished tasks, not the batch). Then, for all manifests together:

1. vod duplicates get their TaskId back (`recovery`), or are recorded `lost`;
2. unfinished tasks are polled on the per-task back-off of `schedule` (one pass asks each once;
   `wait` repeats until every task is final, `timeout` passes or the run is stopped), each answer
   recorded in the results ledger (`generated`, `generation_failed`) before it is acted on;
3. generated files are downloaded as they come, a bounded number at once (`download`), then
   recorded `downloaded` (or `expired`).

Whatever happens (a stop, a run-stopping error), `results.csv` and `index.html` are rewritten
from the tasks' final states before the run returns or raises: the manifest streamed again,
joined with the held tasks and the ledgers read again (`tracking.FinalRows`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Iterator, Sequence
from dataclasses import dataclass

import aiohttp

from batcher.api.results import TASK_NOT_FOUND
from batcher.api.services import SERVICES
from batcher.exceptions import BatcherError, ExitCode
from batcher.results.caller import ApiCaller, Stopped
from batcher.results.collect_job import (
    DEFAULT_TIMEOUT,
    FAILED_STATES,
    FINAL_STATES,
    UNFINISHED_STATES,
    Backlog,
    CollectJob,
    CollectObserver,
    CollectResult,
    CollectSettings,
    JobReport,
    LimiterFactory,
    exit_code_of,
)
from batcher.results.counts import Tally
from batcher.results.disk import disk_error
from batcher.results.download import download_session, download_task_files
from batcher.results.download_queue import DownloadQueue
from batcher.results.duplicates import settle_duplicates
from batcher.results.finder import FinishedFinder, bring_forward
from batcher.results.follow import FOLLOW_INTERVAL
from batcher.results.outcomes import Generation, Stage, read_generation
from batcher.results.reports import write_reports
from batcher.results.rows import ResultState
from batcher.results.schedule import PollSchedule
from batcher.results.tracking import JobState, Tracked, Work, monotonic_of
from batcher.run.limiter import RateLimiter
from batcher.run.stopping import stop_signals, unless_stopped
from batcher.state.results_ledger import GenerationError, ResultsLedgerWriter, results_ledger_path
from batcher.state.submissions import submit_running
from batcher.wire.client import AigcClient, Answer
from batcher.wire.errors import ApiError, ErrorClass, printable

log = logging.getLogger("batcher")

__all__ = [
    "DEFAULT_TIMEOUT", "FAILED_STATES", "FINAL_STATES", "UNFINISHED_STATES", "Backlog",
    "CollectJob", "CollectObserver", "CollectResult", "CollectSettings", "Collector", "JobReport",
    "LimiterFactory",
]


@dataclass(slots=True)
class _Job:
    spec: CollectJob
    state: JobState

    @property
    def writer(self) -> ResultsLedgerWriter:
        return self.state.writer


class Collector:
    """Runs one collect over several manifests; `await run()` once."""

    def __init__(
        self,
        jobs: Sequence[CollectJob],
        settings: CollectSettings,
        client: AigcClient,
        limiter_for: LimiterFactory,
        observer: CollectObserver | None = None,
    ) -> None:
        self._specs = jobs
        self._settings = settings
        self._client = client
        self._limiter_for = limiter_for
        self._observer = observer
        self._stop = asyncio.Event()
        self._stop_exit: ExitCode | None = None
        self._stop_detail = ""
        self._jobs: list[_Job] = []
        self._schedules: dict[str, PollSchedule] = {}
        """One per service: each learns its own generation time and knows its own cap."""
        self._tally = Tally()
        self._by_id: dict[str, tuple[_Job, Tracked]] = {}
        self._vod_ids: dict[str, str] = {}
        """vod TaskId -> its ident in the schedule, for the listing of finished tasks."""
        self._vod_apps: set[int | None] = set()
        self._wake = asyncio.Event()
        self._downloads = DownloadQueue(settings.download.concurrency, self._download_ended)
        self._polls: set[asyncio.Task[None]] = set()
        self._polled = 0
        self._error: BaseException | None = None
        """The first error a poll or download task raised: it stops the run."""
        self._session: aiohttp.ClientSession | None = None
        self._following = False
        """True while --wait follows a running submit of these manifests."""
        self._window = max(1, settings.window)
        """Tasks to poll or download held at most (the rest deferred: docs/results.md#memory)."""
        self._room = asyncio.Event()
        """Set when a held task is let go: the window may take deferred ones in."""
        self._feeding: asyncio.Task[None] | None = None
        self._deferring = asyncio.Lock()
        """Held by the feeder while its worker thread reads the deferred marks, and by the
        follower while it defers or places tasks: one at a time."""

    async def run(self) -> CollectResult:
        """Lock, place, work, write the reports; LedgerLocked (3) or ManifestError (2) first."""
        async with contextlib.AsyncExitStack() as stack:
            # Whether to follow a running submit's ledger as it grows: decided once.
            following = self._settings.wait and any(
                submit_running(spec.ledger) for spec in self._specs)
            for number, spec in enumerate(self._specs):
                writer = ResultsLedgerWriter.open(results_ledger_path(spec.ledger))
                stack.push_async_callback(writer.close)
                room = max(0, self._window - sum(len(job.state.tracked) for job in self._jobs))
                self._jobs.append(_Job(spec, JobState.place(
                    spec.manifest, spec.ledger, writer, following=following,
                    on_placed=self._tally.add, number=number, window=room)))
            caller = ApiCaller(self._client, self._limiters(), self._settings.caller,
                               stop=self._stop)
            error: BatcherError | None = None
            with stop_signals(self._request_stop, enabled=self._settings.handle_signals):
                try:
                    await self._work(caller)
                except BatcherError as raised:
                    error = raised
                finally:
                    await self._settle_tasks()
            reports = [write_reports(job.spec, job.state.final_rows()) for job in self._jobs]
        if error is not None:
            raise error
        if self._error is not None:
            raise self._error
        return CollectResult(reports, self._exit_code(), self._stop_detail, dict(caller.calls),
                             self._polled, self._tally.backlog_now(time.time()))

    # --- set-up -----------------------------------------------------------------------------

    def _limiters(self) -> dict[tuple[str, str], RateLimiter]:
        limiters: dict[tuple[str, str], RateLimiter] = {}
        for service in SERVICES.values():
            for action, cap in service.caps.items():
                rate = self._settings.rate_of(cap)
                limiters[(service.name, action)] = self._limiter_for(service.name, action, rate)
                if action == service.poll_action:
                    self._schedules[service.name] = PollSchedule(
                        self._settings.timing, clock=time.monotonic, rate=rate)
        return limiters

    # --- the work ---------------------------------------------------------------------------

    async def _work(self, caller: ApiCaller) -> None:
        deadline, which = self._settings.deadline()
        timer = asyncio.get_running_loop().call_later(
            deadline, self._request_stop, None, f"{which} reached")
        follower: asyncio.Task[None] | None = None
        finding: asyncio.Task[None] | None = None
        try:
            self._notify()
            await self._start_work(caller, list(self._each()))
            self._start_feeding(caller)
            if self._settings.wait:
                self._following = any(job.state.following for job in self._jobs)
                follower = asyncio.create_task(self._follow_submit(caller))
                finder = FinishedFinder(caller, self._vod_apps, since=time.time() - 60)
                finding = asyncio.create_task(bring_forward(
                    finder, self._poll_vod_now,
                    lambda: self._following and self._schedules["vod"].has_young(),
                    time.time))
            await self._poll_until_done(caller)
            if not self._stop.is_set():
                await self._unless_stopped(self._downloads.drained())
        finally:
            timer.cancel()
            for helper in (follower, finding, self._feeding):
                if helper is not None:
                    helper.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await helper

    async def _start_work(self, caller: ApiCaller, items: list[tuple[_Job, Tracked]]) -> None:
        """Recover, poll or download each task, as its placement says."""
        await settle_duplicates(caller, [(job.spec.name, job.writer, tracked)
                                         for job, tracked in items if tracked.work is Work.RECOVER],
                                self._moved)
        # Oldest finished first: their URLs die first (the download semaphore is first come,
        # first served).
        for job, tracked in sorted(
            ((job, tracked) for job, tracked in items if tracked.work is Work.DOWNLOAD),
            key=lambda item: item[1].finished_at,
        ):
            self._start_download(job, tracked)
        for job, tracked in items:
            if tracked.work is Work.POLL:
                self._add_to_schedule(job, tracked)
        self._wake.set()

    async def _follow_submit(self, caller: ApiCaller) -> None:
        """With --wait, while a submit of these manifests runs: take its new tasks in as its
        ledger grows (checked every `FOLLOW_INTERVAL`), until it ends."""
        while self._following:
            await asyncio.sleep(FOLLOW_INTERVAL)
            running = any(submit_running(job.spec.ledger) for job in self._jobs)
            async with self._deferring:
                placed = [(job, tracked) for job in self._jobs
                          for tracked in self._placed_anew(job, caller)]
            if placed:
                await self._start_work(caller, placed)
            self._following = running
        self._wake.set()

    def _placed_anew(self, job: _Job, caller: ApiCaller) -> list[Tracked]:
        """The tasks a followed submit named, counted anew; held if they have work (or deferred)."""
        held: list[Tracked] = []
        for old_state, tracked in job.state.refresh():
            if tracked.work in (Work.POLL, Work.DOWNLOAD) and (
                    self._held() + len(held) >= self._window):
                job.state.defer(tracked)
                self._start_feeding(caller)
            elif tracked.work is not Work.NOTHING:
                job.state.hold(tracked)
                held.append(tracked)
            self._moved(tracked, old_state)
        return held

    def _start_feeding(self, caller: ApiCaller) -> None:
        """Take deferred tasks in as the window empties, unless that is under way already."""
        feeding = self._feeding is not None and not self._feeding.done()
        if not feeding and any(job.state.deferred for job in self._jobs):
            self._feeding = asyncio.create_task(self._feed(caller))
            self._feeding.add_done_callback(self._check)

    async def _feed(self, caller: ApiCaller) -> None:
        """Keep the window full: whenever fewer than half of it are held, place the next
        deferred tasks (read from the ledgers in a worker thread: the loop keeps polling)."""
        while not self._stop.is_set():
            job = next((job for job in self._jobs if job.state.deferred), None)
            if job is None:
                break
            room = self._window - self._held()
            if room < (self._window + 1) // 2:
                self._room.clear()
                await self._unless_stopped(self._room.wait())
                continue
            async with self._deferring:
                placed = await asyncio.to_thread(job.state.take_deferred, room)
                for old_state, tracked in placed:
                    job.state.hold(tracked)
                    self._moved(tracked, old_state)
            await self._start_work(caller, [(job, tracked) for _, tracked in placed])
        self._wake.set()

    def _held(self) -> int:
        """Tasks in the window: to be polled, or downloading."""
        return len(self._by_id) + len(self._downloads)

    def _add_to_schedule(self, job: _Job, tracked: Tracked) -> None:
        # The key alone in the first manifest (a string the task holds already), with its
        # manifest's id in the others: two manifests may share a key (not their ledgers).
        ident = tracked.key if job is self._jobs[0] else f"{id(job)}:{tracked.key}"
        self._by_id[ident] = (job, tracked)
        sent_at = monotonic_of(tracked.sent_at)
        first = self._settings.timing.first_poll_age if self._settings.wait else 0.0
        self._schedules[tracked.service].add(ident, sent_at, first_at_age=first)
        if tracked.service == "vod":
            self._vod_ids[tracked.task_id] = ident
            self._vod_apps.add(tracked.who.sub_app_id)

    async def _poll_until_done(self, caller: ApiCaller) -> None:
        limit = asyncio.Semaphore(self._settings.poll_concurrency)
        schedules = list(self._schedules.values())
        while not self._stop.is_set():
            ident = next((due for schedule in schedules
                          if (due := schedule.pop_due()) is not None), None)
            if ident is not None:
                await self._unless_stopped(limit.acquire())
                if self._stop.is_set():
                    return
                poll = asyncio.create_task(self._poll(caller, ident))
                self._polls.add(poll)
                poll.add_done_callback(functools.partial(self._poll_ended, limit))
                continue
            waits = [w for schedule in schedules if (w := schedule.wait()) is not None]
            wait = min(waits, default=None)
            feeding = self._feeding is not None and not self._feeding.done()
            if wait is None and not self._polls and not self._following and not feeding:
                return
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await self._unless_stopped(asyncio.wait_for(self._wake.wait(), wait))

    async def _poll(self, caller: ApiCaller, ident: str) -> None:
        if ident not in self._by_id:  # settled since it was handed out
            return
        job, tracked = self._by_id[ident]
        service = SERVICES[tracked.service]
        params: dict[str, object] = {"TaskId": tracked.task_id}
        if service.name == "vod" and (sub_app := tracked.who.sub_app_id) is not None:
            params["SubAppId"] = sub_app
        try:
            answer = await caller.call(service, service.poll_action, params)
            generation = (read_generation(service.name, answer.response)
                          if isinstance(answer, Answer) else None)
        except Stopped:
            return
        except (RecursionError, MemoryError, ValueError, TypeError, LookupError,
                AttributeError) as broken:
            # One broken answer (nested 200,000 deep, say) is this task's problem, not the run's.
            self._polled += 1
            log.warning("%s: task %s: unreadable answer (%s); asked again later",
                        job.spec.name, printable(tracked.task_id), type(broken).__name__)
            self._again_later(ident)
            return
        self._polled += 1
        if generation is not None:
            await self._settle_generation(job, tracked, ident, generation)
        elif isinstance(answer, ApiError) and answer.error_class is not ErrorClass.RETRYABLE:
            not_found = answer.code == TASK_NOT_FOUND.get(service.name)
            error = GenerationError(answer.code, answer.message, False)
            await job.writer.generation_failed(tracked.key, tracked.service, tracked.task_id,
                                               error)
            old_state = tracked.state
            tracked.fail(ResultState.GENERATION_FAILED, answer.code, answer.message)
            job.state.settled(tracked)
            self._forget(ident)
            log.warning("%s: task %s: %s%s", job.spec.name, printable(tracked.task_id),
                        printable(answer.code),
                        " (older than 3 days, or another account's)" if not_found else "")
            self._moved(tracked, old_state)
        else:
            self._again_later(ident)

    def _again_later(self, ident: str) -> None:
        """Asking failed (network, throttling, a broken answer): again later with --wait."""
        if self._settings.wait:
            self._schedules[self._by_id[ident][1].service].retry(
                ident, self._settings.timing.min_delay * 5)
        else:
            self._forget(ident)

    def _forget(self, ident: str) -> None:
        """Never ask about `ident` again in this run (the schedule does not learn from it)."""
        job, tracked = self._by_id.pop(ident)
        self._vod_ids.pop(tracked.task_id, None)
        self._schedules[tracked.service].drop(ident)
        job.state.settled(tracked)  # its ledgers say where it stands: pending, or failed

    def _poll_vod_now(self, task_id: str) -> bool:
        """vod's listing says `task_id` finished: poll it now (the schedule stays the fallback)."""
        ident = self._vod_ids.get(task_id)
        if ident is None or not self._schedules["vod"].poll_now(ident):
            return False
        self._wake.set()
        return True

    async def _settle_generation(
        self, job: _Job, tracked: Tracked, ident: str, generation: Generation
    ) -> None:
        schedule = self._schedules[tracked.service]
        if generation.stage is Stage.PENDING:
            if self._settings.wait:
                schedule.pending(ident)
            else:
                self._forget(ident)
            return
        schedule.finished(ident)
        old_state = tracked.state
        if generation.stage is Stage.FAILED:
            assert generation.error is not None
            await job.writer.generation_failed(tracked.key, tracked.service, tracked.task_id,
                                               generation.error)
            tracked.fail(ResultState.GENERATION_FAILED, generation.error.code,
                         generation.error.message)
            job.state.settled(tracked)
            self._let_go(ident, tracked)
        else:
            await job.writer.generated(tracked.key, tracked.service, tracked.task_id,
                                       generation.files, generation.expires_at)
            self._let_go(ident, tracked)  # in the window until the download holds it
            tracked.state, tracked.generated = ResultState.GENERATED, generation.files
            tracked.finished_at = time.time()
            tracked.expires_at = generation.expires_at
            self._start_download(job, tracked)
        self._moved(tracked, old_state)

    def _let_go(self, ident: str, tracked: Tracked) -> None:
        """`ident`'s polling is over (its answer written): out of the schedule's tasks."""
        self._by_id.pop(ident, None)
        self._vod_ids.pop(tracked.task_id, None)

    # --- downloads --------------------------------------------------------------------------

    def _start_download(self, job: _Job, tracked: Tracked) -> None:
        self._downloads.add(functools.partial(self._download, job, tracked))

    def _poll_ended(self, limit: asyncio.Semaphore, poll: asyncio.Task[None]) -> None:
        self._polls.discard(poll)
        limit.release()
        self._wake.set()
        self._room.set()
        self._check(poll)

    def _download_ended(self, download: asyncio.Task[None]) -> None:
        self._room.set()
        self._check(download)

    def _check(self, task: asyncio.Task[None]) -> None:
        """A poll or download task ended: an error it raised stops the run, and is raised."""
        if task.cancelled() or task.exception() is None:
            return
        if self._error is None:
            self._error = task.exception()
            self._request_stop(None, f"{self._error}")

    async def _download(self, job: _Job, tracked: Tracked) -> None:
        if self._session is None:
            self._session = download_session(self._settings.download)
        old_state = tracked.state
        try:
            await download_task_files(self._session, tracked, job.spec.out_dir, job.writer,
                                      self._settings.download)
        except OSError as error:
            raise disk_error(error, job.spec.out_dir) from None
        if tracked.state is ResultState.DOWNLOADED:
            job.state.settled(tracked)  # its `downloaded` line says it all: not held any more
        self._moved(tracked, old_state)

    # --- stopping ---------------------------------------------------------------------------

    async def _unless_stopped(self, awaitable: Awaitable[object]) -> None:
        """Await `awaitable` unless the run stops first (then it is cancelled)."""
        await unless_stopped(awaitable, self._stop)

    def _request_stop(self, exit_code: ExitCode | None, detail: str) -> None:
        if not self._stop.is_set():
            self._stop_exit, self._stop_detail = exit_code, detail
            log.warning("stopping: %s", detail)
        self._stop.set()

    async def _settle_tasks(self) -> None:
        """Cancel what is still running (a `.part` file at most is left) and close HTTP."""
        running = list(self._polls)
        for task in running:
            task.cancel()
        if running:
            await asyncio.gather(*running, return_exceptions=True)
        await self._downloads.cancel()
        if self._session is not None:
            await self._session.close()

    # --- the end ----------------------------------------------------------------------------

    def _each(self) -> Iterator[tuple[_Job, Tracked]]:
        for job in self._jobs:
            for tracked in job.state.tracked.values():
                yield job, tracked

    def _moved(self, tracked: Tracked, old_state: ResultState) -> None:
        """`tracked` went from `old_state` to its state: the counts follow, in O(1)."""
        self._jobs[tracked.who.manifest].state.count(tracked)
        if self._tally.moved(tracked, old_state):
            self._notify()

    def _notify(self) -> None:
        if self._observer is not None:
            self._observer.changed(self._tally.states.counts)

    def _exit_code(self) -> ExitCode:
        if self._stop_exit is not None:
            return self._stop_exit
        needs_recovery = any(t.work is Work.RECOVER for _, t in self._each())
        return exit_code_of(self._tally.states.counts, needs_recovery)
