"""The JSONL ledger: the durable record of every task's fate, and its replay on resume.

Guarantees: an event's line is on disk (written and fdatasync'ed) before its `await` returns, many
lines sharing one write and one sync; one run at a time holds a ledger (`open_ledger` locks it);
`replay` folds any ledger, torn or corrupt lines included, into each key's last state, compactly.

Use: `writer = open_ledger(path)` first (it fails at once with `LedgerLocked` if another run has
the ledger), then `replay(path)` while holding it, then `await writer.sending(...)` before each
request and `await writer.submitted(...)` (or `duplicate`, `failed`) after it; `await
writer.close()` at the end. Line format (SPEC §6), one JSON object per line, keys in this order:

    {"ts":"2026-11-22T10:00:00.123Z","key":"<32 hex>","service":"vod","event":"sending",
     "attempt":1,"session_id":"..."}

`sending` carries `attempt` (1 for the first, counting across runs) and `session_id` (vod);
`submitted` `task_id`, `request_id`, `session_id` (vod); `duplicate` `request_id`, `session_id`;
`failed` `error: {code, message, retryable}` and `request_id` when there is one. A task's state is
its last line's event.
"""

from __future__ import annotations

import asyncio
import enum
import errno
import json
import logging
import os
import re
import sys
from binascii import Error as BinasciiError
from binascii import unhexlify
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Final, NamedTuple

from batcher.lock import Clock, LedgerLock, LedgerLocked, utc_now
from batcher.services import SERVICE_NAMES

__all__ = [
    "FailureGroup",
    "LedgerError",
    "LedgerLocked",
    "LedgerReplay",
    "LedgerWriter",
    "TaskState",
    "open_ledger",
    "replay",
]

logger = logging.getLogger(__name__)


class TaskState(enum.IntEnum):
    """A task's state, from its last ledger line."""

    PENDING = 0
    """Never seen in the ledger."""
    IN_DOUBT = 1
    """Last line `sending`: the request may or may not have reached the server."""
    SUBMITTED = 2
    DUPLICATE = 3
    """vod refused the SessionId as used before: the task was accepted by an earlier request."""
    FAILED_RETRYABLE = 4
    FAILED_PERMANENT = 5

    @property
    def is_done(self) -> bool:
        """True for SUBMITTED and DUPLICATE: the task exists on the server, never send it again."""
        return self in _DONE_STATES


_DONE_STATES: Final = frozenset({TaskState.SUBMITTED, TaskState.DUPLICATE})


class LedgerError(Exception):
    """The ledger cannot be written (disk full, I/O error) or is used after `close`."""


@dataclass(frozen=True, slots=True)
class FailureGroup:
    """The keys that currently stand failed with one error code, for `batcher status`."""

    code: str
    count: int
    retryable: int
    """How many of `count` failed with `retryable: true` (sent again without --retry-failed)."""
    example: str
    """The message of one of them."""


# ---------------------------------------------------------------------------------------------
# Replay
#
# Memory is the constraint (a million keys, 150 MB for the whole process), so replay keeps no
# Python object per key: `_KeyTable` packs each key into an 18-byte record of one of 65,536
# bytearrays, chosen by the key's first two bytes. Speed is the other (a million lines in well
# under 5 s), so a line in the writer's own form is recognised by fixed slices, not json.loads.

_RECORD: Final = 18
"""Bytes per key: the key (16), flags (state in bits 0-2, service index in bits 3-4), attempt."""
_FLAGS_AT: Final = 16
_ATTEMPT_AT: Final = 17
_STATE_MASK: Final = 0b111
_SERVICE_SHIFT: Final = 3
_MAX_ATTEMPT: Final = 255
"""Attempts are remembered up to 255; more than that reads back as 255."""
_BUCKETS: Final = 1 << 16

_SERVICE_INDEX: Final[dict[str, int]] = {name: index for index, name in enumerate(SERVICE_NAMES)}
_STATES: Final = tuple(TaskState)
"""Indexed by state value: far cheaper than calling TaskState(value), once per task on resume."""
_KEY_RE: Final = re.compile(r"[0-9a-fA-F]{32}")
_EVENT_STATE: Final = {
    "sending": TaskState.IN_DOUBT,
    "submitted": TaskState.SUBMITTED,
    "duplicate": TaskState.DUPLICATE,
}

