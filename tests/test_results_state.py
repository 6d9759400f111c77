"""docs/results.md records and schedule: the results ledger, the regeneration numbers it gives
`submit --regenerate`, the lock-free reading of a submit ledger, file names, and the poll
back-off."""

from __future__ import annotations

import asyncio
import json
import random
import socket
from pathlib import Path

import pytest

from batcher.api.services import DESCRIBE_AIGC_IMAGE_TASK, MPS
from batcher.results.caller import ApiCaller, CallerSettings, EndpointUnreachable
from batcher.results.names import file_name
from batcher.results.outcomes import Stage, read_generation
from batcher.results.schedule import PollSchedule, PollTiming
from batcher.run.limiter import RateLimiter
from batcher.run.rate_stores.memory import MemoryStore
from batcher.run.retry import RetryPolicy
from batcher.state.regeneration import RegenerationRules, plan_regenerations
from batcher.state.results_ledger import (
    DownloadedFile,
    GeneratedFile,
    GenerationError,
    ResultEvent,
    ResultsLedgerWriter,
    replay_results,
    results_ledger_path,
)
from batcher.state.submissions import read_submissions
from batcher.wire.client import AigcClient, ClientSettings
from batcher.wire.credentials import Credentials

KEY = "0123456789abcdef0123456789abcdef"
OTHER = "fedcba9876543210fedcba9876543210"


def write_lines(path: Path, *records: dict[str, object], tail: bytes = b"") -> None:
    path.write_bytes(b"".join(json.dumps(r).encode() + b"\n" for r in records) + tail)


def submitted(key: str, task_id: str, session_id: str = "s") -> dict[str, object]:
    return {"ts": "2026-12-01T10:00:00.000Z", "key": key, "service": "vod",
            "event": "submitted", "task_id": task_id, "request_id": "r", "session_id": session_id}


def sending(key: str, session_id: str, ts: str = "2026-12-01T10:00:00.000Z") -> dict[str, object]:
    return {"ts": ts, "key": key, "service": "vod", "event": "sending", "attempt": 1,
            "session_id": session_id}


def failed_generation(key: str, task_id: str, retryable: bool) -> dict[str, object]:
    return {"ts": "2026-12-01T10:01:00.000Z", "key": key, "service": "vod",
            "event": "generation_failed", "task_id": task_id,
            "error": {"code": "ResourceInsufficient" if retryable else "InvalidParameter",
                      "message": "m", "retryable": retryable}}


def test_results_ledger_is_beside_the_submit_ledger():
    assert results_ledger_path(Path("/x/job.ledger.jsonl")) == Path("/x/job.results.jsonl")
    assert results_ledger_path(Path("/x/other.jsonl")) == Path("/x/other.jsonl.results.jsonl")


async def test_results_ledger_round_trips_every_event_and_has_its_own_lock(tmp_path):
    path = tmp_path / "job.results.jsonl"
    async with ResultsLedgerWriter.open(path) as writer:
        await writer.recovered(KEY, "vod", "T1", "s1")
        await writer.generated(KEY, "vod", "T1", [GeneratedFile("http://x/1.png", "png", 9)])
        await writer.downloaded(KEY, "vod", "T1", [DownloadedFile("a.png", 9, "ab" * 32)])
        await writer.lost(OTHER, "vod", "not listed", "s2")
        assert (tmp_path / "job.results.jsonl.lock").exists()
    replayed = replay_results(path)
    record = replayed.records[KEY]
    assert (record.event, record.task_id, record.recovered_task_id) == (
        ResultEvent.DOWNLOADED, "T1", "T1")
    assert record.generated == (GeneratedFile("http://x/1.png", "png", 9),)
    assert record.downloaded == (DownloadedFile("a.png", 9, "ab" * 32),)
    lost = replayed.records[OTHER]
    assert (lost.event, lost.lost_reason, lost.lost_session_id) == (
        ResultEvent.LOST, "not listed", "s2")
    for line in path.read_text().splitlines():
        assert list(json.loads(line))[:4] == ["ts", "key", "service", "event"]


