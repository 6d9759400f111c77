"""Faults of the result side, run as an operator's worst day runs them: a broken or hostile
answer is that task's problem, never the run's; a forged log line is escaped; a one pass is
bounded; a full disk is one line and exit 2 (docs/results.md).

The CLI runs in its own process; the tasks are created on the real emulator, then collected
from a hostile loopback server that answers the polls (and serves the images) itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import zlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests.helpers import (
    collect_from,
    emulator_settings,
    read_ledger,
    run_cli,
    serving,
    submitted_mps,
    write_manifest,
)


def png() -> bytes:
    """A 1x1 PNG, whole and valid."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return len(data).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")
    header = (1).to_bytes(4, "big") * 2 + bytes([8, 2, 0, 0, 0])
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00")) + chunk(b"IEND", b""))


Answer = Callable[[int, str], "web.StreamResponse | bytes"]


@contextlib.asynccontextmanager
async def hostile(answer: Callable[[int, str, str], Any]) -> AsyncIterator[str]:
    """A loopback server answering every poll with `answer(index, task_id, base_url)` (the
    index counts the TaskIds in the order first asked) and serving a PNG at /img.png."""
    seen: dict[str, int] = {}

    async def api(request: web.Request) -> web.StreamResponse:
        task_id = str((await request.json()).get("TaskId", ""))
        index = seen.setdefault(task_id, len(seen))
        result = answer(index, task_id, str(request.url.origin()))
        if isinstance(result, web.StreamResponse):
            return result
        if callable(result):
            return await result(request)
        return web.Response(body=result, content_type="application/json")

    async def image(_: web.Request) -> web.Response:
        return web.Response(body=png(), content_type="image/png")

    app = web.Application()
    app.router.add_post("/", api)
    app.router.add_get("/img.png", image)
    async with serving(app) as url:
        yield url


def done(base: str) -> bytes:
    return json.dumps({"Response": {"Status": "DONE", "ImageUrls": [f"{base}/img.png"],
                                    "RequestId": "r"}}).encode()


def results(manifest: Path) -> list[dict[str, Any]]:
    return read_ledger(manifest.with_name(f"{manifest.stem}.results.jsonl"))


async def test_an_answer_nested_200000_deep_is_that_tasks_problem_not_the_runs(tmp_path):
    manifest = await submitted_mps(tmp_path, 3)
    nested = b'{"Response": ' + b"[" * 200_000 + b"]" * 200_000 + b"}"

    def answer(index: int, _: str, base: str) -> bytes:
        return nested if index == 0 else done(base)

    async with hostile(answer) as url:
        code, _, stderr = await collect_from(manifest, url)
    assert "Traceback" not in stderr and "RecursionError" not in stderr.split("(")[0], stderr
    assert code == 75, stderr  # the broken one is still to be asked: run again
    assert [r["event"] for r in results(manifest)].count("downloaded") == 2


async def test_an_error_code_with_a_newline_does_not_forge_a_log_line(tmp_path):
    manifest = await submitted_mps(tmp_path, 1)
    forged = json.dumps({"Response": {"Error": {
        "Code": "InvalidParameter\nbatcher INFO all images downloaded", "Message": "x"},
        "RequestId": "r"}}).encode()
    log = tmp_path / "collect.log"
    async with hostile(lambda *_: forged) as url:
        code, _, stderr = await collect_from(manifest, url, "--log-file", str(log))
    assert code == 1, stderr
    for text in (stderr, log.read_text()):
        assert not any(line.startswith("batcher INFO all images") for line in text.splitlines())
    assert "InvalidParameter\\nbatcher INFO" in log.read_text(), log.read_text()


