"""Shared test helpers: manifests of a given size, reading ledgers, running the CLI in a process,
an in-process submit run, a raw signed client for the emulator, a CVM metadata service.

Every helper a test module shares lives here (fixtures live in conftest.py, which imports from
here); no test module imports another (tests/test_architecture.py checks it)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import textwrap
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from multidict import CIMultiDictProxy

from batcher.api.services import get_service
from batcher.emulator import DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY, EmulatorConfig
from batcher.exceptions import ManifestError
from batcher.manifest import Task, load_manifest
from batcher.run.pipeline import RunSettings
from batcher.run.resume import ResumeRules
from batcher.run.retry import RetryPolicy
from batcher.run.submission import ManifestRun, SubmitOptions, SubmitResult, run_submit
from batcher.wire.client import ClientSettings
from batcher.wire.credentials import Credentials
from batcher.wire.signing import Signer

SECRET_ID = "AKIDpipelineTest0000000000000000"
SECRET_KEY = "pipeline-test-secret-key"


def write_manifest(directory: Path, vod: int, mps: int, name: str = "job", **extra: Any) -> Path:
    """A YAML manifest of `vod` + `mps` distinct tasks (a matrix over a counter)."""
    lines = [
        "service: vod",
        "defaults:",
        "  vod: {SubAppId: 251007502, ModelName: GEM, ModelVersion: \"2.5\"}",
        "  mps: {ModelName: Hunyuan}",
        "matrix:",
    ]
    if vod:
        lines.append(f"  n: [{', '.join(map(str, range(vod)))}]")
    if mps:
        lines.append(f"  m: [{', '.join(map(str, range(mps)))}]")
    lines.append("tasks:")
    if vod:
        lines.append("  - {Prompt: 'vod picture {n}'}")
    if mps:
        lines.append("  - {Prompt: 'mps picture {m}', service: mps}")
    for key, value in extra.items():
        lines.append(f"{key}: {json.dumps(value)}")
    path = directory / f"{name}.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def read_ledger(path: Path) -> list[dict[str, Any]]:
    """Every whole line of a ledger, parsed."""
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def most_awaiting_download(results_ledger: Path) -> int:
    """The most tasks written `generated` and not yet `downloaded` at any point of a results
    ledger: a run writes `generated` only for a task it holds, and lets go of it once it has
    written `downloaded`, so this is a lower bound on what the run held (its window)."""
    held, most = 0, 0
    for line in read_ledger(results_ledger):
        held += {"generated": 1, "downloaded": -1}.get(line["event"], 0)
        most = max(most, held)
    return most


def last_events(path: Path) -> dict[str, str]:
    """key → the event of its last ledger line (the task's state)."""
    return {record["key"]: record["event"] for record in read_ledger(path)}


def event_counts(path: Path) -> Counter[str]:
    return Counter(last_events(path).values())


def cli_env(**extra: str) -> dict[str, str]:
    """A cron-like minimal environment with the test credentials."""
    env = {
        "PATH": os.path.dirname(sys.executable) + ":/usr/bin:/bin",
        "HOME": os.environ.get("HOME", "/tmp"),
        "TENCENTCLOUD_SECRET_ID": SECRET_ID,
        "TENCENTCLOUD_SECRET_KEY": SECRET_KEY,
        "LANG": "C.UTF-8",
        # No test may reach a real instance metadata service: a closed loopback port instead.
        "BATCHER_METADATA_URL": "http://127.0.0.1:9/latest/meta-data/",
        # Nor the real API: a command given no --endpoint (`plan` reading the vod quota with
        # the test credentials) meets a closed loopback port.
        "BATCHER_ENDPOINT": "http://127.0.0.1:9",
    }
    if "XDG_STATE_HOME" in os.environ:  # the test's own (conftest): its default rate store
        env["XDG_STATE_HOME"] = os.environ["XDG_STATE_HOME"]
    env.update(extra)
    return env


async def start_cli(*args: str, env: dict[str, str] | None = None) -> asyncio.subprocess.Process:
    """`python -m batcher ARGS` in its own process, stdin closed, output captured."""
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "batcher", *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env if env is not None else cli_env(),
    )


