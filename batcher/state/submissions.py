"""The submit ledger read for `collect` and `--regenerate`: each key's TaskId and SessionId.

Replay (`batcher.state.replay`) keeps only each key's state, compactly, for `submit`'s resume.
Collecting needs more of a done task: the TaskId of its `submitted` line, or, for a vod
`duplicate`, the SessionId and the times of the `sending` lines that carried it (the window in
which `DescribeTasks` finds the task that SessionId created). This reader takes no lock (a
`submit` may be appending to the ledger right now) and skips a torn or half-written last line.

    submissions = read_submissions(ledger_path)
    submission = submissions.get(task.key)   # None: never sent

`SubmitLedgerTail` does the same incrementally, for a collector that follows a running submit:
each `update()` reads only the lines appended since the last one and returns the keys they named
(with `keep=False`, it holds those lines' submissions alone, not every key's);
`submit_running(ledger)` tells whether a submit holds the ledger now.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import Container, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batcher.state.events import SERVICE_INDEX, is_key
from batcher.state.line_keys import written_key
from batcher.state.lock import LockHolder, lock_path

logger = logging.getLogger("batcher.state.submissions")

_EVENTS = {name: name for name in ("sending", "submitted", "duplicate", "failed")}
_SERVICES = {name: name for name in SERVICE_INDEX}
KEPT_SENDING_TIMES = 8
"""`sending` times kept per key: a task is sent a handful of times at most; the latest matter."""


@dataclass(slots=True)
class Submission:
    """What the submit ledger says of one key, as of its last line."""

    service: str
    event: str
    """The last line's event: `sending`, `submitted`, `duplicate` or `failed`."""
    task_id: str = ""
    """The TaskId of the last `submitted` line ("" when the last line is not `submitted`)."""
    session_id: str = ""
    """The SessionId of the last line that carried one."""
    error_code: str = ""
    error_message: str = ""
    retryable: bool = False
    sendings: tuple[tuple[str, str], ...] = ()
    """(ts, session_id) of the latest `sending` lines, oldest first (a tuple: most keys have
    none, and an empty tuple is shared, a list is not)."""

    def sending_times(self, session_id: str) -> list[str]:
        """The `ts` of the `sending` lines that carried `session_id`."""
        return [ts for ts, sent in self.sendings if sent == session_id]


def read_submissions(path: Path, keys: Container[str] | None = None, *,
                     warn: bool = True) -> dict[str, Submission]:
    """Each key's `Submission` (only the keys in `keys`, if given: the other keys' lines are
    passed over unparsed); a missing ledger is empty.

    Unreadable lines (a torn tail, a line still being written) are skipped, with a warning
    unless `warn` is False: a running `submit` writes whole lines, so a partial one is at most
    the last."""
    submissions: dict[str, Submission] = {}
    try:
        stream = open(path, "rb")  # noqa: SIM115 - closed by `with` below
    except FileNotFoundError:
        return submissions
    with stream:
        skipped = _fold(stream, submissions, keys)
    if skipped and warn:
        logger.warning("ledger %s: %d unreadable lines skipped", path, skipped)
    return submissions


class SubmitLedgerTail:
    """A submit ledger read as it grows: each key's `Submission`, kept up to date."""

    __slots__ = ("_keep", "_offset", "path", "skipped", "submissions")

    def __init__(self, path: Path, *, offset: int = 0, keep: bool = True) -> None:
        self.path = path
        self.submissions: dict[str, Submission] = {}
        """Each key's submission as the lines read say: all of them, or with `keep` False only
        the lines of the last `update` (memory bounded by what a submit appends meanwhile)."""
        self.skipped = 0
        self._offset = offset
        """Where the next read starts: the ledger's lines before it are not read."""
        self._keep = keep

    def update(self) -> set[str]:
        """Fold the whole lines appended since the last call; the keys they named."""
        if not self._keep:
            self.submissions = {}
        try:
            stream = open(self.path, "rb")  # noqa: SIM115 - closed by `with` below
        except FileNotFoundError:
            return set()
        changed: set[str] = set()
        with stream:
            stream.seek(self._offset)
            for line in stream:
                if not line.endswith(b"\n"):
                    break  # still being written: read whole next time
                self._offset += len(line)
                key = _fold_line(line, self.submissions, None)
                if key is None:
                    self.skipped += line.strip() != b""
                else:
                    changed.add(key)
        return changed


def submit_running(ledger: Path) -> bool:
    """True while a `submit` holds `ledger`'s lock (its holder's name is in the lock file, and on
    this host its process is alive: a run killed by -9 leaves its name behind)."""
    try:
        holder = LockHolder.from_json(lock_path(ledger).read_bytes())
    except OSError:
        return False
    if holder is None:
        return False
    if holder.host != socket.gethostname():
        return True
    try:
        os.kill(holder.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _fold(lines: Iterable[bytes], into: dict[str, Submission], keys: Container[str] | None) -> int:
    skipped = 0
    for line in lines:
        if not line.endswith(b"\n"):
            break  # still being written, or torn: the next read sees it whole
        if keys is not None and (key := written_key(line)) is not None and key not in keys:
            continue
        if line.strip() and _fold_line(line, into, keys) is None:
            skipped += 1
    return skipped


def _fold_line(line: bytes, into: dict[str, Submission], keys: Container[str] | None) -> str | None:
    """Fold one whole line; its key, or None when it is not a ledger record."""
    try:
        obj = json.loads(line)
    except (ValueError, RecursionError):
        return None
    if not isinstance(obj, dict) or not _apply(obj, into, keys):
        return None
    return str(obj["key"])


def _apply(obj: dict[str, Any], into: dict[str, Submission], keys: Container[str] | None) -> bool:
    key, service, event = obj.get("key"), obj.get("service"), obj.get("event")
    if not (isinstance(key, str) and is_key(key) and isinstance(service, str)):
        return False
    if not isinstance(event, str) or event not in _EVENTS:
        return False
    if keys is not None and key not in keys:
        return True
    event = _EVENTS[event]  # the shared string, not the line's copy: memory per key
    submission = into.get(key)
    if submission is None:
        submission = into[key] = Submission(_SERVICES.get(service, service), event)
    submission.event = event
    session_id = obj.get("session_id")
    if isinstance(session_id, str) and session_id:
        submission.session_id = session_id
    submission.task_id = str(obj.get("task_id") or "") if event == "submitted" else ""
    if event == "submitted":
        submission.sendings = ()  # only a duplicate's window needs them: a TaskId is known
    if event == "sending":
        sent = (str(obj.get("ts", "")), str(session_id or ""))
        submission.sendings = (*submission.sendings[1 - KEPT_SENDING_TIMES:], sent)
    elif event == "failed":
        error = obj.get("error")
        error = error if isinstance(error, dict) else {}
        submission.error_code = str(error.get("code", ""))
        submission.error_message = str(error.get("message", ""))
        submission.retryable = error.get("retryable") is True
    return True