def test_submit_ledger_is_read_without_its_torn_or_half_written_tail(tmp_path):
    ledger = tmp_path / "job.ledger.jsonl"
    duplicate = {**submitted(OTHER, "", "s2"), "event": "duplicate"}
    del duplicate["task_id"]
    write_lines(ledger, sending(KEY, "s1"), submitted(KEY, "T1", "s1"), sending(OTHER, "s2"),
                duplicate, tail=b'{"ts":"20')
    submissions = read_submissions(ledger)
    assert submissions[KEY].event == "submitted" and submissions[KEY].task_id == "T1"
    assert submissions[OTHER].event == "duplicate" and submissions[OTHER].task_id == ""
    assert submissions[OTHER].sending_times("s2") == ["2026-12-01T10:00:00.000Z"]


@pytest.mark.parametrize("rules, planned", [
    (RegenerationRules(), False),
    (RegenerationRules(retryable=True), True),
    (RegenerationRules(everything=True), True),
])
def test_retryable_generation_failure_is_regenerated_only_when_asked(tmp_path, rules, planned):
    ledger = tmp_path / "job.ledger.jsonl"
    write_lines(ledger, sending(KEY, "s"), submitted(KEY, "T1"))
    write_lines(results_ledger_path(ledger), failed_generation(KEY, "T1", retryable=True))
    plans = plan_regenerations(ledger, rules)
    assert (KEY in plans) is planned
    if planned:
        assert (plans[KEY].number, plans[KEY].resend) == (1, True)


def test_permanent_generation_failure_needs_regenerate_all(tmp_path):
    ledger = tmp_path / "job.ledger.jsonl"
    write_lines(ledger, submitted(KEY, "T1"))
    write_lines(results_ledger_path(ledger), failed_generation(KEY, "T1", retryable=False))
    assert plan_regenerations(ledger, RegenerationRules(retryable=True)) == {}
    assert KEY in plan_regenerations(ledger, RegenerationRules(everything=True))


def test_a_crashed_regeneration_keeps_its_number_so_the_server_dedups_it(tmp_path):
    ledger = tmp_path / "job.ledger.jsonl"
    # Regeneration 1 was being sent when the run died: its last line is `sending`.
    write_lines(ledger, submitted(KEY, "T1"), sending(KEY, f"batcher-{KEY}-r1"))
    write_lines(results_ledger_path(ledger), failed_generation(KEY, "T1", retryable=True))
    for rules in (RegenerationRules(), RegenerationRules(retryable=True)):
        plan = plan_regenerations(ledger, rules)[KEY]
        assert (plan.number, plan.resend) == (1, False)


def test_a_regeneration_submitted_but_not_collected_is_not_sent_again(tmp_path):
    ledger = tmp_path / "job.ledger.jsonl"
    write_lines(ledger, submitted(KEY, "T1"), submitted(KEY, "T2", f"batcher-{KEY}-r1"))
    write_lines(results_ledger_path(ledger), failed_generation(KEY, "T1", retryable=True))
    assert plan_regenerations(ledger, RegenerationRules(everything=True)) == {}


def test_second_failure_numbers_the_next_regeneration_two(tmp_path):
    ledger = tmp_path / "job.ledger.jsonl"
    write_lines(ledger, submitted(KEY, "T1"), submitted(KEY, "T2", f"batcher-{KEY}-r1"))
    write_lines(results_ledger_path(ledger), failed_generation(KEY, "T1", retryable=True),
                failed_generation(KEY, "T2", retryable=True))
    assert plan_regenerations(ledger, RegenerationRules(retryable=True))[KEY].number == 2


def test_file_names_are_stable_readable_and_unique_per_output():
    first = file_name(3, "A Cat, in watercolour", KEY, 0, "png")
    assert first == "0003-a-cat-in-watercolour-01234567.png"
    assert file_name(3, "A Cat, in watercolour", KEY, 1, "png") != first
    assert file_name(3, "ünïcode / ../ path", KEY, 0, "../../x") == (
        "0003-unicode-path-01234567.png")


