"""Completion records: "this exact manifest is entirely done in this exact ledger".

A `submit` that ends with every task of a manifest done writes, beside the ledger, a small JSON
file (`<ledger>.done`) naming the manifest's content digest (the manifest file and the CSV it
reads, byte for byte), how many tasks each service has, and the ledger as it was then (its size
and the digest of its last 64 KiB). The next `submit` of the same manifest on the same ledger,
typically cron coming back to a finished batch, recognises both and stops there: nothing to
send, exit 0, without replaying a ledger of millions of lines or expanding the manifest again.

Why that is safe: tasks and keys are a function of the manifest's bytes alone
(docs/manifests.md#keys-and-sessionids), done is a final state, and the ledger is append-only, so an
unchanged ledger still has every one of those keys done. Any change (a manifest edited by one byte,
a line appended to the ledger, a ledger replaced) fails the check and the full pass runs as if the
record did not exist. The record is only a shortcut: deleting it is always harmless.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batcher.state.atomic import replace_text

FORMAT = "batcher-completion-1"
"""Also part of the manifest digest: a change of this scheme invalidates every record."""

TAIL_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class LedgerMark:
    """A ledger as it was: its size and the digest of its last `TAIL_BYTES` bytes."""

    size: int
    tail_sha256: str


def record_path(ledger: Path) -> Path:
    return ledger.with_name(ledger.name + ".done")


def manifest_digest(files: Sequence[Path]) -> str:
    """SHA-256 over every file a manifest's tasks come from, in order, with their lengths."""
    digest = hashlib.sha256(FORMAT.encode())
    for path in files:
        with path.open("rb") as stream:
            content = hashlib.file_digest(stream, "sha256")
        digest.update(f"\n{path.stat().st_size}:".encode())
        digest.update(content.digest())
    return digest.hexdigest()


def mark_ledger(ledger: Path) -> LedgerMark | None:
    """The ledger's mark now, or None if it does not exist."""
    try:
        with ledger.open("rb") as stream:
            size = os.fstat(stream.fileno()).st_size
            stream.seek(max(0, size - TAIL_BYTES))
            tail = stream.read(TAIL_BYTES)
    except FileNotFoundError:
        return None
    return LedgerMark(size, hashlib.sha256(tail).hexdigest())


def completed_tasks(digest: str, ledger: Path) -> dict[str, int] | None:
    """Tasks per service if the record says the manifest of `digest` is entirely done in `ledger`
    as it is now; None when there is no record, or it is for another manifest or ledger state."""
    record = _read(record_path(ledger))
    if record is None:
        return None
    tasks = record["manifests"].get(digest)
    if not isinstance(tasks, dict) or mark_ledger(ledger) != LedgerMark(**record["ledger"]):
        return None
    try:
        return {str(service): int(count) for service, count in tasks.items()}
    except (TypeError, ValueError):
        return None


def record_completion(ledger: Path, done: Mapping[str, Mapping[str, int]]) -> None:
    """Record that each manifest digest in `done` (→ tasks per service) is entirely done in the
    ledger as it is now. Call with the ledger locked and every line of the run written."""
    mark = mark_ledger(ledger)
    if mark is None:
        return
    path = record_path(ledger)
    previous = _read(path)
    manifests: dict[str, Any] = {}
    if previous is not None and previous["ledger"] == _mark_json(mark):
        manifests.update(previous["manifests"])  # other manifests done in this same ledger
    manifests.update({digest: dict(tasks) for digest, tasks in done.items()})
    text = json.dumps({"format": FORMAT, "ledger": _mark_json(mark), "manifests": manifests})
    replace_text(path, text)


def _mark_json(mark: LedgerMark) -> dict[str, Any]:
    return {"size": mark.size, "tail_sha256": mark.tail_sha256}


def _read(path: Path) -> dict[str, Any] | None:
    """A record file's content, or None if it is missing, unreadable or of another format."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        if record.get("format") != FORMAT:
            return None
        LedgerMark(**record["ledger"])
        if not isinstance(record["manifests"], dict):
            return None
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None
    return dict(record)
