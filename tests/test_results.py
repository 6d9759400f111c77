"""docs/results.md: `batcher collect` polls, recovers duplicates, downloads, and reports.

The CLI runs in its own process (as a user or cron runs it) against the real emulator on
loopback; the emulator's records and the two ledgers are the witnesses.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import json
import signal
from collections import Counter
from pathlib import Path
from typing import Any

from batcher.emulator.config import FaultConfig, GenerationConfig
from batcher.emulator.runner import running_emulator
from batcher.state.ledger import open_ledger
from tests.helpers import (
    cli_env,
    emulator_settings,
    read_ledger,
    run_cli,
    start_cli,
    write_manifest,
)

FAST = GenerationConfig(seconds=0.3, image_bytes=4096)


def results_of(manifest: Path) -> Path:
    return manifest.with_name(f"{manifest.stem}.results.jsonl")


def out_of(manifest: Path) -> Path:
    return manifest.with_name(f"{manifest.stem}.results")


def csv_rows(manifest: Path) -> list[dict[str, str]]:
    with open(out_of(manifest) / "results.csv", newline="", encoding="utf-8") as stream:
        return list(csv.DictReader(stream))


def states(manifest: Path) -> Counter[str]:
    return Counter(row["state"] for row in csv_rows(manifest))


def result_events(manifest: Path) -> Counter[str]:
    return Counter(record["event"] for record in read_ledger(results_of(manifest)))


async def submit(manifest: Path, url: str, *extra: str) -> tuple[int, str, str]:
    return await run_cli("submit", str(manifest), "--endpoint", url, "--rate", "0", "--quiet",
                         *extra)


QUICK_MODEL = ("--expected-generation", "1s")
"""The emulator generates in 0.3 s here: the collector need not assume a real model's 10 s."""


async def collect(manifest: Path, url: str, *extra: str,
                  timeout: float = 60) -> tuple[int, str, str]:
    return await run_cli("collect", str(manifest), "--endpoint", url, "--rate-store", "memory",
                         "--progress", "none", *QUICK_MODEL, *extra, timeout=timeout)


def polls(emulator: Any) -> Counter[str]:
    """The poll requests (not the creates, nor the quota read a submit makes first)."""
    return Counter(record.action for record in emulator.records
                   if record.action not in ("CreateAigcImageTask", "DescribeAigcQuotas"))


async def test_collect_wait_downloads_every_image_and_writes_csv_and_gallery(tmp_path):
    manifest = write_manifest(tmp_path, vod=3, mps=2)
    async with running_emulator(emulator_settings(generation=FAST)) as emulator:
        assert (await submit(manifest, emulator.url))[0] == 0
        code, stdout, stderr = await collect(manifest, emulator.url, "--wait")
    assert code == 0, stderr
    rows = csv_rows(manifest)
    assert Counter(row["state"] for row in rows) == {"downloaded": 5}
    for row in rows:
        [name] = row["files"].split(";")
        image = out_of(manifest) / name
        assert image.read_bytes().startswith(b"\x89PNG") and image.stat().st_size == 4096
        assert "-" + row["prompt"].replace(" ", "-") + "-" in name
        assert row["source"].startswith(f"{manifest}:") and row["key"][:8] in name
    downloaded = [r for r in read_ledger(results_of(manifest)) if r["event"] == "downloaded"]
    for record in downloaded:
        [file] = record["files"]
        data = (out_of(manifest) / file["path"]).read_bytes()
        assert file["sha256"] == hashlib.sha256(data).hexdigest() and file["bytes"] == len(data)
    html = (out_of(manifest) / "index.html").read_text()
    assert html.count("<img") >= 5
    assert str(out_of(manifest) / "index.html") in stdout
    assert not list(out_of(manifest).glob("*.part"))


async def test_one_pass_asks_each_unfinished_task_once_and_exits_75(tmp_path):
    manifest = write_manifest(tmp_path, vod=4, mps=3)
    slow = GenerationConfig(seconds=30)
    async with running_emulator(emulator_settings(generation=slow)) as emulator:
        assert (await submit(manifest, emulator.url))[0] == 0
        code, _, stderr = await collect(manifest, emulator.url)
        asked = polls(emulator)
    assert code == 75, stderr
    assert asked == {"DescribeTaskDetail": 4, "DescribeAigcImageTask": 3}
    assert states(manifest) == {"pending": 7}


async def test_a_rerun_fetches_only_what_is_missing(tmp_path):
    manifest = write_manifest(tmp_path, vod=2, mps=2)
    async with running_emulator(emulator_settings(generation=FAST)) as emulator:
        await submit(manifest, emulator.url)
        assert (await collect(manifest, emulator.url, "--wait"))[0] == 0
        before = len(emulator.records)
        code, _, _ = await collect(manifest, emulator.url)
        after = len(emulator.records)
    assert code == 0
    assert after == before, "nothing is asked or downloaded again"
    assert states(manifest) == {"downloaded": 4}


