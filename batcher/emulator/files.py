"""The emulator's file server: the generated images, at `GET /_files/<TaskId>/<n>.png`.

Each finished task's outputs are real PNG files (`png.PngFile`) of exactly
`GenerationConfig.image_bytes`, sent with `Content-Length`, in a colour derived from the task.
The URLs the poll answers give point here, on the host the client reached the emulator by. A
URL stops working when its file expires (`expires_at`), answered the way the real store does:

- MPS image URLs are COS pre-signed URLs kept 12 hours (`--url-ttl`): COS answers an expired
  signature with 403 `AccessDenied` "Request has expired", so the emulator does too;
- VOD `Temporary` outputs end 7 days after generation, and any output at the `ExpireTime` the
  request set: the file is deleted, so 404 `NoSuchKey`.

Test hooks (`FaultConfig.download_drop_rate` / `download_error_rate`) drop the connection
halfway through the body, or answer 503, so that a downloader's retries can be tested.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from batcher.api.results import STORAGE_TEMPORARY
from batcher.emulator.config import VOD_TEMPORARY_TTL_SECONDS, EmulatorConfig
from batcher.emulator.faults import DOWNLOAD_DROP, DOWNLOAD_ERROR, FaultInjector
from batcher.emulator.png import PngFile
from batcher.emulator.tasks import Task, TaskBook

FILES_PREFIX = "/_files"
FILE_TYPE = "png"
_XML = "application/xml"


def expires_at(task: Task, config: EmulatorConfig) -> float | None:
    """When the files of a finished `task` stop being served (None: never)."""
    spec = task.spec
    if spec.service == "mps":
        return task.finished + config.generation.url_ttl
    if spec.expire_time is not None:
        return spec.expire_time
    if (spec.storage_mode or STORAGE_TEMPORARY) == STORAGE_TEMPORARY:
        return task.finished + VOD_TEMPORARY_TTL_SECONDS
    return None


def file_url(base_url: str, task: Task, index: int, expires: float | None) -> str:
    """The URL of output `index` of `task`; `base_url` is `http://HOST:PORT` as the client used.

    MPS URLs carry their validity as COS pre-signed URLs do (`q-sign-time=start;end`); the server
    decides by the task's own timeline, not by the query.
    """
    url = f"{base_url}{FILES_PREFIX}/{task.task_id}/{index}.{FILE_TYPE}"
    if task.spec.service == "mps" and expires is not None:
        url += f"?q-sign-algorithm=sha1&q-sign-time={int(task.finished)};{int(expires)}"
    return url


@dataclass(slots=True)
class FileCounters:
    """What the file server did, for `/_emulator/stats`."""

    served: int = 0
    bytes: int = 0
    expired: int = 0
    not_found: int = 0
    dropped: int = 0
    errors: int = 0

    def to_json(self) -> dict[str, int]:
        return {
            "served": self.served,
            "bytes": self.bytes,
            "expired": self.expired,
            "not_found": self.not_found,
            "dropped_mid_body": self.dropped,
            "http_503": self.errors,
        }


class FileServer:
    """The `GET /_files/...` handler of one emulator."""

    __slots__ = ("config", "counters", "faults", "tasks")

    def __init__(
        self, config: EmulatorConfig, tasks: TaskBook, faults: FaultInjector, counters: FileCounters
    ) -> None:
        self.config = config
        self.tasks = tasks
        self.faults = faults
        self.counters = counters

    async def handle(self, request: web.Request) -> web.StreamResponse:
        now = self.config.now()
        task = self.tasks.get(request.match_info["task_id"], now)
        index = _index(request.match_info["name"])
        if task is None or index is None or task.phase(now) != "done":
            return self._missing()
        if index >= task.spec.image_count:
            return self._missing()
        expires = expires_at(task, self.config)
        if expires is not None and now >= expires:
            self.counters.expired += 1
            if task.spec.service == "mps":
                return _xml_error(403, "AccessDenied", "Request has expired")
            return _xml_error(404, "NoSuchKey", "The specified key does not exist.")

        fault = self.faults.download_fault()
        if fault == DOWNLOAD_ERROR:
            self.counters.errors += 1
            return _xml_error(503, "ServiceUnavailable", "Please reduce your request rate.")
        image = PngFile(task.colour(index), self.config.generation.image_bytes)
        response = web.StreamResponse(
            headers={"Content-Type": "image/png", "Cache-Control": "no-store"}
        )
        response.content_length = image.size
        await response.prepare(request)
        if request.method == "HEAD":
            return response
        if fault == DOWNLOAD_DROP:
            self.counters.dropped += 1
            await _send_half_then_drop(request, response, image)
            return response
        for piece in image.pieces():
            await response.write(piece)
        await response.write_eof()
        self.counters.served += 1
        self.counters.bytes += image.size
        return response

    def _missing(self) -> web.Response:
        self.counters.not_found += 1
        return _xml_error(404, "NoSuchKey", "The specified key does not exist.")


async def _send_half_then_drop(
    request: web.Request, response: web.StreamResponse, image: PngFile
) -> None:
    """Send the first half of the file, then close the connection: a truncated body."""
    left = image.size // 2
    for piece in image.pieces():
        if left <= 0:
            break
        part = piece[:left]
        await response.write(part)
        left -= len(part)
    # Closing the transport flushes what was written, then ends the connection mid-body.
    if request.transport is not None:
        request.transport.close()


def _index(name: str) -> int | None:
    stem, dot, extension = name.partition(".")
    if not dot or extension != FILE_TYPE or not stem.isdigit():
        return None
    return int(stem)


def _xml_error(status: int, code: str, message: str) -> web.Response:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message></Error>\n"
    )
    return web.Response(status=status, body=body.encode(), headers={"Content-Type": _XML})