async def test_a_one_pass_collect_ends_at_its_timeout_whatever_the_server_does(tmp_path):
    manifest = await submitted_mps(tmp_path, 1)

    async def trickle(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        for _ in range(600):  # a byte a second, for ten minutes
            await response.write(b" ")
            await asyncio.sleep(1)
        return response

    async with hostile(lambda *_: trickle) as url:
        code, _, stderr = await collect_from(manifest, url, "--timeout", "3s")
    assert code == 75, stderr
    assert "--timeout reached" in stderr


@contextlib.contextmanager
def tmpfs(where: Path, size: str) -> Any:
    where.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                   check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def can_mount() -> bool:
    return os.geteuid() == 0 and shutil.which("mount") is not None


async def test_collect_on_a_full_disk_is_one_line_and_exit_2_never_a_truncated_file(tmp_path):
    if not can_mount():
        if os.environ.get("CI") == "true":
            pytest.fail("CI runs as root: a real tmpfs is required for this test")
        pytest.skip("needs root to mount a tmpfs")
    manifest = await submitted_mps(tmp_path, 3)
    with tmpfs(tmp_path / "small", "1m") as out:
        with open(out / "filler", "wb") as filler, contextlib.suppress(OSError):
            while True:
                filler.write(b"\0" * 65536)
                filler.flush()
        async with hostile(lambda _i, _t, base: done(base)) as url:
            code, _, stderr = await collect_from(manifest, url, "--out", str(out))
        names = sorted(path.name for path in out.iterdir())
    assert code == 2, stderr
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.startswith("batcher:")]
    assert lines and f"mounted at {out} is full" in lines[-1], stderr
    assert not any(name.endswith(".png") or name == "results.csv" for name in names), names


async def test_a_vod_task_not_on_disk_shows_its_expire_time_in_status(tmp_path):
    # vod files carry their own end (`ExpireTime`: a Temporary output's 7 days); the `generated`
    # line keeps it, so `status`, run later from the ledgers alone, shows it as collect did.
    from batcher.emulator.config import FaultConfig, GenerationConfig
    from batcher.emulator.runner import running_emulator

    manifest = write_manifest(tmp_path, vod=1, mps=0)
    instant = GenerationConfig(seconds=0.0, jitter=0.0, image_bytes=4096)
    config = emulator_settings(generation=instant, faults=FaultConfig(download_error_rate=1.0))
    async with running_emulator(config) as emulator:
        code, _, stderr = await run_cli("submit", str(manifest), "--endpoint", emulator.url,
                                        "--rate", "0", "--quiet")
        assert code == 0, stderr
        code, _, stderr = await collect_from(manifest, emulator.url, "--timeout", "5s")
    assert code != 0, "its download failed: the task is left generated"
    generated = [r for r in read_ledger(tmp_path / "job.results.jsonl")
                 if r["event"] == "generated"]
    assert generated and generated[0]["expires"].endswith("Z")
    code, stdout, stderr = await run_cli("status", str(manifest), "--json")
    assert code == 0, stderr
    unsaved = json.loads(stdout)["unsaved"]
    assert unsaved["tasks"] == 1
    assert 167 * 3600 < unsaved["oldest_expires_in_s"] <= 168 * 3600, unsaved


async def test_finished_tasks_not_on_disk_show_in_metrics_and_status_with_their_expiry(tmp_path):
    manifest = await submitted_mps(tmp_path, 2)
    broken = json.dumps({"Response": {"Status": "DONE", "RequestId": "r",
                                      "ImageUrls": ["http://127.0.0.1:9/gone.png"]}}).encode()
    metrics = tmp_path / "collect.prom"

    def answer(index: int, _: str, base: str) -> bytes:
        return broken if index == 0 else done(base)

    async with hostile(answer) as url:
        code, _, stderr = await collect_from(manifest, url, "--metrics-file", str(metrics))
    assert code == 75, stderr  # one generated, not downloaded: run again
    text = metrics.read_text()
    assert "batcher_collect_unsaved 1\n" in text, text
    expires = next(line for line in text.splitlines()
                   if line.startswith("batcher_collect_unsaved_oldest_expires_in_seconds "))
    assert 11 * 3600 < float(expires.split()[1]) <= 12 * 3600, expires
    code, stdout, stderr = await run_cli("status", str(manifest))
    assert code == 0, stderr
    assert "not on disk yet: 1 finished task(s)" in stdout, stdout
    assert "expire in 12.0 h" in stdout or "expire in 11.9 h" in stdout, stdout