async def test_generation_failure_then_regenerate_sends_it_again_with_a_new_session_id(tmp_path):
    manifest = write_manifest(tmp_path, vod=2, mps=0)
    text = manifest.read_text().replace("vod picture {n}", "vod picture {n} FAIL_GENERATION")
    manifest.write_text(text)
    faulty = GenerationConfig(seconds=0.2, image_bytes=4096)
    async with running_emulator(emulator_settings(generation=faulty)) as emulator:
        await submit(manifest, emulator.url)
        code, _, stderr = await collect(manifest, emulator.url, "--wait")
        assert code == 1, stderr
        assert states(manifest) == {"generation_failed": 2}
        failed = [r for r in read_ledger(results_of(manifest)) if r["event"] == "generation_failed"]
        assert {r["error"]["code"] for r in failed} == {"InvalidParameter.VoilationContent"}
        assert not any(r["error"]["retryable"] for r in failed)
        # A content refusal is permanent: --regenerate leaves it, --regenerate-all resends it.
        await submit(manifest, emulator.url, "--regenerate")
        assert Counter(r.action for r in emulator.records)["CreateAigcImageTask"] == 2
        code, _, _ = await submit(manifest, emulator.url, "--regenerate-all")
        creates = [r for r in emulator.records if r.action == "CreateAigcImageTask"]
    assert len(creates) == 4
    sendings = [r for r in read_ledger(manifest.with_suffix(".ledger.jsonl"))
                if r["event"] == "sending"]
    assert {r["session_id"].endswith("-r1") for r in sendings[2:]} == {True}


async def test_kill_during_downloads_then_rerun_completes_the_set(tmp_path):
    manifest = write_manifest(tmp_path, vod=6, mps=6)
    big = GenerationConfig(seconds=0.1, image_bytes=4 * 1024 * 1024)
    async with running_emulator(emulator_settings(generation=big)) as emulator:
        await submit(manifest, emulator.url)
        await asyncio.sleep(0.5)
        process = await start_cli_collect(manifest, emulator.url)
        await wait_for_part_file(out_of(manifest))
        process.send_signal(signal.SIGKILL)
        await process.wait()
        complete = list(out_of(manifest).glob("*.png"))
        assert len(complete) < 12, "killed before every download ended"
        assert all(p.stat().st_size == 4 * 1024 * 1024 for p in complete), "no truncated file"
        code, _, stderr = await collect(manifest, emulator.url, "--wait")
    assert code == 0, stderr
    assert states(manifest) == {"downloaded": 12}
    assert len(list(out_of(manifest).glob("*.png"))) == 12
    assert not list(out_of(manifest).glob("*.part"))


async def start_cli_collect(manifest: Path, url: str) -> asyncio.subprocess.Process:
    return await start_cli("collect", str(manifest), "--endpoint", url, "--rate-store", "memory",
                           "--progress", "none", "--wait", *QUICK_MODEL, env=cli_env())


async def wait_for_part_file(directory: Path, timeout: float = 20) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if directory.exists() and list(directory.glob("*.part")):
            return
        await asyncio.sleep(0.005)
    raise AssertionError("no download started")


async def test_expired_mps_url_makes_the_task_expired_not_retried_forever(tmp_path):
    manifest = write_manifest(tmp_path, vod=0, mps=2)
    short = GenerationConfig(seconds=0.1, url_ttl=0.3, image_bytes=4096)
    async with running_emulator(emulator_settings(generation=short)) as emulator:
        await submit(manifest, emulator.url)
        await asyncio.sleep(1.0)
        code, _, _ = await collect(manifest, emulator.url, "--wait")
        files = emulator.stats()["files"]
        again, _, _ = await collect(manifest, emulator.url, "--wait")
        files_after = emulator.stats()["files"]
    assert (code, again) == (1, 1)
    assert states(manifest) == {"expired": 2}
    assert result_events(manifest)["expired"] == 2
    assert files["expired"] == 2, "each expired URL is asked once, not retried"
    assert files_after == files, "an expired task is final: the next run leaves it"


async def test_collect_runs_while_submit_holds_its_ledger(tmp_path):
    manifest = write_manifest(tmp_path, vod=2, mps=1)
    async with running_emulator(emulator_settings(generation=FAST)) as emulator:
        await submit(manifest, emulator.url)
        await asyncio.sleep(1.0)  # generated by now: one pass finds them all
        async with open_ledger(manifest.with_suffix(".ledger.jsonl")):
            code, _, stderr = await collect(manifest, emulator.url)
    assert code == 0, stderr
    assert states(manifest) == {"downloaded": 3}


