"""The event loop batcher runs on: uvloop where it is installed, else asyncio's own.

uvloop (a dependency on CPython off Windows) runs the same asyncio code with a loop written in
Cython on libuv: the per-request work of the loop itself (polling, callbacks, timers, socket
writes) costs less CPU. Nothing in batcher depends on which loop runs; signal handlers
(`loop.add_signal_handler`), threads (`run_in_executor`) and timeouts behave the same on both.
Setting `BATCHER_EVENT_LOOP=asyncio` forces asyncio's own loop (to rule the loop out when
debugging).
"""

from __future__ import annotations

import asyncio
import gc
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

LOOP_ENV = "BATCHER_EVENT_LOOP"
"""`asyncio` forces asyncio's own loop; unset (or anything else), uvloop when importable."""


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's `new_event_loop` when it can be used, else None (asyncio's default loop)."""
    if os.environ.get(LOOP_ENV, "").strip().lower() == "asyncio":
        return None
    try:
        from uvloop import new_event_loop
    except ImportError:  # not installed: PyPy, Windows, or a bare environment
        return None
    return new_event_loop


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run `main` to its end, as `asyncio.run` does, on the loop `loop_factory` picks.

    What exists by then (modules, models, settings: some 50,000 objects) is moved out of the
    garbage collector's sight first: a full collection over it stalls the loop ~15 ms, long
    enough to make a request miss its rate slot (see `batcher.run.limiter`).
    """
    gc.freeze()
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)
