"""Downloading one output file: streamed to `<name>.part`, checked, fsynced, renamed
(docs/results.md#downloads).

Guarantees: a file is never held in memory (chunks of `CHUNK` bytes go straight to disk, hashed
as they pass); a file under its final name is always complete and checked (its size against the
API's and `Content-Length`), because it gets that name only by an atomic rename after fsync; a
kill -9 at any moment leaves at most a `.part` file, which the next run overwrites. Network
errors, timeouts and 5xx are retried with back-off; 403/404 mean the URL has expired (MPS keeps
images 12 hours; VOD `Temporary` storage ends at its `ExpireTime`) and are not retried.

What arrives is not trusted (docs/results.md): a URL must be `https` (plain `http` only to a
loopback host); a file over `max_bytes` (by `Content-Length`, the API's size or the body itself)
is not read on; the first bytes must be an image (PNG, JPEG, WebP, GIF, BMP, TIFF, AVIF/HEIF) of
the announced type; each attempt has a total time and an idle-read bound. A refusal
(`DownloadRefused`) is that task's error for this run: results.csv shows it, the results ledger
keeps the task `generated`, so a later run (a larger `--max-image-bytes`, a repaired CDN) tries
again.

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
from urllib.parse import urlsplit

import aiohttp

from batcher.results.names import file_name
from batcher.results.rows import ResultState
from batcher.results.sniff import image_type, normalized_type
from batcher.results.tracking import Tracked
from batcher.state.results_ledger import DownloadedFile, ResultsLedgerWriter
from batcher.wire.addresses import is_loopback
from batcher.wire.errors import printable

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
    """Seconds for one whole file, every attempt and back-off together (a 1 byte/s body holds
    a run no longer than this)."""
    idle_timeout: float = 30.0
    """Seconds a download may go without receiving a byte."""
    max_bytes: int = 64 << 20
    """The largest file accepted (`collect --max-image-bytes`): the emulator's are KBs, a real
    4K PNG some tens of MB."""


class DownloadExpired(Exception):
    """The URL answers 403/404/410: the file is gone, trying again will not bring it back."""


class DownloadFailed(Exception):
    """Every attempt failed (network, 5xx, a short or oversized body): try in a later run."""


class DownloadRefused(Exception):
    """What the URL is or serves is not an acceptable image: not retried in this run."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


URL_REFUSED = "DownloadRefused.Url"
TOO_LARGE = "DownloadRefused.TooLarge"
NOT_AN_IMAGE = "DownloadRefused.NotAnImage"


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
                out_dir=out_dir, announced=generated.type)
            files.append(done)
    except DownloadExpired as error:
        await results.expired(tracked.key, tracked.service, tracked.task_id)
        tracked.fail(ResultState.EXPIRED, "UrlExpired", str(error))
        return
    except DownloadFailed as error:
        log.warning("task %s not downloaded this run: %s", printable(tracked.task_id), error)
        return
    except DownloadRefused as error:
        log.warning("task %s not downloaded: %s: %s", printable(tracked.task_id), error.code,
                    error)
        tracked.fail(ResultState.GENERATION_FAILED, error.code, str(error))
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
    announced: str = "",
) -> DownloadedFile:
    """Download `url` to `target` (through `target.part`); `expected_size` 0 means unknown,
    `announced` is the type the API gives ("png", "jpg"...; "" for any image).

    `DownloadExpired` for an expired URL, `DownloadRefused` for a URL or a body that is not
    acceptable, `DownloadFailed` once the attempts are spent."""
    check_url(url)
    if expected_size > policy.max_bytes:
        raise DownloadRefused(TOO_LARGE, f"{printable(url)}: the API says {expected_size} bytes, "
                              f"over --max-image-bytes {policy.max_bytes}")
    delay = policy.base_delay
    loop = asyncio.get_running_loop()
    deadline = loop.time() + policy.timeout
    for attempt in range(1, policy.max_attempts + 1):
        try:
            size, digest = await _fetch_once(session, url, target, expected_size, policy,
                                             normalized_type(announced), deadline - loop.time())
        except _Retryable as error:
            pause = delay * (0.5 + random.random())  # jitter: not a secret
            if attempt == policy.max_attempts or loop.time() + pause >= deadline:
                raise DownloadFailed(f"{printable(url)}: {error} (attempt {attempt}, "
                                     f"{policy.timeout:g} s per file)") from None
            await asyncio.sleep(pause)
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
    announced: str,
    time_left: float,
) -> tuple[int, str]:
    part = target.with_name(target.name + PART_SUFFIX)
    try:
        timeout = aiohttp.ClientTimeout(total=max(time_left, 0.001),
                                        sock_read=policy.idle_timeout)
        async with session.get(url, timeout=timeout) as response:
            if response.history:  # redirected: where it ended must pass the same check
                check_url(str(response.url))
            if response.status in EXPIRED_STATUSES:
                raise DownloadExpired(f"{printable(url)}: HTTP {response.status}")
            if response.status != 200:
                raise _Retryable(f"HTTP {response.status}")
            length = response.content_length
            if length is not None and length > policy.max_bytes:
                raise DownloadRefused(TOO_LARGE, f"{printable(url)}: Content-Length {length}, "
                                      f"over --max-image-bytes {policy.max_bytes}")
            if expected_size and length is not None and length != expected_size:
                raise _Retryable(f"Content-Length {length}, the API says {expected_size} bytes")
            if not announced and response.content_type.startswith("image/"):
                announced = normalized_type(response.content_type.removeprefix("image/"))
            size, digest = await _stream_to(part, response, _Checks(url, announced, policy))
    except DownloadRefused:
        _remove(part)
        raise
    except (aiohttp.ClientError, TimeoutError, OSError) as error:
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
            raise  # a full disk is not the network's fault: stop
        _remove(part)
        raise _Retryable(printable(f"{type(error).__name__}: {error}", 300)) from None
    wanted = expected_size or length
    if wanted is not None and size != wanted:
        _remove(part)
        raise _Retryable(f"got {size} bytes, expected {wanted}")
    os.replace(part, target)  # atomic: the final name only ever holds a whole, synced file
    await asyncio.get_running_loop().run_in_executor(None, _sync_directory, target.parent)
    return size, digest


