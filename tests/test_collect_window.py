"""docs/results.md#memory: `collect` holds a window of the tasks it works on, not the batch.

A run over more unfinished tasks than its window holds that many at once and takes the others
in, counted from the start and in manifest order (the submit order: oldest first), as the held
ones settle. The real client against the real emulator, in process, with a window of a few tasks
so that a small batch shows what a million-task one does: the results ledger's order proves the
bound (a task is written `generated` only while it is held, and leaves the window when it is
written `downloaded`), and every task still ends where it belongs, in the ledger and the reports.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

import pytest

from batcher.emulator.config import GenerationConfig
from batcher.emulator.runner import running_emulator
from batcher.exceptions import ExitCode
from batcher.library.submit import account_for
from batcher.manifest import load_manifest
from batcher.results.collect_job import CollectJob, CollectResult, CollectSettings
from batcher.results.collection import collect
from batcher.results.download import DownloadPolicy
from batcher.results.rows import ResultState
from batcher.results.schedule import PollTiming
from batcher.state.results_ledger import results_ledger_path
from tests.helpers import (
    SECRET_ID,
    SECRET_KEY,
    emulator_settings,
    last_events,
    ledger_of,
    most_awaiting_download,
    read_ledger,
    submit,
    write_manifest,
)

WINDOW = 10
TASKS = 120


class Counts:
    """The counts the run reports, the first time and the last."""

    def __init__(self) -> None:
        self.first: Counter[ResultState] | None = None
        self.last: Counter[ResultState] = Counter()

    def changed(self, counts: Mapping[ResultState, int]) -> None:
        if self.first is None:
            self.first = Counter(counts)
        self.last = Counter(counts)


async def _collect(manifest: Path, url: str, observer: Counts, **settings: object) -> CollectResult:
    account = account_for(url, None, None, None, "memory", SECRET_ID, SECRET_KEY, None)
    job = CollectJob(load_manifest(manifest), ledger_of(manifest),
                     manifest.with_name(f"{manifest.stem}.results"))
    options = CollectSettings(handle_signals=False, window=WINDOW,
                              timing=PollTiming(prior_generation=0.5), **settings)  # type: ignore[arg-type]
    return await collect([job], options, account, 5.0, observer)


def _rows_by_state(manifest: Path) -> Counter[str]:
    table = manifest.with_name(f"{manifest.stem}.results") / "results.csv"
    with table.open(encoding="utf-8", newline="") as rows:
        return Counter(row["state"] for row in csv.DictReader(rows))


def _generated_order(manifest: Path) -> list[int]:
    """The manifest rows (1-based) of the tasks, in the order they were written generated."""
    rows = {task.key: row for row, task in enumerate(load_manifest(manifest).tasks(), 1)}
    return [rows[line["key"]] for line in read_ledger(results_ledger_path(ledger_of(manifest)))
            if line["event"] == "generated"]


async def test_a_batch_larger_than_the_window_is_collected_whole_holding_a_window_at_a_time(
    tmp_path: Path,
) -> None:
    manifest = write_manifest(tmp_path, vod=TASKS // 2, mps=TASKS // 2)
    instant = GenerationConfig(seconds=0.0, jitter=0.0, image_bytes=2048)
    async with running_emulator(emulator_settings(generation=instant)) as emulator:
        assert (await submit(manifest, emulator.url)).exit_code == 0
        counts = Counts()
        result = await _collect(manifest, emulator.url, counts, poll_rate=0)

    assert result.exit_code is ExitCode.OK, result.stop_detail
    assert counts.first is not None and sum(counts.first.values()) == TASKS  # all counted at once
    assert counts.last[ResultState.DOWNLOADED] == TASKS
    assert _rows_by_state(manifest) == {"downloaded": TASKS}
    assert most_awaiting_download(results_ledger_path(ledger_of(manifest))) <= WINDOW
    # Oldest first: a task is taken in only once those a window before it have settled.
    order = _generated_order(manifest)
    assert sorted(order) == list(range(1, TASKS + 1))
    assert all(row <= place + WINDOW for place, row in enumerate(order, 1))


async def test_finished_tasks_beyond_the_window_are_downloaded_on_a_later_run(
    tmp_path: Path,
) -> None:
    """A run that found the images but could not save them leaves `generated` lines: the next
    run owes every task a download, and holds a window of them at a time."""
    manifest = write_manifest(tmp_path, vod=TASKS // 2, mps=TASKS // 2)
    instant = GenerationConfig(seconds=0.0, jitter=0.0, image_bytes=2048)
    async with running_emulator(emulator_settings(generation=instant)) as emulator:
        assert (await submit(manifest, emulator.url)).exit_code == 0
        refused = await _collect(manifest, emulator.url, Counts(), poll_rate=0,
                                 download=DownloadPolicy(max_bytes=16))
        assert refused.exit_code is ExitCode.TASKS_NOT_DONE  # refused: this run's error
        ledger = results_ledger_path(ledger_of(manifest))
        assert Counter(last_events(ledger).values()) == {"generated": TASKS}
        lines_before = len(read_ledger(ledger))

        counts = Counts()
        result = await _collect(manifest, emulator.url, counts, poll_rate=0)

    assert result.exit_code is ExitCode.OK, result.stop_detail
    assert counts.first is not None and counts.first[ResultState.GENERATED] == TASKS
    assert counts.last == {ResultState.DOWNLOADED: TASKS, ResultState.GENERATED: 0}
    assert _rows_by_state(manifest) == {"downloaded": TASKS}
    assert len(read_ledger(ledger)) == lines_before + TASKS
    assert result.polls == 0  # nothing asked again: their `generated` lines say it all


@pytest.mark.parametrize("wait", [False, True])
async def test_every_pending_task_is_asked_once_a_pass_and_none_is_lost_beyond_the_window(
    tmp_path: Path, wait: bool
) -> None:
    """A single pass asks each task once, the deferred ones too; with --wait, every task beyond
    the window is still followed to its image."""
    manifest = write_manifest(tmp_path, vod=TASKS // 2, mps=TASKS // 2)
    slow = GenerationConfig(seconds=1.5 if wait else 60.0, jitter=0.2, image_bytes=2048)
    async with running_emulator(emulator_settings(generation=slow)) as emulator:
        assert (await submit(manifest, emulator.url)).exit_code == 0
        counts = Counts()
        result = await _collect(manifest, emulator.url, counts, poll_rate=0, wait=wait,
                                timeout=60.0)

    if wait:
        assert result.exit_code is ExitCode.OK, result.stop_detail
        assert _rows_by_state(manifest) == {"downloaded": TASKS}
        assert most_awaiting_download(results_ledger_path(ledger_of(manifest))) <= WINDOW
    else:
        assert result.exit_code is ExitCode.TIME_LIMIT
        assert result.polls == TASKS
        assert counts.last == {ResultState.PENDING: TASKS}
        assert _rows_by_state(manifest) == {"pending": TASKS}
