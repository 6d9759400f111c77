"""Running an emulator inside the current event loop: `running_emulator(config)`.

    async with running_emulator(EmulatorConfig(rate=0)) as emulator:
        ...  # send requests to emulator.url
        assert emulator.stats()["services"]["vod"]["created"] == 1

It binds the socket itself (127.0.0.1, a free port by default) so the URL is known before the
first request, and shuts down within a second, even with requests still sleeping in latency.
`serve.py` uses the same `start_emulator` for the command line.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from batcher.emulator.app import STATE_KEY, make_app
from batcher.emulator.config import EmulatorConfig
from batcher.emulator.state import EmulatorState, RequestRecord

SHUTDOWN_TIMEOUT_SECONDS = 1.0
"""How long in-flight requests may finish once the emulator is asked to stop."""


@dataclass(frozen=True, slots=True)
class RunningEmulator:
    """A listening emulator: where it is, and what it has seen."""

    url: str
    """`http://HOST:PORT`, no trailing slash."""
    host: str
    port: int
    config: EmulatorConfig
    app: web.Application

    @property
    def endpoint(self) -> str:
        """`HOST:PORT`: what an SDK's `HttpProfile(endpoint=...)` wants."""
        return self.url.removeprefix("http://")

    @property
    def state(self) -> EmulatorState:
        return self.app[STATE_KEY]

    @property
    def records(self) -> list[RequestRecord]:
        """Every request so far (the latest `config.max_records`), oldest first."""
        return list(self.state.records)

    def stats(self, *, include_sessions: bool = True) -> dict[str, Any]:
        """The same JSON as `GET /_emulator/stats`."""
        return self.state.stats(include_sessions=include_sessions)


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family, backlog=1024)


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


async def start_emulator(config: EmulatorConfig) -> tuple[RunningEmulator, web.AppRunner]:
    """Start listening; the caller must `await runner.cleanup()` (prefer `running_emulator`)."""
    app = make_app(config)
    # No access log: a line per request would cost more than answering it.
    runner = web.AppRunner(
        app, access_log=None, handle_signals=False, shutdown_timeout=SHUTDOWN_TIMEOUT_SECONDS
    )
    await runner.setup()
    try:
        sock = _listen(config.host, config.port)
        site = web.SockSite(runner, sock, backlog=1024)
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    port = int(sock.getsockname()[1])
    emulator = RunningEmulator(
        url=_url(config.host, port), host=config.host, port=port, config=config, app=app
    )
    return emulator, runner


@asynccontextmanager
async def running_emulator(config: EmulatorConfig | None = None) -> AsyncIterator[RunningEmulator]:
    """An emulator listening for the duration of the `async with` block."""
    emulator, runner = await start_emulator(config or EmulatorConfig())
    try:
        yield emulator
    finally:
        await runner.cleanup()
