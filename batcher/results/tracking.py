"""Where each task of a manifest stands, from the submit ledger and the results ledger.

A task's submission decides first: never sent (`not_submitted`), last line `sending`
(`in_doubt`), `failed`. A done one has a TaskId: its `submitted` line's, or for a vod
`duplicate` the one a `recovered` line found for its SessionId (until then it needs recovery, or
it is `lost`). Then the results ledger's last line about that TaskId: `generated` (files to
download), `downloaded`, `generation_failed`, `expired`; nothing yet means `pending` (poll it).
A TaskId the results ledger has not heard of (a regeneration's new one) starts again at pending.

`Tracked` is mutable: the collector moves it forward as polls and downloads settle, and
`to_row` renders it as the `ResultRow` that results.csv and the gallery show. `JobState` holds a
manifest's unfinished tasks only (memory stays flat whatever the batch: docs/results.md), follows
its submit ledger as a running `submit` appends to it (`follow.SubmitFollower`), and at the end
joins the manifest, read again as a stream, with the two ledgers into the report rows
(`FinalRows`).
"""

from __future__ import annotations

import enum
import functools
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from batcher.api.times import api_time_or_none
from batcher.manifest import Manifest, Task
from batcher.results.deferred import DeferredTasks
from batcher.results.follow import Checkpoints, SubmitFollower
from batcher.results.joined import CHUNK, Joined, KeyOrder, joined, joined_rows, reduced_joined
from batcher.results.rows import ResultRow, ResultState
from batcher.state.results_ledger import (
    DownloadedFile,
    GeneratedFile,
    ResultEvent,
    ResultRecord,
    ResultsLedgerWriter,
    replay_results,
    results_ledger_path,
)
from batcher.state.submissions import Submission, read_submissions


class Work(enum.Enum):
    """What this run has to do for a task."""

    NOTHING = "nothing"
    RECOVER = "recover"
    POLL = "poll"
    DOWNLOAD = "download"


@dataclass(frozen=True, slots=True)
class TaskIdentity:
    """What a collect run keeps of a manifest's task: not its parameters (most of its memory),
    which the reports read again from the manifest, in the same order, at the end."""

    row: int
    """1-based position in the manifest."""
    key: str
    service: str
    prompt: str
    sub_app_id: int | None
    """The vod SubAppId the task was created in (its polls must name it)."""
    manifest: int = 0
    """Which of the run's manifests (0-based) the task is from."""

    @classmethod
    def of(cls, row: int, task: Task, manifest: int = 0) -> TaskIdentity:
        prompt = task.params.get("Prompt")
        sub_app_id = task.params.get("SubAppId")
        return cls(row, task.key, task.service, prompt if isinstance(prompt, str) else "",
                   sub_app_id if type(sub_app_id) is int else None, manifest)

    @property
    def ident(self) -> int:
        """The task's number in the run, the same whenever it is placed (manifest and row)."""
        return (self.manifest << 40) | self.row


@dataclass(slots=True)
class Tracked:
    """One task of a manifest, followed through a collect run."""

    who: TaskIdentity
    state: ResultState
    work: Work = Work.NOTHING
    task_id: str = ""
    session_id: str = ""
    sent_at: str = ""
    """The ledger `ts` of its last `sending` line ("" if none)."""
    generated: tuple[GeneratedFile, ...] = ()
    files: tuple[DownloadedFile, ...] = ()
    error_code: str = ""
    error_message: str = ""
    sending_times: tuple[str, ...] = ()
    finished_at: float = 0.0
    """Unix seconds when it was first seen generated (its URLs' clock starts), 0 if never."""
    expires_at: float | None = None
    """When its URLs stop working, when the API said so (vod `ExpireTime`)."""

    @property
    def row(self) -> int:
        return self.who.row

    @property
    def key(self) -> str:
        return self.who.key

    @property
    def service(self) -> str:
        return self.who.service

    @property
    def prompt(self) -> str:
        return self.who.prompt

    def fail(self, state: ResultState, code: str, message: str) -> None:
        self.state, self.work = state, Work.NOTHING
        self.error_code, self.error_message = code, message

    def to_row(self, task: Task | None) -> ResultRow:
        """The report's row; `task` is this task as the manifest gives it again (None: without
        its source and parameters)."""
        return ResultRow(
            key=self.key,
            service=self.service,
            source=task.origin if task is not None else "",
            prompt=self.prompt,
            params=task.params if task is not None else {},
            state=self.state,
            task_id=self.task_id,
            files=tuple(f.path for f in self.files),
            error_code=self.error_code,
            error_message=self.error_message,
        )


