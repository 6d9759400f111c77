"""When to ask about each unfinished task: once, when it is most likely done; never a busy loop.

Status requests are a budget (mps allows 20 a second, no more than the creations), so each task
is asked about once, at the age by which most tasks are done: a high quantile (`quantile`, 0.9)
of the generation time, learnt from this run's answers. mps says only "done" or "not yet", never
when a task finished, so the quantile is tracked from those answers alone (a Robbins-Monro
step): a first ask answered "not yet" moves the estimate up, one answered "done" moves it down
a little, and it settles where `quantile` of the first asks find their task done. Before any
answer the estimate is `prior_generation`.

Tasks are asked oldest first. One still generating is asked again after a back-off in
proportion to its age (doubling until a first "done" is seen, then `overdue_factor`), between
`min_delay` and `max_delay`; only when the budget is idle (fewer than half the action's cap used
in the last second: the end of a batch, a small batch) is it asked again as soon as `min_delay`
allows. So requests stay near one per task and the last finish is seen within a second or two
(docs/results.md).

    schedule = PollSchedule(PollTiming(), clock=time.monotonic, rate=20)
    schedule.add(key, sent_at, first_at_age=2.0)
    key = schedule.pop_due()              # None when nothing is due yet
    schedule.pending(key)                 # asked, still generating: due again later
    schedule.finished(key)                # generated or failed: never asked again
    await asyncio.sleep(schedule.wait())  # until the next one is due
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

DEFAULT_PRIOR_GENERATION = 10.0
"""The generation time assumed before the first answer (`collect --expected-generation`)."""
IDLE_SHARE = 0.5
"""The budget is idle while fewer than this share of the cap was used in the last second."""
LATE_FACTOR = 1.2
"""A first ask this much later than planned (the collector fell behind) says nothing of the
quantile when answered "done", and is not learnt from."""


@dataclass(frozen=True, slots=True)
class PollTiming:
    """The schedule's knobs; the defaults suit both seconds-long and minutes-long generation."""

    min_delay: float = 1.0
    """Never ask one task twice within this many seconds."""
    max_delay: float = 60.0
    """Never leave a task unasked for longer than this."""
    overdue_factor: float = 0.3
    """A task still generating past the estimate waits this share of its age."""
    unknown_factor: float = 1.0
    """Before any task is seen done, a task still generating waits this share of its age."""
    first_poll_age: float = 2.0
    """With `--wait`, a task is never asked before it is this old: no image is generated sooner."""
    prior_generation: float = DEFAULT_PRIOR_GENERATION
    """The generation time assumed before the first answer. AIGC images take 10 s to minutes: a
    lower prior spends the budget on "not yet" answers at the start of a big batch (measured:
    1.24 mps / 1.67 vod requests per task at 2 s), a higher one holds a quick batch back."""
    quantile: float = 0.9
    """Tasks are first asked at the age by which this share of them is done."""
    step: float = 0.1
    """How far one answer moves the estimate (a share of it)."""


@dataclass(slots=True)
class _Entry:
    sent_at: float
    """When its request was sent, on the schedule's clock (from the submit ledger)."""
    first_at_age: float
    asks: int = 0
    last_poll: float = 0.0
    planned_age: float = 0.0
    """The age its first ask was planned for."""