async def test_a_second_collect_of_the_same_manifest_exits_3(tmp_path):
    manifest = write_manifest(tmp_path, vod=1, mps=0)
    async with running_emulator(emulator_settings(generation=FAST)) as emulator:
        await submit(manifest, emulator.url)
        from batcher.state.results_ledger import ResultsLedgerWriter

        async with ResultsLedgerWriter.open(results_of(manifest)):
            code, _, stderr = await collect(manifest, emulator.url)
    assert code == 3
    assert "held by" in stderr


async def test_nothing_submitted_gives_header_only_csv_and_an_empty_gallery(tmp_path):
    manifest = write_manifest(tmp_path, vod=2, mps=1)
    async with running_emulator(emulator_settings(generation=FAST)) as emulator:
        code, stdout, stderr = await collect(manifest, emulator.url, "--json")
        asked = polls(emulator)
    assert code == 0, stderr
    assert asked == {}
    assert states(manifest) == {"not_submitted": 3}
    summary = json.loads(stdout)
    assert summary["manifests"][0]["states"]["not_submitted"] == 3


async def test_a_header_only_results_ledger_and_csv_are_read_as_empty(tmp_path):
    manifest = write_manifest(tmp_path, vod=1, mps=1)
    async with running_emulator(emulator_settings(generation=FAST)) as emulator:
        await submit(manifest, emulator.url)
        results_of(manifest).write_bytes(b"")  # empty, then a torn line only
        code, _, stderr = await collect(manifest, emulator.url, "--wait")
        assert code == 0, stderr
        results_of(manifest).write_bytes(b'{"ts":"2026-12-01T00:00:00.000Z","key":"ab')
        (out_of(manifest) / "results.csv").write_text("key,service\n")
        code, _, stderr = await collect(manifest, emulator.url, "--wait")
    assert code == 0, stderr
    assert states(manifest) == {"downloaded": 2}
    assert "incomplete" in stderr or "unreadable" in stderr


async def test_vod_duplicate_gets_its_task_id_back_from_describe_tasks(tmp_path):
    manifest = write_manifest(tmp_path, vod=130, mps=0)  # more than one page of 100
    ledger = manifest.with_suffix(".ledger.jsonl")
    async with running_emulator(emulator_settings(generation=FAST)) as emulator:
        await submit(manifest, emulator.url)
        # A crash after the server created the tasks but before the ledger said so: the
        # resend is refused as a duplicate, and the ledger never learns the TaskIds.
        lines = ledger.read_text().splitlines(keepends=True)
        ledger.write_text("".join(line for line in lines if '"submitted"' not in line))
        await submit(manifest, emulator.url)
        assert Counter(r["event"] for r in read_ledger(ledger))["duplicate"] == 130
        code, _, stderr = await collect(manifest, emulator.url, "--wait")
        created = {r.task_id for r in emulator.records if r.task_id}
        pages = polls(emulator)["DescribeTasks"]
    assert code == 0, stderr
    recovered = [r for r in read_ledger(results_of(manifest)) if r["event"] == "recovered"]
    assert len(recovered) == 130 and {r["task_id"] for r in recovered} == created
    assert pages == 2, "one window for duplicates sent together, paged by 100"
    assert states(manifest) == {"downloaded": 130}


async def test_vod_duplicate_not_listed_is_lost_with_its_session_id(tmp_path):
    manifest = write_manifest(tmp_path, vod=1, mps=0)
    ledger = manifest.with_suffix(".ledger.jsonl")
    async with running_emulator(emulator_settings(generation=FAST)) as emulator:
        await submit(manifest, emulator.url)
        [sending, submitted] = read_ledger(ledger)
        # Its `sending` line dated four days back: DescribeTasks lists only the last three.
        sending["ts"] = "2020-01-01T00:00:00.000Z"
        duplicate = {**submitted, "event": "duplicate"}
        del duplicate["task_id"]
        ledger.write_text(json.dumps(sending) + "\n" + json.dumps(duplicate) + "\n")
        code, _, _ = await collect(manifest, emulator.url)
    assert code == 1
    [row] = csv_rows(manifest)
    assert row["state"] == "lost" and sending["session_id"] in row["error_message"]
    [lost] = read_ledger(results_of(manifest))
    assert lost["event"] == "lost" and lost["session_id"] == sending["session_id"]


async def test_dropped_and_failing_downloads_are_retried_and_complete(tmp_path):
    manifest = write_manifest(tmp_path, vod=4, mps=4)
    flaky = FaultConfig(download_drop_rate=0.3, download_error_rate=0.3, seed=3)
    async with running_emulator(emulator_settings(generation=FAST, faults=flaky)) as emulator:
        await submit(manifest, emulator.url)
        code, _, stderr = await collect(manifest, emulator.url, "--wait")
        files = emulator.stats()["files"]
    assert code == 0, stderr
    assert states(manifest) == {"downloaded": 8}
    assert files["dropped_mid_body"] + files["http_503"] > 0
    for record in read_ledger(results_of(manifest)):
        if record["event"] == "downloaded":
            [file] = record["files"]
            assert (out_of(manifest) / file["path"]).stat().st_size == file["bytes"] == 4096


