"""Downloading one output file: streamed to `<name>.part`, checked, fsynced, renamed
(docs/results.md#downloads).

Guarantees: a file is never held in memory (chunks of `CHUNK` bytes go straight to disk, hashed
as they pass); a file under its final name is always complete and checked (its size against the
API's and `Content-Length`), because it gets that name only by an atomic rename after fsync; a
kill -9 at any moment leaves at most a `.part` file, which the next run overwrites. Network
errors, timeouts and 5xx are retried with back-off; 403/404 mean the URL has expired (MPS keeps
images 12 hours; VOD `Temporary` storage ends at its `ExpireTime`) and are not retried.

    async with download_session(policy) as session:
        await download_task_files(session, tracked, out_dir, results_writer, policy)
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import logging
import os
import random
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from batcher.results.names import file_name
from batcher.results.rows import ResultState
from batcher.results.tracking import Tracked
from batcher.state.results_ledger import DownloadedFile, ResultsLedgerWriter

log = logging.getLogger("batcher")

CHUNK = 1 << 18
"""Bytes read and written at a time: 256 KiB keeps memory flat and syscalls few."""
PART_SUFFIX = ".part"
EXPIRED_STATUSES = frozenset({403, 404, 410})


@dataclass(frozen=True, slots=True)
class DownloadPolicy:
    """How many downloads at once, and how hard to try each."""

    concurrency: int = 8
    max_attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 15.0
    timeout: float = 300.0
    """Seconds for one whole file (connect included)."""


class DownloadExpired(Exception):
    """The URL answers 403/404/410: the file is gone, trying again will not bring it back."""


class DownloadFailed(Exception):
    """Every attempt failed (network, 5xx, a short or oversized body): try in a later run."""


class _Retryable(Exception):
    pass


def download_session(policy: DownloadPolicy) -> aiohttp.ClientSession:
    """The HTTP session of the downloads: no signing, no compression, `concurrency` sockets."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=policy.concurrency),
        headers={"Accept-Encoding": "identity"},
    )


async def download_task_files(
    session: aiohttp.ClientSession,
    tracked: Tracked,
    out_dir: Path,
    results: ResultsLedgerWriter,
    policy: DownloadPolicy,
) -> None:
    """Every file of a generated task, then its `downloaded` line (or `expired`); a task whose
    downloads failed stays `generated`, for the next run."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files: list[DownloadedFile] = []
    try:
        for index, generated in enumerate(tracked.generated):
            target = out_dir / file_name(tracked.row, tracked.prompt, tracked.key, index,
                                         generated.type)
            done = existing_file(target, out_dir) or await fetch_file(
                session, generated.url, target, expected_size=generated.size, policy=policy,
                out_dir=out_dir)
            files.append(done)
    except DownloadExpired as error:
        await results.expired(tracked.key, tracked.service, tracked.task_id)
        tracked.fail(ResultState.EXPIRED, "UrlExpired", str(error))
        return
    except DownloadFailed as error:
        log.warning("task %s not downloaded this run: %s", tracked.task_id, error)
        return
    await results.downloaded(tracked.key, tracked.service, tracked.task_id, files)
    tracked.state, tracked.files = ResultState.DOWNLOADED, tuple(files)


async def fetch_file(
    session: aiohttp.ClientSession,
    url: str,
    target: Path,
    *,
    expected_size: int,
    policy: DownloadPolicy,
    out_dir: Path,
) -> DownloadedFile:
    """Download `url` to `target` (through `target.part`); `expected_size` 0 means unknown.

    `DownloadExpired` for an expired URL, `DownloadFailed` once the attempts are spent."""
    delay = policy.base_delay
    for attempt in range(1, policy.max_attempts + 1):
        try:
            size, digest = await _fetch_once(session, url, target, expected_size, policy)
        except _Retryable as error:
            if attempt == policy.max_attempts:
                raise DownloadFailed(f"{url}: {error}") from None
            await asyncio.sleep(delay * (0.5 + random.random()))  # jitter: not a secret
            delay = min(policy.max_delay, delay * 2)
            continue
        return DownloadedFile(target.relative_to(out_dir).as_posix(), size, digest)
    raise AssertionError("unreachable")  # pragma: no cover


async def _fetch_once(
    session: aiohttp.ClientSession,
    url: str,
    target: Path,
    expected_size: int,
    policy: DownloadPolicy,
) -> tuple[int, str]:
    part = target.with_name(target.name + PART_SUFFIX)
    try:
        timeout = aiohttp.ClientTimeout(total=policy.timeout)
        async with session.get(url, timeout=timeout) as response:
            if response.status in EXPIRED_STATUSES:
                raise DownloadExpired(f"{url}: HTTP {response.status}")
            if response.status != 200:
                raise _Retryable(f"HTTP {response.status}")
            length = response.content_length
            if expected_size and length is not None and length != expected_size:
                raise _Retryable(f"Content-Length {length}, the API says {expected_size} bytes")
            size, digest = await _stream_to(part, response)
    except (aiohttp.ClientError, TimeoutError, OSError) as error:
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
            raise  # a full disk is not the network's fault: stop
        _remove(part)
        raise _Retryable(f"{type(error).__name__}: {error}") from None
    wanted = expected_size or length
    if wanted is not None and size != wanted:
        _remove(part)
        raise _Retryable(f"got {size} bytes, expected {wanted}")
    os.replace(part, target)  # atomic: the final name only ever holds a whole, synced file
    await asyncio.get_running_loop().run_in_executor(None, _sync_directory, target.parent)
    return size, digest


async def _stream_to(part: Path, response: aiohttp.ClientResponse) -> tuple[int, str]:
    """Write the body to `part` chunk by chunk, hashing it; fsync before returning."""
    digest = hashlib.sha256()
    size = 0
    # Creating a file can take milliseconds on a journaling filesystem: not on the event loop.
    fd = await asyncio.get_running_loop().run_in_executor(
        None, os.open, part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        async for chunk in response.content.iter_chunked(CHUNK):
            digest.update(chunk)
            view = memoryview(chunk)
            while view:  # a page-cache write: microseconds, not worth a thread per chunk
                view = view[os.write(fd, view) :]
            size += len(chunk)
        await asyncio.get_running_loop().run_in_executor(None, os.fsync, fd)
    finally:
        os.close(fd)
    return size, digest.hexdigest()


def existing_file(target: Path, out_dir: Path) -> DownloadedFile | None:
    """A file already under its final name (a run killed between rename and ledger line): it is
    whole by construction, so it is hashed and kept rather than fetched again."""
    if not target.is_file():
        return None
    digest = hashlib.sha256()
    size = 0
    with open(target, "rb") as stream:
        while chunk := stream.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return DownloadedFile(target.relative_to(out_dir).as_posix(), size, digest.hexdigest())


def _sync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        with contextlib.suppress(OSError):  # some filesystems cannot sync a directory
            os.fsync(fd)
    finally:
        os.close(fd)


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()