# The fast path. The writer puts the fields in a fixed order and its `ts` always has 24
# characters, so in its sending/submitted/duplicate lines these fragments sit at fixed offsets:
#     0  {"ts":"         31  ","key":"       40  <32 hex key>
#    72  ","service":"vod","event":"      99  sending","attempt":      118  <attempt>
# A line with all of them that ends in "}\n" (whole) is folded from those slices; any other line
# (failed, other spacing, older or foreign writers, attempts >= 10) takes the json.loads path.
_TS_TAG: Final = b'{"ts":"'
_TS_LEN: Final = 24
"""Characters in the writer's timestamps (`_format_ts`): 2026-11-22T10:00:00.123Z."""
_KEY_TAG: Final = b'","key":"'
_KEY_TAG_AT: Final = len(_TS_TAG) + _TS_LEN
_KEY_AT: Final = _KEY_TAG_AT + len(_KEY_TAG)
_KEY_END: Final = _KEY_AT + 32
_SERVICE_TAGS: Final = {
    b'","service":"' + name.encode() + b'","event":"': index << _SERVICE_SHIFT
    for name, index in _SERVICE_INDEX.items()
}
_SERVICE_TAG_END: Final = _KEY_END + len(next(iter(_SERVICE_TAGS)))  # other lengths: slow path
_SENDING: Final = TaskState.IN_DOUBT.value
_EVENT_TAGS: Final = {  # each event's name and the name of the first field the writer puts next
    b'sending","attempt":': _SENDING,
    b'submitted","task_id': TaskState.SUBMITTED.value,
    b'duplicate","request': TaskState.DUPLICATE.value,
}
_EVENT_TAG_END: Final = _SERVICE_TAG_END + len(next(iter(_EVENT_TAGS)))
_DIGIT_1, _DIGIT_9, _COMMA, _CLOSE = b"19,}"

_KEPT_LINE_NUMBERS: Final = 100
"""Corrupt line numbers remembered (all are counted): a wrong file must not cost memory."""
_LOGGED_CORRUPT_LINES: Final = 10


class _Record(NamedTuple):  # a NamedTuple: a frozen dataclass costs a microsecond more per line
    """One line parsed by json.loads, reduced to what replay keeps."""

    key: bytes
    state: TaskState
    service: int
    attempt: int | None
    """The attempt of a `sending` line; None for the other events, which keep the previous one."""
    failure: tuple[str, str] | None
    """(code, message) of a `failed` line."""


class _KeyTable:
    """key (16 bytes) -> packed state, in 18-byte records: about 20 bytes a key, no objects."""

    __slots__ = ("buckets", "size")

    def __init__(self) -> None:
        self.buckets: list[bytearray | None] = [None] * _BUCKETS
        """Indexed by the key's first two bytes (keys are hashes: they spread evenly)."""
        self.size = 0

    def get(self, key: bytes) -> tuple[int, int]:
        """(flags, attempt) of `key`, (0, 0) for a key never set."""
        bucket = self.buckets[key[0] << 8 | key[1]]
        if bucket is not None:
            pos = bucket.find(key)
            if pos > 0 and pos % _RECORD:
                pos = _find_record(bucket, key)
            if pos >= 0:
                return bucket[pos + _FLAGS_AT], bucket[pos + _ATTEMPT_AT]
        return 0, 0

    def set(self, key: bytes, flags: int, attempt: int | None) -> None:
        """Set `key`'s flags, and its attempt unless None (then the previous one stays)."""
        index = key[0] << 8 | key[1]
        bucket = self.buckets[index]
        if bucket is None:
            bucket = self.buckets[index] = bytearray()
        pos = _find_record(bucket, key)
        if pos < 0:
            self.size += 1
            bucket += key
            bucket.append(flags)
            bucket.append(min(attempt or 0, _MAX_ATTEMPT))
            return
        bucket[pos + _FLAGS_AT] = flags
        if attempt is not None:
            bucket[pos + _ATTEMPT_AT] = min(attempt, _MAX_ATTEMPT)

    def records(self) -> Iterator[tuple[bytes, int]]:
        """(key, flags) of every key, ordered by key prefix."""
        for bucket in self.buckets:
            if bucket is not None:
                for pos in range(0, len(bucket), _RECORD):
                    yield bytes(bucket[pos : pos + _FLAGS_AT]), bucket[pos + _FLAGS_AT]

    def flag_counts(self) -> Counter[int]:
        """How many keys have each flags value."""
        counts: Counter[int] = Counter()
        for bucket in self.buckets:
            if bucket is not None:
                counts.update(bucket[_FLAGS_AT::_RECORD])  # every record's flags, sliced in C
        return counts


