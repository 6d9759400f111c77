"""The per-service rate cap: at most R requests in any 1-second window, with no start-up burst.

`ServiceRateLimiter` wraps an `aiolimiter.AsyncLimiter` whose bucket holds ONE request and drains
one every 1/R seconds, so consecutive requests are at least 1/R apart: no window of one second can
hold more than R, even right after start (a bucket of R would let R through at once and R more as
it drains: 2R in the first second). A small safety margin keeps network jitter from squeezing two
requests into a window the server counts.

When the server says `RequestLimitExceeded`, `throttled()` halves the rate (not below 1/s); after
`recovery_seconds` without throttling the rate climbs back by a tenth of the cap per step (AIMD).
The lowered rate is a second limiter acquired before the cap's, so the cap's own limiter is never
replaced and its guarantee holds through every change of rate.

    limiter = ServiceRateLimiter(20)
    await limiter.acquire()      # then send one request
"""

from __future__ import annotations

import time
from collections.abc import Callable

from aiolimiter import AsyncLimiter

SAFETY_MARGIN = 0.995
"""Share of the cap actually used: 0.5% below it absorbs a few ms of scheduling jitter."""

MIN_RATE = 1.0


class ServiceRateLimiter:
    """Spaces one service's requests at its (possibly lowered) rate."""

    __slots__ = (
        "_cap_limiter",
        "_clock",
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
        self._cap_limiter = _spacing_limiter(cap * SAFETY_MARGIN) if cap > 0 else None
        self._slow_limiter: AsyncLimiter | None = None

    @property
    def rate(self) -> float:
        """The rate in force now (requests per second), lower than `cap` after throttling."""
        return self._rate

    @property
    def unlimited(self) -> bool:
        return self.cap <= 0

    async def acquire(self) -> None:
        """Wait until one more request may leave without breaking the rate in force."""
        if self._cap_limiter is None:
            return
        self._recover()
        slow = self._slow_limiter
        if slow is not None:
            await slow.acquire()
        await self._cap_limiter.acquire()

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
        self._slow_limiter = _spacing_limiter(rate) if rate < self.cap else None


def _spacing_limiter(rate: float) -> AsyncLimiter:
    """A bucket of one that drains every 1/rate seconds: requests at least 1/rate apart."""
    return AsyncLimiter(1, 1.0 / rate)