async def run_cli(*args: str, env: dict[str, str] | None = None,
                  timeout: float = 60) -> tuple[int, str, str]:
    process = await start_cli(*args, env=env)
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


@contextlib.asynccontextmanager
async def emulator_process(*options: str) -> AsyncIterator[str]:
    """`batcher emulator` in its own process, its URL: its clock and event loop stall neither
    with the test's nor with a client's, so its rolling-second meter measures the clients."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "batcher", "emulator", "--port", "0",
        "--secret-id", SECRET_ID, "--secret-key", SECRET_KEY, *options,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )
    assert process.stdout is not None
    url = (await asyncio.wait_for(process.stdout.readline(), 20)).decode().strip()
    try:
        yield url
    finally:
        process.terminate()
        await process.wait()


async def emulator_stats(url: str) -> dict[str, Any]:
    """`GET /_emulator/stats?sessions=0` of an emulator process."""
    async with aiohttp.ClientSession() as http, http.get(
        f"{url}/_emulator/stats?sessions=0"
    ) as response:
        stats: dict[str, Any] = json.loads(await response.text())
    return stats


# --- an in-process submit run against an emulator on loopback ----------------------------


CREDENTIALS = Credentials(SECRET_ID, SECRET_KEY)
FAST_RETRY = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.05)


def emulator_settings(**overrides: Any) -> EmulatorConfig:
    """The emulator's settings for the tests' account (`SECRET_ID`), with no rate cap unless
    `rate=` says otherwise (the `emulator_config` fixture is the emulator's defaults)."""
    overrides.setdefault("rate", 0)
    return EmulatorConfig(secret_id=SECRET_ID, secret_key=SECRET_KEY, **overrides)


async def submit(manifest: Path, url: str, *, credentials: Credentials = CREDENTIALS,
                 rate: float = 0, retry: RetryPolicy = FAST_RETRY,
                 rules: ResumeRules | None = None, max_runtime: float | None = None,
                 ledger: Path | None = None, rate_store: str = "memory",
                 **run_options: Any) -> SubmitResult:
    """One in-process run; `rate_store` as `--rate-store` (memory: this run's cap alone)."""
    loaded = load_manifest(manifest)
    options = SubmitOptions(
        manifests=[ManifestRun(loaded, ledger or manifest.with_suffix(".ledger.jsonl"))],
        client=ClientSettings(endpoint=url, request_timeout=5),
        run=RunSettings(rate=rate, retry=retry, rules=rules or ResumeRules(),
                        max_runtime=max_runtime, handle_signals=False, seed=1,
                        **run_options),
        rate_store=rate_store,
    )
    return await run_submit(options, credentials)


def ledger_of(manifest: Path) -> Path:
    """The ledger `submit` (above) writes beside a manifest."""
    return manifest.with_suffix(".ledger.jsonl")


# --- a raw signed client for the emulator ---------------------------------------------------


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


# --- the CVM role, from a metadata service on loopback -------------------------------------


class MetadataService:
    """The CVM instance metadata service's two role paths, handing out a list of credentials
    in turn (the last one again and again)."""

    def __init__(self, issued: Sequence[tuple[str, str, str, float]]) -> None:
        self.issued = list(issued)
        self.role_asks = 0
        self.credential_asks = 0
        self.up = True

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/latest/meta-data/cam/security-credentials/", self.role)
        app.router.add_get("/latest/meta-data/cam/security-credentials/{role}", self.credentials)
        return app

    async def role(self, request: web.Request) -> web.Response:
        self.role_asks += 1
        return web.Response(text="batcher-role")

    async def credentials(self, request: web.Request) -> web.Response:
        if not self.up:
            raise web.HTTPServiceUnavailable()
        assert request.match_info["role"] == "batcher-role"
        self.credential_asks += 1
        secret_id, secret_key, token, expires = self.issued[
            min(self.credential_asks, len(self.issued)) - 1]
        return web.json_response({
            "TmpSecretId": secret_id, "TmpSecretKey": secret_key, "Token": token,
            "ExpiredTime": int(expires), "Expiration": "...", "Code": "Success"})


@contextlib.asynccontextmanager
async def serving(app: web.Application, **runner_options: Any) -> AsyncIterator[str]:
    """`app` on a free loopback port for the block: its `http://127.0.0.1:PORT`."""
    runner = web.AppRunner(app, **runner_options)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def metadata_service(
    issued: Sequence[tuple[str, str, str, float]],
) -> AsyncIterator[tuple[MetadataService, str]]:
    """A `MetadataService` on a free loopback port, and its metadata URL."""
    service = MetadataService(issued)
    async with serving(service.app()) as url:
        yield service, f"{url}/latest/meta-data/"


async def submitted_mps(directory: Path, mps: int) -> Path:
    """A manifest of `mps` mps tasks, submitted to an emulator that has gone since (a collect
    then meets whatever server the test puts at the TaskIds)."""
    from batcher.emulator.config import GenerationConfig
    from batcher.emulator.runner import running_emulator

    manifest = write_manifest(directory, vod=0, mps=mps)
    instant = GenerationConfig(seconds=0.0, jitter=0.0, image_bytes=4096)
    async with running_emulator(emulator_settings(generation=instant)) as emulator:
        code, _, stderr = await run_cli("submit", str(manifest), "--endpoint", emulator.url,
                                        "--rate", "0", "--quiet")
    assert code == 0, stderr
    return manifest


async def collect_from(manifest: Path, url: str, *extra: str) -> tuple[int, str, str]:
    """`batcher collect` of `manifest` against `url`, no progress, a private rate store."""
    return await run_cli("collect", str(manifest), "--endpoint", url, "--rate-store", "memory",
                         "--progress", "none", "--expected-generation", "1s", *extra, timeout=60)


def creates(emulator: Any) -> int:
    """The `CreateAigcImageTask` requests an emulator (a `RunningEmulator`) has seen: what was
    sent, leaving out the free reads a submit makes first (vod's DescribeAigcQuotas)."""
    return sum(record.action == "CreateAigcImageTask" for record in emulator.records)


# --- manifests written, loaded and expanded as the CLI does (tests/test_manifest_*.py) -------


MANIFEST_HEAD = """\
service: vod
defaults:
  vod: {SubAppId: 251007502, ModelName: GEM, ModelVersion: "2.5"}
  mps: {ModelName: Hunyuan}
"""
"""A valid start for a manifest: the required parameters of both services."""

VOD_COLUMNS = "SubAppId,ModelName,ModelVersion"
VOD_CELLS = "251007502,GEM,2.5"


def write_job(directory: Path, text: str, name: str = "job.yaml") -> Path:
    """Write a manifest; an indented body (after MANIFEST_HEAD, if it starts so) is dedented."""
    head = MANIFEST_HEAD if text.startswith(MANIFEST_HEAD) else ""
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(head + textwrap.dedent(text[len(head) :]), encoding="utf-8")
    return path


def expand_job(path: Path) -> list[Task]:
    """Every task of a manifest: loaded, validated, then streamed."""
    manifest = load_manifest(path)
    manifest.validate()
    return list(manifest.tasks())


def job_errors(path: Path, max_errors: int = 100) -> ManifestError:
    """The ManifestError of a manifest, from loading or from validating it."""
    with pytest.raises(ManifestError) as caught:
        load_manifest(path).validate(max_errors=max_errors)
    return caught.value


def one_job_error(path: Path) -> str:
    """The one message of a manifest's ManifestError (asserting there is exactly one)."""
    error = job_errors(path)
    assert len(error.messages) == 1, error.messages
    return error.messages[0]


def prompts_of(tasks: list[Task]) -> list[str]:
    return [task.params.get("Prompt", "") for task in tasks]
