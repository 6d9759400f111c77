"""The results ledger (docs/ledgers.md#the-results-ledger): what `collect` learnt of each submitted
task, append-only.

`<stem>.results.jsonl` beside the submit ledger, with its own lock (`<...>.results.jsonl.lock`),
so that `collect` runs while a `submit` holds the submit ledger. It is written by the submit
ledger's own machinery (`LedgerWriter`: the lock, the torn-tail repair, group-committed
fdatasync), one JSON object per line, each with `ts`, `key`, `service`, `event`:

| event | extra fields |
|---|---|
| `recovered` | `task_id` (a vod duplicate's TaskId), `session_id` (what found it) |
| `generated` | `task_id`, `files[]`: `url`, `type`, `size` (bytes, 0 when none); `expires` |
| `generation_failed` | `task_id`, `error: {code, message, retryable}` |
| `downloaded` | `task_id`, `files[]`: `path` (relative to the output dir), `bytes`, `sha256` |
| `expired` | `task_id` |
| `lost` | `reason`, `session_id` |

A `generated` line's `expires` is when its files stop being served, when the API says (vod's
`ExpireTime`, the earliest of the files); mps URLs live 12 hours from the line's `ts`.

Every event but `lost` names the TaskId it is about: after `submit --regenerate` a key has a new
TaskId, and the results of the old one no longer describe it. A task's result state is its last
line about its current TaskId.

    async with ResultsLedgerWriter.open(results_ledger_path(ledger)) as results:
        await results.generated(key, "mps", task_id, [GeneratedFile(url, "png", 0)])
    record = replay_results(results_ledger_path(ledger)).get(key)
"""

from __future__ import annotations

import enum
import json
import logging
from collections.abc import Container, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batcher.api.times import format_api_time
from batcher.state.events import SERVICE_INDEX, is_key
from batcher.state.line_keys import written_key
from batcher.state.writer import LedgerWriter, _value

logger = logging.getLogger("batcher.state.results")

_SERVICES = {name: name for name in SERVICE_INDEX}
"""One string per service name, not one per record (about 50 bytes a record)."""
SUBMIT_LEDGER_SUFFIX = ".ledger.jsonl"
RESULTS_LEDGER_SUFFIX = ".results.jsonl"


def results_ledger_path(submit_ledger: Path) -> Path:
    """The results ledger beside `submit_ledger`: `x.ledger.jsonl` -> `x.results.jsonl` (so the
    default one is `<manifest stem>.results.jsonl`); any other name gets `.results.jsonl` added.
    One submit ledger, one results ledger: two ledgers of a manifest never share results."""
    name = submit_ledger.name
    if name.endswith(SUBMIT_LEDGER_SUFFIX):
        name = name[: -len(SUBMIT_LEDGER_SUFFIX)]
    return submit_ledger.with_name(name + RESULTS_LEDGER_SUFFIX)


class ResultEvent(enum.StrEnum):
    RECOVERED = "recovered"
    GENERATED = "generated"
    GENERATION_FAILED = "generation_failed"
    DOWNLOADED = "downloaded"
    EXPIRED = "expired"
    LOST = "lost"


@dataclass(frozen=True, slots=True)
class GeneratedFile:
    """One output file as the API describes it."""

    url: str
    type: str
    size: int
    """Bytes, as the API reports them; 0 when it reports none (mps)."""


@dataclass(frozen=True, slots=True)
class DownloadedFile:
    """One output file on disk, complete and checked."""

    path: str
    """Relative to the output directory."""
    bytes: int
    sha256: str


@dataclass(frozen=True, slots=True)
class GenerationError:
    code: str
    message: str
    retryable: bool


