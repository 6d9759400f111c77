"""The rate cap: at most R requests in any rolling second per (account, service, action), shared
by every process that names the same rate store (docs/architecture.md#submitting and
docs/operating.md#several-hosts), with no burst.

**The algorithm** is one rule, run atomically in the store (`batcher.run.rate_stores`):
`slot = max(now, next); next = slot + 1/R'` with R' = the rate less a 0.8% margin. Slots are
therefore at least 1/R' apart whichever process asked, and a request leaves no later than
`SLOT_TOLERANCE` after its slot: a caller whose slot went stale (a slow durable write, a late
wake-up) gives it back and takes a fresh one (`Turn.ready`). R + 1 requests then span at least
R/R' - SLOT_TOLERANCE > 1 s (at R = 20: 1.008 s - 3 ms).

**Just in time.** A limiter holds at most one reservation at a time (its *turn*, an
`asyncio.Lock`): the worker whose turn it is reserves the next slot, sleeps until shortly
before it, prepares its request and sends it; only then may the next worker reserve. So no slot
is reserved long ahead: a stop is seen at once (a `stop` event ends every wait), and a durable
`sending` line written `ahead` of the slot precedes its request by that much, not by the 31
slots other workers reserved before it (docs/architecture.md#submitting: at most 150 ms). The
store's `next` is a few intervals ahead at most (one reservation per process), so processes share
the grid fairly.

**Clocks.** A store answers on its own clock (Redis `TIME`, the host's wall clock, or
`time.monotonic`); the limiter turns the slot into a local deadline, `monotonic() + (slot -
store_now)`, measured when the answer arrives, so a deadline is never early.

**Fail closed.** A store that cannot answer (`StoreUnavailable`) pauses sending; the limiter
asks again every `STORE_RETRY` seconds and, after `store_timeout` without an answer, raises
`StoreUnreachable` (exit 75). It never falls back to a private cap.

**Slowing down.** After `RequestLimitExceeded` the rate is halved (not below 1/s) and climbs
back by a tenth of the cap every `recovery_seconds` (AIMD). The lowered rate is an
`aiolimiter.AsyncLimiter` passed before the store, so the shared grid and its guarantee hold.

Usage, for a caller that sends as soon as its slot comes (a poll)::

    store = open_store("redis://127.0.0.1:6379/0")
    limiter = RateLimiter(store, scope=credentials.secret_id, service=MPS.name,
                          action=DESCRIBE_AIGC_IMAGE_TASK, rate=MPS.cap(DESCRIBE_AIGC_IMAGE_TASK))
    await limiter.acquire()          # the slot's time (time.monotonic); StoreUnreachable: exit 75
    ...                              # send the request now

and for one that writes a durable line just before its request (the submit pipeline)::

    async with limiter.turn(ahead=PREPARE_AHEAD, stop=stopping) as turn:
        if turn is None:             # `stopping` was set while waiting: send nothing
            return
        ...                          # the durable `sending` line
        await turn.ready()           # at the slot (a fresh one if the write made this one stale)
    ...                              # send now; the next turn's slot is an interval later
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TypeVar

from aiolimiter import AsyncLimiter

from batcher.exceptions import BatcherError, ExitCode
from batcher.run.rate_stores import RateStore, Reservation, StoreUnavailable, cap_key
from batcher.run.stopping import STOPPED, Stopped, unless_stopped

log = logging.getLogger("batcher")

SAFETY_MARGIN = 0.992
"""Share of the rate actually used: 0.8% below it absorbs a few ms of lateness and jitter."""

SLOT_TOLERANCE = 0.003
"""A slot older than this when its request is about to leave is given back for a fresh one.
With the margin, R + 1 slots span 1/0.992 s ≈ 1.008 s: 3 ms of lateness still fits, with 5 ms
left for the client, the network and the store's clock mapping (half a round trip)."""

PREPARE_AHEAD = 0.05
"""How long before its slot a request is prepared (its `sending` line written and fsync'ed):
long enough for an fsync waiting on a journal commit, and far below the 150 ms of
docs/architecture.md#submitting."""

DEFAULT_STORE_TIMEOUT = 30.0
"""Seconds without an answer from the rate store before the run stops (exit 75,
docs/operating.md#several-hosts)."""

STORE_RETRY = 0.5
"""Seconds between two attempts to reach a rate store that did not answer."""

MIN_RATE = 1.0

CALIBRATED = 0.0005
"""Seconds of uncertainty on the store's clock offset below which no extra reading is made."""

