"""Following a running `submit` without holding its batch (docs/results.md#memory).

A `collect --wait` that starts beside a running submit places the batch as any run does
(counted, the tasks with work held up to the window). Then, every second, it reads only the lines
the submit appended (`SubmitLedgerTail`, keeping those lines alone), and places anew the tasks
they name: each key's row comes from the manifest's key order (`KeyOrder.index`, searched first
near where the submit's lanes were last seen), and its identity from a walk of the manifest in
step with the submit (`RowFinder`: a cursor per lane, the submit sends in manifest order, and
the identities of the last rows passed, for a task sent again soon after). A new walk starts at
the nearest of the places the placement noted every few thousand rows (`Checkpoints`), not at
the manifest's start: a collect that begins beside a submit far into a million-row manifest
does not read it all again. Per task of the batch the run keeps 17 bytes: its key in the key
order and the state it is counted in (`deferred.CountedStates`).

A task is placed from the tail's lines alone when they say all there is of it: a TaskId just
created (no results line can be about it yet), a failure, a `sending`. A vod `duplicate` (its
TaskId is recovered from its SessionId's `sending` times, which may be older than the tail) and
every task that the first read names (its lines may be older than the placement, which read
them already) are looked up in the two ledgers, all at once.

    follower = SubmitFollower(manifest, ledger, order, reduce, offset=size_before_placing,
                              rows=tasks)
    for reduced, submission, record in follower.changes():
        ...   # each task the submit named since the last call, as its ledgers say now
"""

from __future__ import annotations

import bisect
import itertools
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from batcher.manifest import Manifest, Task
from batcher.results.deferred import CountedStates
from batcher.results.joined import KeyOrder
from batcher.state.results_ledger import ResultRecord, replay_results, results_ledger_path
from batcher.state.submissions import Submission, SubmitLedgerTail, read_submissions

T = TypeVar("T")

FOLLOW_INTERVAL = 1.0
"""Seconds between two reads of a submit ledger that a running submit is appending to."""
CURSORS = 4
"""Walks of the manifest kept at once: one per lane of the submit (vod, mps) and spares."""
HINTS = 6
"""Rows searched around first when a key's row is looked up (the cursors', the last found)."""
RECENT = 2048
"""Identities of the rows last passed kept, for a task sent again soon after (a retry)."""
CHECKPOINT_EVERY = 4096
"""Rows between two places a new walk of the manifest may start at."""

class Checkpoints:
    """Rows a walk of the manifest may start at: (row, place) of the first task of a place
    (`Manifest.tasks(start=place)` resumes there), one every `CHECKPOINT_EVERY` rows at most.

    >>> marks = Checkpoints()
    >>> for row, place in [(1, 1), (2, 2), (3, 2), (4, 3)]:
    ...     marks.note(row, place, every=2)
    >>> marks.before(2), marks.before(3), marks.before(9)
    ((1, 1), (1, 1), (4, 3))
    """

    __slots__ = ("_last_place", "_marks")

    def __init__(self) -> None:
        self._marks: list[tuple[int, int]] = []
        self._last_place: int | None = None

    def __repr__(self) -> str:
        return f"<Checkpoints {len(self._marks)}>"

    def note(self, row: int, place: int, every: int = CHECKPOINT_EVERY) -> None:
        """The task at `row` (1-based, in manifest order) has `place`."""
        first_of_place = place != self._last_place
        self._last_place = place
        if first_of_place and (not self._marks or row - self._marks[-1][0] >= every):
            self._marks.append((row, place))

    def before(self, row: int) -> tuple[int, int] | None:
        """The last (row, place) noted at or before `row`."""
        at = bisect.bisect_right(self._marks, (row, float("inf"))) - 1
        return self._marks[at] if at >= 0 else None


@dataclass(slots=True)
class _Cursor:
    """A walk of the manifest: `row` is the 1-based row its next task has."""

    tasks: Iterator[Task]
    row: int = 1


