"""docs/operating.md#several-hosts, one account, many processes: `batcher submit` processes sharing
a rate store.

Against a real `redis-server` (Debian's package, started by the `redis_server` fixture on a
free loopback port; no fakeredis) and the file store, with the emulator counting arrivals in
every rolling second: three processes together never exceed the cap; a Redis server killed
mid-run stops the run with exit 75 and nothing lost; a restarted one lets the next run go on.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from batcher.emulator.runner import running_emulator
from batcher.run.limiter import RateLimiter, StoreUnreachable
from batcher.run.rate_stores import open_store
from tests.helpers import (
    emulator_process,
    emulator_settings,
    emulator_stats,
    last_events,
    run_cli,
    start_cli,
    write_manifest,
)

pytestmark = [
    pytest.mark.slow,
    # Skipped on a developer's machine without it; under CI=true a missing server fails.
    pytest.mark.skipif(shutil.which("redis-server") is None and os.environ.get("CI") != "true",
                       reason="redis-server missing: apt-get install redis-server (.ci/run does)"),
]


class RedisServer:
    """A `redis-server` of this test's own, on a loopback port, that can be killed and restarted."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as client:
                if client.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.02)
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


@pytest.fixture
def redis_server(tmp_path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.kill()


JITTER_REFUSALS = 2
"""Refusals tolerated per service in 150 requests when three processes share one store: a host
too busy to send on time, not the store (see the test)."""


def submit_args(manifest, url, store, *extra):
    return ("submit", str(manifest), "--endpoint", url, "--rate-store", store, "--progress", "none",
            *extra)


@pytest.mark.serial
@pytest.mark.parametrize("store_kind", ["file", pytest.param("redis", marks=pytest.mark.redis)])
async def test_three_processes_on_one_store_never_exceed_the_cap_at_the_emulator(
    tmp_path, redis_server, store_kind
):
    store = redis_server.url if store_kind == "redis" else f"file:{tmp_path / 'rate.json'}"
    manifests = [write_manifest(tmp_path, vod=25, mps=25, name=f"campaign{n}") for n in range(3)]
    async with emulator_process("--rate", "20") as url:
        runs = []
        for manifest in manifests:
            # A third of a second apart: the processes still overlap for the whole run (about
            # 11 s at the shared cap), but their imports (some 0.4 s of CPU each) no longer all
            # land on 2 CPUs in the same instant as the others' first sends, which made a send
            # late enough to bunch at the emulator (seen in loaded runs: 1 refusal in 150).
            runs.append(await start_cli(*submit_args(manifest, url, store)))
            await asyncio.sleep(0.3)
        outputs = await asyncio.gather(*(run.communicate() for run in runs))
        services = (await emulator_stats(url))["services"]
    for run, (_, stderr) in zip(runs, outputs, strict=True):
        assert run.returncode == 0, stderr.decode()
    for name in ("vod", "mps"):
        assert services[name]["created"] == 75
        # The store's slots are 1.008 s per 21 whichever process asked; what reaches the
        # emulator also carries each process's scheduling delay after its slot. On a 2-CPU host
        # running three submits, the emulator and the suite, a send can leave more than the
        # 8 ms of margin late (seen: 1 refusal in 150, in 2 of some 10 full-suite runs), and the
        # refused request, which created nothing, is sent again. Three private `memory` caps
        # instead of one shared store: 28 refusals per service (measured).
        refusals = services[name]["errors"].get("RequestLimitExceeded", 0)
        assert set(services[name]["errors"]) <= {"RequestLimitExceeded"}
        assert refusals <= JITTER_REFUSALS, f"{refusals} requests refused as over the limit"
        assert services[name]["max_requests_in_rolling_second"] <= 20 + JITTER_REFUSALS


@pytest.mark.redis
async def test_redis_killed_mid_run_stops_with_exit_75_and_a_restart_lets_the_next_run_go_on(
    tmp_path, redis_server
):
    manifest = write_manifest(tmp_path, vod=0, mps=200)
    ledger = manifest.with_suffix(".ledger.jsonl")
    async with running_emulator(emulator_settings(rate=20)) as emulator:
        args = submit_args(manifest, emulator.url, redis_server.url, "--store-timeout", "2s")
        run = await start_cli(*args)
        while not ledger.exists() or len(ledger.read_text().splitlines()) < 20:
            await asyncio.sleep(0.02)
        redis_server.kill()
        _, stderr = await asyncio.wait_for(run.communicate(), 30)
        created_first = emulator.stats()["services"]["mps"]["created"]
        states = last_events(ledger)
        redis_server.start()  # empty: the grid starts afresh
        code, _, stderr_again = await run_cli(*args)
        created = emulator.stats()["services"]["mps"]["created"]
    assert run.returncode == 75, stderr.decode()
    assert "rate store" in stderr.decode() and "Traceback" not in stderr.decode()
    assert "sending" not in states.values(), "nothing in doubt: no sending line without a slot"
    assert list(states.values()).count("submitted") == created_first, "nothing lost"
    assert code == 0, stderr_again
    assert created == 200, "every task created once over the two runs"
    assert set(last_events(ledger).values()) == {"submitted"}


@pytest.mark.redis
async def test_a_redis_store_that_never_answers_pauses_then_raises_store_unreachable(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens there
    store = open_store(f"redis://127.0.0.1:{port}/0")
    limiter = RateLimiter(store, scope="AKIDx", service="mps", action="CreateAigcImageTask",
                          rate=20, store_timeout=0.5)
    try:
        with pytest.raises(StoreUnreachable, match=f"127.0.0.1:{port}"):
            await limiter.acquire()
    finally:
        await store.close()


@pytest.mark.redis
def test_a_redis_password_never_appears_in_messages():
    store = open_store("redis://user:hunter2@127.0.0.1:1/0")
    assert "hunter2" not in store.description
