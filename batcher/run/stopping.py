"""Waiting for something unless the run stops first: the one way a stop cuts a wait short.

A stop (SIGINT, SIGTERM, `--max-runtime`, an account-wide error) is an `asyncio.Event`; every
wait of a run (a rate slot, a back-off, a poll's turn) goes through `unless_stopped`, so a stop
is seen at once, whatever is being waited for::

    if await unless_stopped(limiter.acquire(), stop) is STOPPED:
        return

`stop_signals` turns SIGINT and SIGTERM into such a stop while a run works.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from typing import TypeVar

from batcher.exceptions import ExitCode

T = TypeVar("T")


class Stopped:
    """The type of `STOPPED`: what `unless_stopped` returns when the stop came first."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "STOPPED"


STOPPED = Stopped()


async def unless_stopped(awaitable: Awaitable[T], stop: asyncio.Event | None) -> T | Stopped:
    """`awaitable`'s result, or `STOPPED` as soon as `stop` is set (the awaitable cancelled)."""
    if stop is None:
        return await awaitable
    if stop.is_set():
        if isinstance(awaitable, Coroutine):
            awaitable.close()
        return STOPPED
    work = asyncio.ensure_future(awaitable)
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({work, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
        if not work.done():
            work.cancel()
    if not work.cancelled() and work.done():
        return work.result()
    with contextlib.suppress(asyncio.CancelledError):
        await work
    return STOPPED


@contextlib.contextmanager
def stop_signals(request_stop: Callable[[ExitCode, str], None], *, enabled: bool) -> Iterator[None]:
    """While inside: SIGINT and SIGTERM call `request_stop(exit code, signal name)` instead of
    killing the process (`enabled` False: left as they are, for a library caller's own loop)."""
    if not enabled:
        yield
        return
    loop = asyncio.get_running_loop()
    handled = {signal.SIGINT: ExitCode.SIGINT, signal.SIGTERM: ExitCode.SIGTERM}
    for signum, code in handled.items():
        loop.add_signal_handler(signum, request_stop, code, signum.name)
    try:
        yield
    finally:
        for signum in handled:
            loop.remove_signal_handler(signum)
