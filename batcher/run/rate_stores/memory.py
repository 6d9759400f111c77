"""The `memory` rate store: the next slots in this process, on `time.monotonic`.

For a process that can share no file; it shares no cap with any other process.
"""

from __future__ import annotations

import time

from batcher.run.rate_stores.base import Reservation, next_slot


class MemoryStore:
    """Next slots in a dict; atomic because the event loop runs one coroutine at a time."""

    description = "memory"

    def __init__(self) -> None:
        self._next: dict[str, float] = {}

    async def reserve(
        self, key: str, interval: float, give_back: float | None = None
    ) -> Reservation:
        now = time.monotonic()
        slot = next_slot(now, self._next.get(key, float("-inf")), interval, give_back)
        self._next[key] = slot + interval
        return Reservation(slot, now)

    async def now(self) -> float:
        return time.monotonic()

    async def close(self) -> None:
        self._next.clear()
