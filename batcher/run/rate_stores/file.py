"""The `file:PATH` rate store: the next slots in a small JSON file, shared by a host's processes.

Each reservation takes an exclusive `flock` on the file, reads `{key: next}`, writes the new
`next` back in place and lets go: atomic across every process on the host (the kernel drops the
lock of a process that dies). The clock is the host's boot clock read from the kernel
(`batcher.run.rate_stores.host_clock`): every process on the host reads the same one, whatever
its wall clock says (an NTP step, a process under `faketime`), and it never steps. A `next` far
ahead of it (a file left from before a reboot) is reset (`MAX_AHEAD`). The file is small (one
entry per account and action) and not fsync'ed: after a crash of the host a lost entry only
means the next slot is now.

The work runs in a thread (`asyncio.to_thread`), so a lock held a moment by another process
never blocks the event loop.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

from batcher.run.rate_stores.base import Reservation, StoreUnavailable, next_slot
from batcher.run.rate_stores.host_clock import host_clock
from batcher.run.rate_stores.images import (
    KEEP_SECONDS,
    PREFIX,
    claim_in,
    day_of,
    give_back_in,
)

T = TypeVar("T")


class FileStore:
    """Next slots in `path`, under `flock`."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def description(self) -> str:
        return f"file:{self.path}"

    async def reserve(
        self, key: str, interval: float, give_back: float | None = None
    ) -> Reservation:
        def change(slots: dict[str, float], now: float) -> Reservation:
            slot = next_slot(now, slots.get(key, float("-inf")), interval, give_back)
            slots[key] = slot + interval
            return Reservation(slot, now)

        return await self._locked(change)

    async def claim_images(self, key: str, count: int, limit: int) -> bool:
        def change(slots: dict[str, float], now: float) -> bool:
            counts = {key: int(slots.get(key, 0))}
            claimed = claim_in(counts, key, count, limit)
            slots[key] = counts[key]
            return claimed

        return await self._locked(change)

    async def give_back_images(self, key: str, count: int) -> None:
        def change(slots: dict[str, float], now: float) -> None:
            counts = {key: int(slots.get(key, 0))}
            give_back_in(counts, key, count)
            slots[key] = counts[key]

        await self._locked(change)

    async def _locked(self, change: Callable[[dict[str, float], float], T]) -> T:
        try:
            return await asyncio.to_thread(self._update, change)
        except OSError as error:
            raise StoreUnavailable(f"{self.path}: {error.strerror or error}") from error

    def _update(self, change: Callable[[dict[str, float], float], T]) -> T:
        """Read the file under its lock, apply `change`, write it back (in a thread)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            slots = _parse(os.pread(fd, 1 << 20, 0))
            now = host_clock()
            result = change(slots, now)
            data = json.dumps(_pruned(slots, now), separators=(",", ":")).encode()
            os.pwrite(fd, data, 0)
            os.ftruncate(fd, len(data))
            return result
        finally:
            os.close(fd)  # closing the descriptor drops the lock

    async def now(self) -> float:
        return host_clock()

    async def close(self) -> None:
        return None


def _pruned(slots: dict[str, float], now: float) -> dict[str, float]:
    """Entries of caps idle for a minute say nothing any more, nor the image counts of days
    before yesterday: the file stays small."""
    oldest_day = (datetime.now(UTC) - timedelta(seconds=KEEP_SECONDS)).date().isoformat()
    return {name: when for name, when in slots.items()
            if (day_of(name) >= oldest_day if name.startswith(PREFIX) else when > now - 60.0)}


def _parse(data: bytes) -> dict[str, float]:
    """The file's `{key: next}`; an empty or garbled file (a crash mid-write) counts as empty."""
    try:
        loaded = json.loads(data) if data else {}
    except ValueError:
        return {}
    if not isinstance(loaded, dict):
        return {}
    return {str(key): float(value) for key, value in loaded.items()
            if isinstance(value, int | float)}
