"""The `redis://HOST:PORT/DB` rate store: the next slots on a Redis server, shared by every host.

One Lua script (`RESERVE`) does the reservation atomically on the server, on the server's clock
(`TIME`), so hosts whose clocks disagree still share one grid. It is loaded once through
redis-py's `register_script` (EVALSHA, falling back to EVAL when the server lost it). Each key
expires a minute after its last slot, so an idle account leaves nothing behind.

A server that refuses, times out or answers with an error raises `StoreUnavailable`; the
limiter then pauses sending (fail closed).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

from batcher.run.rate_stores.base import MAX_AHEAD, Reservation, StoreUnavailable
from batcher.run.rate_stores.images import KEEP_SECONDS

STORE_SOCKET_TIMEOUT = 2.0
"""Seconds to connect to the server or to wait for one answer before counting it unreachable."""

RESERVE = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local interval = tonumber(ARGV[1])
local give_back = tonumber(ARGV[2])
local max_ahead = tonumber(ARGV[3])
local nxt = tonumber(redis.call('GET', KEYS[1]) or '-1')
if give_back >= 0 and math.abs(nxt - (give_back + interval)) < 0.000001 then
  nxt = give_back
end
if nxt > now + max_ahead then
  nxt = now
end
local slot = math.max(now, nxt)
redis.call('SET', KEYS[1], string.format('%.6f', slot + interval), 'PX', 60000)
return {string.format('%.6f', slot), string.format('%.6f', now)}
"""
"""`slot = max(now, next)`, `next = slot + interval`, with the give-back and clock-jump rules
of `batcher.run.rate_stores.base.next_slot`. Numbers go back as strings: Redis would truncate
a Lua number to an integer."""


CLAIM_IMAGES = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local count = tonumber(ARGV[1])
if used + count > tonumber(ARGV[2]) then
  return 0
end
redis.call('SET', KEYS[1], used + count, 'EX', tonumber(ARGV[3]))
return 1
"""
"""`used + count <= limit` or nothing, atomically on the server (`rate_stores.images`)."""

GIVE_BACK_IMAGES = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local left = math.max(0, used - tonumber(ARGV[1]))
redis.call('SET', KEYS[1], left, 'EX', tonumber(ARGV[2]))
return left
"""


class RedisStore:
    """Next slots on a Redis server, reserved by one Lua script per request."""

    def __init__(self, url: str) -> None:
        from redis import asyncio as aioredis  # heavy: imported only when a run uses Redis

        self.url = url
        self._client: Any = aioredis.Redis.from_url(
            url,
            socket_timeout=STORE_SOCKET_TIMEOUT,
            socket_connect_timeout=STORE_SOCKET_TIMEOUT,
        )
        self._script: Any = self._client.register_script(RESERVE)
        self._claim: Any = self._client.register_script(CLAIM_IMAGES)
        self._give_back: Any = self._client.register_script(GIVE_BACK_IMAGES)

    @property
    def description(self) -> str:
        """The URL without its password, for messages."""
        parts = urlsplit(self.url)
        if parts.password is None:
            return self.url
        host = parts.netloc.rpartition("@")[2]
        return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))

    async def reserve(
        self, key: str, interval: float, give_back: float | None = None
    ) -> Reservation:
        from redis.exceptions import RedisError

        back = -1.0 if give_back is None else give_back
        try:
            slot, now = await self._script(keys=[key], args=[interval, back, MAX_AHEAD])
        except (RedisError, OSError) as error:
            raise StoreUnavailable(f"{self.description}: {error}") from error
        return Reservation(float(slot), float(now))

    async def claim_images(self, key: str, count: int, limit: int) -> bool:
        from redis.exceptions import RedisError

        try:
            claimed = await self._claim(keys=[key], args=[count, limit, KEEP_SECONDS])
        except (RedisError, OSError) as error:
            raise StoreUnavailable(f"{self.description}: {error}") from error
        return bool(int(claimed))

    async def give_back_images(self, key: str, count: int) -> None:
        from redis.exceptions import RedisError

        try:
            await self._give_back(keys=[key], args=[count, KEEP_SECONDS])
        except (RedisError, OSError) as error:
            raise StoreUnavailable(f"{self.description}: {error}") from error

    async def now(self) -> float:
        from redis.exceptions import RedisError

        try:
            seconds, microseconds = await self._client.time()
        except (RedisError, OSError) as error:
            raise StoreUnavailable(f"{self.description}: {error}") from error
        return float(seconds) + float(microseconds) / 1e6

    async def close(self) -> None:
        await self._client.aclose()