CALIBRATION_READS = 5
"""Readings of the store's clock at most before a reservation, when the offset is uncertain."""

CLOCK_DRIFT = 5e-4
"""Seconds per second two clocks may drift apart: 500 ppm, the most NTP slews a clock."""

T = TypeVar("T")


class StoreUnreachable(BatcherError):
    """The rate store did not answer for `--store-timeout`: stop, nothing sent without a slot."""

    exit_code = ExitCode.TIME_LIMIT


class ClockOffset:
    """The store's clock minus this limiter's, bounded from every reservation's round trip.

    The store read its clock at some moment between `asked` and `answered`, so the offset lies
    in `[store_now - answered, store_now - asked]`; the bounds of successive round trips are
    intersected (widened by `CLOCK_DRIFT` per second of age), so they close in on the fastest
    round trip seen. A slot is mapped with the lower bound: a local deadline is never early,
    and late by at most that round trip, not by whatever delayed this answer (a busy host, a
    thread handing back). Processes sharing a store thus agree on its slots to a fraction of a
    millisecond on one host.
    """

    __slots__ = ("_at", "_high", "_low")

    def __init__(self) -> None:
        self._low = self._high = self._at = float("nan")

    def observe(self, asked: float, store_now: float, answered: float) -> None:
        low, high = store_now - answered, store_now - asked
        widen = CLOCK_DRIFT * (asked - self._at)
        if widen >= 0:  # False while nothing was observed (nan)
            narrowed = max(low, self._low - widen), min(high, self._high + widen)
            if narrowed[0] <= narrowed[1]:
                low, high = narrowed
        self._low, self._high, self._at = low, high, asked

    @property
    def uncertainty(self) -> float:
        """How wide the offset's bounds are (infinite before the first observation)."""
        width = self._high - self._low
        return width if width == width else float("inf")  # nan before any observation

    def local(self, store_time: float) -> float:
        """`store_time` on the local clock, never earlier than it really is."""
        return store_time - self._low


@dataclass(slots=True)
class _Slot:
    reservation: Reservation
    deadline: float
    """The slot on this limiter's clock (`time.monotonic`)."""


class Turn:
    """This limiter's one reservation, held by one worker from `turn()` to the end of its block."""

    __slots__ = ("_limiter", "_slot")

    def __init__(self, limiter: RateLimiter, slot: _Slot) -> None:
        self._limiter = limiter
        self._slot = slot

    @property
    def deadline(self) -> float:
        return self._slot.deadline

    async def ready(self) -> float:
        """Wait for the slot; if it went stale meanwhile, give it back and wait for a fresh one.

        Returns the slot's time (`time.monotonic`). The request must leave now.
        """
        limiter = self._limiter
        if limiter.unlimited:
            return self._slot.deadline
        await limiter.sleep_until(self._slot.deadline)
        while limiter.clock() - self._slot.deadline > SLOT_TOLERANCE:
            # Sending now would bunch this request up with the next slot's: 21 in one second.
            self._slot = await limiter.reserve(give_back=self._slot.reservation.slot)
            await limiter.sleep_until(self._slot.deadline)
        limiter.warm = True
        return self._slot.deadline


