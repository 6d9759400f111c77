"""docs/results.md#memory: `collect --wait` beside a running `submit` follows its ledger without
holding the batch.

The run places the batch as any run does (counted; the tasks with work held, up to the window)
and then takes in the tasks that the submit's new lines name, found by key in the manifest. The
first tests drive a manifest's `JobState` over ledgers written by the real writers, as a submit's
two lanes (vod rows first, mps rows after them) write them; the last ones run the real submit
beside the real collector against the emulator, with retries and a window smaller than the batch.
"""

from __future__ import annotations

import asyncio
import gc
import tracemalloc
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

import pytest

from batcher.emulator.config import FaultConfig, GenerationConfig
from batcher.emulator.runner import running_emulator
from batcher.exceptions import ExitCode
from batcher.library.submit import account_for
from batcher.manifest import Manifest, Task, load_manifest
from batcher.results.collect_job import CollectJob, CollectSettings
from batcher.results.collection import collect
from batcher.results.download import DownloadPolicy
from batcher.results.joined import KeyOrder
from batcher.results.rows import ResultState
from batcher.results.schedule import PollTiming
from batcher.results.tracking import JobState, Tracked, Work
from batcher.state.results_ledger import DownloadedFile, ResultsLedgerWriter, results_ledger_path
from batcher.state.writer import LedgerWriter
from tests.helpers import (
    SECRET_ID,
    SECRET_KEY,
    cli_env,
    emulator_settings,
    last_events,
    ledger_of,
    most_awaiting_download,
    start_cli,
    write_manifest,
)

VOD, MPS = 3_000, 3_000


def _loaded(path: Path) -> tuple[Manifest, list[Task]]:
    manifest = load_manifest(path)
    manifest.validate()
    return manifest, list(manifest.tasks())


async def _send(submits: LedgerWriter, tasks: list[Task], rows: range | list[int],
                suffix: str = "") -> dict[int, str]:
    """A submit's lines for the tasks at `rows` (1-based): sent and created; their TaskIds."""
    task_ids = {row: f"T{row}{suffix}" for row in rows}
    for row in rows:
        task = tasks[row - 1]
        await submits.sending(task.key, task.service, 1, task.session_id)
    await asyncio.gather(*(
        submits.submitted(tasks[row - 1].key, tasks[row - 1].service, task_ids[row], "r",
                          tasks[row - 1].session_id) for row in rows))
    return task_ids


def _counted(job: JobState, placed: list[tuple[ResultState, Tracked]]) -> dict[int, Tracked]:
    """What the collector does with placed tasks: counts them in their new state."""
    for _, tracked in placed:
        job.count(tracked)
    return {tracked.row: tracked for _, tracked in placed}


async def test_following_holds_none_of_the_batch_and_places_each_task_the_submit_names(
    tmp_path: Path,
) -> None:
    path = write_manifest(tmp_path, vod=VOD, mps=MPS)
    manifest, tasks = _loaded(path)
    ledger = ledger_of(path)
    async with LedgerWriter.open(ledger) as submits, ResultsLedgerWriter.open(
        results_ledger_path(ledger)
    ) as results:
        placed_states: Counter[ResultState] = Counter()
        job = JobState.place(manifest, ledger, results, following=True, window=10,
                             on_placed=lambda tracked: placed_states.update([tracked.state]))
        assert placed_states == {ResultState.NOT_SUBMITTED: VOD + MPS}
        assert job.tracked == {}  # nothing sent yet: nothing to hold (it held all 6,000)

        # Both lanes send their first hundred: vod from row 1, mps from row 3,001.
        lanes = [*range(1, 101), *range(VOD + 1, VOD + 101)]
        task_ids = await _send(submits, tasks, lanes)
        placed = job.refresh()
        assert {(old, tracked.state, tracked.work) for old, tracked in placed} == {
            (ResultState.NOT_SUBMITTED, ResultState.PENDING, Work.POLL)}
        by_row = _counted(job, placed)
        assert {row: tracked.task_id for row, tracked in by_row.items()} == task_ids
        assert all(by_row[row].key == tasks[row - 1].key for row in lanes)
        assert job.refresh() == []  # nothing new
        follower = job.follower
        assert follower is not None
        assert follower.finder.walked == VOD + 100  # one walk in step with both lanes

        # Row 2 is sent again after the lanes went thousands of rows past it (a new TaskId).
        resent = await _send(submits, tasks, [2], suffix="-again")
        [(old, again)] = job.refresh()
        assert (old, again.row, again.task_id) == (ResultState.PENDING, 2, resent[2])
        assert again.prompt == tasks[1].params["Prompt"]
        assert follower.finder.walked == VOD + 100 + 2  # a walk of its own, from the start


