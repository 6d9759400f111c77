"""docs/results.md, memory: `collect` holds the unfinished tasks only, so its peak memory over a
finished batch hardly grows with the batch.

Each batch is written as a real run leaves it (the ledgers by the real writers, every task
downloaded), then `collect` runs in a child process that reports its own peak resident size
(`VmHWM`: the high-water mark of its own address space, not inherited from this one). The
growth per task between a small and a ten times larger batch is the figure: a per-task object
for every finished task (3 KB and more a task) fails it.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from batcher.manifest import Manifest, load_manifest
from batcher.results.joined import KeyOrder, joined, reduced_joined
from batcher.results.rows import ResultState
from batcher.results.tracking import FinalRows, TaskIdentity, track
from batcher.state.results_ledger import (
    DownloadedFile,
    GeneratedFile,
    GenerationError,
    ResultsLedgerWriter,
    replay_results,
    results_ledger_path,
)
from batcher.state.submissions import read_submissions
from batcher.state.writer import LedgerWriter
from tests.helpers import cli_env, ledger_of, write_manifest

SMALL, LARGE = 2_000, 20_000
BYTES_PER_TASK = 1_800
"""The bound on peak growth per finished task. Measured: 1,180 bytes (a chunk of the ledgers'
records, the manifest's own expansion of its matrix); 3,180 when every task was held as an object
for the run and the ledgers were replayed whole."""

_CHILD = """
import sys
from batcher.cli.main import main
code = main(sys.argv[1:])
with open("/proc/self/status") as status:
    peak = next(line for line in status if line.startswith("VmHWM:"))
print(code, int(peak.split()[1]) * 1024)
"""

pytestmark = pytest.mark.skipif(not Path("/proc/self/status").exists(),
                                reason="reads the peak from /proc (Linux)")


async def _finished_batch(directory: Path, tasks: int) -> Path:
    """A manifest of `tasks` tasks, each submitted, generated and downloaded in its ledgers."""
    directory.mkdir()
    manifest = write_manifest(directory, vod=tasks // 2, mps=tasks - tasks // 2)
    keyed = load_manifest(manifest)
    keyed.validate()
    ledger = ledger_of(manifest)
    async with LedgerWriter.open(ledger) as submits, ResultsLedgerWriter.open(
        results_ledger_path(ledger)
    ) as results:
        batch: list[asyncio.Future[None]] = []
        for row, task in enumerate(keyed.tasks(), 1):
            task_id = f"1500{row:010d}-AigcImage-{task.key[:20]}"
            name = f"{row:04d}-picture-{task.key[:8]}.png"
            batch.append(asyncio.ensure_future(_one(submits, results, task.key, task.service,
                                                    task.session_id, task_id, name)))
            if len(batch) == 2_000:  # group commit: a few syncs per two thousand tasks
                await asyncio.gather(*batch)
                batch.clear()
        await asyncio.gather(*batch)
    return manifest


async def _one(submits: LedgerWriter, results: ResultsLedgerWriter, key: str, service: str,
               session_id: str | None, task_id: str, name: str) -> None:
    await submits.sending(key, service, 1, session_id)
    await submits.submitted(key, service, task_id, f"req-{key[:12]}", session_id)
    url = f"https://example.com/aigc/{task_id}/{name}?sign={key}"
    await results.generated(key, service, task_id, [GeneratedFile(url, "png", 2048)])
    await results.downloaded(key, service, task_id, [DownloadedFile(name, 2048, key * 2)])


def _collect_peak(manifest: Path) -> int:
    """Peak resident bytes of `batcher collect` over `manifest`, in its own process."""
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, "collect", str(manifest), "--rate-store", "memory",
         "--quiet"],
        env=cli_env(), capture_output=True, text=True, timeout=120, check=False)
    code, peak = done.stdout.split()
    assert code == "0", done.stderr
    return int(peak)


async def test_collect_peak_memory_grows_far_less_per_finished_task_than_an_object_each(
    tmp_path
):
    small = await _finished_batch(tmp_path / "small", SMALL)
    large = await _finished_batch(tmp_path / "large", LARGE)
    small_peak, large_peak = await asyncio.gather(asyncio.to_thread(_collect_peak, small),
                                                  asyncio.to_thread(_collect_peak, large))
    per_task = (large_peak - small_peak) / (LARGE - SMALL)
    assert per_task < BYTES_PER_TASK, (
        f"peak {small_peak / 2**20:.1f} MiB at {SMALL:,} finished tasks, "
        f"{large_peak / 2**20:.1f} MiB at {LARGE:,}: {per_task:.0f} bytes a task")
    rows = (large.parent / "job.results" / "results.csv").read_text().count("\n")
    assert rows == LARGE + 1  # every task reported, none held


async def _mixed_batch(directory: Path) -> tuple[Manifest, Path]:
    """Sixteen tasks in every state the ledgers can leave them, each key's lines interleaved
    with the others', a corrupt line in the middle and a torn one at the end."""
    manifest_path = write_manifest(directory, vod=8, mps=8)
    manifest = load_manifest(manifest_path)
    manifest.validate()
    ledger = ledger_of(manifest_path)
    tasks = list(manifest.tasks())
    async with LedgerWriter.open(ledger) as submits, ResultsLedgerWriter.open(
        results_ledger_path(ledger)
    ) as results:
        for index, task in enumerate(tasks[1:], 1):  # the first is never sent
            session = task.session_id or f"s{index}"
            await submits.sending(task.key, task.service, 1, session)
        for index, task in enumerate(tasks[1:], 1):
            key, service, task_id = task.key, task.service, f"T{index}"
            files = [GeneratedFile(f"https://x/{index}.png", "png", 9)]
            if index == 1:
                continue  # in doubt
            if index == 2:
                await submits.failed(key, service, "InvalidParameter", "bad", False)
                continue
            if index in (3, 4, 5):  # vod duplicates: recovered later, recovered, lost
                await submits.duplicate(key, service, "r", task.session_id or f"s{index}")
                if index == 4:
                    await results.recovered(key, service, task_id, task.session_id or "s4")
                    await results.generated(key, service, task_id, files)
                    await results.downloaded(key, service, task_id,
                                             [DownloadedFile(f"{index}.png", 9, "ab" * 32)])
                if index == 5:
                    await results.lost(key, service, "not listed", task.session_id or "s5")
                continue
            await submits.submitted(key, service, task_id, "r", task.session_id)
            if index % 4 == 0:
                await results.generated(key, service, task_id, files)
            if index % 4 == 1:
                await results.generated(key, service, task_id, files)
                await results.downloaded(key, service, task_id,
                                         [DownloadedFile(f"{index}.png", 9, "ab" * 32)])
            if index % 4 == 2:
                await results.generation_failed(key, service, task_id,
                                                GenerationError("Banned", "no", False))
                if index == 10:  # regenerated: a new TaskId, pending
                    await submits.sending(key, service, 2, task.session_id)
                    await submits.submitted(key, service, f"{task_id}b", "r", task.session_id)
            if index % 4 == 3:
                await results.expired(key, service, task_id)
    with ledger.open("ab") as tail, results_ledger_path(ledger).open("ab") as results_tail:
        tail.write(b'{"ts":"2026-12-01T10:00:00.000Z","key":"' + tasks[1].key.encode())
        results_tail.write(b"not json\n" + b'{"ts":"2026-12-01T10:00:00.000Z","key":"')
    return manifest, ledger


@pytest.mark.parametrize("chunk", [1, 3, 7, 100])
async def test_a_batch_joined_a_chunk_at_a_time_is_joined_exactly_as_one_read_whole(
    tmp_path, chunk
):
    manifest, ledger = await _mixed_batch(tmp_path)
    whole = list(joined(manifest, ledger, None))
    by_chunks = list(joined(manifest, ledger, KeyOrder.of(manifest), chunk=chunk))
    assert by_chunks == whole
    order = KeyOrder()  # the first join of a run: the tasks held reduced, a chunk at a time
    first = list(reduced_joined(manifest, ledger, order, len(whole), lambda row, task: (row, task)))
    assert [(*item, submission, record) for item, submission, record in first] == whole
    assert order.chunk(0, len(whole)) == {task.key for _, task, _, _ in whole}
    states = Counter(track(TaskIdentity.of(row, task), submission, record).state
                     for row, task, submission, record in whole)
    assert len(states) >= 8, states  # the batch is mixed indeed


async def test_report_rows_of_a_batch_read_by_chunks_are_those_of_one_read_whole(tmp_path):
    manifest, ledger = await _mixed_batch(tmp_path)
    whole = (read_submissions(ledger), replay_results(results_ledger_path(ledger), lean=True))
    rows = list(FinalRows(manifest, {}, ledger, None, (whole[0], whole[1].records)).rows())
    assert list(FinalRows(manifest, {}, ledger, KeyOrder.of(manifest), None).rows()) == rows
    assert len(rows) == 16 and rows[0].state is ResultState.NOT_SUBMITTED
