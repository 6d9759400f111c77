"""Completion records: a finished manifest is not read again, and any change means a full pass.

The record is only ever a shortcut: every test here checks that what the user relies on (what
is sent, the summary, the exit code) is what the full pass gives.
"""

from __future__ import annotations

import json
from pathlib import Path

from batcher.emulator.config import FaultConfig
from batcher.emulator.runner import running_emulator
from batcher.state.completion import record_path
from tests.helpers import creates, emulator_settings, read_ledger, run_cli, write_manifest

SHORTCUT = "every task is done"


async def submit(manifest: Path, url: str, *extra: str) -> tuple[int, dict, str]:
    code, stdout, stderr = await run_cli("submit", str(manifest), "--endpoint", url,
                                         "--rate", "0", "--json", *extra)
    return code, json.loads(stdout), stderr


def services(summary: dict) -> dict:
    [job] = summary["manifests"]
    return job["services"]


async def test_a_finished_manifest_is_recognised_and_nothing_is_read_or_sent(tmp_path):
    manifest = write_manifest(tmp_path, vod=4, mps=2)
    ledger = manifest.with_suffix(".ledger.jsonl")
    async with running_emulator(emulator_settings()) as emulator:
        code, _, stderr = await submit(manifest, emulator.url)
        assert code == 0 and SHORTCUT not in stderr
        assert record_path(ledger).exists()
        lines = ledger.read_bytes()
        code, summary, stderr = await submit(manifest, emulator.url)
        sent = creates(emulator)
    assert code == 0 and SHORTCUT in stderr and sent == 6
    assert services(summary)["vod"]["done_before"] == 4
    assert services(summary)["mps"]["done_before"] == 2
    assert ledger.read_bytes() == lines


async def test_an_edited_manifest_is_read_again_and_its_new_task_sent(tmp_path):
    manifest = write_manifest(tmp_path, vod=3, mps=1)
    async with running_emulator(emulator_settings()) as emulator:
        await submit(manifest, emulator.url)
        write_manifest(tmp_path, vod=4, mps=1)
        code, summary, stderr = await submit(manifest, emulator.url)
        sent = creates(emulator)
    assert code == 0 and SHORTCUT not in stderr and sent == 5
    assert services(summary)["vod"] == {**services(summary)["vod"], "done_before": 3,
                                        "submitted": 1}


async def test_a_ledger_emptied_after_the_record_means_every_task_goes_again(tmp_path):
    # The record must never vouch for a ledger that lost its lines: VOD's SessionIds turn the
    # resends into duplicates, MPS tasks are sent again (the ledger was all that knew of them).
    manifest = write_manifest(tmp_path, vod=2, mps=2)
    ledger = manifest.with_suffix(".ledger.jsonl")
    async with running_emulator(emulator_settings()) as emulator:
        await submit(manifest, emulator.url)
        ledger.write_bytes(b"")
        code, summary, stderr = await submit(manifest, emulator.url)
        sent = creates(emulator)
    assert SHORTCUT not in stderr and sent == 8
    assert services(summary)["vod"]["duplicate"] == 2
    assert services(summary)["mps"]["submitted"] == 2
    assert code == 0


async def test_a_ledger_grown_since_the_record_is_replayed(tmp_path):
    manifest = write_manifest(tmp_path, vod=2, mps=1)
    ledger = manifest.with_suffix(".ledger.jsonl")
    async with running_emulator(emulator_settings()) as emulator:
        await submit(manifest, emulator.url)
        # A later line says a task failed (as if another manifest's run shared the ledger).
        last_vod = next(r for r in read_ledger(ledger) if r["service"] == "vod")
        failed = {**last_vod, "event": "failed",
                  "error": {"code": "InternalError", "message": "x", "retryable": True}}
        failed.pop("task_id", None), failed.pop("request_id", None), failed.pop("attempt", None)
        with ledger.open("a") as stream:
            stream.write(json.dumps(failed) + "\n")
        code, summary, stderr = await submit(manifest, emulator.url)
        sent = creates(emulator)
    assert SHORTCUT not in stderr and sent == 4, "the failed task is sent again"
    assert services(summary)["vod"]["duplicate"] == 1 and code == 0


async def test_a_run_that_leaves_failures_writes_no_record(tmp_path):
    manifest = write_manifest(tmp_path, vod=2, mps=0)
    ledger = manifest.with_suffix(".ledger.jsonl")
    config = emulator_settings(faults=FaultConfig(internal_error_rate=1.0))
    async with running_emulator(config) as emulator:
        code, _, _ = await submit(manifest, emulator.url, "--max-attempts", "1")
    assert code == 1
    assert not record_path(ledger).exists()


async def test_a_damaged_record_is_ignored(tmp_path):
    manifest = write_manifest(tmp_path, vod=2, mps=0)
    ledger = manifest.with_suffix(".ledger.jsonl")
    async with running_emulator(emulator_settings()) as emulator:
        await submit(manifest, emulator.url)
        record_path(ledger).write_text('{"format": "batcher-completion-1", "ledger": 3}')
        code, summary, stderr = await submit(manifest, emulator.url)
        sent = creates(emulator)
    assert code == 0 and SHORTCUT not in stderr and sent == 2
    assert services(summary)["vod"]["done_before"] == 2


async def test_a_record_that_cannot_be_written_does_not_fail_the_run(tmp_path):
    manifest = write_manifest(tmp_path, vod=2, mps=0)
    record_path(manifest.with_suffix(".ledger.jsonl")).mkdir()  # in the record's way
    async with running_emulator(emulator_settings()) as emulator:
        code, summary, stderr = await submit(manifest, emulator.url)
        again, _, _ = await submit(manifest, emulator.url)
        sent = creates(emulator)
    assert code == 0 and again == 0 and sent == 2
    assert "cannot write its completion record" in stderr and "Traceback" not in stderr
    assert services(summary)["vod"]["submitted"] == 2
