"""docs/architecture.md#submitting pipeline: rate cap, error classes, retries, ambiguity,
run-stopping errors.

The real pipeline and client run in-process against the real emulator over loopback; the
emulator's own records are the witness of what reached the "server".
"""

from __future__ import annotations

import socket

import pytest

from batcher.emulator.config import FaultConfig
from batcher.emulator.runner import running_emulator
from batcher.emulator.state import max_in_rolling_second
from batcher.exceptions import ExitCode
from batcher.wire.credentials import Credentials
from tests.helpers import (
    FAST_RETRY,
    SECRET_ID,
    emulator_settings,
    event_counts,
    last_events,
    ledger_of,
    read_ledger,
    submit,
    write_manifest,
)


async def test_every_task_is_sent_once_and_recorded_submitted(tmp_path):
    manifest = write_manifest(tmp_path, vod=20, mps=15)
    async with running_emulator(emulator_settings()) as emulator:
        result = await submit(manifest, emulator.url)
        stats = emulator.stats()["services"]
    assert result.exit_code is ExitCode.OK
    assert event_counts(ledger_of(manifest)) == {"submitted": 35}
    assert (stats["vod"]["created"], stats["mps"]["created"]) == (20, 15)
    vod_sessions = {r["session_id"] for r in read_ledger(ledger_of(manifest))
                    if r["service"] == "vod" and r["event"] == "submitted"}
    assert len(vod_sessions) == 20 and all(s and len(s) <= 50 for s in vod_sessions)


@pytest.mark.serial
async def test_no_rolling_second_holds_more_than_the_cap_per_service(tmp_path):
    manifest = write_manifest(tmp_path, vod=45, mps=45)
    async with running_emulator(emulator_settings(rate=20)) as emulator:
        result = await submit(manifest, emulator.url, rate=20)
        records = emulator.records
    assert result.exit_code is ExitCode.OK
    for service in ("vod", "mps"):
        times = sorted(r.mono for r in records if r.service == service)
        assert len(times) == 45
        assert max_in_rolling_second(times) <= 20
    assert not [r for r in records if r.code != "ok"], "the server never had to throttle"


async def test_throttling_slows_down_and_every_task_still_gets_through(tmp_path):
    manifest = write_manifest(tmp_path, vod=10, mps=10)
    faults = FaultConfig(throttle_rate=0.4, seed=7)
    async with running_emulator(emulator_settings(faults=faults)) as emulator:
        result = await submit(manifest, emulator.url)
        throttled = [r for r in emulator.records if r.code == "RequestLimitExceeded"]
    assert result.exit_code is ExitCode.OK
    assert event_counts(ledger_of(manifest)) == {"submitted": 20}
    assert throttled, "the fault injection did throttle some requests"


async def test_permanent_error_is_recorded_once_and_not_retried(tmp_path):
    manifest = write_manifest(tmp_path, vod=3, mps=3)
    faults = FaultConfig(fail_codes=(("FailedOperation", 1.0),))
    async with running_emulator(emulator_settings(faults=faults)) as emulator:
        result = await submit(manifest, emulator.url)
        requests = len(emulator.records)
    assert result.exit_code is ExitCode.TASKS_NOT_DONE
    assert requests == 6
    failures = [r for r in read_ledger(ledger_of(manifest)) if r["event"] == "failed"]
    assert len(failures) == 6
    assert all(r["error"] == {"code": "FailedOperation", "message": r["error"]["message"],
                              "retryable": False} for r in failures)


async def test_retryable_error_is_retried_up_to_max_attempts_then_failed_retryable(tmp_path):
    manifest = write_manifest(tmp_path, vod=2, mps=2)
    faults = FaultConfig(internal_error_rate=1.0)
    async with running_emulator(emulator_settings(faults=faults)) as emulator:
        result = await submit(manifest, emulator.url)
        requests = len(emulator.records)
    assert result.exit_code is ExitCode.TASKS_NOT_DONE
    assert requests == 4 * FAST_RETRY.max_attempts
    ledger = read_ledger(ledger_of(manifest))
    assert [r["attempt"] for r in ledger if r["event"] == "sending"].count(3) == 4
    assert all(r["error"]["retryable"] for r in ledger if r["event"] == "failed")


