"""docs/architecture.md at the wire: the real client against the real emulator over loopback.

Each test sends real signed HTTP requests and checks the Outcome class a caller acts on:
accepted, retryable, duplicate, permanent, run-stopping, and whether a transport failure may
have reached the server.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from batcher.api.services import MPS, VOD
from batcher.emulator.config import EmulatorConfig, FaultConfig
from batcher.emulator.runner import running_emulator
from batcher.wire.client import (
    AigcClient,
    ClientSettings,
    EndpointError,
    check_endpoint,
    host_header,
)
from batcher.wire.credentials import Credentials
from batcher.wire.errors import Accepted, ApiError, ErrorClass, TransportError, is_throttling

SECRET_ID = "AKIDclientTest000000000000000000"
SECRET_KEY = "client-test-secret-key"
CREDENTIALS = Credentials(SECRET_ID, SECRET_KEY)
VOD_PARAMS = {"SubAppId": 251007502, "ModelName": "GEM", "ModelVersion": "2.5",
              "Prompt": "a cat in watercolor style, 水彩画の猫"}
MPS_PARAMS = {"ModelName": "Hunyuan", "Prompt": "a dog", "ExtraParameters": {"AspectRatio": "1:1"}}


def config(**overrides) -> EmulatorConfig:
    return EmulatorConfig(secret_id=SECRET_ID, secret_key=SECRET_KEY, **overrides)


def client_for(url: str, credentials: Credentials = CREDENTIALS, **settings) -> AigcClient:
    return AigcClient(credentials, ClientSettings(endpoint=url, **settings))


async def test_accepted_task_returns_task_id_and_request_id_on_both_services():
    async with running_emulator(config()) as emulator, client_for(emulator.url) as client:
        vod = await client.create_task(VOD, VOD_PARAMS)
        mps = await client.create_task(MPS, MPS_PARAMS)
    assert isinstance(vod, Accepted) and vod.task_id.startswith("251007502-AigcImage-")
    assert isinstance(mps, Accepted) and "-AigcImage-" in mps.task_id
    assert vod.request_id and mps.request_id
    assert emulator.stats()["services"]["vod"]["created"] == 1
    assert emulator.stats()["services"]["mps"]["created"] == 1


async def test_wrong_secret_key_is_a_run_stopping_auth_failure():
    wrong = Credentials(SECRET_ID, "not-the-key")
    async with running_emulator(config()) as emulator, client_for(emulator.url, wrong) as client:
        outcome = await client.create_task(VOD, VOD_PARAMS)
    assert isinstance(outcome, ApiError)
    assert outcome.code == "AuthFailure.SignatureFailure"
    assert outcome.error_class is ErrorClass.RUN_STOPPING
    assert emulator.stats()["services"]["vod"]["created"] == 0


async def test_reused_session_id_is_a_duplicate_on_vod_only():
    params = {**VOD_PARAMS, "SessionId": "batcher-0123456789abcdef0123456789abcdef"}
    async with running_emulator(config()) as emulator, client_for(emulator.url) as client:
        first = await client.create_task(VOD, params)
        second = await client.create_task(VOD, params)
        mps_twice = [await client.create_task(MPS, MPS_PARAMS) for _ in range(2)]
    assert isinstance(first, Accepted)
    assert isinstance(second, ApiError) and second.code == "InvalidParameterValue.SessionId"
    assert second.error_class is ErrorClass.DUPLICATE
    assert all(isinstance(outcome, Accepted) for outcome in mps_twice)


async def test_over_the_rate_cap_is_retryable_throttling():
    async with running_emulator(config(rate=20)) as emulator, client_for(emulator.url) as client:
        outcomes = await asyncio.gather(*(client.create_task(MPS, MPS_PARAMS) for _ in range(25)))
    accepted = [o for o in outcomes if isinstance(o, Accepted)]
    throttled = [o for o in outcomes if isinstance(o, ApiError)]
    assert len(accepted) == 20
    assert len(throttled) == 5
    assert all(is_throttling(o.code) and o.error_class is ErrorClass.RETRYABLE for o in throttled)


async def test_parameter_error_is_permanent():
    params = {k: v for k, v in VOD_PARAMS.items() if k != "ModelName"}
    async with running_emulator(config()) as emulator, client_for(emulator.url) as client:
        outcome = await client.create_task(VOD, params)
    assert isinstance(outcome, ApiError) and outcome.code == "MissingParameter"
    assert outcome.error_class is ErrorClass.PERMANENT


async def test_unknown_sub_app_id_stops_the_run():
    emulator_config = config(sub_app_ids=frozenset({1000}))
    async with running_emulator(emulator_config) as emulator, client_for(emulator.url) as client:
        outcome = await client.create_task(VOD, VOD_PARAMS)
    assert isinstance(outcome, ApiError) and outcome.code == "InvalidParameterValue.SubAppId"
    assert outcome.error_class is ErrorClass.RUN_STOPPING


async def test_internal_error_is_retryable():
    faults = FaultConfig(internal_error_rate=1.0)
    async with running_emulator(config(faults=faults)) as emulator, \
            client_for(emulator.url) as client:
        outcome = await client.create_task(MPS, MPS_PARAMS)
    assert isinstance(outcome, ApiError) and outcome.code.startswith("InternalError")
    assert outcome.error_class is ErrorClass.RETRYABLE


async def test_expired_signature_is_corrected_from_the_server_date_header():
    # The server's clock runs 10 minutes ahead: the first request is refused as expired, and
    # the client adopts the server's clock so that the retry is accepted.
    async with running_emulator(config(clock_skew=600.0)) as emulator, \
            client_for(emulator.url) as client:
        first = await client.create_task(MPS, MPS_PARAMS)
        second = await client.create_task(MPS, MPS_PARAMS)
        offset = client.clock_offset(MPS)
    assert isinstance(first, ApiError) and first.code == "AuthFailure.SignatureExpire"
    assert first.error_class is ErrorClass.RETRYABLE
    assert isinstance(second, Accepted)
    assert 598 <= offset <= 602


async def test_proxy_502_may_have_reached_the_server():
    faults = FaultConfig(http_502_rate=1.0)
    async with running_emulator(config(faults=faults)) as emulator, \
            client_for(emulator.url) as client:
        outcome = await client.create_task(VOD, VOD_PARAMS)
    assert isinstance(outcome, TransportError) and outcome.code == "HttpStatus502"
    assert outcome.may_have_reached_server


async def test_dropped_connection_after_create_is_ambiguous_and_the_task_exists():
    faults = FaultConfig(drop_after_create_rate=1.0)
    async with running_emulator(config(faults=faults)) as emulator, \
            client_for(emulator.url) as client:
        outcome = await client.create_task(MPS, MPS_PARAMS)
    assert isinstance(outcome, TransportError) and outcome.may_have_reached_server
    assert emulator.stats()["services"]["mps"]["created"] == 1


async def test_answer_slower_than_the_timeout_is_an_ambiguous_timeout():
    faults = FaultConfig(latency_ms=(1500.0, 1500.0))
    async with running_emulator(config(faults=faults)) as emulator, \
            client_for(emulator.url, request_timeout=0.3) as client:
        outcome = await client.create_task(MPS, MPS_PARAMS)
    assert isinstance(outcome, TransportError) and outcome.code == "Timeout"
    assert outcome.may_have_reached_server


async def test_connection_refused_never_reached_the_server():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with client_for(f"http://127.0.0.1:{port}") as client:
        outcome = await client.create_task(MPS, MPS_PARAMS)
    assert isinstance(outcome, TransportError) and outcome.code == "NetworkError"
    assert not outcome.may_have_reached_server


async def test_each_request_is_signed_when_sent_not_when_created():
    # A client whose clock moves 10 minutes between two calls still signs the second one with
    # the current time: nothing is cached from the first.
    now = [time.time()]
    async with running_emulator(config()) as emulator, AigcClient(
        CREDENTIALS, ClientSettings(endpoint=emulator.url), clock=lambda: now[0]
    ) as client:
        first = await client.create_task(MPS, MPS_PARAMS)
        now[0] += 600
        second = await client.create_task(MPS, MPS_PARAMS)
    assert isinstance(first, Accepted)
    assert isinstance(second, ApiError) and second.code == "AuthFailure.SignatureExpire"


@pytest.mark.parametrize("url", ["http://10.0.0.5:8080", "http://example.com", "ftp://127.0.0.1",
                                 "https://host/path"])
def test_endpoint_refuses_plain_http_off_loopback_and_odd_urls(url):
    with pytest.raises(EndpointError):
        check_endpoint(url)


@pytest.mark.parametrize("url", ["http://127.0.0.1:8765", "http://localhost:1", "http://[::1]:80",
                                 "https://vod.intl.tencentcloudapi.com/"])
def test_endpoint_accepts_https_and_loopback_http(url):
    assert check_endpoint(url) == url.rstrip("/")


async def test_gateway_answers_that_are_not_api_json_are_classified_by_status():
    statuses = iter([404, 429, 200])

    async def gateway(request):
        return web.Response(status=next(statuses), text="<html>gateway</html>")

    app = web.Application()
    app.router.add_post("/", gateway)
    async with TestServer(app, host="127.0.0.1") as server, \
            client_for(f"http://127.0.0.1:{server.port}") as client:
        not_found, too_many, garbled = [await client.create_task(MPS, MPS_PARAMS)
                                        for _ in range(3)]
    assert isinstance(not_found, ApiError) and not_found.error_class is ErrorClass.PERMANENT
    assert isinstance(too_many, TransportError) and not too_many.may_have_reached_server
    assert isinstance(garbled, TransportError) and garbled.may_have_reached_server


async def test_the_request_on_the_wire_body_and_headers():
    seen: list[tuple[dict[str, str], bytes]] = []

    async def api(request):
        seen.append((dict(request.headers), await request.read()))
        response = web.json_response({"Response": {"TaskId": "t-1", "RequestId": "r-1"}})
        response.set_cookie("gateway", "sticky")  # an API client keeps no cookies
        return response

    app = web.Application()
    app.router.add_post("/", api)
    async with TestServer(app, host="127.0.0.1") as server, \
            client_for(f"http://127.0.0.1:{server.port}", region="ap-singapore") as client:
        outcomes = [await client.create_task(VOD, VOD_PARAMS) for _ in range(2)]
        port = server.port
    assert all(isinstance(outcome, Accepted) for outcome in outcomes)
    (headers, body), (second_headers, _) = seen
    # The signed bytes: compact JSON, non-ASCII as UTF-8.
    assert body == json.dumps(VOD_PARAMS, ensure_ascii=False, separators=(",", ":")).encode()
    assert set(headers) == {
        "Host", "Content-Type", "Content-Length", "X-TC-Action", "X-TC-Version",
        "X-TC-Timestamp", "X-TC-Region", "Authorization", "Accept", "Accept-Encoding",
        "User-Agent",
    }
    assert headers["Host"] == f"127.0.0.1:{port}"
    assert headers["Content-Type"] == "application/json"
    assert headers["X-TC-Action"] == "CreateAigcImageTask"
    assert headers["X-TC-Region"] == "ap-singapore"
    assert headers["Accept-Encoding"] == "identity"
    assert headers["User-Agent"].startswith("batcher/")
    assert "Cookie" not in second_headers


# --- endpoints: per service, per site, and the Host header ----------------------------------


async def test_each_service_goes_to_its_own_endpoint():
    async with running_emulator(config()) as for_vod, running_emulator(config()) as for_mps:
        settings = ClientSettings(endpoints=(("vod", for_vod.url), ("mps", for_mps.url)))
        async with AigcClient(CREDENTIALS, settings) as client:
            assert isinstance(await client.create_task(VOD, VOD_PARAMS), Accepted)
            assert isinstance(await client.create_task(MPS, MPS_PARAMS), Accepted)
        created = [tuple(e.stats()["services"][name]["created"] for name in ("vod", "mps"))
                   for e in (for_vod, for_mps)]
    assert created == [(1, 0), (0, 1)]


async def test_a_service_s_own_endpoint_wins_over_the_shared_one():
    async with running_emulator(config()) as shared, running_emulator(config()) as for_mps:
        settings = ClientSettings(endpoint=shared.url, endpoints=(("mps", for_mps.url),))
        async with AigcClient(CREDENTIALS, settings) as client:
            await client.create_task(VOD, VOD_PARAMS)
            await client.create_task(MPS, MPS_PARAMS)
        assert shared.stats()["services"]["vod"]["created"] == 1
        assert shared.stats()["services"]["mps"]["created"] == 0
        assert for_mps.stats()["services"]["mps"]["created"] == 1


@pytest.mark.parametrize(("site", "hosts"), [
    ("intl", ("vod.intl.tencentcloudapi.com", "mps.intl.tencentcloudapi.com")),
    ("mainland", ("vod.tencentcloudapi.com", "mps.tencentcloudapi.com")),
])
def test_the_site_picks_the_public_hosts(site, hosts):
    client = AigcClient(CREDENTIALS, ClientSettings(site=site))
    assert (client._target(VOD)[2], client._target(MPS)[2]) == hosts
    assert client._target(VOD)[1] == f"https://{hosts[0]}/"


@pytest.mark.parametrize(("url", "host"), [
    ("https://vod.tencentcloudapi.com", "vod.tencentcloudapi.com"),
    ("https://vod.tencentcloudapi.com:443", "vod.tencentcloudapi.com"),
    ("https://gateway.example.com:8443", "gateway.example.com:8443"),
    ("http://127.0.0.1:80", "127.0.0.1"),
    ("http://127.0.0.1:8765", "127.0.0.1:8765"),
    ("http://[::1]:8765", "[::1]:8765"),
    ("http://LOCALHOST:8765/", "localhost:8765"),
])
def test_the_host_header_is_the_host_and_a_port_that_is_not_the_default(url, host):
    assert host_header(check_endpoint(url)) == host


def test_an_endpoint_with_user_info_is_refused_without_echoing_the_password():
    with pytest.raises(EndpointError) as error:
        check_endpoint("https://user:pa55word@vod.tencentcloudapi.com")
    assert "user info" in str(error.value)
    assert "pa55word" not in str(error.value)


async def test_the_signed_host_is_the_one_the_emulator_listens_on():
    async with running_emulator(config()) as emulator:
        url = f"http://localhost:{emulator.port}/"
        async with client_for(url) as client:
            assert isinstance(await client.create_task(VOD, VOD_PARAMS), Accepted)
