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
from pathlib import Path

from batcher.run.rate_stores.base import Reservation, StoreUnavailable, next_slot
from batcher.run.rate_stores.host_clock import host_clock


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
        try:
            return await asyncio.to_thread(self._reserve, key, interval, give_back)
        except OSError as error:
            raise StoreUnavailable(f"{self.path}: {error.strerror or error}") from error

    def _reserve(self, key: str, interval: float, give_back: float | None) -> Reservation:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            slots = _parse(os.pread(fd, 1 << 20, 0))
            now = host_clock()
            slot = next_slot(now, slots.get(key, float("-inf")), interval, give_back)
            # Entries of caps idle for a minute say nothing any more: the file stays small.
            slots = {name: when for name, when in slots.items() if when > now - 60.0}
            slots[key] = slot + interval
            data = json.dumps(slots, separators=(",", ":")).encode()
            os.pwrite(fd, data, 0)
            os.ftruncate(fd, len(data))
            return Reservation(slot, now)
        finally:
            os.close(fd)  # closing the descriptor drops the lock

    async def now(self) -> float:
        return host_clock()

    async def close(self) -> None:
        return None


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
