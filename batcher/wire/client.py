"""The HTTP exchange with a Tencent endpoint: one `CreateAigcImageTask` request in, one Outcome out.

`AigcClient` holds one `aiohttp.ClientSession` (connection reuse, timeouts), signs each request
at the moment it is sent (never when queued: a signature older than 5 minutes is refused) with
the credentials its `CredentialsProvider` gives at that moment (CVM role credentials change during
a long run), reads
`Response.Error` from HTTP 200 bodies and returns an `Outcome` (see `errors`) instead of
raising. When the server says `AuthFailure.SignatureExpire` the client adopts the offset between
its clock and the server's `Date` header, so the retry is signed with the server's time.

Each service goes to its own URL: its public host on the chosen site, or an `--endpoint` (one
for every service, or one per service). The signed `Host` header is that URL's host, with its
port only when it is not the scheme's default (docs/operating.md#endpoints).

Answers are bounded: at most `MAX_ANSWER_BYTES` of a body are read (a larger one is not read on),
and a body that is not JSON, is nested too deep for the parser, or is not a `Response` object of
the documented shape comes back as a `TransportError` with code `MALFORMED_ANSWER` (the request
reached the server), never as an exception (docs/operating.md).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from batcher import __version__
from batcher.api.services import DEFAULT_SITE, Service, Site
from batcher.exceptions import BatcherError, EndpointError
from batcher.wire.addresses import is_loopback
from batcher.wire.credentials import Credentials, CredentialsProvider, StaticCredentials
from batcher.wire.errors import (
    MALFORMED_ANSWER,
    SIGNATURE_EXPIRED,
    Accepted,
    ApiError,
    ErrorClass,
    Outcome,
    TransportError,
    classify,
    printable,
)
from batcher.wire.signing import Signer

_encode_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
"""The request body's JSON: compact, non-ASCII as UTF-8 (what `json.dumps` with these options
gives, without building an encoder per call)."""


@dataclass(frozen=True, slots=True)
class ClientSettings:
    """How the client reaches the API: per service, `endpoints[name]`, else `endpoint`, else
    the service's public host on `site`."""

    endpoint: str | None = None
    endpoints: tuple[tuple[str, str], ...] = field(default=())
    """(service name, URL) pairs: a service's own endpoint, before `endpoint`."""
    site: Site = DEFAULT_SITE
    region: str | None = None
    connect_timeout: float = 10.0
    request_timeout: float = 60.0
    max_connections: int = 0
    """Open connections at most; 0 sets no limit of the client's own: its callers bound the
    requests in flight (the pipeline: 160 per service, which 20/s at 5 s of latency needs)."""


_DEFAULT_PORTS = {"http": 80, "https": 443}

MAX_ANSWER_BYTES = 4 << 20
"""The most of an API answer read: the documented answers are a few KB (a 100-task
`DescribeTasks` page some tens of KB); more is a broken or hostile server, not read into memory."""
_READ_CHUNK = 1 << 16


def check_endpoint(url: str) -> str:
    """`url` normalized (no trailing slash); plain http only for loopback addresses."""
    parts = urlsplit(url)
    if parts.username is not None or parts.password is not None:
        # Not echoed: the part before `@` may be a password. The API authenticates by signature
        # alone, and aiohttp would turn user info into a Basic Authorization header.
        raise EndpointError(
            "an endpoint has user info (user:password@) before its host: the Tencent Cloud API "
            "does not use it; give only scheme://host[:port]"
        )
    try:
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError:
        raise EndpointError(f"endpoint {url!r} has an invalid port") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise EndpointError(f"endpoint {url!r} is not an http(s) URL: use e.g. https://host")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise EndpointError(
            f"endpoint {url!r} uses plain http to a non-loopback host: use https "
            "(http is accepted only for 127.0.0.0/8, ::1 and localhost)"
        )
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise EndpointError(f"endpoint {url!r} has a path or query: give only scheme://host[:port]")
    return f"{parts.scheme}://{parts.netloc}"


def host_header(url: str) -> str:
    """The `Host` header for a checked endpoint URL: its host, plus the port when that is not
    the scheme's default (what the SDK and curl send), never user info.

    >>> host_header("https://vod.tencentcloudapi.com:443"), host_header("http://[::1]:8765")
    ('vod.tencentcloudapi.com', '[::1]:8765')
    """
    parts = urlsplit(url)
    hostname = parts.hostname or ""
    if ":" in hostname:  # an IPv6 address goes back in brackets
        hostname = f"[{hostname}]"
    port = parts.port
    if port is None or port == _DEFAULT_PORTS.get(parts.scheme):
        return hostname
    return f"{hostname}:{port}"