class ResultsLedgerWriter(LedgerWriter):
    """Appends result events; open with `ResultsLedgerWriter.open(path)` (locks it)."""

    __slots__ = ()

    async def recovered(self, key: str, service: str, task_id: str, session_id: str) -> None:
        fields = f'{_task(task_id)},"session_id":{_value(session_id)}'
        await self._append(key, service, ResultEvent.RECOVERED, fields)

    async def generated(
        self, key: str, service: str, task_id: str, files: Sequence[GeneratedFile],
        expires_at: float | None = None,
    ) -> None:
        """`expires_at` (Unix seconds): when the files stop being served, if the API said."""
        listed = ",".join(
            f'{{"url":{_value(f.url)},"type":{_value(f.type)},"size":{int(f.size)}}}'
            for f in files
        )
        expires = "" if expires_at is None else f',"expires":{_value(format_api_time(expires_at))}'
        await self._append(
            key, service, ResultEvent.GENERATED, f'{_task(task_id)},"files":[{listed}]{expires}'
        )

    async def generation_failed(
        self, key: str, service: str, task_id: str, error: GenerationError
    ) -> None:
        fields = (
            f'{_task(task_id)},"error":{{"code":{_value(error.code)},'
            f'"message":{_value(error.message)},"retryable":{_value(error.retryable)}}}'
        )
        await self._append(key, service, ResultEvent.GENERATION_FAILED, fields)

    async def downloaded(
        self, key: str, service: str, task_id: str, files: Sequence[DownloadedFile]
    ) -> None:
        listed = ",".join(
            f'{{"path":{_value(f.path)},"bytes":{int(f.bytes)},"sha256":{_value(f.sha256)}}}'
            for f in files
        )
        await self._append(
            key, service, ResultEvent.DOWNLOADED, f'{_task(task_id)},"files":[{listed}]'
        )

    async def expired(self, key: str, service: str, task_id: str) -> None:
        await self._append(key, service, ResultEvent.EXPIRED, _task(task_id))

    async def lost(self, key: str, service: str, reason: str, session_id: str) -> None:
        fields = f',"reason":{_value(reason)},"session_id":{_value(session_id)}'
        await self._append(key, service, ResultEvent.LOST, fields)


def _task(task_id: str) -> str:
    return f',"task_id":{_value(task_id)}'


# --- Replay ----------------------------------------------------------------------------------


@dataclass(slots=True)
class ResultRecord:
    """What the results ledger says of one key."""

    service: str
    event: ResultEvent
    """The last event."""
    task_id: str = ""
    """The TaskId the last event is about ("" for `lost`)."""
    recovered_task_id: str = ""
    """The TaskId the last `recovered` line found for `recovered_session_id`."""
    recovered_session_id: str = ""
    generated: tuple[GeneratedFile, ...] = ()
    """The files of the last `generated` line."""
    generated_task_id: str = ""
    generated_at: str = ""
    """The last `generated` line's `ts`: when the task was seen finished (its URLs' clock)."""
    generated_expires: str = ""
    """The last `generated` line's `expires` ("" when the API gave no end for its files)."""
    downloaded: tuple[DownloadedFile, ...] = ()
    error: GenerationError | None = None
    """The last `generation_failed` line's error."""
    lost_reason: str = ""
    lost_session_id: str = ""
    failed_task_ids: frozenset[str] = frozenset()
    """Every TaskId whose generation failed: its size numbers the next regeneration."""

    def about(self, task_id: str) -> bool:
        """True when the last event is about `task_id` (the key's current submission)."""
        return self.task_id == task_id


@dataclass(slots=True)
class ResultsReplay:
    path: Path
    records: dict[str, ResultRecord] = field(default_factory=dict)
    skipped_lines: int = 0

    def get(self, key: str) -> ResultRecord | None:
        return self.records.get(key)


