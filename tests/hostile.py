"""A hostile loopback server: the API answers and image downloads an operator's worst day brings.

`hostile_server()` starts it on 127.0.0.1 and yields a `Hostile`: set `answer` (the bytes every
`POST /` gets, HTTP 200) or `answer_stream` (that many bytes of a padded valid answer, streamed)
and read what it saw. Its `GET /files/<name>` serves the bad downloads by name:

- `image.png`: a real 64-byte PNG (the control);
- `page.png`: an HTML error page with HTTP 200 (`Content-Type: text/html`);
- `photo.png`: a JPEG served under a .png name;
- `huge-length.png`: a PNG header announcing `Content-Length: 10 GB`;
- `endless.png`: a PNG header then zeros without end (no Content-Length), until the reader
  leaves or `ENDLESS_LIMIT` bytes;
- `slow.png`: a PNG body at one byte a second.

Every loop is bounded and the server stops with its context.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from aiohttp import web

from tests.helpers import serving

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(48)
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(53)
HTML = b"<!DOCTYPE html><html><body><h1>502 Bad Gateway</h1></body></html>"
ENDLESS_LIMIT = 1 << 30
"""Bytes the endless body stops at, whatever the reader does (the test's safety net)."""
_PAD_CHUNK = 1 << 16


@dataclass
class Hostile:
    url: str = ""
    answer: bytes = b'{"Response": {"RequestId": "r"}}'
    answer_stream: int = 0
    """When set, `POST /` streams a valid create answer padded to this many bytes."""
    poll_answers: dict[str, object] = field(default_factory=dict)
    """X-TC-Action -> the JSON `Response` object answered to that action (else `answer`)."""
    streamed: list[int] = field(default_factory=list)
    """Bytes each streamed body (answer or endless file) got out before the reader left."""
    gets: list[str] = field(default_factory=list)

    def file_url(self, name: str) -> str:
        return f"{self.url}/files/{name}"


async def _api(hostile: Hostile, request: web.Request) -> web.StreamResponse:
    await request.read()
    action = request.headers.get("X-TC-Action", "")
    if action in hostile.poll_answers:
        body = json.dumps({"Response": hostile.poll_answers[action]}).encode()
        return web.Response(body=body, content_type="application/json")
    if not hostile.answer_stream:
        return web.Response(body=hostile.answer, content_type="application/json")
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    await response.prepare(request)
    head, tail = b'{"Response": {"TaskId": "t-1", "RequestId": "r", "Pad": "', b'"}}'
    await _stream(hostile, response, head, hostile.answer_stream - len(head) - len(tail), b"a")
    with contextlib.suppress(ConnectionError):
        await response.write(tail)
    return response


async def _stream(hostile: Hostile, response: web.StreamResponse, head: bytes, size: int,
                  fill: bytes) -> None:
    sent = 0
    try:
        await response.write(head)
        chunk = fill * _PAD_CHUNK
        while sent < size:
            await response.write(chunk[: size - sent])
            sent += min(len(chunk), size - sent)
    except ConnectionError:
        pass
    finally:
        hostile.streamed.append(sent)


async def _file(hostile: Hostile, request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    hostile.gets.append(name)
    if name == "image.png":
        return web.Response(body=PNG, content_type="image/png")
    if name == "page.png":
        return web.Response(body=HTML, content_type="text/html")
    if name == "photo.png":
        return web.Response(body=JPEG, content_type="image/png")
    if name == "huge-length.png":
        response = web.StreamResponse(headers={"Content-Type": "image/png"})
        response.content_length = 10 * 10**9
        await response.prepare(request)
        await _stream(hostile, response, PNG, ENDLESS_LIMIT, b"\x00")
        return response
    if name == "endless.png":
        response = web.StreamResponse(headers={"Content-Type": "image/png"})
        await response.prepare(request)
        await _stream(hostile, response, PNG, ENDLESS_LIMIT, b"\x00")
        return response
    if name == "slow.png":
        response = web.StreamResponse(headers={"Content-Type": "image/png"})
        response.content_length = len(PNG)
        await response.prepare(request)
        with contextlib.suppress(ConnectionError):
            for byte in PNG:  # bounded: 64 s at most, the reader leaves long before
                await response.write(bytes([byte]))
                await asyncio.sleep(1)
        return response
    return web.Response(status=404)


@contextlib.asynccontextmanager
async def hostile_server() -> AsyncIterator[Hostile]:
    hostile = Hostile()
    app = web.Application()

    async def api(request: web.Request) -> web.StreamResponse:
        return await _api(hostile, request)

    async def file(request: web.Request) -> web.StreamResponse:
        return await _file(hostile, request)

    app.router.add_post("/", api)
    app.router.add_get("/files/{name}", file)
    async with serving(app, handler_cancellation=True) as url:
        hostile.url = url
        yield hostile
