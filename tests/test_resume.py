"""docs/ledgers.md#replay-what-the-next-run-sends: what the next `submit` sends, given the ledger a
previous run left."""

from __future__ import annotations

import json

from batcher.emulator.config import FaultConfig
from batcher.emulator.runner import running_emulator
from batcher.exceptions import ExitCode
from batcher.manifest import load_manifest
from batcher.run.resume import ResumeRules, plan_manifest
from batcher.state.replay import replay
from tests.helpers import (
    emulator_settings,
    event_counts,
    ledger_of,
    read_ledger,
    submit,
    write_manifest,
)


def tasks_of(manifest):
    loaded = load_manifest(manifest)
    loaded.validate()
    return list(loaded.tasks())


def append_lines(ledger, records):
    with ledger.open("a") as handle:
        for record in records:
            handle.write(json.dumps({"ts": "2026-11-22T10:00:00.000Z", **record}) + "\n")


async def test_a_run_after_a_complete_one_sends_nothing(tmp_path):
    manifest = write_manifest(tmp_path, vod=4, mps=4)
    async with running_emulator(emulator_settings()) as emulator:
        first = await submit(manifest, emulator.url)
        sent_first = len(emulator.records)
        second = await submit(manifest, emulator.url)
        sent_second = len(emulator.records) - sent_first
    assert (first.exit_code, second.exit_code) == (ExitCode.OK, ExitCode.OK)
    assert (sent_first, sent_second) == (8, 0)
    assert second.summaries[0].services["vod"]["done_before"] == 4


async def test_an_interrupted_batch_resumes_with_only_the_tasks_not_done(tmp_path):
    # Two runs back to back share the cap only through a rate store (the CLI's default is a
    # file): with a private cap each, the second's first request can be the 11th in a second.
    manifest = write_manifest(tmp_path, vod=30, mps=0)
    store = f"file:{tmp_path / 'rate-slots.json'}"
    async with running_emulator(emulator_settings(rate=10)) as emulator:
        first = await submit(manifest, emulator.url, rate=10, max_runtime=0.6, rate_store=store)
        done_first = event_counts(ledger_of(manifest))["submitted"]
        second = await submit(manifest, emulator.url, rate=10, rate_store=store)
        stats = emulator.stats(include_sessions=True)["services"]["vod"]
    assert first.exit_code is ExitCode.TIME_LIMIT
    assert 0 < done_first < 30
    assert first.summaries[0].services["vod"]["not_sent"] == 30 - done_first
    assert second.exit_code is ExitCode.OK
    assert second.summaries[0].services["vod"]["submitted"] == 30 - done_first
    assert stats["created"] == 30 and stats["requests"] == 30, "no task was sent twice"


async def test_in_doubt_mps_task_is_held_until_resend_in_doubt(tmp_path):
    manifest = write_manifest(tmp_path, vod=0, mps=3)
    faults = FaultConfig(drop_after_create_rate=1.0)
    async with running_emulator(emulator_settings(faults=faults)) as emulator:
        await submit(manifest, emulator.url)
    async with running_emulator(emulator_settings()) as emulator:
        held = await submit(manifest, emulator.url)
        sent_while_held = len(emulator.records)
        resent = await submit(manifest, emulator.url, rules=ResumeRules(resend_in_doubt=True))
    assert held.exit_code is ExitCode.TASKS_NOT_DONE
    assert held.summaries[0].services["mps"]["held_in_doubt"] == 3
    assert sent_while_held == 0
    assert resent.exit_code is ExitCode.OK
    assert event_counts(ledger_of(manifest)) == {"submitted": 3}


async def test_in_doubt_vod_task_is_resent_and_the_server_dedups_it(tmp_path):
    manifest = write_manifest(tmp_path, vod=2, mps=0)
    tasks = tasks_of(manifest)
    async with running_emulator(emulator_settings()) as emulator:
        # A crashed run: `sending` is durable, the request reached the server, then nothing.
        first = await submit(manifest, emulator.url)
        lines = [r for r in read_ledger(ledger_of(manifest)) if r["event"] == "sending"]
        ledger_of(manifest).unlink()
        append_lines(ledger_of(manifest), lines)
        again = await submit(manifest, emulator.url)
        created = emulator.stats()["services"]["vod"]["created"]
    assert first.exit_code is ExitCode.OK and again.exit_code is ExitCode.OK
    assert created == 2, "the SessionId made the resend safe: no second image"
    assert event_counts(ledger_of(manifest)) == {"duplicate": 2}
    assert {t.session_id for t in tasks} == {
        r["session_id"] for r in read_ledger(ledger_of(manifest)) if r["event"] == "duplicate"}


