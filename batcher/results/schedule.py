"""When to ask about each unfinished task again: per-task back-off, never a busy loop.

A task is not asked again sooner than its expected remaining time. The expectation is learnt from
the tasks seen finishing in this run: each one finished somewhere between its last two polls, at
an age (time since its request was sent) estimated as the midpoint; the median of those ages is
how long a generation takes. A task younger than that is asked again when it reaches it; an older
one (or any, before the first finish is seen) backs off in proportion to its age, between
`min_delay` and `max_delay`. So polls stay within a small multiple of the task count however
long generation takes, and a task is seen done within about a third of its age.

    schedule = PollSchedule(PollTiming(), clock=time.monotonic)
    schedule.add(key, sent_at)            # due at once
    key = schedule.pop_due()              # None when nothing is due yet
    schedule.pending(key)                 # asked, still generating: due again later
    schedule.finished(key)                # generated or failed: never asked again
    await asyncio.sleep(schedule.wait())  # until the next one is due
"""

from __future__ import annotations

import bisect
import heapq
import statistics
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

MIN_LATER_FINISHES = 3
"""Finishes seen above a task's age needed to trust them as its expected remaining time."""


@dataclass(frozen=True, slots=True)
class PollTiming:
    """The back-off's bounds; the defaults suit both seconds-long and minutes-long generation."""

    min_delay: float = 1.0
    """Never ask one task twice within this many seconds."""
    max_delay: float = 60.0
    """Never leave a task unasked for longer than this."""
    overdue_factor: float = 0.3
    """An overdue task waits this share of its age: a task seen done within 30% of its age."""
    unknown_factor: float = 1.0
    """Before any task is seen finishing, a task waits this share of its age."""
    first_poll_age: float = 2.0
    """With `--wait`, a task is first asked once this old: no image is generated sooner."""
    learnt_finishes: int = 256
    """How many recent finishes the generation-time estimate is the median of."""


@dataclass(slots=True)
class _Entry:
    sent_at: float
    """When its request was sent, on the schedule's clock (from the submit ledger)."""
    last_poll: float | None = None


class PollSchedule:
    """A heap of due times, one entry per unfinished task; `__repr__` shows its state."""

    __slots__ = ("_clock", "_entries", "_finish_ages", "_heap", "_sorted", "polls", "timing")

    def __init__(self, timing: PollTiming, *, clock: Callable[[], float]) -> None:
        self.timing = timing
        self.polls = 0
        """Tasks handed out by `pop_due` so far."""
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self._heap: list[tuple[float, str]] = []
        self._finish_ages: deque[float] = deque(maxlen=timing.learnt_finishes)
        self._sorted: list[float] | None = None
        """`_finish_ages` sorted, rebuilt after each new finish."""

    def __len__(self) -> int:
        """Tasks not finished yet."""
        return len(self._entries)

    def __repr__(self) -> str:
        estimate = self.expected_generation()
        shown = "unknown" if estimate is None else f"{estimate:.1f}s"
        return f"<PollSchedule unfinished={len(self)} polls={self.polls} generation≈{shown}>"

    def add(self, key: str, sent_at: float, *, first_at_age: float = 0.0) -> None:
        """A task to ask about, due at once, or once it is `first_at_age` seconds old."""
        self._entries[key] = _Entry(sent_at)
        heapq.heappush(self._heap, (max(self._clock(), sent_at + first_at_age), key))

    def pop_due(self) -> str | None:
        """The next task due now, or None."""
        now = self._clock()
        while self._heap and self._heap[0][0] <= now:
            _, key = heapq.heappop(self._heap)
            entry = self._entries.get(key)
            if entry is None:
                continue  # finished meanwhile
            self.polls += 1
            entry.last_poll = now
            return key
        return None

    def wait(self) -> float | None:
        """Seconds until the next task is due (0 if one is), None when none is scheduled."""
        while self._heap and self._heap[0][1] not in self._entries:
            heapq.heappop(self._heap)
        if not self._heap:
            return None
        return max(0.0, self._heap[0][0] - self._clock())

    def pending(self, key: str) -> None:
        """`key` was asked and is still generating: due again after its back-off."""
        entry = self._entries[key]
        now = self._clock()
        heapq.heappush(self._heap, (now + self._delay(entry, now), key))

    def retry(self, key: str, delay: float) -> None:
        """Asking about `key` failed (network, throttling): ask again in `delay` seconds."""
        heapq.heappush(self._heap, (self._clock() + delay, key))

    def finished(self, key: str) -> None:
        """`key` is final (generated or failed): learn how long it took, never ask again."""
        entry = self._entries.pop(key, None)
        if entry is None or entry.last_poll is None:
            return
        self._finish_ages.append(self._finish_age(entry))
        self._sorted = None

    def drop(self, key: str) -> None:
        """Stop asking about `key` without learning from it."""
        self._entries.pop(key, None)

    def expected_generation(self) -> float | None:
        """The median age at which tasks finished in this run, None before the first."""
        return statistics.median(self._finish_ages) if self._finish_ages else None

    def _finish_age(self, entry: _Entry) -> float:
        """The age at which the task finished: between the poll before last and the last."""
        assert entry.last_poll is not None
        # The poll before the last one is not kept: the back-off that separated them is
        # recomputed from the age at the last poll, a good enough midpoint estimate.
        age = entry.last_poll - entry.sent_at
        return max(0.0, age - self._overdue_delay(age) / 2)

    def _delay(self, entry: _Entry, now: float) -> float:
        """The expected remaining time: the median of the finish ages seen above this task's
        age; a task older than (nearly) all of them backs off in proportion to its age."""
        age = max(0.0, now - entry.sent_at)
        if self._sorted is None:
            self._sorted = sorted(self._finish_ages)
        later = self._sorted[bisect.bisect_right(self._sorted, age) :]
        if len(later) >= MIN_LATER_FINISHES:
            remaining = later[len(later) // 2] - age
            return min(self.timing.max_delay, max(self.timing.min_delay, remaining))
        if not self._finish_ages:
            # Nothing finished yet: nothing says it is close, so the back-off grows faster.
            return self._bounded(age * self.timing.unknown_factor)
        return self._overdue_delay(age)

    def _overdue_delay(self, age: float) -> float:
        return self._bounded(age * self.timing.overdue_factor)

    def _bounded(self, delay: float) -> float:
        return min(self.timing.max_delay, max(self.timing.min_delay, delay))