class RowFinder(Generic[T]):
    """Tasks of a manifest by key, reduced to what the caller keeps (`reduce(row, task)`),
    found by walking the manifest forward in step with a submit's lanes."""

    __slots__ = ("_checkpoints", "_cursors", "_manifest", "_order", "_recent", "_reduce", "walked")

    def __init__(self, manifest: Manifest, order: KeyOrder, reduce: Callable[[int, Task], T],
                 checkpoints: Checkpoints | None = None) -> None:
        self._manifest = manifest
        self._order = order
        self._reduce = reduce
        self._checkpoints = checkpoints or Checkpoints()
        self._cursors: list[_Cursor] = []
        self._recent: OrderedDict[int, tuple[str, T]] = OrderedDict()
        self.walked = 0
        """Manifest rows walked in all (the cost: about one pass over the manifest a lane)."""

    def __repr__(self) -> str:
        return f"<RowFinder at rows {[cursor.row for cursor in self._cursors]}>"

    def find(self, keys: Iterable[str]) -> list[tuple[str, T]]:
        """(key, reduced task) for each key the manifest has, in manifest order."""
        # Searched first near the cursors, and near the rows found last: the keys of a read
        # lie around the lanes' positions (a scan of the whole order costs ms at a million).
        near = [cursor.row - 1 for cursor in self._cursors]
        rows = []
        for key in keys:
            index = self._order.index(key, near[-HINTS:])
            if index is not None:
                rows.append((index + 1, key))
                near.append(index)
        rows.sort()
        found = []
        for row, key in rows:
            passed = self._recent.get(row)
            if passed is None:
                passed = self._walk_to(row)
            if passed is not None and passed[0] == key:  # else the manifest changed meanwhile
                found.append(passed)
        return found

    def _walk_to(self, row: int) -> tuple[str, T] | None:
        """The task at `row`, reached by the nearest cursor before it, or by a new one from the
        nearest checkpoint when that is nearer (from the manifest's start when there is none)."""
        behind = [cursor for cursor in self._cursors if cursor.row <= row]
        cursor = max(behind, key=lambda each: each.row) if behind else None
        mark = self._checkpoints.before(row)
        if cursor is not None and (mark is None or mark[0] <= cursor.row):
            self._cursors.remove(cursor)
        else:
            cursor = self._cursor_at(mark)
            if len(self._cursors) >= CURSORS:
                self._cursors.pop(0)  # the one used least lately
        self._cursors.append(cursor)
        for task in cursor.tasks:
            at, cursor.row = cursor.row, cursor.row + 1
            self.walked += 1
            passed = task.key, self._reduce(at, task)
            self._recent[at] = passed
            self._recent.move_to_end(at)
            if len(self._recent) > RECENT:
                self._recent.popitem(last=False)
            if at == row:
                return passed
        self._cursors.remove(cursor)  # the manifest ended (it was edited meanwhile)
        return None

    def _cursor_at(self, mark: tuple[int, int] | None) -> _Cursor:
        """A walk from the checkpoint `mark`, if its first task is the one the key order has
        there (else the manifest changed: from the start)."""
        if mark is not None:
            row, place = mark
            tasks = self._manifest.tasks(start=place)
            first = next(tasks, None)
            if first is not None and first.key == self._order.key(row - 1):
                return _Cursor(itertools.chain((first,), tasks), row)
        return _Cursor(iter(self._manifest.tasks()))


class SubmitFollower(Generic[T]):
    """The tasks a running submit names as its ledger grows, with what their ledgers say."""

    __slots__ = ("_first", "checkpoints", "counted", "finder", "ledger", "tail")

    def __init__(self, manifest: Manifest, ledger: Path, order: KeyOrder,
                 reduce: Callable[[int, Task], T], *, offset: int, rows: int) -> None:
        self.ledger = ledger
        self.tail = SubmitLedgerTail(ledger, offset=offset, keep=False)
        """Read from `offset`: the ledger's size before the placement read it."""
        self.checkpoints = Checkpoints()
        """Noted by the placement as it reads the manifest (`Checkpoints.note`)."""
        self.finder = RowFinder(manifest, order, reduce, self.checkpoints)
        self.counted = CountedStates(rows)
        """The state each of the manifest's `rows` is counted in, kept by the run's caller."""
        self._first = True

    def __repr__(self) -> str:
        return f"<SubmitFollower {self.ledger} {self.finder!r}>"

    def changes(self) -> Iterator[tuple[T, Submission | None, ResultRecord | None]]:
        """Each task the submit's new lines name, its submission and results record as they
        stand (the record None when it cannot be about the submission's TaskId)."""
        named = self.tail.update()
        if not named:
            return
        found = self.finder.find(named)
        first, self._first = self._first, False
        looked_up = {key for key, _ in found
                     if first or self.tail.submissions[key].event == "duplicate"}
        submissions: dict[str, Submission] = {}
        records: dict[str, ResultRecord] = {}
        if looked_up:
            submissions = read_submissions(self.ledger, looked_up, warn=False)
            records = replay_results(results_ledger_path(self.ledger), lean=True, keys=looked_up,
                                     warn=False).records
        for key, reduced in found:
            if key in looked_up:
                yield reduced, submissions.get(key), records.get(key)
            else:
                yield reduced, self.tail.submissions[key], None