class AigcClient:
    """Sends `CreateAigcImageTask` requests; use as `async with AigcClient(...) as client`."""

    def __init__(
        self,
        credentials: Credentials | CredentialsProvider,
        settings: ClientSettings,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._credentials: CredentialsProvider = (
            StaticCredentials(credentials) if isinstance(credentials, Credentials)
            else credentials
        )
        self._signer: Signer | None = None
        self._signed_with: Credentials | None = None
        self._settings = settings
        self._endpoint = check_endpoint(settings.endpoint) if settings.endpoint else None
        self._endpoints = {name: check_endpoint(url) for name, url in settings.endpoints}
        self._clock = clock
        self._clock_offsets: dict[str, float] = {}
        self._targets: dict[str, tuple[str, str, str]] = {}
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> AigcClient:
        connector = aiohttp.TCPConnector(
            limit=self._settings.max_connections, ttl_dns_cache=300, enable_cleanup_closed=True
        )
        timeout = aiohttp.ClientTimeout(
            total=self._settings.request_timeout, sock_connect=self._settings.connect_timeout
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=timeout,
            # Given, not skipped (skip_auto_headers costs every request a header copy): who is
            # calling, and that the small JSON answers are not to be compressed.
            headers={"User-Agent": f"batcher/{__version__}", "Accept-Encoding": "identity"},
            cookie_jar=aiohttp.DummyCookieJar(),  # the API sets none; a gateway's are not kept
        )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def clock_offset(self, service: Service) -> float:
        """Seconds added to the local clock when signing for `service` (server time - local)."""
        return self._clock_offsets.get(self._url(service), 0.0)

    def _url(self, service: Service) -> str:
        return (
            self._endpoints.get(service.name)
            or self._endpoint
            or f"https://{service.public_host(self._settings.site)}"
        )

    def _target(self, service: Service) -> tuple[str, str, str]:
        """(base URL, request URL, Host header) of `service`: parsed once, not on every request."""
        target = self._targets.get(service.name)
        if target is None:
            url = self._url(service)
            target = self._targets[service.name] = (url, url + "/", host_header(url))
        return target

    async def _current_signer(self) -> Signer:
        """A signer for the credentials valid now (a new one only when they changed)."""
        credentials = await self._credentials.current()
        if credentials is not self._signed_with or self._signer is None:
            self._signer = Signer(credentials.secret_id, credentials.secret_key, credentials.token)
            self._signed_with = credentials
        return self._signer

    async def create_task(self, service: Service, params: Mapping[str, Any]) -> Outcome:
        """Send one `CreateAigcImageTask`; every failure comes back as an `ApiError` or a
        `TransportError`, a success as `Accepted` with its TaskId."""
        answer = await self.call(service, service.action, params)
        if not isinstance(answer, Answer):
            return answer
        task_id = answer.response.get("TaskId")
        if isinstance(task_id, str) and task_id:
            return Accepted(task_id=task_id, request_id=str(answer.response.get("RequestId") or ""))
        return TransportError(MALFORMED_ANSWER, "HTTP 200 without TaskId or Error in the response",
                              may_have_reached_server=True)

    async def call(
        self, service: Service, action: str, params: Mapping[str, Any]
    ) -> Answer | ApiError | TransportError:
        """Send any `action` of `service`, signed at send time (never when queued: a signature
        older than 5 minutes is refused); the answer's `Response` object, or the failure."""
        if self._session is None:
            raise RuntimeError("AigcClient used outside `async with`")
        url, request_url, host = self._target(service)
        payload = _encode_json(params).encode()
        try:
            signer = await self._current_signer()
        except BatcherError as error:  # e.g. the metadata service down and the role's keys gone
            return TransportError("CredentialsUnavailable", str(error),
                                  may_have_reached_server=False)
        headers = signer.sign_headers(
            service=service.name, host=host, action=action, version=service.version,
            payload=payload, timestamp=int(self._clock() + self._clock_offsets.get(url, 0.0)),
            region=self._settings.region,
        )
        try:
            async with self._session.post(request_url, data=payload, headers=headers) as response:
                body = await _read_bounded(response)
                if body is None:
                    return _malformed(f"HTTP {response.status} with an answer over "
                                      f"{MAX_ANSWER_BYTES} bytes (not read on)")
                answer = _read_answer(service, response.status, body)
                if isinstance(answer, ApiError) and answer.code == SIGNATURE_EXPIRED:
                    self._adopt_server_clock(url, response.headers.get("Date"))
                return answer
        except (aiohttp.ClientError, OSError, TimeoutError) as error:
            return _transport_error(error)

    def _adopt_server_clock(self, url: str, date_header: str | None) -> None:
        if not date_header:
            return
        try:
            server_time = parsedate_to_datetime(date_header).timestamp()
        except (TypeError, ValueError):
            return
        self._clock_offsets[url] = server_time - self._clock()


@dataclass(frozen=True, slots=True)
class Answer:
    """A successful answer of any action: its `Response` object (`RequestId` included)."""

    response: dict[str, Any]


async def _read_bounded(response: aiohttp.ClientResponse) -> bytes | None:
    """The body, or None once it passes `MAX_ANSWER_BYTES` (then the connection is dropped, not
    drained: a server sending 10 GB is not waited for)."""
    length = response.content_length
    if length is not None and length > MAX_ANSWER_BYTES:
        response.close()
        return None
    chunks: list[bytes] = []
    size = 0
    while chunk := await response.content.read(_READ_CHUNK):
        size += len(chunk)
        if size > MAX_ANSWER_BYTES:
            response.close()
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _parse(body: bytes) -> object:
    """The JSON value of `body`, or None when it is not JSON (or too deep to parse: the C
    parser raises RecursionError past the interpreter's recursion limit, caught here)."""
    try:
        return json.loads(body.decode())  # decoded here: json's sniffing is slower
    except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError included
        return None


def _read_answer(service: Service, status: int, body: bytes) -> Answer | ApiError | TransportError:
    if status >= 500:
        return TransportError(
            f"HttpStatus{status}", f"HTTP {status} from the endpoint", may_have_reached_server=True
        )
    document = _parse(body)
    response = document.get("Response") if isinstance(document, dict) else None
    if not isinstance(response, dict):
        return _non_api_answer(status, len(body))
    request_id = response.get("RequestId")
    if request_id is not None and not isinstance(request_id, str):
        return _malformed(f"HTTP {status}: RequestId is not a string")
    if "Error" in response:
        error = response["Error"]
        code = error.get("Code") if isinstance(error, dict) else None
        message = error.get("Message", "") if isinstance(error, dict) else None
        if not isinstance(code, str) or not code or not isinstance(message, str):
            return _malformed(f"HTTP {status}: Response.Error without a string Code and Message")
        # Server text: made one safe line here, so no caller can log a forged line from it.
        code, message = printable(code, 100), printable(message)
        return ApiError(code, message, request_id, classify(service, code))
    if status != 200:
        return TransportError("BadResponse", f"HTTP {status} without an Error in the response",
                              may_have_reached_server=True)
    return Answer(response)


def _malformed(text: str) -> TransportError:
    return TransportError(MALFORMED_ANSWER, text, may_have_reached_server=True)


def _transport_error(error: BaseException) -> TransportError:
    """An aiohttp failure, sorted by whether the request may have reached the server."""
    if isinstance(error, aiohttp.ClientConnectorError):
        # Raised while connecting (refused, DNS, TLS handshake): nothing was sent.
        return TransportError("NetworkError", _describe(error), may_have_reached_server=False)
    if isinstance(error, aiohttp.ConnectionTimeoutError):
        return TransportError("Timeout", _describe(error), may_have_reached_server=False)
    if isinstance(error, TimeoutError | aiohttp.ServerTimeoutError):
        return TransportError("Timeout", _describe(error), may_have_reached_server=True)
    # Disconnects, resets and broken payloads after the request was written: the server may
    # have acted on it (created the task).
    return TransportError("NetworkError", _describe(error), may_have_reached_server=True)


def _non_api_answer(status: int, size: int) -> ApiError | TransportError:
    """An answer that is not the API's JSON: from a proxy or gateway in front of it."""
    text = f"HTTP {status} with a body that is not an API response ({size} bytes)"
    if status == 429:
        # Refused as too many before it was processed: safe to send again, on both services.
        return TransportError("HttpStatus429", text, may_have_reached_server=False)
    if 400 <= status < 500:
        # Refused at the door (wrong path, too large, forbidden): sending it again won't help.
        return ApiError(f"HttpStatus{status}", text, None, ErrorClass.PERMANENT)
    return _malformed(text)


def _describe(error: BaseException) -> str:
    text = str(error) or type(error).__name__  # may quote the server (a bad status line)
    return printable(f"{type(error).__name__}: {text}", 300)

