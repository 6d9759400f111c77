"""Shared fixtures: an in-process emulator on loopback, and a raw signed client for it.

`emulator` yields a `RunningEmulator` built from `emulator_config` (default settings); a test
that needs other settings overrides `emulator_config` (e.g. with `pytest.mark.parametrize`) or
opens its own `running_emulator(config)` and gets a client from `raw_client_for(url)`.
`RawClient` (in tests/helpers.py, with every helper test modules share) signs with
`batcher.wire.signing.Signer` and sends with aiohttp, with every header open to tampering; it is
also the load generator of quick throughput checks.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest

from batcher.emulator import (
    EmulatorConfig,
    RunningEmulator,
    running_emulator,
)
from tests.helpers import RawClient


@pytest.fixture(autouse=True)
def own_state_directory(tmp_path_factory: pytest.TempPathFactory,
                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test its own `$XDG_STATE_HOME`, so the default rate store (a file there) is shared
    only by the processes of one test, never with another test or another suite running."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("state")))


@pytest.fixture
def emulator_config() -> EmulatorConfig:
    """The settings of the `emulator` fixture; override it to change them."""
    return EmulatorConfig()


@pytest.fixture
async def emulator(emulator_config: EmulatorConfig) -> AsyncIterator[RunningEmulator]:
    """An emulator listening on 127.0.0.1 (a free port) for the test's duration."""
    async with running_emulator(emulator_config) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def raw_client_for(http: aiohttp.ClientSession) -> Callable[..., RawClient]:
    """`raw_client_for(url, **options)`: a `RawClient` for any emulator (options as its init)."""

    def make(url: str, **options: Any) -> RawClient:
        return RawClient(http, url, **options)

    return make


@pytest.fixture
def raw_client(http: aiohttp.ClientSession, emulator: RunningEmulator) -> RawClient:
    """A `RawClient` with the emulator's default credentials, for the `emulator` fixture."""
    return RawClient(http, emulator.url)