def _find_record(bucket: bytearray, key: bytes) -> int:
    """The offset of `key`'s record in `bucket`, or -1."""
    pos = bucket.find(key)
    while pos > 0 and pos % _RECORD:  # a match straddling two records is not one
        pos = bucket.find(key, pos + 1)
    return pos


def _key_bytes(key: str) -> bytes:
    """The 16 bytes of a 32-hex-digit key (called once per task on resume: kept cheap)."""
    try:
        packed = bytes.fromhex(key)
    except (ValueError, TypeError):
        packed = b""
    if len(packed) != 16 or len(key) != 32:  # fromhex skips spaces: "ab cd" must not pass
        raise ValueError(f"a ledger key is 32 hex digits, got {key!r}")
    return packed


class LedgerReplay:
    """Every key's last state in one ledger, as `replay` folded it."""

    __slots__ = (
        "_failures",
        "_slow_lines",
        "_table",
        "corrupt_count",
        "corrupt_lines",
        "path",
        "records",
        "torn_lines",
    )

    def __init__(self, path: Path) -> None:
        self.path = path
        self.records = 0
        """Lines folded in."""
        self.torn_lines = 0
        """1 when the last line was cut short by a crash (and skipped), else 0."""
        self.corrupt_count = 0
        """Lines before the last one that were not ledger records (skipped)."""
        self.corrupt_lines: list[int] = []
        """The 1-based numbers of the first corrupt lines (at most 100)."""
        self._table = _KeyTable()
        self._failures: dict[bytes, tuple[str, str]] = {}
        """(code, message) of the keys whose state is FAILED_*, and of no other key."""
        self._slow_lines = 0
        """Lines parsed by json.loads rather than the fast path (tests watch it)."""

    def __len__(self) -> int:
        """How many distinct keys the ledger names."""
        return self._table.size

    def state_of(self, key: str) -> TaskState:
        """The state of the task `key` (PENDING when the ledger never names it)."""
        flags, _ = self._table.get(_key_bytes(key))
        return _STATES[flags & _STATE_MASK]

    def last_attempt(self, key: str) -> int:
        """The `attempt` of the key's last `sending` line (at most 255); 0 if it was never sent."""
        return self._table.get(_key_bytes(key))[1]

    def counts(self) -> dict[TaskState, int]:
        """Keys per state, every state present (PENDING is always 0: the ledger never saw those)."""
        totals = dict.fromkeys(TaskState, 0)
        for flags, count in self._table.flag_counts().items():
            totals[_STATES[flags & _STATE_MASK]] += count
        return totals

    def counts_by_service(self) -> dict[str, dict[TaskState, int]]:
        """`counts()` per service name, every service present."""
        totals: dict[str, dict[TaskState, int]] = {
            name: dict.fromkeys(TaskState, 0) for name in SERVICE_NAMES
        }
        for flags, count in self._table.flag_counts().items():
            service = SERVICE_NAMES[flags >> _SERVICE_SHIFT]
            totals[service][_STATES[flags & _STATE_MASK]] += count
        return totals

    def keys_in(self, state: TaskState, service: str | None = None) -> Iterator[str]:
        """The keys (lower-case hex) in `state`, of `service` only if given, by key order."""
        wanted = None if service is None else _SERVICE_INDEX[service]
        for key, flags in self._table.records():
            if flags & _STATE_MASK == state and wanted in (None, flags >> _SERVICE_SHIFT):
                yield key.hex()

    def failures_by_code(self) -> dict[str, FailureGroup]:
        """The currently failed keys grouped by error code, largest group first."""
        counts: Counter[str] = Counter()
        retryable: Counter[str] = Counter()
        examples: dict[str, str] = {}
        for key, (code, message) in self._failures.items():
            counts[code] += 1
            flags, _ = self._table.get(key)
            if flags & _STATE_MASK == TaskState.FAILED_RETRYABLE:
                retryable[code] += 1
            examples.setdefault(code, message)
        return {
            code: FailureGroup(code, count, retryable[code], examples[code])
            for code, count in counts.most_common()
        }

    def _apply(self, record: _Record) -> None:
        """Fold in one line parsed by json.loads (`_fold` inlines the fast path's equivalent)."""
        self._table.set(record.key, record.state | record.service << _SERVICE_SHIFT, record.attempt)
        if record.failure is None:
            self._failures.pop(record.key, None)
        else:
            self._failures[record.key] = record.failure

    def _skip_corrupt(self, lineno: int) -> None:
        self.corrupt_count += 1
        if len(self.corrupt_lines) < _KEPT_LINE_NUMBERS:
            self.corrupt_lines.append(lineno)
        if self.corrupt_count <= _LOGGED_CORRUPT_LINES:
            logger.warning("ledger %s: line %d is not a ledger record; skipped", self.path, lineno)

    def _skip_torn(self, lineno: int) -> None:
        self.torn_lines += 1
        logger.warning(
            "ledger %s: the last line (%d) is incomplete, cut short by a crash; skipped",
            self.path,
            lineno,
        )