def track(
    who: TaskIdentity, submission: Submission | None, record: ResultRecord | None
) -> Tracked:
    """The task as the two ledgers leave it, with the work this run owes it."""
    if submission is None:
        return Tracked(who, ResultState.NOT_SUBMITTED)
    tracked = Tracked(who, ResultState.PENDING, session_id=submission.session_id,
                      sent_at=submission.sendings[-1][0] if submission.sendings else "")
    if submission.event == "sending":
        tracked.state = ResultState.IN_DOUBT
        return tracked
    if submission.event == "failed":
        tracked.fail(ResultState.FAILED, submission.error_code, submission.error_message)
        return tracked
    if submission.event == "submitted":
        tracked.task_id = submission.task_id
    else:  # duplicate: its TaskId comes from DescribeTasks
        _track_duplicate(tracked, submission, record)
        if not tracked.task_id:
            return tracked
    _apply_results(tracked, record)
    return tracked


def _track_duplicate(
    tracked: Tracked, submission: Submission, record: ResultRecord | None
) -> None:
    session_id = submission.session_id
    if record is not None and record.recovered_session_id == session_id and session_id:
        tracked.task_id = record.recovered_task_id
    elif record is not None and record.event is ResultEvent.LOST and (
        record.lost_session_id == session_id
    ):
        tracked.fail(ResultState.LOST, "TaskIdNotRecovered", record.lost_reason)
    else:
        tracked.work = Work.RECOVER
        tracked.sending_times = tuple(submission.sending_times(session_id))


def _apply_results(tracked: Tracked, record: ResultRecord | None) -> None:
    tracked.state, tracked.work = ResultState.PENDING, Work.POLL
    if record is None or not record.about(tracked.task_id):
        return
    event = record.event
    if event is ResultEvent.GENERATED:
        tracked.state, tracked.work = ResultState.GENERATED, Work.DOWNLOAD
        tracked.generated = record.generated
        tracked.finished_at = _unix_of(record.generated_at)
        tracked.expires_at = api_time_or_none(record.generated_expires)
    elif event is ResultEvent.DOWNLOADED:
        tracked.state, tracked.work = ResultState.DOWNLOADED, Work.NOTHING
        tracked.files = record.downloaded
    elif event is ResultEvent.GENERATION_FAILED:
        error = record.error
        tracked.fail(ResultState.GENERATION_FAILED, error.code if error else "",
                     error.message if error else "")
    elif event is ResultEvent.EXPIRED:
        tracked.fail(ResultState.EXPIRED, "UrlExpired",
                     "the image URLs stopped working before they were downloaded")