class PollSchedule:
    """Unfinished tasks in two heaps: never asked (by send time) and asked again (by due time)."""

    __slots__ = (
        "_again",
        "_clock",
        "_entries",
        "_estimate",
        "_fresh", "_in_flight", "_newest",
        "_order",
        "_rate",
        "_recent",
        "_seen_done",
        "polls",
        "timing",
    )

    def __init__(
        self, timing: PollTiming, *, clock: Callable[[], float], rate: float | None = None
    ) -> None:
        self.timing = timing
        self.polls = 0
        """Tasks handed out by `pop_due` so far."""
        self._clock = clock
        self._rate = rate if rate else None
        """The action's cap (None: unknown or lifted), for telling an idle budget."""
        self._entries: dict[str, _Entry] = {}
        self._fresh: list[tuple[float, int, str]] = []
        self._again: list[tuple[float, int, str]] = []
        self._order = itertools.count()
        self._estimate = timing.prior_generation
        self._seen_done = False
        self._newest = float("-inf")
        """The latest send time added."""
        self._recent: deque[float] = deque()
        self._in_flight: set[str] = set()
        """Handed out by `pop_due` and not answered yet: never handed out twice at once (a
        listing's `poll_now` or a retry may have queued it again meanwhile)."""

    def __len__(self) -> int:
        """Tasks not finished yet."""
        return len(self._entries)

    def __repr__(self) -> str:
        return (f"<PollSchedule unfinished={len(self)} polls={self.polls} "
                f"generation p{self.timing.quantile * 100:.0f}≈{self._estimate:.1f}s>")

    def add(self, key: str, sent_at: float, *, first_at_age: float = 0.0) -> None:
        """A task to ask about: at once when `first_at_age` is 0 (one pass), else when it is
        most likely done (and at least `first_at_age` old)."""
        self._entries[key] = _Entry(sent_at, first_at_age)
        self._newest = max(self._newest, sent_at)
        heapq.heappush(self._fresh, (sent_at, next(self._order), key))

    def pop_due(self) -> str | None:
        """The next task due now, or None."""
        now = self._clock()
        self._prune()
        due_fresh = self._fresh_due(now)
        due_again = self._again[0][0] if self._again else None
        again_now = due_again is not None and (due_again <= now or self._early_again(now))
        if due_fresh is not None and due_fresh <= now and (
            not again_now or due_again is None or due_fresh <= due_again
        ):
            _, _, key = heapq.heappop(self._fresh)
            self._entries[key].planned_age = due_fresh - self._entries[key].sent_at
        elif again_now:
            _, _, key = heapq.heappop(self._again)
        else:
            return None
        entry = self._entries[key]
        entry.asks += 1
        entry.last_poll = now
        self._in_flight.add(key)
        self.polls += 1
        if self._rate is not None:  # with no cap there is no idle budget to tell
            self._recent.append(now)
            self._trim_recent(now)  # a batch always due never waits: trimmed here too
        return key

    def wait(self) -> float | None:
        """Seconds until the next task is due (0 if one is), None when none is scheduled."""
        self._prune()
        now = self._clock()
        times = []
        if (due_fresh := self._fresh_due(now)) is not None:
            times.append(due_fresh)
        if self._again:
            times.append(self._again[0][0])
            if self._idle(now):
                entry = self._entries[self._again[0][2]]
                times.append(entry.last_poll + self.timing.min_delay)
        if not times:
            return None
        return max(0.0, min(times) - now)

    def pending(self, key: str) -> None:
        """`key` was asked and is still generating: due again after its back-off."""
        self._in_flight.discard(key)
        entry = self._entries[key]
        now = self._clock()
        age = max(0.0, now - entry.sent_at)
        if entry.asks == 1 and entry.planned_age >= 0 and age >= 0.8 * self._estimate:
            rise = 1 + self.timing.step * self.timing.quantile
            self._estimate = max(self._estimate, age) * rise
        delay = self._bounded(age * (self.timing.overdue_factor if self._seen_done
                                     else self.timing.unknown_factor))
        if self._idle(now):
            delay = self.timing.min_delay
        heapq.heappush(self._again, (now + delay, next(self._order), key))

    def poll_now(self, key: str) -> bool:
        """`key` was seen finished elsewhere (vod's listing): ask it now, learning nothing from
        it; False when it is not waiting here."""
        entry = self._entries.get(key)
        if entry is None:
            return False
        entry.planned_age = -1.0  # never learnt from: it was not asked at the planned age
        heapq.heappush(self._again, (self._clock(), next(self._order), key))
        return True

    def has_young(self) -> bool:
        """True while some task not asked yet is younger than its planned ask: what a listing of
        finished tasks can bring forward."""
        self._prune()
        return bool(self._fresh) and self._newest + self._estimate > self._clock()

    def retry(self, key: str, delay: float) -> None:
        """Asking about `key` failed (network, throttling): ask again in `delay` seconds."""
        self._in_flight.discard(key)
        heapq.heappush(self._again, (self._clock() + delay, next(self._order), key))

    def finished(self, key: str) -> None:
        """`key` is final (generated or failed): learn from it, never ask again."""
        self._in_flight.discard(key)
        entry = self._entries.pop(key, None)
        if entry is None or entry.asks == 0:
            return
        self._seen_done = True
        age = entry.last_poll - entry.sent_at
        if entry.asks == 1 and entry.first_at_age > 0 and entry.planned_age >= 0 and (
            age <= LATE_FACTOR * max(entry.planned_age, self.timing.min_delay)
        ):
            self._estimate = max(self.timing.min_delay, self._estimate * (
                1 - self.timing.step * (1 - self.timing.quantile)))

    def drop(self, key: str) -> None:
        """Stop asking about `key` without learning from it."""
        self._in_flight.discard(key)
        self._entries.pop(key, None)

    def expected_generation(self) -> float:
        """The age by which `quantile` of the tasks are done, as learnt so far."""
        return self._estimate

    def _fresh_due(self, now: float) -> float | None:
        if not self._fresh:
            return None
        sent_at, _, key = self._fresh[0]
        first = self._entries[key].first_at_age
        if first <= 0:
            return sent_at
        return sent_at + max(first, self._estimate)

    def _early_again(self, now: float) -> bool:
        """The budget is idle: the next re-ask need not wait for its back-off."""
        if not self._idle(now):
            return False
        entry = self._entries[self._again[0][2]]
        return now - entry.last_poll >= self.timing.min_delay

    def _idle(self, now: float) -> bool:
        if self._rate is None:
            return False
        self._trim_recent(now)
        return len(self._recent) < self._rate * IDLE_SHARE

    def _trim_recent(self, now: float) -> None:
        """Keep the polls of the last second only."""
        while self._recent and self._recent[0] <= now - 1.0:
            self._recent.popleft()

    def _prune(self) -> None:
        """Drop heap heads of tasks that finished meanwhile, or that are being asked right now
        (a re-ask queued meanwhile: the answer on its way queues the next one)."""
        while self._fresh and (self._fresh[0][2] not in self._entries
                               or self._entries[self._fresh[0][2]].asks):
            heapq.heappop(self._fresh)
        while self._again and (self._again[0][2] not in self._entries
                               or self._again[0][2] in self._in_flight):
            heapq.heappop(self._again)

    def _bounded(self, delay: float) -> float:
        return min(self.timing.max_delay, max(self.timing.min_delay, delay))
