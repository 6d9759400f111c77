"""A worker's unexpected error ends the run, with `batcher submit` in a real process: a ledger on
a really full filesystem (a 4 MB tmpfs) exits 2 with one line naming the ledger and the disk,
within its bound, with its lock released and no task lost; a hostile server answering
`CreateAigcImageTask` with a 200,000-deep JSON body makes that task's answer unreadable (mps: in
doubt), not the run's end.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

from batcher.emulator.runner import running_emulator
from tests.helpers import (
    emulator_settings,
    last_events,
    read_ledger,
    serving,
    start_cli,
    write_manifest,
)


async def run_cli(*args: str, timeout: float) -> tuple[int, str, str]:
    """`batcher ARGS` in a process that must end by itself within `timeout` (else killed)."""
    process = await start_cli(*args)
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise AssertionError(f"batcher {' '.join(args)} still running after {timeout} s") from None
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()

pytestmark = pytest.mark.slow


@contextlib.contextmanager
def small_tmpfs(directory: Path, size: str = "4m") -> Iterator[Path]:
    """A real tmpfs of `size` mounted at `directory` (root only; CI runs as root)."""
    if os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("CI runs as root: the full-disk tests must run there")
        pytest.skip("mounting a tmpfs needs root (CI runs these as root)")
    directory.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(directory)],
                   check=True)
    try:
        yield directory
    finally:
        subprocess.run(["umount", "-l", str(directory)], check=False)


def fill(directory: Path, leave: int) -> None:
    """Fill the filesystem of `directory` until `leave` bytes are free."""
    stat = os.statvfs(directory)
    free = stat.f_bavail * stat.f_frsize
    (directory / "filler").write_bytes(b"\0" * max(0, free - leave))


async def test_a_full_disk_under_the_ledger_ends_the_run_with_exit_2_and_one_line(tmp_path):
    disk = tmp_path / "disk"
    with small_tmpfs(disk):
        manifest = write_manifest(disk, vod=0, mps=3000)
        ledger = manifest.with_suffix(".ledger.jsonl")
        fill(disk, leave=300_000)
        async with running_emulator(emulator_settings()) as emulator:
            code, _, stderr = await run_cli("submit", str(manifest), "--endpoint", emulator.url,
                                            "--rate", "0", "--quiet", timeout=60)
            created = emulator.stats()["services"]["mps"]["created"]
        assert code == 2, stderr
        assert "Traceback" not in stderr
        lines = [line for line in stderr.splitlines() if line.startswith("batcher:")]
        assert len(lines) == 1, stderr
        assert str(ledger) in lines[0] and "no space left" in lines[0].lower(), lines[0]
        assert f"mounted at {disk};" in lines[0], lines[0]  # the disk, by its mount point
        # Nothing lost: every created task has its line, or its last line is `sending` (in
        # doubt, which the next run reports); no task was created without a `sending` line.
        events = last_events(ledger)
        assert 0 < created < 3000
        submitted = sum(1 for event in events.values() if event == "submitted")
        in_doubt = sum(1 for event in events.values() if event == "sending")
        assert submitted <= created <= submitted + in_doubt
        # The lock is released: with room again, a second run takes the ledger and goes on.
        (disk / "filler").unlink()
        async with running_emulator(emulator_settings()) as emulator:
            code, _, stderr = await run_cli("submit", str(manifest), "--endpoint", emulator.url,
                                            "--rate", "0", "--quiet", timeout=120)
        assert code in (0, 1), stderr  # 1: the in-doubt tasks of the first run are reported
        assert "held by" not in stderr
        assert len(last_events(ledger)) == 3000


async def nested_answer(request: web.Request) -> web.Response:
    await request.read()
    depth = 200_000
    return web.Response(text="[" * depth + "]" * depth, content_type="application/json")


async def test_a_deeply_nested_answer_is_that_tasks_problem_not_the_runs(tmp_path):
    manifest = write_manifest(tmp_path, vod=3, mps=3)
    ledger = manifest.with_suffix(".ledger.jsonl")
    app = web.Application()
    app.router.add_post("/", nested_answer)
    async with serving(app) as url:
        code, stdout, stderr = await run_cli(
            "submit", str(manifest), "--endpoint", url, "--rate", "0",
            "--max-attempts", "2", "--json", "--progress", "none", timeout=60)
    assert "Traceback" not in stderr
    assert code == 1, stderr  # some tasks not done: mps in doubt, vod failed after retries
    events = {record["key"]: record for record in read_ledger(ledger)}
    by_service: dict[str, set[str]] = {}
    for record in events.values():
        by_service.setdefault(record["service"], set()).add(record["event"])
    assert by_service["mps"] == {"sending"}  # may exist: in doubt
    assert by_service["vod"] == {"failed"}  # retried under its SessionId, then failed
    # The summary says what happened to each task: every one was sent, none is "not sent".
    counts = json.loads(stdout)["manifests"][0]["services"]
    assert (counts["mps"]["in_doubt"], counts["mps"]["not_sent"]) == (3, 0), counts
    assert (counts["vod"]["failed"], counts["vod"]["not_sent"]) == (3, 0), counts
