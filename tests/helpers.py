"""Shared test helpers: manifests of a given size, reading ledgers, running the CLI in a process."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

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
    import aiohttp

    async with aiohttp.ClientSession() as http, http.get(
        f"{url}/_emulator/stats?sessions=0"
    ) as response:
        stats: dict[str, Any] = json.loads(await response.text())
    return stats