@dataclass(slots=True)
class JobState:
    """One manifest's unfinished tasks, placed from its ledgers, and the results ledger this run
    writes.

    Only the tasks this run works on are held (`tracked`, by key): those to poll, download or
    recover, and those still settling, up to a window of them; the others with work are
    `deferred` and placed again later (`take_deferred`). A task already final when the run starts
    is counted by `place`'s caller and dropped, and one that settles in the ledger is `settled`
    and dropped too; `final_rows` reads every task's state again from the two ledgers at the end.
    While `following` a running submit, the tasks its new lines name are placed anew
    (`refresh`), found by key in the manifest's key order: 17 bytes held a task of the batch."""

    manifest: Manifest
    writer: ResultsLedgerWriter
    ledger: Path
    """The submit ledger."""
    follower: SubmitFollower[TaskIdentity] | None = None
    """What a running submit appends, while following one (else None)."""
    tracked: dict[str, Tracked] = field(default_factory=dict)
    order: KeyOrder | None = None
    """The manifest's keys, for a batch read a chunk at a time (`joined`)."""
    number: int = 0
    """The manifest's place among the run's (0-based)."""
    rows: int = 0
    """Tasks in the manifest when it was placed."""
    deferred: DeferredTasks | None = None
    """The tasks with work beyond the window, None when there were none."""
    refill: Iterator[Joined] | None = field(default=None, repr=False)
    """The deferred tasks' join, suspended between two `take_deferred`."""
    refill_took: int = 0
    """Tasks the current pass of `refill` has taken."""

    @property
    def following(self) -> bool:
        return self.follower is not None

    @classmethod
    def place(cls, manifest: Manifest, ledger: Path, writer: ResultsLedgerWriter, *,
              following: bool, on_placed: Callable[[Tracked], None], number: int = 0,
              window: int | None = None) -> JobState:
        """Every task of the manifest where the ledgers leave it, each handed to `on_placed`
        (ManifestError if invalid); held only when this run has work for it, and only `window`
        of those to poll or download (the rest `deferred`). `following`: a submit is appending
        to the ledger, and `refresh` takes in what it appends."""
        report = manifest.validate()
        identity: Callable[[int, Task], TaskIdentity] = functools.partial(
            TaskIdentity.of, manifest=number)
        keys = KeyOrder()
        follower = None
        if following:
            # What a running submit appends from now on is read by `refresh`, even the lines
            # the placement below reads too (`SubmitFollower` looks those up again).
            follower = SubmitFollower(manifest, ledger, keys, identity, offset=_size_of(ledger),
                                      rows=report.total)
            # A large batch's keys are noted by its chunked join; a small one's, here.
            identity = _noting(identity, follower.checkpoints,
                               keys if report.total <= CHUNK else None)
        placed: Iterator[tuple[TaskIdentity, Submission | None, ResultRecord | None]]
        if report.total <= CHUNK:
            job = cls(manifest, writer, ledger, follower, number=number, rows=report.total)
            placed = ((identity(row, task), submission, record)
                      for row, task, submission, record in joined(manifest, ledger, None))
        else:
            job = cls(manifest, writer, ledger, follower, order=keys, number=number,
                      rows=report.total)
            placed = reduced_joined(manifest, ledger, keys, report.total, identity)
        room = window
        for who, submission, record in placed:
            tracked = track(who, submission, record)
            on_placed(tracked)
            job.count(tracked)
            if tracked.work in (Work.POLL, Work.DOWNLOAD) and room is not None:
                if room <= 0:
                    job.defer(tracked)
                    continue
                room -= 1
            if tracked.work is not Work.NOTHING:
                job.tracked[who.key] = tracked
        return job

    def take_deferred(self, limit: int) -> list[tuple[ResultState, Tracked]]:
        """Up to `limit` deferred tasks, in manifest order, placed anew from the ledgers as they
        stand now, each with the state it was counted in; `hold` those with work. It reads the
        ledgers (a chunk at a time) and touches nothing but the deferred tasks: a worker
        thread's job."""
        if not self.deferred:
            return []
        if self.refill is None:
            if self.order is None:  # a batch of one chunk: its keys are taken now
                self.order = KeyOrder.of(self.manifest)
            self.refill = joined_rows(self.manifest, self.ledger, self.order, self.deferred.marks)
            self.refill_took = 0
        taken: list[tuple[ResultState, Tracked]] = []
        for row, task, submission, record in self.refill:
            old_state = self.deferred.take(row)
            taken.append((old_state, track(TaskIdentity.of(row, task, self.number), submission,
                                           record)))
            if len(taken) >= limit:
                break
        else:
            # The pass is over. Rows deferred behind it meanwhile (a followed submit named them)
            # are taken by the next pass; a pass that found none left means the manifest no
            # longer holds them (edited meanwhile).
            self.refill = None
            if not self.refill_took and not taken:
                self.deferred.drop_rest()
        self.refill_took += len(taken)
        return taken

    def defer(self, tracked: Tracked) -> None:
        """Not held for now (the window is full): taken in again later, from the ledgers."""
        if self.deferred is None:
            self.deferred = DeferredTasks(self.rows)
        self.deferred.defer(tracked.row, tracked.state)

    def count(self, tracked: Tracked) -> None:
        """`tracked` is counted in its state now (kept a byte a row while following)."""
        if self.follower is not None:
            self.follower.counted.set(tracked.row, tracked.state)

    def hold(self, tracked: Tracked) -> None:
        """Keep `tracked` (placed again by `take_deferred`) while this run works on it."""
        if tracked.work is not Work.NOTHING:
            self.tracked[tracked.key] = tracked

    def settled(self, tracked: Tracked) -> None:
        """`tracked` reached a state that its ledgers say in full (downloaded, generation failed,
        or still pending when a single pass is done asking): no longer held."""
        self.tracked.pop(tracked.key, None)

    def refresh(self) -> list[tuple[ResultState, Tracked]]:
        """Read what a running submit appended; the tasks it named, placed anew, each with the
        state it was counted in, unless held (being worked on: left to finish) or deferred
        (taken in from the ledgers later). Neither held nor deferred yet: the caller does it."""
        placed: list[tuple[ResultState, Tracked]] = []
        if self.follower is None:
            return placed  # not following: nothing appends to the submit ledger we watch
        deferred = self.deferred.marks if self.deferred else b""
        for who, submission, record in self.follower.changes():
            if who.key in self.tracked or (who.row < len(deferred) and deferred[who.row]):
                continue
            new = track(who, submission, record)
            old_state = self.follower.counted.get(who.row)
            if new.state is not old_state or new.work is not Work.NOTHING:
                placed.append((old_state, new))
        return placed

    def final_rows(self) -> FinalRows:
        """Every task's final state, for the reports: the held tasks as this run leaves them,
        the others as the two ledgers (read again now) say."""
        loaded = None
        if self.order is None:
            # Read once for both reports (a batch of one chunk); their unreadable lines were
            # said when the run began: not again.
            records = replay_results(results_ledger_path(self.ledger), lean=True, warn=False)
            loaded = (read_submissions(self.ledger, warn=False), records.records)
        return FinalRows(self.manifest, self.tracked, self.ledger, self.order, loaded)