def replay(path: Path) -> LedgerReplay:
    """Read the ledger at `path` as a stream into each key's last state (a missing file is empty).

    A last line that does not parse is torn (counted in `torn_lines`); any other line that does
    not parse is corrupt (counted, with its number, in `corrupt_lines`). Both are skipped with a
    warning: the ledger stays usable.
    """
    result = LedgerReplay(path)
    try:
        stream = open(path, "rb", buffering=1 << 20)  # noqa: SIM115 - closed by `with` below
    except FileNotFoundError:
        return result
    with stream:
        _fold(stream, result)
    if result.corrupt_count > _LOGGED_CORRUPT_LINES:
        logger.warning("ledger %s: %d corrupt lines in all", path, result.corrupt_count)
    return result


def _fold(lines: Iterable[bytes], into: LedgerReplay) -> None:
    """Fold every line into `into`.

    The hot loop, run a million times on resume: the fast path and `_KeyTable.set` are inlined
    here on purpose, as two calls per line would make replay a third slower.
    """
    buckets, failures = into._table.buckets, into._failures
    service_tags, event_tags = _SERVICE_TAGS, _EVENT_TAGS
    records = new_keys = 0
    unparsed: int | None = None  # a bad line's number: torn if no other line follows it
    for lineno, line in enumerate(lines, 1):
        if (
            line.startswith(_TS_TAG)
            and line[_KEY_TAG_AT:_KEY_AT] == _KEY_TAG
            and line[-2:] == b"}\n"
        ):
            service_bits = service_tags.get(line[_KEY_END:_SERVICE_TAG_END])
            state = event_tags.get(line[_SERVICE_TAG_END:_EVENT_TAG_END])
            attempt = 0  # stays 0 (keep the key's last attempt) on submitted and duplicate
            if state == _SENDING:  # attempts 1-9, followed by "," or "}", are read here
                digit, after = line[_EVENT_TAG_END], line[_EVENT_TAG_END + 1]
                if _DIGIT_1 <= digit <= _DIGIT_9 and after in (_COMMA, _CLOSE):
                    attempt = digit - _DIGIT_1 + 1
                else:
                    state = None
            try:
                key = unhexlify(line[_KEY_AT:_KEY_END])
            except BinasciiError:
                state = None
            if service_bits is not None and state is not None:
                index = key[0] << 8 | key[1]
                bucket = buckets[index]
                if bucket is None:
                    bucket = buckets[index] = bytearray()
                pos = bucket.find(key)
                if pos > 0 and pos % _RECORD:
                    pos = _find_record(bucket, key)
                if pos < 0:
                    new_keys += 1
                    bucket += key
                    bucket.append(state | service_bits)
                    bucket.append(attempt)
                else:
                    bucket[pos + _FLAGS_AT] = state | service_bits
                    if attempt:
                        bucket[pos + _ATTEMPT_AT] = attempt
                if failures:
                    failures.pop(key, None)
                records += 1
                if unparsed is not None:
                    into._skip_corrupt(unparsed)
                    unparsed = None
                continue
        unparsed = _fold_slowly(line, lineno, unparsed, into)
    if unparsed is not None:
        into._skip_torn(unparsed)
    into.records += records
    into._table.size += new_keys


