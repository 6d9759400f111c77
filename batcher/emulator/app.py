"""The HTTP face of the emulator: `POST /` for both services' actions, `GET /_files/...` for the
generated images (`files.py`), `GET /_emulator/stats` for tests.

`make_app(config)` builds an aiohttp application around one `EmulatorState`. A `POST /` goes
through the steps of the real endpoint, in this order, and stops at the first that refuses:

1. an injected proxy 502 (`--http-502-rate`): the backend never sees the request;
2. the common headers and the TC3 signature (`auth.verify`); the credential scope's service
   (`vod` / `mps`) picks the service, since both share one port;
3. the action's rolling one-second window (`RequestLimitExceeded`), each action with its own
   cap (`EmulatorConfig.cap_for`);
4. injected backend errors (`--fail-code`, `--internal-error-rate`, `--throttle-rate`), for
   every action;
5. the body against the action's model (`validation`), a SubAppId it carries included;
6. for `CreateAigcImageTask`: VOD's SessionId dedup; then the task is created (and its life
   begins in the `TaskBook`), and possibly the connection dropped (`--drop-after-create-rate`)
   instead of answering. For a poll action: the answer `polls.Polls` builds.

Every API answer is HTTP 200 with `Content-Type: application/json` exactly (the official SDK
recognizes an error body only then) and a `Date` header from the emulator's own clock, after the
injected latency. The handler does no per-request logging and no work a refusal does not need.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from email.utils import formatdate
from typing import Any, Protocol

from aiohttp import web

from batcher.api.models import RequestModel, VodCreateAigcImageTaskRequest
from batcher.api.quotas import QUOTA_EXCEEDED, DescribeAigcQuotasRequest
from batcher.api.results import POLL_REQUESTS
from batcher.api.services import DESCRIBE_AIGC_QUOTAS, SERVICES, Service
from batcher.api.times import api_time_or_none
from batcher.emulator.auth import parse, verify
from batcher.emulator.config import EmulatorConfig
from batcher.emulator.errors import ApiError, known, request_limit_exceeded
from batcher.emulator.faults import THROTTLE, FaultInjector
from batcher.emulator.files import FILES_PREFIX, FileServer
from batcher.emulator.polls import Polls, dump
from batcher.emulator.quotas import QuotaBook
from batcher.emulator.ratelimit import RollingWindow
from batcher.emulator.state import (
    OUTCOME_DROPPED,
    OUTCOME_HTTP_502,
    OUTCOME_OK,
    EmulatorState,
    RequestRecord,
)
from batcher.emulator.tasks import TaskSpec
from batcher.emulator.validation import validate, validate_as

STATE_KEY = web.AppKey("batcher_emulator_state", EmulatorState)
STATS_PATH = "/_emulator/stats"
JSON_CONTENT_TYPE = "application/json"
MAX_BODY_BYTES = 10 * 1024 * 1024  # the real API's limit for a POST body

_BAD_GATEWAY_HTML = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    b"</body>\r\n</html>\r\n"
)


def make_app(config: EmulatorConfig | None = None) -> web.Application:
    """A fresh emulator (its own state) as an aiohttp application."""
    config = config or EmulatorConfig()
    state = EmulatorState(config)
    endpoint = _Endpoint(config, state)
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app[STATE_KEY] = state
    app.router.add_post("/", endpoint.handle)
    app.router.add_get(STATS_PATH, endpoint.stats)
    files = FileServer(config, state.tasks, endpoint.faults, state.files)
    app.router.add_get(FILES_PREFIX + "/{task_id}/{name}", files.handle)

    async def close_state(_: web.Application) -> None:
        state.close()

    app.on_cleanup.append(close_state)
    return app


def _local_port(request: web.Request) -> int | None:
    """The port the request arrived on (what its `Host` header must name)."""
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    return int(sockname[1]) if isinstance(sockname, tuple) and len(sockname) >= 2 else None


class _Endpoint:
    """The request handlers, with the per-instance machinery they share."""

    __slots__ = ("_date_second", "_date_text", "config", "faults", "polls", "quotas", "state",
                 "windows")

    def __init__(self, config: EmulatorConfig, state: EmulatorState) -> None:
        self.config = config
        self.state = state
        self.faults = FaultInjector(config.faults)
        self.polls = Polls(config, state.tasks)
        self.quotas = QuotaBook(config.aigc_quotas)
        self.windows = {
            (name, action): RollingWindow(config.cap_for(service, action))
            for name, service in SERVICES.items()
            for action in service.caps
        }
        self._date_second = -1
        self._date_text = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        config = self.config
        arrived = config.monotonic()
        now = config.now()
        headers = request.headers
        auth = parse(headers.get("Authorization"))
        service_name = auth.service if auth is not None and auth.service in SERVICES else None
        action = headers.get("X-TC-Action") if service_name is not None else None
        if service_name is not None and action not in POLL_REQUESTS and (
                action != DESCRIBE_AIGC_QUOTAS):
            # Before any await, so that arrivals reach the meter in order. Polls are left out:
            # the meter proves the creation rate, even with a collector polling beside.
            self.state.counters[service_name].peak.observe(arrived)
        # The cap is judged on the arrival time, before any await, as a gateway would: time this
        # process spends reading the body or checking the signature (a busy host) must not
        # bunch requests that arrived a full interval apart. A request refused before the cap
        # applies (a proxy's 502, a bad signature) gives its admission back.
        window = self.windows.get((service_name, action or "")) if service_name else None
        refused = window.admit(arrived) if window is not None else None
        body = await request.read()

        # One RequestId per request, in the answer and in the record (None for a proxy's 502).
        request_id = str(uuid.uuid4())

        def done(code: str, session_id: str | None = None, task_id: str | None = None) -> None:
            rid = None if code == OUTCOME_HTTP_502 else request_id
            self.state.record(
                RequestRecord(arrived, now, service_name, code, session_id, task_id, rid, action)
            )

        if self.faults.http_502():
            _give_back(window, refused, arrived)
            done(OUTCOME_HTTP_502)
            return await self._answer(_bad_gateway(self._date(now)))

        verdict = verify(headers=headers, body=body, auth=auth, config=config, now=now,
                         own_port=_local_port(request))
        if isinstance(verdict, ApiError):
            _give_back(window, refused, arrived)
            done(verdict.code)
            return await self._error(verdict, request_id, now)
        service = verdict
        assert action is not None and window is not None  # `verify` refuses anything else

        if refused is not None:
            error = request_limit_exceeded(refused, window.limit)
            done(error.code)
            return await self._error(error, request_id, now)

        injected = self.faults.backend_error()
        if injected is not None:
            error = self._injected(injected, service, action)
            done(error.code)
            return await self._error(error, request_id, now)

        if action == DESCRIBE_AIGC_QUOTAS:
            return await self._quotas(request, service, body, request_id, now, done)
        if action != service.action:
            return await self._poll(request, service, action, body, request_id, now, done)

        parsed = validate(service, body, headers.get("Content-Type", ""), config.sub_app_ids)
        if isinstance(parsed, ApiError):
            done(parsed.code)
            return await self._error(parsed, request_id, now)

        session_id: str | None = None
        if isinstance(parsed, VodCreateAigcImageTaskRequest):
            session_id = parsed.SessionId or None  # "" means: no dedup
            prefix = parsed.SubAppId
            if self.quotas.refuses(parsed.SubAppId):  # before dedup: nothing is remembered
                error = known(QUOTA_EXCEEDED)
                done(error.code, session_id)
                return await self._error(error, request_id, now)
        else:
            prefix = config.mps_task_prefix
        if service.dedups_session_id and session_id is not None:
            if self.state.sessions.is_duplicate(session_id, now):
                error = known("InvalidParameterValue.SessionId")
                done(error.code, session_id)
                return await self._error(error, request_id, now)
            self.state.sessions.remember(session_id, now)

        if self._full(service, now):
            error = known("LimitExceeded.CreateTask")
            done(error.code, session_id)
            return await self._error(error, request_id, now)
        task_id = f"{prefix}-AigcImage-{uuid.uuid4().hex}"
        spec = _task_spec(service, task_id, parsed)
        if spec.sub_app_id is not None:
            self.quotas.charge(spec.sub_app_id, spec.image_count)
        self.state.tasks.add(spec, now)
        if self.faults.drop_after_create():
            done(OUTCOME_DROPPED, session_id, task_id)
            return await self._drop(request)
        done(OUTCOME_OK, session_id, task_id)
        answer = {"Response": {"TaskId": task_id, "RequestId": request_id}}
        return await self._answer(self._json(answer, now))

    def _full(self, service: Service, now: float) -> bool:
        """mps: the account's waiting and running tasks are at `--max-running`."""
        limit = self.config.max_running
        return (limit is not None and service.name == "mps"
                and self.state.tasks.unfinished(service.name, now) >= limit)

    async def stats(self, request: web.Request) -> web.Response:
        include_sessions = request.query.get("sessions", "1").lower() not in ("0", "false", "no")
        payload = self.state.stats(include_sessions=include_sessions)
        return self._json(payload, self.config.now())

    async def _poll(
        self,
        request: web.Request,
        service: Service,
        action: str,
        body: bytes,
        request_id: str,
        now: float,
        done: _Done,
    ) -> web.StreamResponse:
        """A poll action: validated against its model, then answered from the task book."""
        parsed = validate_as(
            POLL_REQUESTS[action],
            service,
            body,
            request.headers.get("Content-Type", ""),
            self.config.sub_app_ids,
        )
        if isinstance(parsed, ApiError):
            done(parsed.code)
            return await self._error(parsed, request_id, now)
        # The file URLs name the emulator as the client reached it.
        answer = self.polls.answer(action, parsed, now, f"{request.scheme}://{request.host}")
        if isinstance(answer, ApiError):
            done(answer.code)
            return await self._error(answer, request_id, now)
        done(OUTCOME_OK)
        return await self._answer(self._json({"Response": dump(answer, request_id)}, now))

    async def _quotas(
        self, request: web.Request, service: Service, body: bytes, request_id: str,
        now: float, done: _Done,
    ) -> web.StreamResponse:
        """vod `DescribeAigcQuotas`: the application's quota and what it has used."""
        parsed = validate_as(DescribeAigcQuotasRequest, service, body,
                             request.headers.get("Content-Type", ""), self.config.sub_app_ids)
        if isinstance(parsed, ApiError):
            done(parsed.code)
            return await self._error(parsed, request_id, now)
        assert isinstance(parsed, DescribeAigcQuotasRequest)
        done(OUTCOME_OK)
        answer = self.quotas.describe(parsed).model_dump(exclude_none=True)
        answer["RequestId"] = request_id
        return await self._answer(self._json({"Response": answer}, now))

    # --- answers ---------------------------------------------------------------------------

    def _injected(self, code: str, service: Service, action: str) -> ApiError:
        if code == THROTTLE:
            window = self.windows[(service.name, action)]
            limit = window.limit or service.cap(action)
            count = max(window.count(self.config.monotonic()), limit) + 1
            return request_limit_exceeded(count, limit)
        return known(code)

    async def _error(self, error: ApiError, request_id: str, now: float) -> web.StreamResponse:
        payload = {
            "Response": {
                "Error": {"Code": error.code, "Message": error.message},
                "RequestId": request_id,
            }
        }
        return await self._answer(self._json(payload, now))

    async def _answer(self, response: web.StreamResponse) -> web.StreamResponse:
        delay = self.faults.latency()
        if delay > 0.0:
            await asyncio.sleep(delay)
        return response

    async def _drop(self, request: web.Request) -> web.StreamResponse:
        """Close the connection without a byte of answer, as a crashed backend would."""
        delay = self.faults.latency()
        if delay > 0.0:
            await asyncio.sleep(delay)
        if request.transport is not None:
            request.transport.close()
        # aiohttp sees the closed transport and writes nothing of this response.
        return web.Response(status=200)

    def _json(self, payload: dict[str, Any], now: float) -> web.Response:
        # `body=` bytes with an explicit header: aiohttp would append "; charset=utf-8" to a
        # `text=` or `json_response`, and the SDK then no longer recognizes an error body.
        return web.Response(
            body=json.dumps(payload, separators=(",", ":")).encode(),
            headers={"Content-Type": JSON_CONTENT_TYPE, "Date": self._date(now)},
        )

    def _date(self, now: float) -> str:
        """The HTTP `Date` of `now`, formatted once per second."""
        second = int(now)
        if second != self._date_second:
            self._date_second = second
            self._date_text = formatdate(second, usegmt=True)
        return self._date_text


