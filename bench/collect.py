"""Collect (docs/results.md): polls per task, how soon a waiting run ends, keeping pace with a
submit, and download throughput and memory.

The emulator runs in this process (its task book tells exactly when each task finished); every
`batcher` command is a child process measured from outside (`procs.run_measured`: wall time,
peak RSS). Figures:

1. `collect` over tasks already finished, caps lifted: poll requests per task (target ≤ 1.05);
2. `collect --wait` started right after submitting tasks that take 5 s ± 50% to generate, caps
   lifted: poll requests per task (≤ 4) and how long after the last task finished the run ends
   (≤ 3 s);
3. at the real caps, `collect --wait` started beside `submit`: how long after the last task was
   created it ends (information: generation takes 2 s there);
4. downloads of 1 MB images on loopback: MB/s from the first `generated` line to the last
   `downloaded` line of the results ledger (≥ 150 MB/s), and peak RSS of collect with 1 MB and
   with 32 MB images (< 100 MB whatever the size).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Awaitable
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

from manifests import write_matrix_yaml
from procs import BATCHER, SECRET_ID, SECRET_KEY, Measured, batcher_env, run_measured
from table import Row

from batcher.emulator.config import EmulatorConfig, GenerationConfig
from batcher.emulator.runner import RunningEmulator, running_emulator

POLL_ACTIONS = ("DescribeTaskDetail", "DescribeAigcImageTask")
MB = 1024 * 1024


def _config(*, rate: int | None, generation: GenerationConfig) -> EmulatorConfig:
    return EmulatorConfig(secret_id=SECRET_ID, secret_key=SECRET_KEY, rate=rate,
                          generation=generation)


async def _batcher(*args: str) -> Measured:
    """A batcher command as a measured child process (run in a thread: the emulator serves)."""
    return await asyncio.to_thread(run_measured, [*BATCHER, *args], env=batcher_env())


async def _submit(manifest: Path, url: str, *, rate: str = "0") -> Measured:
    measured = await _batcher("submit", str(manifest), "--endpoint", url, "--rate", rate,
                              "--quiet")
    if measured.returncode != 0:
        raise RuntimeError(f"submit exited {measured.returncode}")
    return measured


async def _collect(manifest: Path, url: str, *extra: str) -> Measured:
    return await _batcher("collect", str(manifest), "--endpoint", url, "--rate-store", "memory",
                          "--quiet", *extra)


class Beside(NamedTuple):
    """A `collect --wait` run beside a `submit`: each measured, and when each ended (Unix s)."""

    collect: Measured
    collect_ended: float
    submit: Measured
    submit_ended: float


async def _collect_beside_submit(manifest: Path, url: str, *collect_args: str,
                                 rate: str = "20") -> Beside:
    """`submit` at `rate` and, once its ledger exists, `collect --wait` beside it (with
    `collect_args`); the submit is awaited after."""

    async def ended(measuring: Awaitable[Measured]) -> tuple[Measured, float]:
        measured = await measuring
        return measured, time.time()

    submitting = asyncio.create_task(ended(_submit(manifest, url, rate=rate)))
    ledger = manifest.with_suffix(".ledger.jsonl")
    while not ledger.exists() and not submitting.done():
        await asyncio.sleep(0.01)
    collected = await ended(_collect(manifest, url, "--wait", *collect_args))
    return Beside(*collected, *await submitting)


def _polls(emulator: RunningEmulator) -> int:
    stats = emulator.stats(include_sessions=False)["services"]
    return sum(service.get("requests_per_action", {}).get(action, 0)
               for service in stats.values() for action in POLL_ACTIONS)


def _last_finish(emulator: RunningEmulator) -> float:
    tasks = emulator.state.tasks.created_between(0, float("inf"), time.time())
    return max(task.finished for task in tasks)


def _last_creation(emulator: RunningEmulator) -> float:
    tasks = emulator.state.tasks.created_between(0, float("inf"), time.time())
    return max(task.created for task in tasks)


async def finished_tasks(workdir: Path, per_service: int) -> tuple[list[Row], dict[str, Any]]:
    manifest = write_matrix_yaml(workdir / "collect-finished.yaml", per_service)
    instant = GenerationConfig(seconds=0.0, image_bytes=4096)
    async with running_emulator(_config(rate=0, generation=instant)) as emulator:
        await _submit(manifest, emulator.url)
        measured = await _collect(manifest, emulator.url, "--poll-rate", "0")
        polls = _polls(emulator)
    per_task = polls / (2 * per_service)
    return [Row("collect", f"polls per task, {2 * per_service:,} finished tasks", round(
        per_task, 3), "", "<= 1.05", per_task <= 1.05)], {
        "tasks": 2 * per_service, "polls": polls, "exit": measured.returncode,
        "collect": measured.as_dict()}


async def waiting_tasks(workdir: Path, per_service: int) -> tuple[list[Row], dict[str, Any]]:
    manifest = write_matrix_yaml(workdir / "collect-wait.yaml", per_service)
    five = GenerationConfig(seconds=5.0, jitter=0.5, image_bytes=4096)
    async with running_emulator(_config(rate=0, generation=five)) as emulator:
        await _submit(manifest, emulator.url)
        measured = await _collect(manifest, emulator.url, "--wait", "--poll-rate", "0")
        ended = time.time()
        polls, last = _polls(emulator), _last_finish(emulator)
    per_task, lag = polls / (2 * per_service), ended - last
    return [
        Row("collect", f"--wait polls per task, {2 * per_service:,} tasks of 5 s ± 50%",
            round(per_task, 2), "", "<= 4", per_task <= 4),
        Row("collect", "--wait ends after the last task finished", round(lag, 2), "s", "<= 3",
            lag <= 3),
    ], {"tasks": 2 * per_service, "polls": polls, "exit": measured.returncode,
        "lag_s": round(lag, 3), "collect": measured.as_dict()}


async def beside_submit(workdir: Path, per_service: int) -> tuple[list[Row], dict[str, Any]]:
    manifest = write_matrix_yaml(workdir / "collect-beside.yaml", per_service)
    two = GenerationConfig(seconds=2.0, image_bytes=4096)
    async with running_emulator(_config(rate=None, generation=two)) as emulator:
        measured, ended, _, _ = await _collect_beside_submit(manifest, emulator.url)
        behind, polls = ended - _last_creation(emulator), _polls(emulator)
    return [Row("collect", f"beside submit at 20/s ({2 * per_service:,} tasks, 2 s generation): "
                "ends after the last creation", round(behind, 2), "s")], {
        "tasks": 2 * per_service, "polls": polls, "exit": measured.returncode,
        "behind_s": round(behind, 3), "collect": measured.as_dict()}


def _download_window(results_ledger: Path) -> tuple[float, int]:
    """Seconds from the first `generated` line to the last `downloaded` one, and bytes."""
    first = last = None
    total = 0
    for line in results_ledger.read_text().splitlines():
        record = json.loads(line)
        moment = datetime.fromisoformat(record["ts"]).timestamp()
        if record["event"] == "generated" and first is None:
            first = moment
        if record["event"] == "downloaded":
            last = moment
            total += sum(file["bytes"] for file in record["files"])
    if first is None or last is None:
        raise RuntimeError(f"{results_ledger}: no download recorded")
    return max(last - first, 1e-3), total


async def downloads(workdir: Path, tasks: int) -> tuple[list[Row], dict[str, Any]]:
    rows: list[Row] = []
    details: dict[str, Any] = {}
    for size_mb, count in ((1, tasks), (32, 8)):
        manifest = write_matrix_yaml(workdir / f"collect-{size_mb}mb.yaml", count // 2)
        files = GenerationConfig(seconds=0.0, image_bytes=size_mb * MB)
        async with running_emulator(_config(rate=0, generation=files)) as emulator:
            await _submit(manifest, emulator.url)
            measured = await _collect(manifest, emulator.url, "--poll-rate", "0")
        seconds, total = _download_window(manifest.with_name(f"{manifest.stem}.results.jsonl"))
        rate = total / MB / seconds
        if size_mb == 1:
            rows.append(Row("collect", f"download throughput, {count} images of 1 MB",
                            round(rate, 1), "MB/s", ">= 150", rate >= 150))
        rows.append(Row("collect", f"collect peak RSS, images of {size_mb} MB",
                        round(measured.max_rss_mb, 1), "MB", "< 100", measured.max_rss_mb < 100))
        details[f"{size_mb}mb"] = {"tasks": count, "bytes": total, "seconds": round(seconds, 3),
                                   "mb_per_s": round(rate, 1), "collect": measured.as_dict()}
    return rows, details


def run_collect(workdir: Path, finished: int, waiting: int, beside: int,
                download_tasks: int) -> tuple[list[Row], dict[str, Any]]:
    """Every collect figure (counts are tasks in all, half vod, half mps)."""

    async def measure() -> tuple[list[Row], dict[str, Any]]:
        rows: list[Row] = []
        details: dict[str, Any] = {}
        for name, step in (
            ("finished", finished_tasks(workdir, finished // 2)),
            ("wait", waiting_tasks(workdir, waiting // 2)),
            ("beside_submit", beside_submit(workdir, beside // 2)),
            ("downloads", downloads(workdir, download_tasks)),
        ):
            section_rows, details[name] = await step
            rows += section_rows
        return rows, details

    return asyncio.run(measure())


if __name__ == "__main__":  # a quick look: python bench/collect.py
    import tempfile

    with tempfile.TemporaryDirectory() as directory:
        found, _ = run_collect(Path(directory), 200, 200, 100, 50)
    print(Counter(row.verdict for row in found))
    for row in found:
        print(row)
