"""Replay: any ledger, torn or corrupt lines included, folded into each key's last state, compactly.

Memory is the constraint (a million keys, 150 MB for the whole process), so replay keeps no
Python object per key: `_KeyTable` packs each key into an 18-byte record of one of 65,536
bytearrays, chosen by the key's first two bytes. Speed is the other (a million lines in well
under 5 s), so a line in the writer's own form is recognised by fixed slices, not json.loads.
"""

from __future__ import annotations

import json
import logging
from binascii import Error as BinasciiError
from binascii import unhexlify
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Final, NamedTuple

from batcher.api.services import SERVICE_NAMES
from batcher.state.events import SERVICE_INDEX, FailureGroup, TaskState, is_attempt, is_key

logger = logging.getLogger("batcher.state.ledger")

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

_STATES: Final = tuple(TaskState)
"""Indexed by state value: far cheaper than calling TaskState(value), once per task on resume."""
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
    for name, index in SERVICE_INDEX.items()
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
        wanted = None if service is None else SERVICE_INDEX[service]
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
    if not (isinstance(key, str) and is_key(key) and service in SERVICE_INDEX):
        return None
    key_bytes, service_index = bytes.fromhex(key), SERVICE_INDEX[service]
    if event == "failed":
        return _parse_failure(obj, key_bytes, service_index)
    if not isinstance(event, str) or event not in _EVENT_STATE:
        return None
    attempt = obj.get("attempt") if event == "sending" else None
    if event == "sending" and not is_attempt(attempt):
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