def _fold_slowly(line: bytes, lineno: int, unparsed: int | None, into: LedgerReplay) -> int | None:
    """Fold a line that the fast path left; returns the number of a bad line still unclassified."""
    if not line.strip():
        return unparsed  # blank lines carry nothing; they do not end a torn tail either
    into._slow_lines += 1
    if unparsed is not None:
        into._skip_corrupt(unparsed)  # a line follows it, so it was not the torn last line
    record = _parse(line)
    if record is None:
        return lineno
    into._apply(record)
    into.records += 1
    return None


def _parse(line: bytes) -> _Record | None:
    """The record on one line, or None when it is not a valid ledger record."""
    try:
        obj = json.loads(line.decode())  # decoded here: json's own encoding sniffing is slower
    except (ValueError, RecursionError):  # includes JSONDecodeError and UnicodeDecodeError
        return None
    if not isinstance(obj, dict):
        return None
    key, service, event = obj.get("key"), obj.get("service"), obj.get("event")
    if not (isinstance(key, str) and _KEY_RE.fullmatch(key) and service in _SERVICE_INDEX):
        return None
    key_bytes, service_index = bytes.fromhex(key), _SERVICE_INDEX[service]
    if event == "failed":
        return _parse_failure(obj, key_bytes, service_index)
    if not isinstance(event, str) or event not in _EVENT_STATE:
        return None
    attempt = obj.get("attempt") if event == "sending" else None
    if event == "sending" and not _is_attempt(attempt):
        return None
    return _Record(key_bytes, _EVENT_STATE[event], service_index, attempt, None)


def _parse_failure(obj: dict[str, Any], key: bytes, service: int) -> _Record | None:
    error = obj.get("error")
    if not isinstance(error, dict):
        return None
    code, message, retryable = error.get("code"), error.get("message"), error.get("retryable")
    if not (isinstance(code, str) and isinstance(message, str) and isinstance(retryable, bool)):
        return None
    state = TaskState.FAILED_RETRYABLE if retryable else TaskState.FAILED_PERMANENT
    return _Record(key, state, service, None, (code, message))


