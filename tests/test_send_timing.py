"""docs/architecture.md#submitting send timing through the real pipeline: the `sending` line comes
first, at most 150 ms before its request, and a stalled event loop never bunches requests above the
cap.

The first fails when the `sending` line is written after the request; the second, on a disk
whose syncs are now and then slow (the one fault injected), fails when a slot that went stale
is used anyway (the stale-slot rule, `Turn.ready`, deleted).
"""

from __future__ import annotations

import random
import time
from datetime import datetime

import pytest

from batcher.emulator.config import FaultConfig
from batcher.emulator.runner import running_emulator
from batcher.state import writer
from tests.helpers import (
    emulator_process,
    emulator_settings,
    emulator_stats,
    ledger_of,
    read_ledger,
    submit,
    write_manifest,
)

pytestmark = [pytest.mark.slow, pytest.mark.serial]


def ledger_time(record) -> float:
    return datetime.fromisoformat(record["ts"].replace("Z", "+00:00")).timestamp()


async def test_each_sending_line_is_written_before_its_request_and_at_most_150_ms_before(
    tmp_path,
):
    manifest = write_manifest(tmp_path, vod=40, mps=0)
    faults = FaultConfig(latency_ms=(20.0, 30.0))  # an answer comes 20 ms after the arrival
    async with running_emulator(emulator_settings(rate=20, faults=faults)) as emulator:
        await submit(manifest, emulator.url, rate=20)
        # Each task's last request (the one accepted) against its last `sending` line. A request
        # refused before its body is read (over the cap, on a host whose timers wake late) has
        # no SessionId in the record: its retry has a `sending` line and an arrival of its own.
        arrivals = {record.session_id: record.wall for record in emulator.records
                    if record.session_id is not None}
    sending = {record["session_id"]: ledger_time(record)
               for record in read_ledger(ledger_of(manifest)) if record["event"] == "sending"}
    assert len(sending) == 40 and set(arrivals) == set(sending)
    for session_id, written in sending.items():
        lead = arrivals[session_id] - written  # the ledger's time is truncated to the ms
        assert -0.001 < lead <= 0.150, f"sending line {lead * 1000:.1f} ms before its request"


def slow_disk(monkeypatch, seed: int) -> None:
    """One ledger sync in 20 takes 60-95 ms (a journal commit on a busy disk): the `sending`
    line, due 50 ms before its slot, is then durable 10-45 ms after the slot, before the next."""
    rng = random.Random(seed)
    real_sync = writer._sync_data

    def sync(fd: int) -> None:
        if rng.random() < 1 / 20:
            time.sleep(rng.uniform(0.06, 0.095))  # in the writer's thread, as a real fsync
        real_sync(fd)

    monkeypatch.setattr(writer, "_sync_data", sync)


async def test_a_slow_disk_never_puts_more_than_the_cap_in_a_second(tmp_path, monkeypatch):
    manifest = write_manifest(tmp_path, vod=160, mps=0)
    slow_disk(monkeypatch, seed=7)
    async with emulator_process("--rate", "20") as url:
        result = await submit(manifest, url, rate=20)
        vod = (await emulator_stats(url))["services"]["vod"]
    assert vod["created"] == 160, result
    assert vod["errors"] == {}, "no request refused as over the limit"
    assert vod["max_requests_in_rolling_second"] <= 20
