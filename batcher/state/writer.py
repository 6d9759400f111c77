"""Writing the ledger: each line on disk (written and fdatasync'ed) before its `await` returns.

Many lines share one write and one sync (group commit); `open_ledger` takes the ledger's lock first,
so one run at a time writes it, and ends a torn tail left by a crash before appending.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Final, Self

from batcher.api.services import SERVICE_NAMES
from batcher.exceptions import LedgerError
from batcher.state.events import SERVICE_INDEX, is_attempt, is_key
from batcher.state.lock import Clock, LedgerLock, utc_now

logger = logging.getLogger("batcher.state.ledger")


def open_ledger(path: Path, *, clock: Clock = utc_now) -> LedgerWriter:
    """Lock the submit ledger at `path` and open it for appending (see `LedgerWriter.open`)."""
    return LedgerWriter.open(path, clock=clock)


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


def _write_failure(path: Path, exc: OSError) -> str:
    """One line for a failed write: a full disk names the file and the disk, by its mount."""
    if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
        return f"cannot write ledger {path}: {exc}"
    mount = path.absolute().parent
    while not os.path.ismount(mount) and mount != mount.parent:
        mount = mount.parent
    what = "no space left" if exc.errno == errno.ENOSPC else "disk quota exceeded"
    return (f"cannot write ledger {path}: {what} on the disk mounted at {mount}; free space "
            "there (or put the ledger elsewhere with --ledger), then run again")


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
    if not is_key(key):
        raise ValueError(f"a ledger key is 32 hex digits, got {key!r}")
    if service not in SERVICE_INDEX:
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

    @classmethod
    def open(cls, path: Path, *, clock: Clock = utc_now) -> Self:
        """Lock the ledger at `path` (raising `LedgerLocked` at once if another run holds it) and
        open it for appending, creating it and its parent directories if needed. A subclass (the
        results ledger) gets the same lock, torn-tail repair and group commit."""
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
        return cls(path, fd, lock, clock)

    async def __aenter__(self) -> Self:
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
        if not is_attempt(attempt):
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
                    self._stop(LedgerError(_write_failure(self.path, exc)), waiters)
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
