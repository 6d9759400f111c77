"""The emulator for users' own tests: `batcher.testing.Emulator`, offline, as moto is for AWS.

A face, like the CLI: it starts `batcher.emulator` on a free loopback port in a thread of its own
(its own event loop), so it answers while the caller blocks in `batcher.submit(...)`, runs its
own loop, or sits in a notebook cell::

    from batcher.testing import Emulator
    import batcher

    with Emulator(generation_seconds=0.2) as emulator:
        result = batcher.submit("spring.yaml", endpoint=emulator.url,
                                secret_id=emulator.secret_id, secret_key=emulator.secret_key)
        assert emulator.created("vod") == result.sent

`emulator.env` is the environment that points a `batcher` process (or `batcher.submit` without
arguments) at it: credentials, `BATCHER_ENDPOINT`, and a private `memory` rate store. The pytest
plugin (`batcher.testing.pytest_plugin`, loaded through the `pytest11` entry point) gives the
same as the `batcher_emulator` fixture, with that environment set for the test. The emulator's
behaviours and options are described in docs/emulator.md.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping
from dataclasses import replace
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

if TYPE_CHECKING:
    from aiohttp import web

    from batcher.emulator import EmulatorConfig, RunningEmulator

__all__ = ["Emulator"]

START_TIMEOUT_SECONDS = 30.0
"""How long `start` waits for the socket to listen before it gives up (a broken install)."""


class Emulator:
    """A running emulator of both endpoints (vod and mps) on 127.0.0.1, for one `with` block.

    Keyword arguments are the `batcher emulator` command's options in Python spelling; anything
    else the emulator can do is reachable through `config=` (a `batcher.emulator.EmulatorConfig`).
    """

    __slots__ = ("_config", "_failure", "_loop", "_runner", "_running", "_started", "_thread")

    def __init__(
        self,
        *,
        config: EmulatorConfig | None = None,
        rate: int | None = None,
        poll_rate: int | None = None,
        generation_seconds: float | None = None,
        generation_jitter: float | None = None,
        fail_generation_marker: str | None = None,
        image_bytes: int | None = None,
        url_ttl: float | None = None,
        sub_app_ids: tuple[int, ...] | None = None,
        fail_codes: Mapping[str, float] | None = None,
        internal_error_rate: float | None = None,
        throttle_rate: float | None = None,
        latency_ms: tuple[float, float] | None = None,
        seed: int | None = None,
    ) -> None:
        from batcher.emulator import EmulatorConfig

        base = config or EmulatorConfig()
        generation = _replaced(base.generation, seconds=generation_seconds,
                               jitter=generation_jitter, fail_marker=fail_generation_marker,
                               image_bytes=image_bytes, url_ttl=url_ttl)
        faults = _replaced(base.faults, internal_error_rate=internal_error_rate,
                           throttle_rate=throttle_rate, latency_ms=latency_ms, seed=seed,
                           fail_codes=None if fail_codes is None else tuple(fail_codes.items()))
        self._config: EmulatorConfig = _replaced(
            base, rate=rate, poll_rate=poll_rate, generation=generation, faults=faults,
            sub_app_ids=None if sub_app_ids is None else frozenset(sub_app_ids), port=0,
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._running: RunningEmulator | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._failure: BaseException | None = None

    def __repr__(self) -> str:
        where = self._running.url if self._running else "not running"
        return f"<Emulator {where}>"

    # -- what a test reads -------------------------------------------------------------------

    @property
    def url(self) -> str:
        """`http://127.0.0.1:PORT`: the `endpoint=` (or `--endpoint`) of both services."""
        return self._live().url

    @property
    def secret_id(self) -> str:
        return self._config.secret_id

    @property
    def secret_key(self) -> str:
        """The emulator's own test key (public, opens nothing else)."""
        return self._config.secret_key

    @property
    def config(self) -> EmulatorConfig:
        return self._config

    @property
    def env(self) -> dict[str, str]:
        """The environment that sends a `batcher` run here, with a private rate cap."""
        return {
            "TENCENTCLOUD_SECRET_ID": self.secret_id,
            "TENCENTCLOUD_SECRET_KEY": self.secret_key,
            "BATCHER_ENDPOINT": self.url,
            "BATCHER_RATE_STORE": "memory",
        }

    def stats(self) -> dict[str, Any]:
        """What `GET /_emulator/stats` answers: requests, creations and tasks per service."""
        running = self._live()
        stats: dict[str, Any] = self._in_loop(lambda: running.stats(include_sessions=False))
        return stats

    def created(self, service: str) -> int:
        """How many tasks `service` (`vod` or `mps`) has created so far."""
        return int(self.stats()["services"][service]["created"])

    # -- life ---------------------------------------------------------------------------------

    def start(self) -> Self:
        """Listen on a free port (idempotent); raises what stopped the emulator from starting."""
        if self._thread is not None:
            return self
        self._thread = threading.Thread(target=self._serve, name="batcher-emulator", daemon=True)
        self._thread.start()
        if not self._started.wait(START_TIMEOUT_SECONDS):
            raise RuntimeError(f"the emulator did not start within {START_TIMEOUT_SECONDS:g} s")
        if self._failure is not None:
            raise self._failure
        return self

    def stop(self) -> None:
        """Stop answering and free the port (in-flight requests get a second to finish)."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        self._thread = self._loop = self._running = self._runner = None
        self._started.clear()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        return await asyncio.to_thread(self.start)

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        trace: TracebackType | None) -> None:
        await asyncio.to_thread(self.stop)

    # -- the emulator's own thread ------------------------------------------------------------

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._listen())
        except BaseException as exc:  # handed to start(), which raises it in the caller
            self._failure = exc
            self._started.set()
            loop.close()
            return
        self._started.set()
        try:
            loop.run_forever()  # until stop() calls loop.stop()
        finally:
            if self._runner is not None:
                loop.run_until_complete(self._runner.cleanup())
            loop.close()

    async def _listen(self) -> None:
        from batcher.emulator import start_emulator

        self._running, self._runner = await start_emulator(self._config)

    def _live(self) -> RunningEmulator:
        if self._running is None:
            raise RuntimeError("the emulator is not running: use it inside `with Emulator()`")
        return self._running

    def _in_loop(self, read: Any) -> Any:
        """`read()` run on the emulator's loop, so it sees a consistent state."""
        loop = self._loop
        assert loop is not None

        async def call() -> Any:
            return read()

        return asyncio.run_coroutine_threadsafe(call(), loop).result(START_TIMEOUT_SECONDS)


def _replaced(base: Any, **changes: Any) -> Any:
    """`dataclasses.replace` with only the changes that were given (None = keep the base's)."""
    given = {name: value for name, value in changes.items() if value is not None}
    return replace(base, **given) if given else base
