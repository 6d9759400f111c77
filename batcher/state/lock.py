"""One run at a time per ledger: an exclusive lock that a crash cannot leave behind.

Guarantees: at most one `LedgerLock` per ledger is held at a time, across processes (an `flock` on
the sidecar file `<ledger>.lock`); a second taker fails at once with `LedgerLocked`, which names
the holder; the kernel drops the lock when its holder exits, even by `kill -9`.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from batcher.exceptions import LedgerLocked

Clock = Callable[[], datetime]
"""Returns the current time as an aware datetime (injected by tests)."""

LOCK_SUFFIX = ".lock"


def utc_now() -> datetime:
    """The real current time, in UTC: the default `Clock`."""
    return datetime.now(UTC)


def lock_path(ledger: Path) -> Path:
    """The sidecar lock file of `ledger`: `x.ledger.jsonl` -> `x.ledger.jsonl.lock`.

    The directory is resolved, so `x`, `./x` and `link-to-dir/x` share one lock.
    """
    return ledger.parent.resolve() / (ledger.name + LOCK_SUFFIX)


@dataclass(frozen=True, slots=True)
class LockHolder:
    """Who holds a ledger, as the holder wrote it into the lock file."""

    pid: int
    host: str
    since: str
    """ISO 8601 UTC time at which the holder took the lock."""

    def to_json(self) -> bytes:
        """The lock file's content."""
        return json.dumps({"pid": self.pid, "host": self.host, "since": self.since}).encode()

    @classmethod
    def from_json(cls, data: bytes) -> LockHolder | None:
        """The holder described by a lock file's content, None when it is empty or garbled."""
        try:
            fields = json.loads(data)
            return cls(pid=int(fields["pid"]), host=str(fields["host"]), since=str(fields["since"]))
        except (ValueError, TypeError, KeyError):
            return None


class LedgerLock:
    """An exclusive lock on one ledger, held from `acquire` until `release` or process exit."""

    __slots__ = ("_fd", "holder", "path")

    def __init__(self, path: Path, fd: int, holder: LockHolder) -> None:
        self.path = path
        self.holder = holder
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, ledger: Path, clock: Clock = utc_now) -> LedgerLock:
        """Take the lock of `ledger` at once, or raise `LedgerLocked` naming whoever has it."""
        path = lock_path(ledger)
        # The lock file is never deleted: unlinking a flock'ed file lets two runs lock two inodes.
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = LockHolder.from_json(_read_all(fd))
            os.close(fd)
            # No name yet: the holder took the lock a moment ago and is still writing it.
            who = "another run" if holder is None else (
                f"pid {holder.pid} on host {holder.host} since {holder.since}")
            raise LedgerLocked(ledger, holder, who) from None
        except BaseException:
            os.close(fd)
            raise
        holder = LockHolder(pid=os.getpid(), host=socket.gethostname(), since=_iso_seconds(clock()))
        _overwrite(fd, holder.to_json())
        return cls(path, fd, holder)

    @property
    def held(self) -> bool:
        """True until `release`."""
        return self._fd is not None

    def release(self) -> None:
        """Give the lock up (idempotent); the file stays, emptied, for the next run."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            # Emptied first, so nobody ever reads a departed holder's name as the current one.
            os.ftruncate(fd, 0)
        finally:
            os.close(fd)  # closing the last descriptor drops the flock


def _read_all(fd: int) -> bytes:
    """The whole content of the (small) file `fd`, whatever its offset."""
    return os.pread(fd, 4096, 0)


def _overwrite(fd: int, data: bytes) -> None:
    """Replace the content of the file `fd` with `data`."""
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)


def _iso_seconds(moment: datetime) -> str:
    """`2026-11-22T10:00:00Z`: an aware datetime in UTC, to the second."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