def _is_attempt(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


# ---------------------------------------------------------------------------------------------
# Writing


def open_ledger(path: Path, *, clock: Clock = utc_now) -> LedgerWriter:
    """Lock the ledger at `path` (raising `LedgerLocked` at once if another run holds it) and open
    it for appending, creating it and its parent directories if needed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = LedgerLock.acquire(path, clock)
    try:
        fd = _open_append(path)
        try:
            _end_torn_tail(path, fd)
        except BaseException:
            os.close(fd)
            raise
    except BaseException:
        lock.release()
        raise
    return LedgerWriter(path, fd, lock, clock)


def _open_append(path: Path) -> int:
    """An O_APPEND descriptor on the ledger; a new file's directory entry is made durable too."""
    flags = os.O_RDWR | os.O_APPEND | os.O_CREAT
    try:
        fd = os.open(path, flags | os.O_EXCL, 0o644)
    except FileExistsError:
        return os.open(path, flags, 0o644)
    _sync_directory(path.parent)
    return fd


def _sync_directory(directory: Path) -> None:
    """Make a new directory entry durable, else a crash can lose the whole new file."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno != errno.EINVAL:  # some filesystems cannot sync a directory: nothing to do
            raise
    finally:
        os.close(fd)


def _end_torn_tail(path: Path, fd: int) -> None:
    """If a crash cut the last line short, end it so the next record starts on a fresh line.

    The partial line stays (replay skips it): truncating could destroy a complete record that only
    lacks its newline.
    """
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return
    logger.warning("ledger %s: its last line is incomplete (a crash); it is kept and skipped", path)
    os.write(fd, b"\n")
    _sync_data(fd)


def _sync_data(fd: int) -> None:
    if sys.platform == "darwin":  # macOS has no fdatasync
        os.fsync(fd)
    else:  # fdatasync also flushes the file size, all that an append changes besides the data
        os.fdatasync(fd)


def _format_ts(moment: datetime) -> str:
    """`2026-11-22T10:00:00.123Z` from an aware datetime."""
    if moment.tzinfo is not UTC:
        if moment.tzinfo is None:
            raise ValueError("the ledger clock must return an aware datetime")
        moment = moment.astimezone(UTC)
    # Twice as fast as strftime or isoformat, and always 24 characters (4-digit years).
    return "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ" % (  # noqa: UP031 - faster than f-strings here
        moment.year,
        moment.month,
        moment.day,
        moment.hour,
        moment.minute,
        moment.second,
        moment.microsecond // 1000,
    )


_encode_string: Final[Callable[[str], str]] = json.encoder.encode_basestring
"""A str as a JSON string literal, non-ASCII kept: what json.dumps(ensure_ascii=False) writes."""
_encode_other: Final = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _value(value: object) -> str:
    """`value` as JSON, exactly as `json.dumps(value, ensure_ascii=False, separators=(",", ":"))`
    writes it; a str (every field but `attempt` and `retryable`) takes the short way."""
    return _encode_string(value) if type(value) is str else _encode_other(value)


def _line(text: str) -> bytes:
    # A lone surrogate (from a server's "\udxxx" escape) cannot be UTF-8: write it as that escape.
    return text.encode("utf-8", "backslashreplace")


def _check_task(key: str, service: str) -> None:
    # Replay drops lines it cannot fold, so refuse them here rather than lose them later.
    if not _KEY_RE.fullmatch(key):
        raise ValueError(f"a ledger key is 32 hex digits, got {key!r}")
    if service not in _SERVICE_INDEX:
        raise ValueError(f"unknown service {service!r}: use one of {', '.join(SERVICE_NAMES)}")


class LedgerWriter:
    """Appends events to a locked ledger, group-committing them: one write and one fdatasync for
    all the lines queued while the previous sync ran, off the event loop.

    Lines are written as text, field by field, in the order and the exact form of
    `json.dumps(record, separators=(",", ":"), ensure_ascii=False)` (tests/test_ledger.py checks
    it against that): the key (32 hex digits), the service and the event need no escaping, the
    other strings are escaped by json's own C routine."""

    __slots__ = (
        "_clock",
        "_closed",
        "_error",
        "_fd",
        "_flusher",
        "_lock",
        "_queue",
        "_waiters",
        "fsyncs",
        "lines_written",
        "path",
    )

    def __init__(self, path: Path, fd: int, lock: LedgerLock, clock: Clock) -> None:
        self.path = path
        self.fsyncs = 0
        """Syncs done so far (the initial torn-tail repair excepted): group commit's measure."""
        self.lines_written = 0
        self._fd = fd
        self._lock = lock
        self._clock = clock
        self._queue: list[bytes] = []
        """Encoded lines waiting for the next write, in event order."""
        self._waiters: list[asyncio.Future[None]] = []
        """One future per line in `_queue`, resolved when it is durable. One each, not one per
        batch: a waiter's cancellation cancels only its own future, and the line is written
        all the same."""
        self._flusher: asyncio.Task[None] | None = None
        self._error: LedgerError | None = None
        self._closed = False

    async def __aenter__(self) -> LedgerWriter:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def sending(
        self, key: str, service: str, attempt: int, session_id: str | None = None
    ) -> None:
        """Record that attempt `attempt` (1-based) of `key` is about to be sent; returns once the
        line is durable, so the request may leave."""
        if not _is_attempt(attempt):
            raise ValueError(f"attempt must be an int >= 1, got {attempt!r}")
        fields = f',"attempt":{int.__repr__(attempt)}'
        if session_id is not None:
            fields += f',"session_id":{_value(session_id)}'
        await self._append(key, service, "sending", fields)

    async def submitted(
        self, key: str, service: str, task_id: str, request_id: str, session_id: str | None = None
    ) -> None:
        """Record that the server created the task `task_id`; returns once durable."""
        fields = f',"task_id":{_value(task_id)},"request_id":{_value(request_id)}'
        if session_id is not None:
            fields += f',"session_id":{_value(session_id)}'
        await self._append(key, service, "submitted", fields)

    async def duplicate(self, key: str, service: str, request_id: str, session_id: str) -> None:
        """Record that vod refused the SessionId as already used: the task is done."""
        fields = f',"request_id":{_value(request_id)},"session_id":{_value(session_id)}'
        await self._append(key, service, "duplicate", fields)

    async def failed(
        self,
        key: str,
        service: str,
        code: str,
        message: str,
        retryable: bool,
        request_id: str | None = None,
    ) -> None:
        """Record a permanent error, or retries exhausted (`retryable`); returns once durable."""
        fields = (
            f',"error":{{"code":{_value(code)},"message":{_value(message)},'
            f'"retryable":{_value(retryable)}}}'
        )
        if request_id is not None:
            fields += f',"request_id":{_value(request_id)}'
        await self._append(key, service, "failed", fields)

    async def close(self) -> None:
        """Write and sync every queued line, then close the file and release the lock.

        Raises the `LedgerError` that stopped writing, if any (the lock is released all the same).
        """
        if self._closed:
            return
        self._closed = True  # refuse new lines from here on
        if self._flusher is not None:
            # wait() neither raises the flusher's outcome nor cancels it if close is cancelled
            # (then the file stays open until exit: the flusher may still be writing to it).
            await asyncio.wait({self._flusher})
        try:
            os.close(self._fd)
        finally:
            self._lock.release()
        if self._error is not None:
            raise self._error

    async def _append(self, key: str, service: str, event: str, fields: str) -> None:
        """Queue one line (`fields`: its JSON after the event, each with its leading comma) and
        wait until it is durable."""
        if self._error is not None:
            raise self._error
        if self._closed:
            raise LedgerError(f"ledger {self.path} is closed")
        _check_task(key, service)  # after it, key and service need no JSON escaping
        ts = _format_ts(self._clock())
        self._queue.append(
            _line(f'{{"ts":"{ts}","key":"{key}","service":"{service}","event":"{event}"{fields}}}\n')
        )
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        self._waiters.append(waiter)
        if self._flusher is None:
            # Started now, it first runs after every task already ready in this loop iteration, so
            # their lines join this batch; later lines gather while its sync runs.
            self._flusher = loop.create_task(self._flush())
        await waiter

    async def _flush(self) -> None:
        """Write and sync batches until the queue is empty (the next line starts it again)."""
        loop = asyncio.get_running_loop()
        try:
            while self._queue:
                lines, waiters = self._queue, self._waiters
                self._queue, self._waiters = [], []
                try:
                    await loop.run_in_executor(None, self._write_durably, b"".join(lines))
                except OSError as exc:
                    self._stop(LedgerError(f"cannot write ledger {self.path}: {exc}"), waiters)
                    return
                except asyncio.CancelledError:
                    # Only the loop's shutdown cancels this (close() was never awaited): whether
                    # the lines reached the disk is unknown, so nothing more may be written.
                    self._stop(LedgerError(f"ledger {self.path}: writing was cancelled"), waiters)
                    raise
                except Exception as exc:  # e.g. the thread pool is shut down: same verdict
                    self._stop(LedgerError(f"ledger {self.path}: writing failed: {exc!r}"), waiters)
                    return
                self.fsyncs += 1
                self.lines_written += len(lines)
                for waiter in waiters:
                    if not waiter.done():  # a cancelled waiter: its line is durable all the same
                        waiter.set_result(None)
        finally:
            self._flusher = None

    def _write_durably(self, data: bytes) -> None:
        """In a worker thread: append `data` whole, then fdatasync."""
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        _sync_data(self._fd)

    def _stop(self, error: LedgerError, waiters: list[asyncio.Future[None]]) -> None:
        """After a failed write or sync, fail every waiting line and refuse new ones: the state of
        the page cache is unknown after a failed fsync, so retrying it could lie."""
        self._error = error
        pending = [*waiters, *self._waiters]
        self._queue, self._waiters = [], []
        for future in pending:
            if not future.done():
                future.set_exception(error)