async def test_permanent_failure_is_resent_only_with_retry_failed(tmp_path):
    manifest = write_manifest(tmp_path, vod=0, mps=2)
    failing = FaultConfig(fail_codes=(("InvalidParameterValue", 1.0),))
    async with running_emulator(emulator_settings(faults=failing)) as emulator:
        await submit(manifest, emulator.url)
    async with running_emulator(emulator_settings()) as emulator:
        skipped = await submit(manifest, emulator.url)
        sent_without_flag = len(emulator.records)
        retried = await submit(manifest, emulator.url, rules=ResumeRules(retry_failed=True))
    assert skipped.exit_code is ExitCode.TASKS_NOT_DONE and sent_without_flag == 0
    assert skipped.summaries[0].services["mps"]["held_failed"] == 2
    assert retried.exit_code is ExitCode.OK


async def test_retryable_failure_is_sent_again_by_the_next_run(tmp_path):
    manifest = write_manifest(tmp_path, vod=2, mps=2)
    async with running_emulator(emulator_settings(faults=FaultConfig(internal_error_rate=1.0))) \
            as emulator:
        await submit(manifest, emulator.url)
    async with running_emulator(emulator_settings()) as emulator:
        again = await submit(manifest, emulator.url)
    assert again.exit_code is ExitCode.OK
    assert event_counts(ledger_of(manifest)) == {"submitted": 4}
    attempts = [r["attempt"] for r in read_ledger(ledger_of(manifest)) if r["event"] == "sending"]
    assert max(attempts) == 4, "attempt numbers continue across runs"


async def test_torn_last_line_is_skipped_and_appending_resumes_on_a_fresh_line(tmp_path):
    manifest = write_manifest(tmp_path, vod=2, mps=1)
    ledger = ledger_of(manifest)
    torn = '{"ts":"2026-11-22T10:00:00Z","key":"ab'
    async with running_emulator(emulator_settings()) as emulator:
        await submit(manifest, emulator.url, ledger=ledger)
        with ledger.open("a") as handle:
            handle.write(torn)  # a crash mid-write
        write_manifest(tmp_path, vod=3, mps=1)  # one more task to append after the torn line
        again = await submit(manifest, emulator.url, ledger=ledger)
    assert again.exit_code is ExitCode.OK
    assert again.summaries[0].services["vod"]["submitted"] == 1
    lines = ledger.read_text().splitlines()
    torn_at = lines.index(torn)
    assert [json.loads(line)["event"] for line in lines[torn_at + 1:]] == ["sending", "submitted"]
    assert event_counts(ledger) == {"submitted": 4}


async def test_a_half_done_batch_starts_each_lane_at_its_first_task_to_send(tmp_path):
    manifest = write_manifest(tmp_path, vod=6, mps=6)
    tasks = tasks_of(manifest)
    done = [task for task in tasks if task.service == "vod"][:4] + [
        task for task in tasks if task.service == "mps"][:2]
    append_lines(ledger_of(manifest), [
        {"key": task.key, "service": task.service, "event": "submitted", "task_id": f"t-{n}",
         "request_id": "r", "session_id": task.session_id} for n, task in enumerate(done)])
    plans = plan_manifest(load_manifest(manifest), replay(ledger_of(manifest)), ResumeRules())
    first_to_send = {service: next(t for t in tasks if t.service == service and t not in done)
                     for service in ("vod", "mps")}
    assert {service: plan.send_from for service, plan in plans.items()} == {
        service: task.place for service, task in first_to_send.items()}
    async with running_emulator(emulator_settings()) as emulator:
        result = await submit(manifest, emulator.url)
        sent = [(record.service, record.session_id) for record in emulator.records]
    assert result.exit_code is ExitCode.OK and len(sent) == 6
    assert sorted(session_id for service, session_id in sent if service == "vod") == sorted(
        task.session_id for task in tasks if task.service == "vod" and task not in done)
