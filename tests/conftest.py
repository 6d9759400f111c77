"""Shared fixtures: an in-process emulator on loopback, and a raw signed client for it.

`emulator` yields a `RunningEmulator` built from `emulator_config` (default settings); a test
that needs other settings overrides `emulator_config` (e.g. with `pytest.mark.parametrize`) or
opens its own `running_emulator(config)` and gets a client from `raw_client_for(url)`.
`RawClient` signs with `batcher.wire.signing.Signer` and sends
with aiohttp, with every header open to tampering; it is also the load generator of quick
throughput checks.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDictProxy

from batcher.api.services import get_service
from batcher.emulator import (
    DEFAULT_SECRET_ID,
    DEFAULT_SECRET_KEY,
    EmulatorConfig,
    RunningEmulator,
    running_emulator,
)
from batcher.wire.signing import Signer

VOD_PARAMS: dict[str, Any] = {
    "SubAppId": 251007502,
    "ModelName": "GEM",
    "ModelVersion": "2.5",
    "Prompt": "a cat in watercolor style",
}
MPS_PARAMS: dict[str, Any] = {"ModelName": "Hunyuan", "Prompt": "draw a cat", "Operator": "admin"}
PARAMS = {"vod": VOD_PARAMS, "mps": MPS_PARAMS}


@dataclass(frozen=True)
class Reply:
    """One HTTP answer of the emulator."""

    status: int
    headers: CIMultiDictProxy[str]
    text: str

    @property
    def json(self) -> Any:
        return json.loads(self.text)

    @property
    def response(self) -> dict[str, Any]:
        return self.json["Response"]  # type: ignore[no-any-return]

    @property
    def error_code(self) -> str | None:
        error = self.response.get("Error")
        return None if error is None else error["Code"]

    @property
    def error_message(self) -> str:
        return self.response["Error"]["Message"]  # type: ignore[no-any-return]

    @property
    def task_id(self) -> str | None:
        return self.response.get("TaskId")


class RawClient:
    """Signs `CreateAigcImageTask` requests like batcher's client, and sends them as they are."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        url: str,
        *,
        secret_id: str = DEFAULT_SECRET_ID,
        secret_key: str = DEFAULT_SECRET_KEY,
        token: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.session = session
        self.url = url.rstrip("/") + "/"
        self.host = url.removeprefix("http://").rstrip("/")
        self.signer = Signer(secret_id, secret_key, token)
        self.clock = clock

    def sign(
        self,
        service: str,
        payload: bytes,
        *,
        timestamp: int | None = None,
        action: str | None = None,
        version: str | None = None,
    ) -> dict[str, str]:
        spec = get_service(service) if service in ("vod", "mps") else get_service("vod")
        return self.signer.sign_headers(
            service=service,
            host=self.host,
            action=action or spec.action,
            version=version or spec.version,
            payload=payload,
            timestamp=int(self.clock()) if timestamp is None else timestamp,
        )

    async def send(
        self,
        service: str = "vod",
        params: Mapping[str, Any] | None = None,
        *,
        body: bytes | None = None,
        timestamp: int | None = None,
        action: str | None = None,
        version: str | None = None,
        headers: Mapping[str, str] | None = None,
        drop_headers: Iterable[str] = (),
    ) -> Reply:
        """POST one request; `params` defaults to a valid request of `service`."""
        if body is None:
            body = json.dumps(
                PARAMS.get(service, VOD_PARAMS) if params is None else params
            ).encode()
        signed = self.sign(service, body, timestamp=timestamp, action=action, version=version)
        signed.update(headers or {})
        for name in drop_headers:
            signed.pop(name, None)
        async with self.session.post(self.url, data=body, headers=signed) as response:
            return Reply(response.status, response.headers, await response.text())


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