@dataclass(frozen=True, slots=True)
class FinalRows:
    """A manifest's report rows, as often as asked: each `rows()` is one stream over the
    manifest, in its order, joined by key with the run's tasks and the ledgers (`loaded`, or
    read a chunk at a time)."""

    manifest: Manifest
    tracked: Mapping[str, Tracked]
    ledger: Path
    order: KeyOrder | None
    loaded: tuple[Mapping[str, Submission], Mapping[str, ResultRecord]] | None

    def rows(self) -> Iterator[ResultRow]:
        stream = (joined(self.manifest, self.ledger, self.order, warn=False)
                  if self.loaded is None else _zipped(self.manifest, *self.loaded))
        for row, task, submission, record in stream:
            tracked = self.tracked.get(task.key)
            if tracked is None:
                tracked = track(TaskIdentity.of(row, task), submission, record)
            yield tracked.to_row(task)


def _zipped(manifest: Manifest, submissions: Mapping[str, Submission],
            records: Mapping[str, ResultRecord]) -> Iterator[Joined]:
    for row, task in enumerate(manifest.tasks(), 1):
        yield row, task, submissions.get(task.key), records.get(task.key)


def _noting(identity: Callable[[int, Task], TaskIdentity], checkpoints: Checkpoints,
            keys: KeyOrder | None) -> Callable[[int, Task], TaskIdentity]:
    """`identity` that also notes, for the follower, each task's place (and key, in `keys`)."""
    def noting(row: int, task: Task) -> TaskIdentity:
        checkpoints.note(row, task.place)
        if keys is not None:
            keys.extend((task.key,))
        return identity(row, task)
    return noting


def _size_of(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _unix_of(ts: str) -> float:
    """A ledger time in Unix seconds (now, when it cannot be read)."""
    try:
        return datetime.fromisoformat(ts).timestamp()
    except ValueError:
        return time.time()


def monotonic_of(ts: str) -> float:
    """A ledger time on `time.monotonic`'s scale (now, when it cannot be read)."""
    try:
        moment = datetime.fromisoformat(ts).timestamp()
    except ValueError:
        return time.monotonic()
    return time.monotonic() - max(0.0, time.time() - moment)
