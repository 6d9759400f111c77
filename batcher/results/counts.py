"""The run's tallies, kept as tasks move rather than recounted: tasks per result state, and the
finished tasks not yet on disk with the age of the oldest against its URLs' expiry.

Every change of a task's state goes through `StateCounts.move`, so a progress update costs the
same at a thousand tasks as at a million (docs/results.md).

    counts = StateCounts()
    counts.add(ResultState.PENDING)
    counts.move(ResultState.PENDING, ResultState.GENERATED)
    backlog = FinishedBacklog(); backlog.finished(ident, finished_at=time.time(), expires_at=None)
"""

from __future__ import annotations

import heapq
from collections import Counter

from batcher.results.collect_job import Backlog
from batcher.results.rows import ResultState
from batcher.results.tracking import Tracked

MPS_URL_LIFETIME = 12 * 3600.0
"""mps keeps a task's image URLs this long after it finished (docs/results.md)."""


class StateCounts:
    """Tasks per result state, across every manifest of the run; `counts` is read in place."""

    __slots__ = ("counts",)

    def __init__(self) -> None:
        self.counts: Counter[ResultState] = Counter()

    def __repr__(self) -> str:
        return f"<StateCounts {dict(self.counts)}>"

    def add(self, state: ResultState) -> None:
        self.counts[state] += 1

    def move(self, old: ResultState, new: ResultState) -> bool:
        """One task went from `old` to `new`; True when that changed anything."""
        if old is new:
            return False
        self.counts[old] -= 1
        self.counts[new] += 1
        return True


class FinishedBacklog:
    """Finished tasks whose files are not on disk yet, oldest first (a heap, lazily pruned)."""

    __slots__ = ("_heap", "_open")

    def __init__(self) -> None:
        self._open: dict[int, tuple[float, float | None]] = {}
        """ident -> (finished at, URLs expire at), wall-clock seconds."""
        self._heap: list[tuple[float, int]] = []

    def __len__(self) -> int:
        return len(self._open)

    def __repr__(self) -> str:
        return f"<FinishedBacklog {len(self)} not on disk>"

    def finished(self, ident: int, finished_at: float, expires_at: float | None) -> None:
        self._open[ident] = (finished_at, expires_at)
        heapq.heappush(self._heap, (finished_at, ident))

    def settled(self, ident: int) -> None:
        """Downloaded, expired or dropped: no longer waiting for its files."""
        self._open.pop(ident, None)
        if len(self._heap) > 2 * len(self._open) + 1024:
            # Nothing may ask `oldest` for hours: the stale entries of a million settled tasks
            # must not pile up meanwhile (memory follows the open ones; amortised O(1)).
            self._heap = [(finished_at, key) for key, (finished_at, _) in self._open.items()]
            heapq.heapify(self._heap)

    def oldest(self) -> tuple[float, float | None] | None:
        """(finished at, expires at) of the oldest open one, None when there is none."""
        # An entry is stale when its task settled, or when it finished again at another time
        # (a regeneration: the same task, a new TaskId).
        while self._heap and self._open.get(self._heap[0][1], (None,))[0] != self._heap[0][0]:
            heapq.heappop(self._heap)
        return self._open[self._heap[0][1]] if self._heap else None


class Tally:
    """The run's counts and backlog, moved together as each task changes state."""

    __slots__ = ("backlog", "states")

    def __init__(self) -> None:
        self.states = StateCounts()
        self.backlog = FinishedBacklog()

    def __repr__(self) -> str:
        return f"<Tally {self.states!r} {self.backlog!r}>"

    def add(self, tracked: Tracked) -> None:
        self.states.add(tracked.state)
        self._note(tracked, tracked.state)

    def moved(self, tracked: Tracked, old_state: ResultState) -> bool:
        """`tracked` went from `old_state` to its state; True when a count changed."""
        if not self.states.move(old_state, tracked.state):
            return False
        self._note(tracked, old_state)
        return True

    def _note(self, tracked: Tracked, old_state: ResultState) -> None:
        if tracked.state is ResultState.GENERATED:
            expires = tracked.expires_at
            if expires is None and tracked.service == "mps":
                expires = tracked.finished_at + MPS_URL_LIFETIME
            self.backlog.finished(tracked.who.ident, tracked.finished_at, expires)
        elif old_state is ResultState.GENERATED:
            self.backlog.settled(tracked.who.ident)

    def backlog_now(self, now: float) -> Backlog:
        """The finished tasks not on disk yet, as of `now` (Unix seconds)."""
        oldest = self.backlog.oldest()
        if oldest is None:
            return Backlog()
        finished_at, expires_at = oldest
        return Backlog(len(self.backlog), max(0.0, now - finished_at),
                       None if expires_at is None else expires_at - now)