def _write_csv(directory: Path, rows: int) -> Path:
    path = directory / "big.csv"
    lines = ["Prompt,SubAppId,ModelName,ModelVersion"]
    lines += [f"picture {n},251007502,GEM,2.5" for n in range(rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("kind", ["yaml", "csv"])
async def test_a_lane_far_into_the_manifest_is_walked_to_from_a_checkpoint_not_row_one(
    tmp_path: Path, kind: str
) -> None:
    """A collect that starts beside a submit far into a long manifest does not walk it from
    the start: the placement noted where a walk may begin (a YAML task entry, a CSV row)."""
    path = write_manifest(tmp_path, vod=4_500, mps=4_500) if kind == "yaml" else (
        _write_csv(tmp_path, 9_000))
    manifest, tasks = _loaded(path)
    ledger = ledger_of(path)
    async with LedgerWriter.open(ledger) as submits, ResultsLedgerWriter.open(
        results_ledger_path(ledger)
    ) as results:
        job = JobState.place(manifest, ledger, results, following=True, window=10,
                             on_placed=lambda tracked: None)
        rows = [1, 2, 8_500, 8_501]
        task_ids = await _send(submits, tasks, rows)
        placed = _counted(job, job.refresh())
    assert {row: tracked.task_id for row, tracked in placed.items()} == task_ids
    assert all(placed[row].key == tasks[row - 1].key for row in rows)
    follower = job.follower
    assert follower is not None
    # From a checkpoint at most 4,096 rows before row 8,500 (YAML: the mps entry's first row).
    assert follower.finder.walked <= 2 + 4_096 + 2, follower.finder.walked
    assert follower.finder.walked < 8_501


async def test_the_first_read_after_placing_does_not_undo_a_finished_task(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The follower reads from where the ledger ended before the placement read it: lines the
    placement saw may be read again, and must not send a downloaded task back to pending."""
    path = write_manifest(tmp_path, vod=4, mps=4)
    manifest, tasks = _loaded(path)
    ledger = ledger_of(path)
    async with LedgerWriter.open(ledger) as submits, ResultsLedgerWriter.open(
        results_ledger_path(ledger)
    ) as results:
        [task_id] = (await _send(submits, tasks, [1])).values()
        await results.downloaded(tasks[0].key, "vod", task_id, [DownloadedFile("a.png", 9, "0")])
        # As if all of it was written while the placement was reading the ledger.
        monkeypatch.setattr("batcher.results.tracking._size_of", lambda path: 0)
        counted: list[ResultState] = []
        job = JobState.place(manifest, ledger, results, following=True, window=10,
                             on_placed=lambda tracked: counted.append(tracked.state))
        assert counted[0] is ResultState.DOWNLOADED
        assert job.refresh() == []  # read again, looked up: still downloaded, nothing to do


async def test_a_vod_duplicate_the_submit_names_is_recovered_from_all_its_sending_times(
    tmp_path: Path,
) -> None:
    path = write_manifest(tmp_path, vod=4, mps=0)
    manifest, tasks = _loaded(path)
    task = tasks[2]
    ledger = ledger_of(path)
    async with LedgerWriter.open(ledger) as submits, ResultsLedgerWriter.open(
        results_ledger_path(ledger)
    ) as results:
        await submits.sending(task.key, "vod", 1, task.session_id)  # an earlier run, cut short
        job = JobState.place(manifest, ledger, results, following=True, window=10,
                             on_placed=lambda tracked: None)
        assert job.refresh() == []
        assert task.session_id is not None
        await submits.sending(task.key, "vod", 1, task.session_id)  # the resend: refused
        await submits.duplicate(task.key, "vod", "r", task.session_id)
        [(old, tracked)] = job.refresh()
    assert (old, tracked.row, tracked.work) == (ResultState.IN_DOUBT, 3, Work.RECOVER)
    assert len(tracked.sending_times) == 2  # the earlier run's too: it may have created it


async def test_following_keeps_a_few_bytes_per_task_of_the_batch(tmp_path: Path) -> None:
    tasks = 20_000
    path = write_manifest(tmp_path, vod=tasks // 2, mps=tasks // 2)
    manifest, _ = _loaded(path)
    ledger = ledger_of(path)
    async with ResultsLedgerWriter.open(results_ledger_path(ledger)) as results:
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            job = JobState.place(manifest, ledger, results, following=True, window=10,
                                 on_placed=lambda tracked: None)
            job.refresh()
            gc.collect()
            kept = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
    assert job.following
    # Its key (16 bytes) and counted state (1 byte) per task; it was a Tracked task, its
    # identity and its submission, about 1 KB.
    assert kept / tasks < 60, f"{kept / tasks:.0f} bytes a task"


async def test_collect_wait_follows_a_submit_with_retries_through_a_window_smaller_than_it(
    tmp_path: Path,
) -> None:
    manifest = write_manifest(tmp_path, vod=30, mps=30)
    # Retried creations (the ledger names rows again), and downloads slower than the finishes
    # (one at a time, 30 % refused, retried): a run that held what it followed would pile up.
    faults = FaultConfig(internal_error_rate=0.2, download_error_rate=0.3, seed=7)
    quick = GenerationConfig(seconds=0.5, jitter=0.5, image_bytes=2048)
    async with running_emulator(emulator_settings(rate=20, generation=quick,
                                                  faults=faults)) as emulator:
        submitting = await start_cli("submit", str(manifest), "--endpoint", emulator.url,
                                     "--quiet", "--rate", "10", "--rate-store", "memory",
                                     env=cli_env())
        ledger = ledger_of(manifest)
        while not (ledger.exists() and ledger.stat().st_size):
            await asyncio.sleep(0.01)
        account = account_for(emulator.url, None, None, None, "memory", SECRET_ID, SECRET_KEY,
                              None)
        job = CollectJob(load_manifest(manifest), ledger, manifest.with_name("job.results"))
        settings = CollectSettings(wait=True, handle_signals=False, window=4, timeout=120,
                                   timing=PollTiming(prior_generation=0.5),
                                   download=DownloadPolicy(concurrency=1, base_delay=0.2,
                                                           max_delay=0.5, max_attempts=20))
        counts: list[int] = []
        result = await collect([job], settings, account, 5.0, _Downloaded(counts))
        assert await submitting.wait() == 0
    assert result.exit_code is ExitCode.OK, result.stop_detail
    assert Counter(last_events(results_ledger_path(ledger)).values()) == {"downloaded": 60}
    assert counts[-1] == 60
    assert most_awaiting_download(results_ledger_path(ledger)) <= 4  # the window, followed too


class _Downloaded:
    """The run's count of downloaded tasks, as it reports it."""

    def __init__(self, seen: list[int]) -> None:
        self.seen = seen

    def changed(self, counts: Mapping[ResultState, int]) -> None:
        self.seen.append(counts[ResultState.DOWNLOADED])


def test_a_key_is_found_by_its_own_16_bytes_never_across_two_keys() -> None:
    order = KeyOrder()
    keys = [f"{n:032x}" for n in range(1, 9_000)] + ["ab" * 16, "cd" * 16]
    order.extend(keys)
    assert order.index("cd" * 16) == len(keys) - 1
    assert order.index("ab" * 16, near=[0]) == len(keys) - 2  # not near the hint: found anyway
    assert order.index(keys[5_000], near=[4_990]) == 5_000
    straddling = ("ab" * 16)[16:] + ("cd" * 16)[:16]  # the tail of one and the head of the next
    assert order.index(straddling) is None
    assert order.index("not hex") is None
    assert order.index("ab" * 8) is None
