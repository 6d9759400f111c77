"""SPEC §5 rate cap: at most R requests in any 1-second window per service, no start-up burst.

The slot grid and the stale-slot rule are checked by simulation over hypothesis-drawn lateness
(slow durable writes, late wake-ups), the async limiter against the real event loop.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from bisect import bisect_left

from hypothesis import given, settings
from hypothesis import strategies as st

from batcher.run.limiter import SAFETY_MARGIN, SLOT_TOLERANCE, ServiceRateLimiter, SlotGrid


def most_in_one_second(times: list[float]) -> int:
    """The most send times in any window (t - 1 s, t]."""
    ordered = sorted(times)
    return max(
        (i + 1 - bisect_left(ordered, t - 1.0 + 1e-12) for i, t in enumerate(ordered)),
        default=0,
    )


def simulate(cap: float, workers: int, delays: list[float]) -> list[float]:
    """Send times of `len(delays)` requests from `workers` concurrent callers of one grid.

    Each caller reserves a slot, becomes ready `delay` after it (late wake-up + durable write),
    and sends only if the slot is not stale, otherwise reserves again — the pipeline's rule.
    """
    grid = SlotGrid(cap * SAFETY_MARGIN)
    pending = iter(delays)
    events: list[tuple[float, int, float]] = []  # (ready at, caller, slot)
    sent: list[float] = []

    def reserve(caller: int, now: float) -> None:
        delay = next(pending, None)
        if delay is None:
            return
        slot = grid.reserve(now)
        heapq.heappush(events, (slot + delay, caller, slot))

    for caller in range(workers):
        reserve(caller, 0.0)
    while events:
        now, caller, slot = heapq.heappop(events)
        if now - slot > SLOT_TOLERANCE:
            slot = grid.reserve(now)
            heapq.heappush(events, (slot + SLOT_TOLERANCE * 0.5, caller, slot))
            continue
        sent.append(now)
        reserve(caller, now)
    return sent


lateness = st.one_of(
    st.floats(min_value=0.0, max_value=0.002),      # ordinary timer lateness
    st.floats(min_value=0.0, max_value=0.25),       # fsync stalls, GC pauses
)


@settings(max_examples=200, deadline=None)
@given(
    cap=st.sampled_from([1.0, 5.0, 20.0, 50.0]),
    workers=st.integers(min_value=1, max_value=40),
    delays=st.lists(lateness, min_size=1, max_size=300),
)
def test_no_second_holds_more_than_the_cap_whatever_the_lateness(cap, workers, delays):
    sent = simulate(cap, workers, delays)
    assert len(sent) == len(delays)
    assert most_in_one_second(sent) <= cap


def test_grid_slots_are_spaced_from_the_grid_not_from_late_wake_ups():
    grid = SlotGrid(20 * SAFETY_MARGIN)
    slots = [grid.reserve(0.0) for _ in range(21)]
    gaps = [b - a for a, b in itertools.pairwise(slots)]
    assert all(abs(gap - grid.interval) < 1e-9 for gap in gaps)
    # 21 reservations ahead: the 21st is past the first second, so the first second holds 20.
    assert slots[20] > 1.0
    # After an idle spell there is no burst: the next slot is "now", the one after 1/R later.
    assert grid.reserve(100.0) == 100.0
    assert grid.reserve(100.0) == 100.0 + grid.interval


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_slot_goes_stale_after_the_tolerance():
    clock = FakeClock()
    limiter = ServiceRateLimiter(20, clock=clock)
    slot = await limiter.acquire()
    assert slot == clock.now
    clock.now += SLOT_TOLERANCE / 2
    assert not limiter.expired(slot)
    clock.now += SLOT_TOLERANCE
    assert limiter.expired(slot)


async def test_a_slot_reserved_ahead_is_returned_before_it_and_waited_for():
    limiter = ServiceRateLimiter(20)
    await limiter.acquire()
    slot = await limiter.acquire(ahead=0.03)
    assert time.monotonic() < slot  # time to write the `sending` line before the slot
    await limiter.wait_for(slot)
    assert time.monotonic() >= slot
    assert not limiter.expired(slot)


async def test_unlimited_limiter_never_waits_and_never_expires():
    limiter = ServiceRateLimiter(0)
    slots = [await limiter.acquire() for _ in range(1000)]
    assert not limiter.expired(slots[0] - 10)


async def test_concurrent_callers_leave_at_most_the_cap_per_second_from_the_start():
    limiter = ServiceRateLimiter(20)
    sent: list[float] = []

    async def caller() -> None:
        await limiter.acquire()
        sent.append(time.monotonic())

    await asyncio.gather(*(caller() for _ in range(30)))
    assert most_in_one_second(sent) <= 20
    # Paced from the first request on: 30 requests span at least 29 slots (no burst).
    assert max(sent) - min(sent) >= 29 / (20 * SAFETY_MARGIN) - SLOT_TOLERANCE


async def test_throttling_halves_the_rate_and_recovers_by_steps():
    clock = FakeClock()
    limiter = ServiceRateLimiter(20, recovery_seconds=5, clock=clock)
    limiter.throttled()
    assert limiter.rate == 10
    limiter.throttled()
    assert limiter.rate == 5
    clock.now += 5
    await limiter.acquire()
    assert limiter.rate == 7
    for _ in range(20):
        limiter.throttled()
    assert limiter.rate == 1
