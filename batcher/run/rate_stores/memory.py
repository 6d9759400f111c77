"""The `memory` rate store: the next slots in this process, on `time.monotonic`.

For a process that can share no file; it shares no cap with any other process.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from batcher.run.rate_stores.base import Reservation, next_slot
from batcher.run.rate_stores.images import claim_in, give_back_in


class MemoryStore:
    """Next slots in a dict; atomic because the event loop runs one coroutine at a time."""

    description = "memory"

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        """`clock` is the store's clock (a test gives its limiter and its store the same one)."""
        self._next: dict[str, float] = {}
        self._images: dict[str, int] = {}
        self._clock = clock

    async def reserve(
        self, key: str, interval: float, give_back: float | None = None
    ) -> Reservation:
        now = self._clock()
        slot = next_slot(now, self._next.get(key, float("-inf")), interval, give_back)
        self._next[key] = slot + interval
        return Reservation(slot, now)

    async def claim_images(self, key: str, count: int, limit: int) -> bool:
        return claim_in(self._images, key, count, limit)

    async def give_back_images(self, key: str, count: int) -> None:
        give_back_in(self._images, key, count)

    async def now(self) -> float:
        return self._clock()

    async def close(self) -> None:
        self._next.clear()
        self._images.clear()
