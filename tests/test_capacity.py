"""A full service waits, an account that cannot pay stops the run (docs/spend.md).

mps `LimitExceeded.CreateTask` (the emulator's `--max-running`) holds a task in its lane until
the account's running tasks make room: every task is created, no failure is written, and the
refusals stay bounded (the lane paces itself to the rate tasks finish). An account-wide refusal
(arrears, a service not activated, a quota used up) stops the run at once with exit 2 and a
`to fix:` line, its tasks counted not sent, and a plain rerun once the account is fixed sends
them.
"""

from __future__ import annotations

import asyncio
import signal

import pytest

from batcher.api.services import get_service
from batcher.emulator import EmulatorConfig
from batcher.emulator.config import FaultConfig, GenerationConfig
from batcher.emulator.runner import running_emulator
from batcher.exceptions import ExitCode
from batcher.run.capacity import FIRST_INTERVAL, Capacity
from batcher.wire.errors import ErrorClass, classify
from tests.helpers import (
    emulator_settings,
    event_counts,
    last_events,
    ledger_of,
    read_ledger,
    run_cli,
    start_cli,
    submit,
    write_manifest,
)

ACCOUNT_WIDE = {
    "vod": ("FailedOperation.InvalidVodUser", "FailedOperation.UserStatusInavlid",
            "FailedOperation.InvalidAccount", "ResourceNotFound.ServiceNotExist",
            "LimitExceeded.Quota"),
    "mps": ("FailedOperation.UserArrears", "FailedOperation.InvalidMpsUser",
            "FailedOperation.InvalidUser"),
}


async def test_a_full_service_holds_its_tasks_until_there_is_room_and_creates_them_all(tmp_path):
    manifest = write_manifest(tmp_path, vod=0, mps=24)
    config = emulator_settings_with(max_running=3, seconds=0.3)
    async with running_emulator(config) as emulator:
        result = await submit(manifest, emulator.url)
        mps = emulator.stats()["services"]["mps"]
    assert result.exit_code == ExitCode.OK
    assert mps["created"] == 24
    refusals = mps["errors"].get("LimitExceeded.CreateTask", 0)
    assert 0 < refusals <= 24  # it was full, and it was not hammered
    records = read_ledger(ledger_of(manifest))
    assert not [record for record in records if record["event"] == "failed"]
    assert event_counts(ledger_of(manifest)) == {"submitted": 24}


def emulator_settings_with(*, max_running: int, seconds: float) -> EmulatorConfig:
    return emulator_settings(max_running=max_running,
                             generation=GenerationConfig(seconds=seconds, jitter=0.5))


@pytest.mark.parametrize("service, code", [
    (service, code) for service, codes in ACCOUNT_WIDE.items() for code in codes
])
def test_every_account_wide_refusal_stops_the_run(service, code):
    assert classify(get_service(service), code) is ErrorClass.RUN_STOPPING


@pytest.mark.parametrize("code", ["FailedOperation.UserArrears", "LimitExceeded.Quota"])
async def test_an_account_wide_refusal_stops_at_once_and_leaves_the_tasks_to_send(tmp_path, code):
    manifest = write_manifest(tmp_path, vod=20, mps=20)
    faults = FaultConfig(fail_codes=((code, 1.0),))
    async with running_emulator(emulator_settings(faults=faults)) as emulator:
        exit_code, stdout, stderr = await run_cli("submit", str(manifest), "--endpoint",
                                              emulator.url, "--rate", "5")
        requests = sum(s["requests"] for s in emulator.stats()["services"].values())
    assert exit_code == ExitCode.USAGE, stderr
    assert "to fix:" in stdout and "Traceback" not in stderr
    assert ("top up" in stdout) if "Arrears" in code else ("raise the quota" in stdout)
    assert requests <= 4  # within the first few requests (one per lane, at 5/s)
    table = [line.split() for line in stdout.splitlines()]
    header = next(row for row in table if row[:1] == ["service"])
    rows = {row[0]: dict(zip(header, row, strict=True)) for row in table
            if row[:1] in (["vod"], ["mps"])}
    assert {service: (row["failed"], row["not_sent"]) for service, row in rows.items()} == {
        "vod": ("0", "20"), "mps": ("0", "20")}, stdout
    # Not failed: every task is still to send, and once the account is fixed a plain rerun
    # sends each of them.
    async with running_emulator(emulator_settings()) as emulator:
        result = await submit(manifest, emulator.url)
        created = {name: s["created"] for name, s in emulator.stats()["services"].items()}
    assert result.exit_code == ExitCode.OK
    assert created == {"vod": 20, "mps": 20}


def test_the_codes_are_the_official_sdks():
    vod = pytest.importorskip("tencentcloud.vod.v20180717.errorcodes")
    mps = pytest.importorskip("tencentcloud.mps.v20190612.errorcodes")
    known = {name: {value for value in vars(module).values() if isinstance(value, str)}
             for name, module in (("vod", vod), ("mps", mps))}
    for service, codes in ACCOUNT_WIDE.items():
        assert set(codes) <= known[service]
    assert "LimitExceeded.CreateTask" in known["mps"]


async def test_sigterm_while_tasks_wait_for_room_ends_at_once_and_leaves_them_to_send(tmp_path):
    manifest = write_manifest(tmp_path, vod=0, mps=12)
    ledger = ledger_of(manifest)
    async with running_emulator(emulator_settings_with(max_running=2, seconds=30)) as emulator:
        process = await start_cli("submit", str(manifest), "--endpoint", emulator.url,
                                  "--quiet")
        for _ in range(1000):  # until the service is full and tasks wait for room
            await asyncio.sleep(0.02)
            if emulator.stats()["services"]["mps"]["errors"].get("LimitExceeded.CreateTask"):
                break
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), 20)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    assert process.returncode == ExitCode.SIGTERM
    events = last_events(ledger)
    assert list(events.values()).count("submitted") == 2
    # Refused for room, the held tasks certainly do not exist: not in doubt (`sending`), but
    # a retryable line, so the next run sends them.
    assert "sending" not in events.values()
    failed = [record for record in read_ledger(ledger) if record["event"] == "failed"]
    assert failed and all(record["error"]["retryable"] for record in failed)


def test_a_burst_of_refusals_in_flight_widens_the_pace_once_and_acceptances_open_it_again():
    now = [100.0]
    capacity = Capacity(clock=lambda: now[0])
    assert capacity.open
    for _ in range(10):  # ten requests sent at once, all refused: one piece of news
        capacity.refused(sent_at=99.9)
    assert capacity.interval == FIRST_INTERVAL
    now[0] = 101.0
    capacity.refused(sent_at=100.5)  # sent after the widening: news
    assert capacity.interval == pytest.approx(FIRST_INTERVAL * 1.5)
    for _ in range(100):
        capacity.accepted()
    assert capacity.open


async def test_a_stop_ends_the_wait_for_room_at_once():
    capacity = Capacity()
    capacity.refused(sent_at=capacity.now())
    for _ in range(20):
        capacity.refused(sent_at=capacity.now() + 1)  # as slow as it gets
    stop = asyncio.Event()
    assert await capacity.admit(stop)  # the first goes at once
    waiting = asyncio.ensure_future(capacity.admit(stop))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    stop.set()
    assert await asyncio.wait_for(waiting, 1) is False