@pytest.mark.parametrize("service, response, stage, code", [
    ("vod", {"Status": "PROCESSING", "AigcImageTask": {"Progress": 40}}, Stage.PENDING, None),
    ("vod", {"Status": "FINISH", "AigcImageTask": {"ErrCodeExt": "ResourceInsufficient",
                                                   "Message": "busy"}}, Stage.FAILED,
     "ResourceInsufficient"),
    ("vod", {"Status": "FINISH", "AigcImageTask": {"Output": {"FileInfos": [
        {"FileUrl": "http://x/a.png", "FileType": "png", "MetaData": {"Size": 5}}]}}},
     Stage.GENERATED, None),
    ("mps", {"Status": "RUN"}, Stage.PENDING, None),
    ("mps", {"Status": "FAIL", "Message": "no"}, Stage.FAILED, "FAIL"),
    ("mps", {"Status": "DONE", "ImageUrls": ["http://x/b.jpeg?sig=1"]}, Stage.GENERATED, None),
])
def test_poll_answers_become_generation_verdicts(service, response, stage, code):
    verdict = read_generation(service, response)
    assert verdict.stage is stage
    assert (verdict.error.code if verdict.error else None) == code
    if code == "ResourceInsufficient":
        assert verdict.error == GenerationError("ResourceInsufficient", "busy", True)


def simulate(timing: PollTiming, durations: list[float], start: float) -> tuple[float, float]:
    """Polls per task and how late the last finish is seen, on a fake clock."""
    now = [start]
    schedule = PollSchedule(timing, clock=lambda: now[0])
    for index in range(len(durations)):
        schedule.add(str(index), 0.0, first_at_age=timing.first_poll_age)
    while len(schedule):
        key = schedule.pop_due()
        if key is None:
            wait = schedule.wait()
            assert wait is not None and wait > 0, "never a busy loop"
            now[0] += wait
            continue
        if now[0] >= durations[int(key)]:
            schedule.finished(key)
        else:
            schedule.pending(key)
    return schedule.polls / len(durations), now[0] - max(durations)


def test_back_off_keeps_polls_near_a_few_per_task_whatever_the_generation_time():
    rng = random.Random(7)
    for low, high, polls_at_most, late_at_most in ((2.5, 7.5, 4, 3), (30, 120, 10, 40)):
        durations = [rng.uniform(low, high) for _ in range(500)]
        polls, late = simulate(PollTiming(), durations, start=0.5)
        assert polls <= polls_at_most and late <= late_at_most, (low, high, polls, late)


def test_finished_tasks_are_asked_once():
    polls, _ = simulate(PollTiming(first_poll_age=0), [0.0] * 100, start=10)
    assert polls == 1


async def test_caller_stops_the_run_when_nothing_reached_the_endpoint_for_30_s():
    with socket.socket() as unused:  # a port nobody listens on: connection refused
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    now = [0.0]
    limiter = RateLimiter(MemoryStore(), scope="t", service="mps",
                          action=DESCRIBE_AIGC_IMAGE_TASK, rate=0)
    settings = CallerSettings(retry=RetryPolicy(max_attempts=2, base_delay=0.001))
    async with AigcClient(Credentials("AKIDtest", "key"),
                          ClientSettings(endpoint=f"http://127.0.0.1:{port}")) as client:
        caller = ApiCaller(client, {("mps", DESCRIBE_AIGC_IMAGE_TASK): limiter}, settings,
                           stop=asyncio.Event(), clock=lambda: now[0])
        answer = await caller.call(MPS, DESCRIBE_AIGC_IMAGE_TASK, {"TaskId": "t"})
        assert answer.code == "NetworkError"  # within 30 s: the task is simply asked later
        now[0] = 31.0
        with pytest.raises(EndpointUnreachable) as stopped:
            await caller.call(MPS, DESCRIBE_AIGC_IMAGE_TASK, {"TaskId": "t"})
    assert stopped.value.exit_code == 75