def replay_results(path: Path, *, lean: bool = False, keys: Container[str] | None = None,
                   warn: bool = True) -> ResultsReplay:
    """Fold the results ledger at `path` (missing: empty) into each key's `ResultRecord`.

    `lean` keeps only what a task's current state needs, for a collect over a large batch
    (docs/results.md): the files of a `generated` line (and its time) only while it is the
    last line, and of a `downloaded` line only the paths (`bytes` 0, `sha256` "").
    With `keys`, only those keys' records (the other keys' lines are passed over unparsed).
    Lines that do not parse (a torn tail left by kill -9) are skipped, with a warning unless
    `warn` is False."""
    result = ResultsReplay(path)
    try:
        stream = open(path, "rb")  # noqa: SIM115 - closed by `with` below
    except FileNotFoundError:
        return result
    with stream:
        _fold(stream, result, lean, keys)
    if result.skipped_lines and warn:
        logger.warning("results ledger %s: %d unreadable lines skipped (a crash's torn tail)",
                       path, result.skipped_lines)
    return result


def _fold(lines: Iterable[bytes], into: ResultsReplay, lean: bool,
          keys: Container[str] | None) -> None:
    for line in lines:
        if keys is not None and (key := written_key(line)) is not None and key not in keys:
            continue
        if not line.strip():
            continue
        obj = _parse(line)
        if obj is None or not _apply(obj, into.records, lean, keys):
            into.skipped_lines += 1


def _parse(line: bytes) -> dict[str, Any] | None:
    try:
        obj = json.loads(line)
    except (ValueError, RecursionError):
        return None
    return obj if isinstance(obj, dict) else None


def _apply(obj: dict[str, Any], records: dict[str, ResultRecord], lean: bool,
           keys: Container[str] | None = None) -> bool:
    """Fold one parsed line; False when it is not a results record."""
    key, service, event_name = obj.get("key"), obj.get("service"), obj.get("event")
    if not (isinstance(key, str) and is_key(key) and isinstance(service, str)):
        return False
    try:
        event = ResultEvent(str(event_name))
    except ValueError:
        return False
    if keys is not None and key not in keys:
        return True
    task_id = str(obj.get("task_id") or "")
    record = records.get(key)
    if record is None:
        record = records[key] = ResultRecord(_SERVICES.get(service, service), event, task_id)
    record.event, record.task_id = event, task_id
    if lean and event is not ResultEvent.GENERATED:
        record.generated, record.generated_at, record.generated_expires = (), "", ""
    if event is ResultEvent.RECOVERED:
        record.recovered_task_id = task_id
        record.recovered_session_id = str(obj.get("session_id") or "")
    elif event is ResultEvent.GENERATED:
        record.generated = tuple(_generated_files(obj.get("files")))
        record.generated_task_id = task_id
        record.generated_at = str(obj.get("ts") or "")
        record.generated_expires = str(obj.get("expires") or "")
    elif event is ResultEvent.DOWNLOADED:
        record.downloaded = tuple(_downloaded_files(obj.get("files"), lean))
    elif event is ResultEvent.GENERATION_FAILED:
        record.error = _error(obj.get("error"))
        record.failed_task_ids = record.failed_task_ids | {task_id}  # rare: most never fail
    elif event is ResultEvent.LOST:
        record.lost_reason = str(obj.get("reason") or "")
        record.lost_session_id = str(obj.get("session_id") or "")
    return True


def _generated_files(files: Any) -> Iterable[GeneratedFile]:
    for item in files if isinstance(files, list) else ():
        if isinstance(item, dict):
            yield GeneratedFile(str(item.get("url", "")), str(item.get("type", "")),
                                _int(item.get("size")))


def _downloaded_files(files: Any, lean: bool) -> Iterable[DownloadedFile]:
    for item in files if isinstance(files, list) else ():
        if isinstance(item, dict):
            path = str(item.get("path", ""))
            yield DownloadedFile(path, 0, "") if lean else DownloadedFile(
                path, _int(item.get("bytes")), str(item.get("sha256", "")))


def _error(error: Any) -> GenerationError:
    if not isinstance(error, dict):
        return GenerationError("UnknownError", "", False)
    return GenerationError(str(error.get("code", "UnknownError")), str(error.get("message", "")),
                           error.get("retryable") is True)


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