async def test_account_wide_refusal_stops_the_run_with_exit_2(tmp_path):
    manifest = write_manifest(tmp_path, vod=200, mps=0)
    wrong = Credentials(SECRET_ID, "wrong-key")
    async with running_emulator(emulator_settings()) as emulator:
        result = await submit(manifest, emulator.url, credentials=wrong, rate=20)
        requests = len(emulator.records)
    assert result.exit_code is ExitCode.USAGE
    assert "AuthFailure.SignatureFailure" in result.stop_detail
    assert requests <= 3, "stopped at once instead of failing every task"
    assert "submitted" not in event_counts(ledger_of(manifest))


async def test_dropped_connection_vod_is_retried_and_deduped_mps_is_left_in_doubt(tmp_path):
    manifest = write_manifest(tmp_path, vod=5, mps=5)
    faults = FaultConfig(drop_after_create_rate=1.0)
    async with running_emulator(emulator_settings(faults=faults)) as emulator:
        result = await submit(manifest, emulator.url)
        stats = emulator.stats()["services"]
    assert result.exit_code is ExitCode.TASKS_NOT_DONE
    states = read_ledger(ledger_of(manifest))
    last = {r["key"]: r for r in states}
    vod = [r for r in last.values() if r["service"] == "vod"]
    mps = [r for r in last.values() if r["service"] == "mps"]
    assert {r["event"] for r in vod} == {"duplicate"}, "resent under its SessionId: deduped"
    assert {r["event"] for r in mps} == {"sending"}, "mps: in doubt, not resent"
    assert stats["vod"]["created"] == 5 and stats["mps"]["created"] == 5
    assert result.summaries[0].services["mps"]["in_doubt"] == 5


async def test_connection_refused_is_retried_on_both_services_and_never_in_doubt(tmp_path):
    manifest = write_manifest(tmp_path, vod=1, mps=1)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = await submit(manifest, f"http://127.0.0.1:{port}")
    ledger = read_ledger(ledger_of(manifest))
    assert result.exit_code is ExitCode.TASKS_NOT_DONE
    assert sum(r["event"] == "sending" for r in ledger) == 2 * FAST_RETRY.max_attempts
    assert {r["event"] for r in ledger if r["event"] != "sending"} == {"failed"}
    assert all(r["error"]["code"] == "NetworkError" and r["error"]["retryable"]
               for r in ledger if r["event"] == "failed")


async def test_an_endpoint_that_cannot_be_reached_stops_the_run_with_exit_75(tmp_path):
    # docs/architecture.md#submitting: every request of the window failed before it was sent: stop,
    # tasks as they were.
    manifest = write_manifest(tmp_path, vod=300, mps=300)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    down = await submit(manifest, f"http://127.0.0.1:{port}", rate=20, unreachable_window=1.5)
    touched = {r["key"] for r in read_ledger(ledger_of(manifest))}
    lines = len(read_ledger(ledger_of(manifest)))
    states_down = last_events(ledger_of(manifest))
    async with running_emulator(emulator_settings()) as emulator:
        up = await submit(manifest, emulator.url)
    assert down.exit_code is ExitCode.TIME_LIMIT
    assert "cannot be reached" in down.stop_detail
    assert "sending" not in states_down.values(), "nothing in doubt: nothing was sent"
    assert len(touched) <= 20 and lines <= 4 * len(touched), "not a retry storm"
    assert up.exit_code is ExitCode.OK, "the next run sends every task"
    assert event_counts(ledger_of(manifest)) == {"submitted": 600}


async def test_server_clock_ahead_is_corrected_and_all_tasks_go_through(tmp_path):
    manifest = write_manifest(tmp_path, vod=3, mps=3)
    async with running_emulator(emulator_settings(clock_skew=900.0)) as emulator:
        result = await submit(manifest, emulator.url)
    assert result.exit_code is ExitCode.OK
    assert event_counts(ledger_of(manifest)) == {"submitted": 6}


@pytest.mark.serial
async def test_max_runtime_stops_in_time_and_exits_75_with_tasks_left(tmp_path):
    manifest = write_manifest(tmp_path, vod=60, mps=0)
    async with running_emulator(emulator_settings(rate=5)) as emulator:
        result = await submit(manifest, emulator.url, rate=5, max_runtime=1.0)
    assert result.exit_code is ExitCode.TIME_LIMIT
    counts = event_counts(ledger_of(manifest))
    assert 3 <= counts["submitted"] <= 7
    assert set(counts) == {"submitted"}, "in-flight requests were settled, none left in doubt"
    assert result.summaries[0].left == 60 - counts["submitted"]
