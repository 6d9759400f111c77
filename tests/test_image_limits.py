"""What a run may spend (docs/spend.md): `--daily-images` held by several processes on one rate
store (file and a real redis-server), `--max-images` for one run, with `batcher submit` in real
processes and the images counted where they are billed, at the emulator.
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

from batcher.emulator import DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY
from batcher.manifest.images import task_images
from tests.helpers import (
    cli_env,
    emulator_process,
    emulator_stats,
    last_events,
    run_cli,
    start_cli,
    write_manifest,
)

pytestmark = pytest.mark.slow


def submit_args(manifest: Path, url: str, store: str, *extra: str) -> tuple[str, ...]:
    return ("submit", str(manifest), "--endpoint", url, "--rate-store", store, "--rate", "0",
            "--progress", "none", *extra)


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    """A `redis-server` of this test's own on a free loopback port."""
    if shutil.which("redis-server") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("redis-server missing under CI (.ci/run installs it)")
        pytest.skip("redis-server missing: apt-get install redis-server (.ci/run does)")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as client:
                if client.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.02)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.kill()
        server.wait()


@pytest.mark.parametrize("store_kind", ["file", pytest.param("redis", marks=pytest.mark.redis)])
async def test_a_daily_limit_is_held_exactly_by_three_processes_at_once(tmp_path, store_kind,
                                                                       request):
    store = (request.getfixturevalue("redis_url") if store_kind == "redis"
             else f"file:{tmp_path / 'rate.json'}")
    manifests = [write_manifest(tmp_path, vod=0, mps=80, name=f"campaign{n}") for n in range(3)]
    async with emulator_process("--rate", "0") as url:
        runs = [await start_cli(*submit_args(manifest, url, store, "--daily-images", "100"))
                for manifest in manifests]
        outputs = await asyncio.wait_for(
            asyncio.gather(*(run.communicate() for run in runs)), 120)
        first = (await emulator_stats(url))["images_created"]
        fourth = write_manifest(tmp_path, vod=0, mps=5, name="fourth")
        code, stdout, stderr = await run_cli(
            *submit_args(fourth, url, store), env=cli_env(BATCHER_DAILY_IMAGES="100"))
        after = (await emulator_stats(url))["images_created"]
    codes = sorted(run.returncode for run in runs)
    assert set(codes) <= {0, 75} and 75 in codes, [err.decode() for _, err in outputs]
    assert first.get("mps") == 100
    assert code == 75, stderr
    assert after == first  # the fourth run created nothing
    assert "--daily-images 100 reached" in stdout
    for manifest in manifests:  # what was not sent is left as it was: no line at all
        assert set(last_events(manifest.with_suffix(".ledger.jsonl")).values()) <= {"submitted"}


def mixed_manifest(directory: Path, count: int) -> Path:
    """`count` mps tasks, alternately asking for 1 and for 3 images."""
    lines = ["service: mps", "defaults:", "  mps: {ModelName: Hunyuan}", "matrix:",
             f"  m: [{', '.join(map(str, range(count // 2)))}]", "tasks:",
             "  - {Prompt: 'one {m}'}", "  - {Prompt: 'three {m}', OutputImageCount: 3}"]
    path = directory / "mixed.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


async def test_max_images_stops_the_run_and_a_plain_rerun_finishes_the_rest(tmp_path):
    manifest = mixed_manifest(tmp_path, 40)  # 20 x 1 + 20 x 3 = 80 images
    store = f"file:{tmp_path / 'rate.json'}"
    async with emulator_process("--rate", "0") as url:
        code, stdout, stderr = await run_cli(*submit_args(manifest, url, store,
                                                          "--max-images", "40"))
        first = (await emulator_stats(url))["images_created"]["mps"]
        rerun, _, rerun_err = await run_cli(*submit_args(manifest, url, store))
        stats = await emulator_stats(url)
    assert code == 75, stderr
    assert 38 <= first <= 40
    assert "--max-images 40 reached" in stdout
    assert rerun == 0, rerun_err
    assert stats["services"]["mps"]["created"] == 40  # each task created once
    assert stats["images_created"]["mps"] == 80


def test_a_tasks_images_are_its_output_image_count():
    assert task_images("vod", {"OutputConfig": {"OutputImageCount": 4}}) == 4
    assert task_images("vod", {"OutputImageCount": 4}) == 1  # vod reads it in OutputConfig
    assert task_images("mps", {"OutputImageCount": 2}) == 2
    assert task_images("mps", {}) == 1


async def test_the_python_api_takes_the_same_limits(tmp_path, emulator):
    import batcher

    manifest = write_manifest(tmp_path, vod=0, mps=6)
    result = await batcher.submit_async(
        manifest, endpoint=emulator.url, secret_id=DEFAULT_SECRET_ID,
        secret_key=DEFAULT_SECRET_KEY, rate=0, rate_store="memory", max_images=4)
    assert result.exit_code == 75
    assert emulator.stats()["images_created"] == {"mps": 4}
    assert "--max-images 4 reached" in result.stop_detail
