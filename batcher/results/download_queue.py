"""Generated tasks waiting for their files: downloaded a bounded number at once, first come first
served (the collector adds the oldest finished first: their URLs die first).

A waiting download is a zero-argument coroutine function in a deque, not an asyncio task parked
on a semaphore: a task costs a few KB, and at the end of a fast batch thousands wait, so memory
would grow with the batch (docs/results.md). Only `limit` tasks exist at any moment.

    queue = DownloadQueue(limit=8, on_done=check)
    queue.add(functools.partial(download, job, tracked))
    await queue.drained()     # nothing waiting, nothing running
    await queue.cancel()      # a stop: the running ones cancelled, the waiting ones dropped
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

Start = Callable[[], Coroutine[Any, Any, None]]


class DownloadQueue:
    """At most `limit` downloads running; the rest wait in order, as plain callables."""

    __slots__ = ("_drained", "_limit", "_on_done", "_running", "_waiting")

    def __init__(self, limit: int, on_done: Callable[[asyncio.Task[None]], None]) -> None:
        self._limit = max(1, limit)
        self._on_done = on_done
        """Called with each finished task (its error, if any, is the caller's to raise)."""
        self._waiting: deque[Start] = deque()
        self._running: set[asyncio.Task[None]] = set()
        self._drained = asyncio.Event()
        self._drained.set()

    def __len__(self) -> int:
        """Downloads running or waiting."""
        return len(self._running) + len(self._waiting)

    def __repr__(self) -> str:
        return f"<DownloadQueue running={len(self._running)} waiting={len(self._waiting)}>"

    def add(self, start: Start) -> None:
        self._waiting.append(start)
        self._drained.clear()
        self._fill()

    async def drained(self) -> None:
        """Until nothing is running or waiting."""
        await self._drained.wait()

    async def cancel(self) -> None:
        """Drop the waiting ones, cancel the running ones and wait for them to end."""
        while self._running or self._waiting:
            self._waiting.clear()
            running = list(self._running)
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)
            self._running.difference_update(running)  # their callbacks may not have run yet

    def _fill(self) -> None:
        while self._waiting and len(self._running) < self._limit:
            task = asyncio.create_task(self._waiting.popleft()())
            self._running.add(task)
            task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        self._on_done(task)
        self._fill()
        if not self._running and not self._waiting:
            self._drained.set()
