"""Running the library's coroutines from plain code, even inside a running event loop.

`batcher.submit(...)` is `submit_async(...)` run to its end. With no loop running in the thread
(a script, an orchestrator's worker) it runs on a fresh loop (`batcher.run.eventloop`); inside a
running loop (a notebook cell, an async web handler calling sync code) the loop cannot be
re-entered, so the coroutine runs on a loop of its own in a helper thread and the caller's
thread waits for it. Either way the caller gets the value or the exception, unchanged.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

from batcher.run.eventloop import run as run_on_new_loop

T = TypeVar("T")
P = ParamSpec("P")

__all__ = ["run_sync", "synchronous"]


def synchronous(function: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, T]:
    """The plain-code twin of an `async def` library call: same arguments, same result."""

    @functools.wraps(function)
    def call(*args: P.args, **kwargs: P.kwargs) -> T:
        return run_sync(function(*args, **kwargs))

    call.__name__ = call.__qualname__ = function.__name__.removesuffix("_async")
    return call


def run_sync(main: Coroutine[Any, Any, T]) -> T:
    """`main`'s value (or its exception), whether or not this thread runs an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:  # no loop here: the ordinary case
        return run_on_new_loop(main)
    return _run_in_thread(main)


def _run_in_thread(main: Coroutine[Any, Any, T]) -> T:
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = run_on_new_loop(main)
        except BaseException as exc:  # handed back to the caller's thread below
            outcome["error"] = exc

    thread = threading.Thread(target=target, name="batcher-run", daemon=True)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    value: T = outcome["value"]
    return value
