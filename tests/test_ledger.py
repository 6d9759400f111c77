"""docs/ledgers.md, the ledger: its lines, its replay into task states, its lock, its durability."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import logging
import os
import socket
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import batcher
from batcher.state.ledger import (
    FailureGroup,
    LedgerError,
    LedgerLocked,
    LedgerReplay,
    LedgerWriter,
    TaskState,
    open_ledger,
    replay,
)
from batcher.state.lock import lock_path

NOW = datetime(2026, 11, 22, 10, 0, 0, 123456, tzinfo=UTC)
REPO = Path(batcher.__file__).resolve().parent.parent


def key(n: int) -> str:
    """A task key like the real ones: 32 lower-case hex digits, spread evenly."""
    return hashlib.md5(str(n).encode()).hexdigest()


def fixed_clock() -> datetime:
    return NOW


def read_records(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture
def ledger(tmp_path: Path) -> Path:
    return tmp_path / "jobs" / "cats.ledger.jsonl"


@pytest.fixture
async def writer(ledger: Path) -> AsyncIterator[LedgerWriter]:
    w = open_ledger(ledger, clock=fixed_clock)
    yield w
    await w.close()


# --- the lines ----------------------------------------------------------------------------------


async def test_each_event_writes_the_spec_fields_in_order(writer: LedgerWriter, ledger: Path):
    k = key(1)
    await writer.sending(k, "vod", 1, "sess-1")
    await writer.sending(k, "mps", 2)
    await writer.submitted(k, "vod", "task-1", "req-1", "sess-1")
    await writer.submitted(k, "mps", "task-2", "req-2")
    await writer.duplicate(k, "vod", "req-3", "sess-1")
    await writer.failed(k, "vod", "InvalidParameter", "bad prompt", False, "req-4")
    await writer.failed(k, "mps", "InternalError", "try later", True)

    head = {"ts": "2026-11-22T10:00:00.123Z", "key": k}
    assert read_records(ledger) == [
        {**head, "service": "vod", "event": "sending", "attempt": 1, "session_id": "sess-1"},
        {**head, "service": "mps", "event": "sending", "attempt": 2},
        {**head, "service": "vod", "event": "submitted", "task_id": "task-1",
         "request_id": "req-1", "session_id": "sess-1"},
        {**head, "service": "mps", "event": "submitted", "task_id": "task-2",
         "request_id": "req-2"},
        {**head, "service": "vod", "event": "duplicate", "request_id": "req-3",
         "session_id": "sess-1"},
        {**head, "service": "vod", "event": "failed",
         "error": {"code": "InvalidParameter", "message": "bad prompt", "retryable": False},
         "request_id": "req-4"},
        {**head, "service": "mps", "event": "failed",
         "error": {"code": "InternalError", "message": "try later", "retryable": True}},
    ]  # fmt: skip
    assert all(list(r)[:4] == ["ts", "key", "service", "event"] for r in read_records(ledger))


async def test_lines_are_compact_utf8_json_one_per_line(writer: LedgerWriter, ledger: Path):
    await writer.failed(key(1), "vod", "FailedOperation", "无法生成\n第二行 \udcff", False)
    raw = ledger.read_bytes()
    assert raw.count(b"\n") == 1 and raw.endswith(b"}\n")
    assert b", " not in raw and b'": ' not in raw
    assert "无法生成".encode() in raw  # ensure_ascii=False: readable, not \u escapes
    message = read_records(ledger)[0]["error"]["message"]  # type: ignore[index]
    assert message == "无法生成\n第二行 \udcff"


async def test_timestamps_come_from_the_injected_clock_in_utc(ledger: Path):
    paris = timezone(timedelta(hours=1))
    w = open_ledger(ledger, clock=lambda: datetime(2026, 11, 22, 11, 0, 5, 7000, tzinfo=paris))
    await w.sending(key(1), "mps", 1)
    await w.close()
    assert read_records(ledger)[0]["ts"] == "2026-11-22T10:00:05.007Z"


async def test_writer_refuses_lines_replay_could_not_read(writer: LedgerWriter):
    with pytest.raises(ValueError, match="32 hex digits"):
        await writer.sending("not-a-key", "vod", 1)
    with pytest.raises(ValueError, match="unknown service"):
        await writer.sending(key(1), "cvm", 1)
    with pytest.raises(ValueError, match="attempt"):
        await writer.sending(key(1), "vod", 0)


async def test_the_ledger_and_its_parent_directories_are_created(tmp_path: Path):
    path = tmp_path / "a" / "b" / "x.ledger.jsonl"
    w = open_ledger(path)
    await w.sending(key(1), "vod", 1)
    await w.close()
    assert path.is_file() and lock_path(path).is_file()


# --- replay: a task's state is its last line's event ----------------------------------------------


async def test_state_is_the_last_lines_event(writer: LedgerWriter, ledger: Path):
    await writer.sending(key(1), "vod", 1, "s1")  # in doubt
    await writer.sending(key(2), "vod", 1, "s2")
    await writer.submitted(key(2), "vod", "t2", "r2", "s2")  # submitted
    await writer.sending(key(3), "vod", 1, "s3")
    await writer.duplicate(key(3), "vod", "r3", "s3")  # duplicate
    await writer.sending(key(4), "mps", 1)
    await writer.failed(key(4), "mps", "InternalError", "boom", True)  # failed, retryable
    await writer.sending(key(5), "mps", 1)
    await writer.failed(key(5), "mps", "InvalidParameter", "bad", False)  # failed, permanent
    await writer.sending(key(6), "mps", 1)
    await writer.failed(key(6), "mps", "InternalError", "boom", True)
    await writer.sending(key(6), "mps", 2)
    await writer.submitted(key(6), "mps", "t6", "r6")  # a later line wins
    await writer.sending(key(7), "vod", 3, "s7")  # done, then sent again: in doubt

    state = replay(ledger)
    assert [state.state_of(key(n)) for n in range(1, 9)] == [
        TaskState.IN_DOUBT,
        TaskState.SUBMITTED,
        TaskState.DUPLICATE,
        TaskState.FAILED_RETRYABLE,
        TaskState.FAILED_PERMANENT,
        TaskState.SUBMITTED,
        TaskState.IN_DOUBT,
        TaskState.PENDING,  # never seen
    ]
    assert [s for s in TaskState if s.is_done] == [TaskState.SUBMITTED, TaskState.DUPLICATE]
    assert len(state) == 7 and state.records == 14
    assert state.last_attempt(key(6)) == 2 and state.last_attempt(key(7)) == 3
    assert state.last_attempt(key(4)) == 1 and state.last_attempt(key(8)) == 0
    assert state._slow_lines == 3  # only `failed` lines need json.loads


async def test_counts_and_keys_per_state_and_service(writer: LedgerWriter, ledger: Path):
    await writer.submitted(key(1), "vod", "t", "r", "s")
    await writer.duplicate(key(2), "vod", "r", "s")
    await writer.submitted(key(3), "mps", "t", "r")
    await writer.sending(key(4), "mps", 1)
    await writer.sending(key(5), "vod", 1, "s")

    state = replay(ledger)
    assert state.counts() == {
        TaskState.PENDING: 0,
        TaskState.IN_DOUBT: 2,
        TaskState.SUBMITTED: 2,
        TaskState.DUPLICATE: 1,
        TaskState.FAILED_RETRYABLE: 0,
        TaskState.FAILED_PERMANENT: 0,
    }
    by_service = state.counts_by_service()
    for service in ("vod", "mps"):
        assert by_service[service][TaskState.SUBMITTED] == 1
        assert by_service[service][TaskState.IN_DOUBT] == 1
    assert by_service["vod"][TaskState.DUPLICATE] == 1
    assert sorted(state.keys_in(TaskState.IN_DOUBT)) == sorted([key(4), key(5)])
    assert list(state.keys_in(TaskState.IN_DOUBT, service="mps")) == [key(4)]
    assert list(state.keys_in(TaskState.FAILED_PERMANENT)) == []


async def test_failures_are_grouped_by_code_for_status(writer: LedgerWriter, ledger: Path):
    for n in range(3):
        await writer.failed(key(n), "vod", "InvalidParameterValue.Prompt", f"prompt {n}", False)
    await writer.failed(key(3), "mps", "InternalError", "boom", True)
    await writer.failed(key(4), "mps", "InternalError", "boom again", False)
    await writer.failed(key(5), "mps", "RequestLimitExceeded", "slow down", True)
    await writer.submitted(key(5), "mps", "t5", "r5")  # no longer failed: not counted

    groups = replay(ledger).failures_by_code()
    assert list(groups) == ["InvalidParameterValue.Prompt", "InternalError"]  # largest first
    assert groups["InvalidParameterValue.Prompt"] == FailureGroup(
        "InvalidParameterValue.Prompt", count=3, retryable=0, example="prompt 0"
    )
    assert groups["InternalError"].count == 2 and groups["InternalError"].retryable == 1


def test_a_missing_ledger_replays_as_empty(tmp_path: Path):
    state = replay(tmp_path / "nothing.ledger.jsonl")
    assert len(state) == 0 and state.state_of(key(1)) is TaskState.PENDING
    assert state.torn_lines == 0 and state.corrupt_lines == []


def test_attempts_beyond_a_byte_read_back_as_255(ledger: Path):
    ledger.parent.mkdir(parents=True)
    line = {"ts": "2026-11-22T10:00:00.123Z", "key": key(1), "service": "vod", "event": "sending"}
    ledger.write_text(json.dumps({**line, "attempt": 300}) + "\n")
    assert replay(ledger).last_attempt(key(1)) == 255


def test_keys_are_read_whatever_their_hex_case(ledger: Path):
    ledger.parent.mkdir(parents=True)
    line = {"ts": "x", "key": key(1).upper(), "service": "vod", "event": "duplicate"}
    ledger.write_text(json.dumps(line) + "\n")
    state = replay(ledger)
    assert state.state_of(key(1)) is TaskState.DUPLICATE
    assert list(state.keys_in(TaskState.DUPLICATE)) == [key(1)]


# --- torn and corrupt lines -------------------------------------------------------------------


async def test_a_torn_last_line_is_skipped_with_a_warning_and_the_next_append_starts_a_fresh_line(
    ledger: Path, caplog: pytest.LogCaptureFixture
):
    w = open_ledger(ledger, clock=fixed_clock)
    await w.submitted(key(1), "vod", "t1", "r1", "s1")
    await w.close()
    with ledger.open("ab") as f:  # a crash in the middle of writing the next line
        f.write(b'{"ts":"2026-11-22T10:00:01.000Z","key":"' + key(2).encode() + b'","serv')

    with caplog.at_level(logging.WARNING, logger="batcher.state.ledger"):
        state = replay(ledger)
    assert state.torn_lines == 1 and state.corrupt_lines == []
    assert state.state_of(key(1)) is TaskState.SUBMITTED
    assert state.state_of(key(2)) is TaskState.PENDING
    assert "line (2) is incomplete" in caplog.text

    w = open_ledger(ledger, clock=fixed_clock)
    await w.sending(key(2), "mps", 1)
    await w.close()
    lines = ledger.read_bytes().split(b"\n")
    assert lines[1].endswith(b'"serv') and json.loads(lines[2])["event"] == "sending"
    state = replay(ledger)
    assert state.state_of(key(2)) is TaskState.IN_DOUBT
    assert state.torn_lines == 0 and state.corrupt_lines == [2]  # the old tail, now in the middle


def test_garbage_left_at_the_end_is_torn_even_with_a_newline(ledger: Path):
    ledger.parent.mkdir(parents=True)
    good = {"ts": "x", "key": key(1), "service": "vod", "event": "duplicate"}
    ledger.write_bytes(json.dumps(good).encode() + b"\n" + b"\0" * 40 + b"\n\n")
    state = replay(ledger)
    assert state.torn_lines == 1 and state.corrupt_count == 0
    assert state.state_of(key(1)) is TaskState.DUPLICATE


def test_a_whole_last_record_without_its_newline_counts(ledger: Path):
    ledger.parent.mkdir(parents=True)
    line = {"ts": "x", "key": key(1), "service": "mps", "event": "submitted", "task_id": "t"}
    ledger.write_text(json.dumps(line, separators=(",", ":")))
    state = replay(ledger)
    assert state.state_of(key(1)) is TaskState.SUBMITTED and state.torn_lines == 0


async def test_corrupt_middle_lines_are_skipped_and_numbered(
    ledger: Path, caplog: pytest.LogCaptureFixture
):
    w = open_ledger(ledger, clock=fixed_clock)
    await w.sending(key(1), "vod", 1, "s1")
    await w.close()
    with ledger.open("a") as f:
        f.write("not json at all\n")  # line 2
        f.write('{"key": "zz", "service": "vod", "event": "submitted"}\n')  # 3: not a record
        f.write(json.dumps({"key": key(1), "service": "vod", "event": "exploded"}) + "\n")  # 4
        f.write("[1, 2]\n")  # 5
    w = open_ledger(ledger, clock=fixed_clock)
    await w.submitted(key(1), "vod", "t1", "r1", "s1")  # line 6
    await w.close()

    with caplog.at_level(logging.WARNING, logger="batcher.state.ledger"):
        state = replay(ledger)
    assert state.corrupt_lines == [2, 3, 4, 5] and state.corrupt_count == 4
    assert state.torn_lines == 0 and state.records == 2
    assert state.state_of(key(1)) is TaskState.SUBMITTED
    assert "line 2 is not a ledger record" in caplog.text


# --- any event sequence folds to its last event, on the fast path and through json.loads ------

EVENTS = st.one_of(
    st.tuples(st.just("sending"), st.integers(1, 12)),  # attempts >= 10 leave the fast path
    st.tuples(st.sampled_from(["submitted", "duplicate"]), st.none()),
    st.tuples(st.just("failed"), st.booleans()),
)
EXPECTED_STATE = {
    "sending": TaskState.IN_DOUBT,
    "submitted": TaskState.SUBMITTED,
    "duplicate": TaskState.DUPLICATE,
}


async def write_events(path: Path, events: list[tuple[int, tuple[str, object]]]) -> None:
    async with open_ledger(path, clock=fixed_clock) as w:
        for n, (event, arg) in events:
            k, service = key(n), ("vod", "mps")[n % 2]
            if event == "sending":
                await w.sending(k, service, int(arg), "s" if service == "vod" else None)
            elif event == "submitted":
                await w.submitted(k, service, "task", "req")
            elif event == "duplicate":
                await w.duplicate(k, service, "req", "sess")
            else:
                await w.failed(k, service, "Code", "message", bool(arg))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    events=st.lists(st.tuples(st.integers(0, 4), EVENTS), max_size=30),
    respace=st.lists(st.booleans(), min_size=30, max_size=30),
)
def test_any_event_sequence_replays_to_each_keys_last_event(
    events: list[tuple[int, tuple[str, object]]], respace: list[bool]
):
    with tempfile.TemporaryDirectory() as tmp:
        canonical, respaced = Path(tmp) / "a.jsonl", Path(tmp) / "b.jsonl"
        asyncio.run(write_events(canonical, events))
        # The same records in another JSON spacing must fold the same (they take json.loads).
        lines = canonical.read_text().splitlines()
        respaced.write_text(
            "".join(
                (json.dumps(json.loads(line)) if respace[i] else line) + "\n"
                for i, line in enumerate(lines)
            )
        )
        for state in (replay(canonical), replay(respaced)):
            for n in range(5):
                mine = [(e, arg) for m, (e, arg) in events if m == n]
                assert state.state_of(key(n)) is expected_state(mine)
                attempts = [arg for e, arg in mine if e == "sending"]
                assert state.last_attempt(key(n)) == (attempts[-1] if attempts else 0)
            assert len(state) == len({n for n, _ in events})


def expected_state(events: list[tuple[str, object]]) -> TaskState:
    if not events:
        return TaskState.PENDING
    event, arg = events[-1]
    if event == "failed":
        return TaskState.FAILED_RETRYABLE if arg else TaskState.FAILED_PERMANENT
    return EXPECTED_STATE[event]


# --- the lock: one run at a time ---------------------------------------------------------------

HOLDER = """
import sys, time
from pathlib import Path
from batcher.state.ledger import open_ledger
writer = open_ledger(Path(sys.argv[1]))
print("locked", flush=True)
time.sleep(60)
"""


@pytest.fixture
def holder(ledger: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding `ledger`."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(ledger)], stdout=subprocess.PIPE, text=True, env=env
    )
    with proc:  # closes its pipe and waits for it
        try:
            assert proc.stdout is not None and proc.stdout.readline() == "locked\n"
            yield proc
        finally:
            proc.kill()


@pytest.mark.slow
def test_a_second_run_gets_ledger_locked_naming_the_holder(
    ledger: Path, holder: subprocess.Popen[str]
):
    with pytest.raises(LedgerLocked) as caught:
        open_ledger(ledger)
    message = str(caught.value)
    assert message.startswith(f"ledger {ledger} is held by pid {holder.pid} on host ")
    assert socket.gethostname() in message and " since 20" in message
    assert caught.value.holder is not None and caught.value.holder.pid == holder.pid


@pytest.mark.slow
async def test_a_killed_holder_releases_the_ledger(ledger: Path, holder: subprocess.Popen[str]):
    holder.kill()  # SIGKILL: no clean-up runs, the kernel drops the flock
    holder.wait()
    w = open_ledger(ledger)
    await w.close()


async def test_close_releases_the_lock_and_a_second_opener_in_this_process_is_refused(
    ledger: Path,
):
    w = open_ledger(ledger, clock=fixed_clock)
    holder = json.loads(lock_path(ledger).read_text())
    assert holder == {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "since": "2026-11-22T10:00:00Z",
    }
    with pytest.raises(LedgerLocked, match=f"held by pid {os.getpid()} "):
        open_ledger(ledger)
    await w.close()
    assert lock_path(ledger).read_text() == ""  # nobody's name stays behind
    w = open_ledger(ledger)
    await w.close()


async def test_one_ledger_named_two_ways_has_one_lock(ledger: Path, tmp_path: Path):
    ledger.parent.mkdir(parents=True)
    (tmp_path / "link").symlink_to(ledger.parent)
    w = open_ledger(ledger)
    with pytest.raises(LedgerLocked):
        open_ledger(tmp_path / "link" / ".." / "jobs" / ".." / "link" / ledger.name)
    await w.close()


# --- durability and group commit ------------------------------------------------------------------


async def test_sending_is_durable_before_it_returns(writer: LedgerWriter, ledger: Path):
    syncs = writer.fsyncs
    await writer.sending(key(1), "vod", 1, "s1")
    assert writer.fsyncs == syncs + 1  # synced, not only written, before the request may leave
    with open(ledger, "rb") as other_handle:
        assert json.loads(other_handle.read().splitlines()[-1])["key"] == key(1)


async def test_concurrent_lines_share_one_write_and_one_sync(writer: LedgerWriter, ledger: Path):
    await asyncio.gather(*(writer.sending(key(n), "vod", 1, f"s{n}") for n in range(1000)))
    assert writer.lines_written == 1000
    assert writer.fsyncs <= 5  # one, unless the loop splits the burst: far fewer than 1000
    state = replay(ledger)
    assert state.counts()[TaskState.IN_DOUBT] == 1000


async def test_lines_queued_during_a_sync_go_out_in_the_next_batch(writer: LedgerWriter):
    async def worker(first: int) -> None:
        for n in range(first, first + 50):
            await writer.sending(key(n), "mps", 1)
            await writer.submitted(key(n), "mps", "t", "r")

    await asyncio.gather(*(worker(i * 50) for i in range(20)))
    assert writer.lines_written == 2000
    assert writer.fsyncs <= 200  # each worker waits for every line, yet syncs are shared


async def test_a_cancelled_waiter_neither_loses_its_line_nor_cancels_the_others(
    writer: LedgerWriter, ledger: Path
):
    tasks = [asyncio.create_task(writer.sending(key(n), "vod", 1, "s")) for n in range(10)]
    await asyncio.sleep(0)  # every task has queued its line
    tasks[3].cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(results[3], asyncio.CancelledError)
    assert [r for i, r in enumerate(results) if i != 3] == [None] * 9
    await writer.close()
    assert len(read_records(ledger)) == 10


async def test_close_writes_everything_and_later_lines_are_refused(ledger: Path):
    w = open_ledger(ledger, clock=fixed_clock)
    pending = asyncio.create_task(w.submitted(key(1), "mps", "t", "r"))
    await asyncio.sleep(0)
    await w.close()
    await pending
    assert read_records(ledger)[0]["event"] == "submitted"
    with pytest.raises(LedgerError, match="closed"):
        await w.sending(key(2), "mps", 1)
    await w.close()  # idempotent


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
async def test_a_failed_write_fails_its_waiters_and_every_later_line(tmp_path: Path):
    path = tmp_path / "full.ledger.jsonl"
    path.symlink_to("/dev/full")  # every write: ENOSPC, as on a full disk
    w = open_ledger(path)
    with pytest.raises(LedgerError, match="cannot write ledger"):
        await w.sending(key(1), "vod", 1, "s")
    with pytest.raises(LedgerError, match="cannot write ledger"):
        await w.submitted(key(1), "vod", "t", "r")
    with pytest.raises(LedgerError):
        await w.close()
    w = open_ledger(path)  # the lock was released all the same
    await w.close()


def test_replay_of_a_writer_ledger_never_needs_json_loads(tmp_path: Path):
    path = tmp_path / "x.ledger.jsonl"

    async def fill() -> None:
        async with open_ledger(path) as w:
            await asyncio.gather(
                *(w.sending(key(n), ("vod", "mps")[n % 2], 1 + n % 9) for n in range(500))
            )
            await asyncio.gather(*(w.submitted(key(n), "vod", "t", "r", "s") for n in range(300)))
            await asyncio.gather(*(w.duplicate(key(n), "vod", "r", "s") for n in range(300, 400)))

    asyncio.run(fill())
    state: LedgerReplay = replay(path)
    assert state._slow_lines == 0 and state.records == 900
    assert state.counts()[TaskState.IN_DOUBT] == 100


# --- the writer's hand-built lines equal json.dumps -----------------------------------------------


def reference_line(record: dict[str, object]) -> bytes:
    """A line as the writer first wrote it: json.dumps of the record, fields in docs/ledgers.md's
    order."""
    text = json.dumps(record, separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8", "backslashreplace") + b"\n"


def reference_ts(moment: datetime) -> str:
    utc = moment.astimezone(UTC)
    return f"{utc:%Y-%m-%dT%H:%M:%S}.{utc.microsecond // 1000:03d}Z"


# Any text a server may answer with: quotes, backslashes, control characters, CJK, emoji and lone
# surrogates (json.loads gives those for a "\udxxx" escape).
any_text = st.text(st.characters(blacklist_categories=()), max_size=40)
optional_text = st.one_of(st.none(), any_text)
EXAMPLES = itertools.count()


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    n=st.integers(0, 10**6), service=st.sampled_from(["vod", "mps"]),
    attempt=st.integers(1, 10**12), session_id=optional_text, task_id=any_text,
    request_id=any_text, optional_request_id=optional_text, code=any_text, message=any_text,
    retryable=st.booleans(),
)
def test_every_line_is_byte_for_byte_what_json_dumps_writes(
    tmp_path: Path, n, service, attempt, session_id, task_id, request_id, optional_request_id,
    code, message, retryable,
):
    path = tmp_path / f"{next(EXAMPLES)}.ledger.jsonl"  # tmp_path is shared by the examples
    k = key(n)
    head = {"ts": "2026-11-22T10:00:00.123Z", "key": k, "service": service}

    def extra(**fields: object) -> dict[str, object]:
        return {name: value for name, value in fields.items() if value is not None}

    expected = [
        {**head, "event": "sending", "attempt": attempt, **extra(session_id=session_id)},
        {**head, "event": "submitted", "task_id": task_id, "request_id": request_id,
         **extra(session_id=session_id)},
        {**head, "event": "duplicate", "request_id": request_id, "session_id": task_id},
        {**head, "event": "failed",
         "error": {"code": code, "message": message, "retryable": retryable},
         **extra(request_id=optional_request_id)},
    ]  # fmt: skip

    async def write() -> None:
        async with open_ledger(path, clock=fixed_clock) as w:
            await w.sending(k, service, attempt, session_id)
            await w.submitted(k, service, task_id, request_id, session_id)
            await w.duplicate(k, service, request_id, task_id)
            await w.failed(k, service, code, message, retryable, optional_request_id)

    asyncio.run(write())
    assert path.read_bytes() == b"".join(reference_line(record) for record in expected)


@given(
    moment=st.datetimes(
        min_value=datetime(1970, 1, 2), max_value=datetime(9999, 12, 30),
        timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30)),
                                   timezone(timedelta(hours=-8))]),
    )
)
def test_timestamps_are_always_24_characters_as_strftime_wrote_them(moment: datetime):
    from batcher.state.writer import _format_ts

    if moment.astimezone(UTC).year < 1000:  # strftime's %Y has no padding there: ours does
        return
    formatted = _format_ts(moment)
    assert formatted == reference_ts(moment)
    assert len(formatted) == 24


def test_a_naive_clock_is_refused():
    from batcher.state.writer import _format_ts

    with pytest.raises(ValueError, match="aware"):
        _format_ts(datetime(2026, 11, 22, 10, 0))