async def test_collect_wait_beside_a_running_submit_takes_in_its_new_tasks(tmp_path):
    manifest = write_manifest(tmp_path, vod=20, mps=20)
    async with running_emulator(emulator_settings(rate=20, generation=FAST)) as emulator:
        submitting = await start_cli("submit", str(manifest), "--endpoint", emulator.url,
                                     "--quiet", env=cli_env())
        await wait_for_file(manifest.with_suffix(".ledger.jsonl"))
        code, _, stderr = await collect(manifest, emulator.url, "--wait")
        assert await submitting.wait() == 0
    assert code == 0, stderr
    assert states(manifest) == {"downloaded": 40}


async def wait_for_file(path: Path, timeout: float = 20) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not (path.exists() and path.stat().st_size) and loop.time() < deadline:
        await asyncio.sleep(0.01)


async def test_sigterm_stops_collect_with_143_and_still_writes_the_reports(tmp_path):
    manifest = write_manifest(tmp_path, vod=2, mps=1)
    slow = GenerationConfig(seconds=60)
    async with running_emulator(emulator_settings(generation=slow)) as emulator:
        await submit(manifest, emulator.url)
        process = await start_cli_collect(manifest, emulator.url)
        await wait_for_file(results_of(manifest).with_name(results_of(manifest).name + ".lock"))
        await asyncio.sleep(0.5)
        process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), 20)
    assert code == 143
    assert states(manifest) == {"pending": 3}


async def test_max_runtime_exits_75_and_metrics_count_tasks_per_result_state(tmp_path):
    manifest = write_manifest(tmp_path, vod=2, mps=1)
    metrics = tmp_path / "collect.prom"
    slow = GenerationConfig(seconds=60)
    async with running_emulator(emulator_settings(generation=slow)) as emulator:
        await submit(manifest, emulator.url)
        code, _, stderr = await collect(manifest, emulator.url, "--wait", "--max-runtime", "3s",
                                        "--metrics-file", str(metrics), "--log-file",
                                        str(tmp_path / "collect.log"))
    assert code == 75, stderr
    assert "exit 75" in (tmp_path / "collect.log").read_text()
    text = metrics.read_text()
    assert f'batcher_results{{manifest="{manifest}",state="pending"}} 3' in text
    assert "batcher_collect_exit_code 75" in text


async def test_status_shows_generation_states_beside_submission_states(tmp_path):
    manifest = write_manifest(tmp_path, vod=2, mps=1)
    async with running_emulator(emulator_settings(generation=FAST)) as emulator:
        await submit(manifest, emulator.url)
        await collect(manifest, emulator.url, "--wait")
    code, stdout, _ = await run_cli("status", str(manifest), "--json")
    assert code == 0
    report = json.loads(stdout)
    assert report["generation"] == {"mps": {"downloaded": 1}, "vod": {"downloaded": 2}}
    assert report["services"]["vod"]["submitted"] == 2


async def test_a_regeneration_cut_short_by_a_crash_is_resent_with_its_session_id_and_deduped(
        tmp_path):
    manifest = write_manifest(tmp_path, vod=2, mps=0)
    manifest.write_text(manifest.read_text().replace("{n}'", "{n} FAIL_GENERATION'"))
    ledger = manifest.with_suffix(".ledger.jsonl")
    async with running_emulator(emulator_settings(generation=FAST)) as emulator:
        await submit(manifest, emulator.url)
        assert (await collect(manifest, emulator.url, "--wait"))[0] == 1
        await submit(manifest, emulator.url, "--regenerate-all")
        # The regenerations were created, but the run died before writing `submitted`.
        lines = ledger.read_text().splitlines(keepends=True)
        ledger.write_text("".join(lines[:-2]))
        code, _, stderr = await submit(manifest, emulator.url)  # no flag: it resumes them
        created = [r for r in emulator.records if r.task_id]
        assert code == 0, stderr
        code, _, _ = await collect(manifest, emulator.url, "--wait")
    assert len(created) == 4, "each regeneration is created once"
    duplicates = [r for r in read_ledger(ledger) if r["event"] == "duplicate"]
    assert len(duplicates) == 2 and all(r["session_id"].endswith("-r1") for r in duplicates)
    results = read_ledger(results_of(manifest))
    assert Counter(r["event"] for r in results) == {"generation_failed": 4, "recovered": 2}
    assert len({r["task_id"] for r in results if r["event"] == "generation_failed"}) == 4
    assert code == 1 and states(manifest) == {"generation_failed": 2}