class RateLimiter:
    """One cap, `rate` requests per second for (scope, service, action), in `store`."""

    def __init__(
        self,
        store: RateStore,
        *,
        scope: str,
        service: str,
        action: str,
        rate: float,
        store_timeout: float = DEFAULT_STORE_TIMEOUT,
        recovery_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`scope` is the account's SecretId (only its hash reaches the store); `rate` 0 or
        less lifts the cap (benchmarks against the emulator): the store is then never asked."""
        self.store = store
        self.key = cap_key(scope, service, action)
        self.cap = rate
        self.store_timeout = store_timeout
        self.recovery_seconds = recovery_seconds
        self.throttle_events = 0
        self.clock = clock
        self._rate = rate
        self._last_change = clock()
        self._slow_limiter: AsyncLimiter | None = None
        self._turn = asyncio.Lock()
        self._offset = ClockOffset()
        self.warm = False
        """True once a request left: the cold start is behind (see `reserve`)."""

    @property
    def rate(self) -> float:
        """The rate in force now (requests per second), lower than `cap` after throttling."""
        return self._rate

    @property
    def unlimited(self) -> bool:
        return self.cap <= 0

    async def acquire(self) -> float:
        """Wait for the next send slot and return its time (`time.monotonic`): send at once.

        Cancel the calling task to stop waiting; `StoreUnreachable` when the store is down.
        """
        async with self.turn() as turn:
            assert turn is not None  # no stop event: a turn always comes
            return await turn.ready()

    @contextlib.asynccontextmanager
    async def turn(
        self, ahead: float = 0.0, stop: asyncio.Event | None = None
    ) -> AsyncIterator[Turn | None]:
        """This limiter's next turn: a slot reserved just in time, entered `ahead` before it.

        Yields None, at once, when `stop` is set before the turn comes. The next turn begins
        when this block ends; its slot is at least an interval after this one, so the request
        is sent right after the block.
        """
        if self.unlimited:
            now = self.clock()
            yield Turn(self, _Slot(Reservation(now, now), now))
            return
        if await unless_stopped(self._enter_slow(), stop) is STOPPED:
            yield None
            return
        # Not raced with `stop`: the holder's own waits end on it, or its request leaves
        # within an interval, and a lock won by a cancelled waiter would never be released.
        async with self._turn:
            slot = await unless_stopped(self.reserve(), stop)
            if isinstance(slot, Stopped) or (
                await unless_stopped(self.sleep_until(slot.deadline - ahead), stop) is STOPPED
            ):
                yield None
                return
            yield Turn(self, slot)

    async def reserve(self, give_back: float | None = None) -> _Slot:
        """One slot from the store, as a local deadline; waits out a store that is down."""
        unreachable_since: float | None = None
        while True:
            try:
                await self._calibrate()
                asked = self.clock()
                # A limiter's first request carries the process's cold start (its connection
                # opened, first-use code paths: 7-17 ms measured), after its slot: the slot after
                # it is one interval further away, so that lateness bunches with nothing. (The
                # same spacing when a stale first slot is given back, so that the store
                # recognises it and the fresh slot is now, not two intervals later.)
                spacing = 1.0 if self.warm else 2.0
                reservation = await self.store.reserve(self.key, spacing / self._grid_rate(),
                                                       give_back)
            except StoreUnavailable as error:
                now = self.clock()
                if unreachable_since is None:
                    unreachable_since = now
                    log.warning("rate store does not answer (%s): sending paused", error)
                if now - unreachable_since >= self.store_timeout:
                    raise StoreUnreachable(
                        f"the rate store did not answer for {self.store_timeout:g} s "
                        f"({error}): nothing was sent without a slot; run the same command "
                        "again once it answers"
                    ) from None
                await asyncio.sleep(STORE_RETRY)
                continue
            if unreachable_since is not None:
                log.warning("rate store %s answers again: sending resumed",
                            self.store.description)
            self._offset.observe(asked, reservation.now, self.clock())
            return _Slot(reservation, self._offset.local(reservation.slot))

    async def _calibrate(self) -> None:
        """Read the store's clock until its offset is known to `CALIBRATED` seconds: the first
        reservation's round trip (a connection, a thread started) can be slow, and a slot
        mapped from it would leave that much late, bunched up with another process's next."""
        for _ in range(CALIBRATION_READS):
            if self._offset.uncertainty <= CALIBRATED:
                return
            asked = self.clock()
            store_now = await self.store.now()
            self._offset.observe(asked, store_now, self.clock())

    async def sleep_until(self, moment: float) -> None:
        """Sleep until `moment` on this limiter's clock (at once if it has passed)."""
        # A timer that fires early (millisecond-granular loops) sleeps the rest, so no request
        # ever leaves before its slot.
        while (wait := moment - self.clock()) > 0:
            await asyncio.sleep(wait)

    def throttled(self) -> None:
        """The server refused a request as over its limit: halve the rate for a while."""
        self.throttle_events += 1
        if self.unlimited:
            return
        self._set_rate(max(MIN_RATE, self._rate / 2))

    def _grid_rate(self) -> float:
        return self.cap * SAFETY_MARGIN

    async def _enter_slow(self) -> None:
        self._recover()
        slow = self._slow_limiter
        if slow is not None:
            await slow.acquire()

    def _recover(self) -> None:
        if self._rate >= self.cap:
            return
        if self.clock() - self._last_change >= self.recovery_seconds:
            self._set_rate(min(self.cap, self._rate + self.cap / 10))

    def _set_rate(self, rate: float) -> None:
        self._rate = rate
        self._last_change = self.clock()
        # A bucket of one that drains every 1/rate seconds: requests at least 1/rate apart.
        self._slow_limiter = AsyncLimiter(1, 1.0 / rate) if rate < self.cap else None