@dataclass(frozen=True, slots=True)
class _Checks:
    """What the body must be: an image of `announced` type, at most `policy.max_bytes`."""

    url: str
    announced: str
    policy: DownloadPolicy

    def head(self, head: bytes) -> None:
        """Refuse the body by its first bytes (an HTML error page served with 200)."""
        found = image_type(head)
        if found is None:
            raise DownloadRefused(NOT_AN_IMAGE, f"{printable(self.url)}: not an image (it "
                                  f"starts {printable(repr(head[:16]))})")
        if self.announced and found != self.announced:
            raise DownloadRefused(NOT_AN_IMAGE, f"{printable(self.url)}: a {found} image, "
                                  f"announced as {self.announced}")

    def size(self, size: int) -> None:
        if size > self.policy.max_bytes:
            raise DownloadRefused(TOO_LARGE, f"{printable(self.url)}: over --max-image-bytes "
                                  f"{self.policy.max_bytes} (not read on)")


HEAD_BYTES = 16
"""Bytes enough to tell the image formats apart (WebP's and AVIF's tags end at byte 12)."""


async def _stream_to(
    part: Path, response: aiohttp.ClientResponse, checks: _Checks
) -> tuple[int, str]:
    """Write the body to `part` chunk by chunk, hashing it and checking its first bytes and
    its size as they arrive; fsync before returning."""
    digest = hashlib.sha256()
    size = 0
    head = b""
    # Creating a file can take milliseconds on a journaling filesystem: not on the event loop.
    fd = await asyncio.get_running_loop().run_in_executor(
        None, os.open, part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        async for chunk in response.content.iter_chunked(CHUNK):
            if len(head) < HEAD_BYTES:
                head += chunk[: HEAD_BYTES - len(head)]
                if len(head) == HEAD_BYTES:
                    checks.head(head)
            checks.size(size + len(chunk))
            digest.update(chunk)
            view = memoryview(chunk)
            while view:  # a page-cache write: microseconds, not worth a thread per chunk
                view = view[os.write(fd, view) :]
            size += len(chunk)
        if len(head) < HEAD_BYTES:
            checks.head(head)  # a body shorter than any image's header
        await asyncio.get_running_loop().run_in_executor(None, os.fsync, fd)
    finally:
        os.close(fd)
    return size, digest.hexdigest()


def check_url(url: str) -> None:
    """Refuse a URL that is not `https` (plain `http` only to a loopback host, the emulator's):
    a `file://` or `ftp://` answer is never fetched, nor an image sent in the clear."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        host, parts = None, None
    if parts is None or not host or parts.scheme not in ("https", "http") or (
            parts.scheme == "http" and not is_loopback(host)):
        raise DownloadRefused(URL_REFUSED, f"refused to fetch {printable(url)!s}: an image URL "
                              "must be https (http only to a loopback host)")


def existing_file(target: Path, out_dir: Path) -> DownloadedFile | None:
    """A file already under its final name (a run killed between rename and ledger line): it is
    whole by construction, so it is hashed and kept rather than fetched again. One that is not
    an image (an HTML page a version before these checks saved as .png) is fetched again."""
    if not target.is_file():
        return None
    digest = hashlib.sha256()
    size = 0
    with open(target, "rb") as stream:
        if image_type(stream.read(HEAD_BYTES)) is None:
            return None
        stream.seek(0)
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
