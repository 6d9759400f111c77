"""What a rate store is: the one place where a cap's next free send slot lives.

The algorithm (`batcher.run.limiter`) is the same whatever the store: a reservation takes the
slot `max(now, next)` and moves `next` one interval past it, atomically, on the store's clock.
A store only decides where `next` lives and whose clock `now` is:

- `memory` (`MemoryStore`): this process, `time.monotonic`;
- `file:PATH` (`FileStore`): a JSON file under `flock`, the host's boot clock read from the
  kernel (`host_clock`: no wall-clock step or `faketime` moves it), shared by every process on
  the host;
- `redis://HOST:PORT/DB` (`RedisStore`): a Lua script run atomically on the server, its `TIME`,
  shared by every host that names the server.

A store that cannot answer raises `StoreUnavailable`; the limiter waits and asks again, and never
falls back to a private cap (docs/operating.md#several-hosts).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Protocol

MAX_AHEAD = 60.0
"""A stored `next` further ahead of the store's clock than this is taken for a clock that
jumped back (a wall clock set back, a file from another host) and is reset to now. Each process
holds at most one reservation per cap, so a real `next` is a few intervals ahead at most."""


class StoreUnavailable(Exception):
    """The store cannot be reached or read now (refused, timed out, unreadable file)."""


@dataclass(frozen=True, slots=True)
class Reservation:
    """A send slot, on the store's clock, with that clock's reading when it was reserved."""

    slot: float
    now: float

    @property
    def wait(self) -> float:
        """Seconds from the reservation to the slot (0 when the slot is now)."""
        return max(0.0, self.slot - self.now)


class RateStore(Protocol):
    """Where the next free slot of each cap lives; every method is atomic in the store."""

    @property
    def description(self) -> str:
        """Where it is, for messages (`memory`, `file:/path`, `redis://host:6379/0`)."""
        ...

    async def reserve(
        self, key: str, interval: float, give_back: float | None = None
    ) -> Reservation:
        """Reserve `slot = max(now, next)` and set `next = slot + interval`, atomically.

        `give_back` is a slot this caller reserved earlier and will not use (it went stale):
        when no one reserved after it (`next == give_back + interval`), `next` first returns
        to it, so the slot is not lost. Raises `StoreUnavailable`.
        """
        ...

    async def claim_images(self, key: str, count: int, limit: int) -> bool:
        """Add `count` to the image count `key` if it stays within `limit`, atomically; False
        (nothing added) if it would not (`batcher.run.rate_stores.images`). Raises
        `StoreUnavailable`."""
        ...

    async def give_back_images(self, key: str, count: int) -> None:
        """Take `count` off the image count `key` (not below 0). Raises `StoreUnavailable`."""
        ...

    async def now(self) -> float:
        """The store's clock, read without reserving (to map its slots onto the local clock).
        Raises `StoreUnavailable`."""
        ...

    async def close(self) -> None: ...


def cap_key(secret_id: str, service: str, action: str) -> str:
    """The store key of one account's cap for one action: the SecretId only as a hash.

    >>> cap_key("AKIDexample", "vod", "CreateAigcImageTask")
    'batcher:rate:5dd2a3bac51024c4:vod:CreateAigcImageTask'
    """
    digest = hashlib.sha256(secret_id.encode()).hexdigest()[:16]
    return f"batcher:rate:{digest}:{service}:{action}"


def next_slot(now: float, stored_next: float, interval: float, give_back: float | None) -> float:
    """The reservation rule, for the stores that run it in Python (the Redis script mirrors it).

    Returns the slot; the new `next` is `slot + interval`.
    """
    if give_back is not None and abs(stored_next - (give_back + interval)) < 1e-6:
        stored_next = give_back
    if stored_next > now + MAX_AHEAD:
        stored_next = now
    return max(now, stored_next)