class _Done(Protocol):
    def __call__(
        self, code: str, session_id: str | None = None, task_id: str | None = None
    ) -> None: ...


def _give_back(window: RollingWindow | None, refused: int | None, arrived: float) -> None:
    """A request admitted at `arrived` that the API refused before its cap applies."""
    if window is not None and refused is None:
        window.release(arrived)


def _task_spec(service: Service, task_id: str, request: RequestModel) -> TaskSpec:
    """What the result side keeps of a creation request."""
    if isinstance(request, VodCreateAigcImageTaskRequest):
        output = request.OutputConfig
        expire = output.ExpireTime if output is not None else None
        return TaskSpec(
            service=service.name,
            task_id=task_id,
            prompt=request.Prompt,
            model_name=request.ModelName,
            model_version=request.ModelVersion,
            image_count=(output.OutputImageCount if output is not None else None) or 1,
            sub_app_id=request.SubAppId,
            session_id=request.SessionId or None,
            session_context=request.SessionContext,
            storage_mode=output.StorageMode if output is not None else None,
            media_name=output.MediaName if output is not None else None,
            # Unreadable: the real API would refuse it; the emulator keeps the file forever.
            expire_time=api_time_or_none(expire),
        )
    return TaskSpec(
        service=service.name,
        task_id=task_id,
        prompt=request.Prompt,
        model_name=request.ModelName,
        model_version=request.ModelVersion,
        image_count=request.OutputImageCount or 1,
    )


def _bad_gateway(date: str) -> web.Response:
    return web.Response(
        status=502,
        body=_BAD_GATEWAY_HTML,
        headers={"Content-Type": "text/html", "Date": date},
    )
