"""The per-service rate cap: at most R requests in any 1-second window, with no start-up burst.

`ServiceRateLimiter.acquire()` hands out *send slots* on a fixed grid 1/R apart (R = the cap
less a 0.8% margin): each caller reserves the next free slot at once, then sleeps until it.
The grid is fixed, so a wake-up that runs late (the event loop's timers wake ~1 ms late, more
under load) delays that one request but never pushes the slots after it: the run keeps the
cap's pace to within the margin. (A leaky bucket of one, as `aiolimiter` does it, measures each
gap from the late wake-up instead, and lost 3-4% of the cap here; a bucket of two would allow
bursts above R in a second.)

Why no window of one second can hold more than R requests: slots are at least 1/R' apart
(R' = 0.992·R), and a request leaves no later than `SLOT_TOLERANCE` after its slot — a caller
whose slot went stale (a slow durable write, a late wake-up) asks `expired(slot)` and takes a
fresh slot instead. R + 1 requests then span at least R/R' - SLOT_TOLERANCE > 1 s
(at R = 20: 1.008 s - 3 ms: 5 ms are left for the client's sending, the network and the
server; on loopback those take 0.5-1.2 ms, rarely 4).

When the server says `RequestLimitExceeded`, `throttled()` halves the rate (not below 1/s); after
`recovery_seconds` without throttling the rate climbs back by a tenth of the cap per step (AIMD).
The lowered rate is an `aiolimiter.AsyncLimiter` acquired before the grid, so the cap's grid is
never replaced and its guarantee holds through every change of rate.

    limiter = ServiceRateLimiter(20)
    slot = await limiter.acquire(ahead=PREPARE_AHEAD)
    ...                              # durable `sending` line, written just before the slot
    await limiter.wait_for(slot)
    while limiter.expired(slot):     # the write stalled past the slot's tolerance
        slot = await limiter.acquire()
    ...                              # send
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from aiolimiter import AsyncLimiter

SAFETY_MARGIN = 0.992
"""Share of the cap actually used: 0.8% below it absorbs a few ms of lateness and jitter."""

SLOT_TOLERANCE = 0.003
"""A slot older than this when its request is about to leave is replaced by a fresh one. With
the margin, R + 1 slots span 1/0.992 s ≈ 1.008 s: 3 ms of lateness still fits (see above).
The event loop's timers wake 1-1.8 ms late here, so a fresh slot is rarely needed."""

PREPARE_AHEAD = 0.05
"""How long before its slot a request is prepared (its `sending` line written and fsync'ed):
long enough for the fsync (~0.2 ms here, but tens of ms when it waits for a journal commit;
at 20 ms ahead the bench still lost a slot to that every ~10 s), short enough that a crash
leaves at most one prepared-but-unsent request per service in doubt."""

MIN_RATE = 1.0


class SlotGrid:
    """Send times at least `interval` apart on a fixed grid; `reserve` is pure bookkeeping."""

    __slots__ = ("_next", "interval")

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate
        self._next = float("-inf")

    def reserve(self, now: float) -> float:
        """The earliest free slot at or after `now`; the one after it is `interval` later."""
        slot = max(now, self._next)
        self._next = slot + self.interval
        return slot


class ServiceRateLimiter:
    """Spaces one service's requests at its (possibly lowered) rate, never above the cap."""

    __slots__ = (
        "_clock",
        "_grid",
        "_last_change",
        "_rate",
        "_slow_limiter",
        "cap",
        "recovery_seconds",
        "throttle_events",
    )

    def __init__(
        self,
        cap: float,
        *,
        recovery_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`cap` requests per second; 0 or less means unlimited (benchmarks only)."""
        self.cap = cap
        self.recovery_seconds = recovery_seconds
        self.throttle_events = 0
        self._clock = clock
        self._rate = cap
        self._last_change = clock()
        self._grid = SlotGrid(cap * SAFETY_MARGIN) if cap > 0 else None
        self._slow_limiter: AsyncLimiter | None = None

    @property
    def rate(self) -> float:
        """The rate in force now (requests per second), lower than `cap` after throttling."""
        return self._rate

    @property
    def unlimited(self) -> bool:
        return self.cap <= 0

    async def acquire(self, ahead: float = 0.0) -> float:
        """Reserve the next send slot, wait until `ahead` seconds before it, return its time.

        `ahead` leaves time to prepare the request (the durable `sending` line) so that its
        fsync jitter delays nothing; then `wait_for(slot)` before sending.
        """
        grid = self._grid
        if grid is None:
            return self._clock()
        self._recover()
        slow = self._slow_limiter
        if slow is not None:
            await slow.acquire()
        slot = grid.reserve(self._clock())
        await self.wait_for(slot - ahead)
        return slot

    async def wait_for(self, moment: float) -> None:
        """Sleep until `moment` on this limiter's clock (at once if it has passed)."""
        # A timer that fires early (millisecond-granular loops) sleeps the rest, so no request
        # ever leaves before its slot.
        while (wait := moment - self._clock()) > 0:
            await asyncio.sleep(wait)

    def expired(self, slot: float) -> bool:
        """True if a request leaving now would be too late for `slot`: take a fresh one."""
        return self._grid is not None and self._clock() - slot > SLOT_TOLERANCE

    def throttled(self) -> None:
        """The server refused a request as over its limit: halve the rate for a while."""
        self.throttle_events += 1
        if self.unlimited:
            return
        self._set_rate(max(MIN_RATE, self._rate / 2))

    def _recover(self) -> None:
        if self._rate >= self.cap:
            return
        if self._clock() - self._last_change >= self.recovery_seconds:
            self._set_rate(min(self.cap, self._rate + self.cap / 10))

    def _set_rate(self, rate: float) -> None:
        self._rate = rate
        self._last_change = self._clock()
        # A bucket of one that drains every 1/rate seconds: requests at least 1/rate apart.
        self._slow_limiter = AsyncLimiter(1, 1.0 / rate) if rate < self.cap else None
