"""Back-pressure: a service whose running tasks are at the account's limit (mps
`LimitExceeded.CreateTask`) is sent to at about the rate its tasks finish, not hammered.

A lane's `Capacity` is open until the first refusal. Then every send of the lane (a held task
trying again, and new ones alike) passes its gate, one every `interval` seconds (AIMD on the
interval, learnt from the answers): a refusal of a request sent after the last widening widens
it by half (the refusals of requests already in flight say nothing new), an acceptance narrows
it by a tenth, so the pace settles near the rate at which the running tasks finish, with about
one refusal per four acceptances, and the gate opens again once the interval is negligible.
Nothing here counts against a task's retry budget, and a stop ends every wait at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from batcher.run.stopping import STOPPED, unless_stopped

FIRST_INTERVAL = 0.1
"""Seconds between two sends right after the first refusal."""

MAX_INTERVAL = 10.0
"""The slowest pace: a full service is still asked every 10 s."""

OPEN_BELOW = 0.002
"""An interval below this is no pacing at all: the gate opens."""

RECHECK = 0.05
"""A waiter looks at the interval again this often: an acceptance may have narrowed it."""

WIDEN = 1.5
NARROW = 0.9


class Capacity:
    """The pace of one lane's sends while its service has no room for more running tasks."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.interval = 0.0
        self._last = float("-inf")
        self._turn = asyncio.Lock()
        self._widened_at = float("-inf")
        self.refusals = 0

    @property
    def open(self) -> bool:
        return self.interval == 0.0

    async def admit(self, stop: asyncio.Event) -> bool:
        """Wait for this lane's next send time; False if the run stopped first.

        One waiter at a time measures its wait from the last send with the interval as it is
        now (it changes with every answer), so a queue of waiters never holds on to a pace
        that has since become faster."""
        if self.open:
            return not stop.is_set()
        if await unless_stopped(self._turn.acquire(), stop) is STOPPED:
            return False
        try:
            while not self.open:
                wait = self._last + self.interval - self._clock()
                if wait <= 0:
                    break
                if await unless_stopped(asyncio.sleep(min(wait, RECHECK)), stop) is STOPPED:
                    return False
            self._last = self._clock()
        finally:
            self._turn.release()
        return not stop.is_set()

    def refused(self, sent_at: float) -> None:
        """A request sent at `sent_at` (this clock) was refused for capacity."""
        self.refusals += 1
        if sent_at < self._widened_at:
            return  # sent before the last widening: already accounted for
        self._widened_at = self._clock()
        self.interval = min(MAX_INTERVAL, max(FIRST_INTERVAL, self.interval * WIDEN))

    def accepted(self) -> None:
        if self.open:
            return
        self.interval *= NARROW
        if self.interval < OPEN_BELOW:
            self.interval = 0.0

    def now(self) -> float:
        return self._clock()
