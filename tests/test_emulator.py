"""docs/emulator.md: the emulator behaves like the real VOD and MPS endpoints wherever a client can
tell.

Real sockets on loopback, no mocks: the official SDK proves the signature and the error body are
understood the way the real API's are; `RawClient` (conftest) tampers with everything else.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from tencentcloud.common import credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.mps.v20190612 import models as mps_models
from tencentcloud.mps.v20190612.mps_client import MpsClient
from tencentcloud.vod.v20180717 import models as vod_models
from tencentcloud.vod.v20180717.vod_client import VodClient

from batcher.emulator import (
    DEFAULT_SECRET_ID,
    DEFAULT_SECRET_KEY,
    EmulatorConfig,
    FaultConfig,
    RunningEmulator,
    max_in_rolling_second,
    running_emulator,
)
from batcher.emulator.config import TemporaryKey
from batcher.wire.addresses import is_loopback
from tests.helpers import MPS_PARAMS, VOD_PARAMS, RawClient

REPO = Path(__file__).resolve().parents[1]
TASK_ID_HEX = r"[0-9a-f]{32}"
THREE_DAYS = 3 * 24 * 3600


class FakeClock:
    """A clock the test moves by hand: `clock()` reads it, `clock.advance(s)` moves it."""

    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# --- the official SDK as the oracle ---------------------------------------------------------


def sdk_create(
    endpoint: str,
    service: str,
    params: dict[str, Any],
    secret_key: str,
    *,
    unsigned_payload: bool = False,
) -> str:
    """CreateAigcImageTask through the official SDK (blocking); returns the TaskId."""
    cred = credential.Credential(DEFAULT_SECRET_ID, secret_key)
    profile = ClientProfile(
        httpProfile=HttpProfile(endpoint=endpoint, protocol="http", reqTimeout=10)
    )
    profile.unsignedPayload = unsigned_payload
    request: Any
    if service == "vod":
        client: Any = VodClient(cred, "", profile)
        request = vod_models.CreateAigcImageTaskRequest()
    else:
        client = MpsClient(cred, "", profile)
        request = mps_models.CreateAigcImageTaskRequest()
    request.from_json_string(json.dumps(params))
    return str(client.CreateAigcImageTask(request).TaskId)


@pytest.mark.parametrize(
    ("service", "params", "prefix"),
    [("vod", VOD_PARAMS, "251007502"), ("mps", MPS_PARAMS, "4")],
)
async def test_request_signed_by_the_official_sdk_is_accepted(
    emulator: RunningEmulator, service: str, params: dict[str, Any], prefix: str
) -> None:
    task_id = await asyncio.to_thread(
        sdk_create, emulator.endpoint, service, params, DEFAULT_SECRET_KEY
    )
    assert task_id.startswith(f"{prefix}-AigcImage-")
    assert len(task_id.rsplit("-", 1)[1]) == 32
    assert emulator.stats()["services"][service]["created"] == 1


async def test_sdk_unsigned_payload_variant_is_accepted(emulator: RunningEmulator) -> None:
    task_id = await asyncio.to_thread(
        sdk_create,
        emulator.endpoint,
        "mps",
        MPS_PARAMS,
        DEFAULT_SECRET_KEY,
        unsigned_payload=True,
    )
    assert task_id.startswith("4-AigcImage-")


@pytest.mark.parametrize("service", ["vod", "mps"])
async def test_sdk_with_wrong_secret_key_raises_signature_failure(
    emulator: RunningEmulator, service: str
) -> None:
    params = VOD_PARAMS if service == "vod" else MPS_PARAMS
    with pytest.raises(TencentCloudSDKException) as caught:
        await asyncio.to_thread(sdk_create, emulator.endpoint, service, params, "not-the-key")
    assert caught.value.get_code() == "AuthFailure.SignatureFailure"
    assert caught.value.get_message() == (
        "The provided credentials could not be validated. Please check your signature is correct."
    )
    assert caught.value.get_request_id()
    assert emulator.stats()["services"][service]["created"] == 0


async def test_sdk_sees_an_injected_run_stopping_error_code() -> None:
    config = EmulatorConfig(
        faults=FaultConfig(fail_codes=(("AuthFailure.UnauthorizedOperation", 1.0),))
    )
    async with running_emulator(config) as emulator:
        with pytest.raises(TencentCloudSDKException) as caught:
            await asyncio.to_thread(
                sdk_create, emulator.endpoint, "vod", VOD_PARAMS, DEFAULT_SECRET_KEY
            )
    assert caught.value.get_code() == "AuthFailure.UnauthorizedOperation"


# --- wire format ----------------------------------------------------------------------------


async def test_every_answer_is_http_200_with_content_type_exactly_application_json(
    raw_client,
) -> None:
    ok = await raw_client.send("vod")
    refused = await raw_client.send("vod", {"Prompt": "no SubAppId"})
    for reply in (ok, refused):
        assert reply.status == 200
        assert reply.headers.getall("Content-Type") == ["application/json"]
        assert reply.headers["Date"].endswith("GMT")
    assert ok.task_id is not None
    assert set(ok.response) == {"TaskId", "RequestId"}
    assert set(refused.response) == {"Error", "RequestId"}
    assert len(refused.response["RequestId"]) == 36


async def test_task_ids_follow_the_real_shapes(raw_client) -> None:
    vod = await raw_client.send("vod", {**VOD_PARAMS, "SubAppId": 1500000001})
    mps = await raw_client.send("mps")
    assert vod.task_id is not None and mps.task_id is not None
    assert re.fullmatch(rf"1500000001-AigcImage-{TASK_ID_HEX}", vod.task_id)
    assert re.fullmatch(rf"4-AigcImage-{TASK_ID_HEX}", mps.task_id)


async def test_date_header_follows_the_clock_skew(raw_client_for) -> None:
    async with running_emulator(EmulatorConfig(clock_skew=3600)) as emulator:
        client = raw_client_for(emulator.url, clock=lambda: time.time() + 3600)
        reply = await client.send("vod")
        assert reply.task_id is not None
        served = parsedate_to_datetime(reply.headers["Date"]).timestamp()
        assert abs(served - (time.time() + 3600)) < 5
        # Our own clock is an hour behind the emulator's: more than five minutes off.
        late = await raw_client_for(emulator.url).send("vod")
        assert late.error_code == "AuthFailure.SignatureExpire"


# --- signature and common headers -----------------------------------------------------------


async def test_timestamp_more_than_five_minutes_off_is_signature_expire(
    raw_client,
) -> None:
    now = int(time.time())
    for timestamp in (now - 301, now + 301):
        reply = await raw_client.send("vod", timestamp=timestamp)
        assert reply.error_code == "AuthFailure.SignatureExpire"
        assert reply.error_message.startswith("Signature expired. Timestamp and server time")
    assert (await raw_client.send("vod", timestamp=now - 290)).task_id is not None


async def test_unknown_secret_id_is_secret_id_not_found(
    raw_client_for, emulator: RunningEmulator
) -> None:
    reply = await raw_client_for(emulator.url, secret_id="AKIDsomebodyElse").send("mps")
    assert reply.error_code == "AuthFailure.SecretIdNotFound"


async def test_signature_over_another_host_or_body_is_refused(raw_client) -> None:
    body = json.dumps(VOD_PARAMS).encode()
    headers = raw_client.sign("vod", body)
    tampered = body.replace(b"cat", b"dog")
    async with raw_client.session.post(raw_client.url, data=tampered, headers=headers) as answer:
        assert json.loads(await answer.text())["Response"]["Error"]["Code"] == (
            "AuthFailure.SignatureFailure"
        )
    headers = raw_client.sign("vod", body)
    headers["Host"] = "vod.intl.tencentcloudapi.com"
    async with raw_client.session.post(raw_client.url, data=body, headers=headers) as answer:
        assert json.loads(await answer.text())["Response"]["Error"]["Code"] == (
            "AuthFailure.SignatureFailure"
        )


async def test_scope_date_must_be_the_timestamps_utc_day(raw_client) -> None:
    body = json.dumps(VOD_PARAMS).encode()
    headers = raw_client.sign("vod", body)
    day = headers["Authorization"].split("/")[1]
    headers["Authorization"] = headers["Authorization"].replace(day, "2001-01-01")
    async with raw_client.session.post(raw_client.url, data=body, headers=headers) as answer:
        assert json.loads(await answer.text())["Response"]["Error"]["Code"] == (
            "AuthFailure.SignatureFailure"
        )


@pytest.mark.parametrize(
    ("authorization", "drop"),
    [
        (None, ("Authorization",)),
        ("Basic dXNlcjpwYXNz", ()),
        ("TC3-HMAC-SHA256 Credential=AKID/2024-01-01/vod/tc3_request, Signature=abc", ()),
    ],
)
async def test_missing_or_malformed_authorization_is_invalid_authorization(
    raw_client, emulator: RunningEmulator, authorization: str | None, drop: tuple[str]
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    reply = await raw_client.send("vod", headers=headers, drop_headers=drop)
    assert reply.error_code == "AuthFailure.InvalidAuthorization"
    assert emulator.stats()["unrouted"]["errors"] == {"AuthFailure.InvalidAuthorization": 1}


async def test_credential_scope_service_picks_the_service(raw_client) -> None:
    # Both services on one port: a vod-shaped body signed for mps is validated as MPS.
    reply = await raw_client.send("mps", VOD_PARAMS)
    assert reply.error_code == "UnknownParameter"
    assert (await raw_client.send("cvm", VOD_PARAMS)).error_code == (
        "AuthFailure.InvalidAuthorization"
    )


async def test_action_and_version_are_checked(raw_client) -> None:
    assert (await raw_client.send("vod", action="DescribeMediaInfos")).error_code == "InvalidAction"
    assert (await raw_client.send("vod", version="2019-06-12")).error_code == "NoSuchVersion"
    assert (await raw_client.send("mps", version="2018-07-17")).error_code == "NoSuchVersion"
    missing = await raw_client.send("vod", drop_headers=("X-TC-Action",))
    assert missing.error_code == "MissingParameter"


async def test_a_token_with_permanent_credentials_is_refused(raw_client_for, emulator):
    reply = await raw_client_for(emulator.url, token="temporary-token").send("vod")
    assert reply.error_code == "AuthFailure.TokenFailure"


async def test_temporary_credentials_are_accepted_only_with_their_token_until_they_expire():
    now = time.time()
    config = EmulatorConfig(token="main-token", temporary_keys=(
        TemporaryKey("AKIDrole1111111111", "role-key-1", "role-token-1", expires_at=now + 600),
        TemporaryKey("AKIDrole2222222222", "role-key-2", "role-token-2", expires_at=now - 1),
    ))
    async with running_emulator(config) as emulator, aiohttp.ClientSession() as http:
        def client(**kwargs):
            return RawClient(http, emulator.url, **kwargs)

        assert (await client(token="main-token").send("vod")).task_id is not None
        assert (await client().send("vod")).error_code == "AuthFailure.TokenFailure"
        assert (await client(token="other").send("vod")).error_code == "AuthFailure.TokenFailure"
        role = {"secret_id": "AKIDrole1111111111", "secret_key": "role-key-1"}
        assert (await client(token="role-token-1", **role).send("mps")).task_id is not None
        assert (await client(token="role-token-2", **role).send("mps")).error_code == (
            "AuthFailure.TokenFailure")
        expired = await client(secret_id="AKIDrole2222222222", secret_key="role-key-2",
                               token="role-token-2").send("mps")
        assert expired.error_code == "AuthFailure.TokenFailure"
        assert "expired" in expired.error_message


@pytest.mark.parametrize("host_of", [
    lambda e: f"http://127.0.0.1:{e.port}",  # what tccli sent
    lambda e: f"127.0.0.1:{e.port + 1}",
    lambda e: "vod.intl.tencentcloudapi.com",
    lambda e: f"user:pw@127.0.0.1:{e.port}",
    lambda e: f"10.1.2.3:{e.port}",
])
async def test_a_host_header_that_is_not_the_emulators_is_refused(raw_client, emulator, host_of):
    raw_client.host = host_of(emulator)
    reply = await raw_client.send("vod")
    assert reply.error_code == "AuthFailure.SignatureFailure"
    assert "Host" in reply.error_message
    assert emulator.stats()["services"]["vod"]["created"] == 0


async def test_any_loopback_name_with_the_emulators_port_is_its_host(raw_client, emulator):
    for host in (f"localhost:{emulator.port}", f"127.0.0.1:{emulator.port}"):
        raw_client.host = host
        assert (await raw_client.send("vod")).task_id is not None, host


# --- rate limit -----------------------------------------------------------------------------


async def test_twenty_five_quick_requests_get_exactly_twenty_through(
    raw_client, emulator: RunningEmulator
) -> None:
    replies = await asyncio.gather(*(raw_client.send("vod") for _ in range(25)))
    codes = [reply.error_code for reply in replies]
    assert codes.count(None) == 20
    assert codes.count("RequestLimitExceeded") == 5
    limited = next(reply for reply in replies if reply.error_code)
    assert "exceeds the frequency limit `20` for a second" in limited.error_message
    # The cap is per service: MPS is not affected by VOD's full window.
    assert (await raw_client.send("mps")).task_id is not None
    stats = emulator.stats()["services"]["vod"]
    assert stats["created"] == 20
    assert stats["errors"] == {"RequestLimitExceeded": 5}
    assert stats["max_requests_in_rolling_second"] == 25


async def test_requests_refused_for_their_signature_take_no_place_under_the_cap(
    raw_client_for,
) -> None:
    # The cap is judged when a request arrives, before its signature is checked; a request the
    # signature check then refuses must give its place back, or a client with a wrong key
    # would lock out the account's good requests for a second.
    mono = FakeClock(1000.0)
    async with running_emulator(EmulatorConfig(monotonic=mono)) as emulator:
        wrong = raw_client_for(emulator.url, secret_key="not-the-key")
        good = raw_client_for(emulator.url)
        refused = [(await wrong.send("vod")).error_code for _ in range(20)]
        assert refused == ["AuthFailure.SignatureFailure"] * 20
        accepted = [(await good.send("vod")).error_code for _ in range(21)]
        assert accepted == [None] * 20 + ["RequestLimitExceeded"]


async def test_window_rolls_and_refused_requests_do_not_count(raw_client_for) -> None:
    mono = FakeClock(1000.0)
    async with running_emulator(EmulatorConfig(monotonic=mono)) as emulator:
        client = raw_client_for(emulator.url)

        async def burst(count: int) -> list[str | None]:
            return [(await client.send("vod")).error_code for _ in range(count)]

        assert await burst(10) == [None] * 10  # t = 0.0
        mono.advance(0.5)
        assert await burst(12) == [None] * 10 + ["RequestLimitExceeded"] * 2  # t = 0.5
        mono.advance(0.51)  # t = 1.01: the first ten left the window, the refused never entered
        assert await burst(11) == [None] * 10 + ["RequestLimitExceeded"]
        mono.advance(0.49)  # t = 1.5: the t=0.5 ten are leaving exactly now
        assert await burst(10) == [None] * 10
        assert emulator.stats()["services"]["vod"]["created"] == 40


async def test_rate_zero_lifts_the_cap(raw_client_for) -> None:
    async with running_emulator(EmulatorConfig(rate=0)) as emulator:
        client = raw_client_for(emulator.url)
        replies = await asyncio.gather(*(client.send("mps") for _ in range(60)))
        assert all(reply.task_id for reply in replies)
        records = emulator.records
        assert max_in_rolling_second(record.mono for record in records) == 60


# --- VOD SessionId dedup --------------------------------------------------------------------


async def test_vod_refuses_a_session_id_for_three_days_mps_has_no_dedup(
    raw_client_for,
) -> None:
    wall = FakeClock(time.time())
    async with running_emulator(EmulatorConfig(clock=wall)) as emulator:
        client = raw_client_for(emulator.url, clock=wall)
        params = {**VOD_PARAMS, "SessionId": "batch-1-task-7"}
        first = await client.send("vod", params)
        assert first.task_id is not None
        again = await client.send("vod", params)
        assert again.error_code == "InvalidParameterValue.SessionId"
        assert again.error_message == (
            "The deduplication ID already exists. The request is removed due to duplication."
        )
        wall.advance(THREE_DAYS - 1)
        assert (await client.send("vod", params)).error_code == "InvalidParameterValue.SessionId"
        wall.advance(1)
        assert (await client.send("vod", params)).task_id is not None

        mps = [await client.send("mps", MPS_PARAMS) for _ in range(2)]
        assert all(reply.task_id for reply in mps)
        assert mps[0].task_id != mps[1].task_id
        assert (await client.send("mps", {**MPS_PARAMS, "SessionId": "x"})).error_code == (
            "UnknownParameter"
        )
        stats = emulator.stats()["services"]
        assert stats["vod"]["sessions"] == {"batch-1-task-7": 2}
        assert stats["vod"]["sessions_created_more_than_once"] == 1
        assert stats["mps"]["created"] == 2


async def test_empty_session_id_and_refused_requests_do_not_dedup(raw_client) -> None:
    blank = {**VOD_PARAMS, "SessionId": ""}
    assert (await raw_client.send("vod", blank)).task_id is not None
    assert (await raw_client.send("vod", blank)).task_id is not None
    refused = {**VOD_PARAMS, "SessionId": "s-1", "TasksPriority": 99}
    assert (await raw_client.send("vod", refused)).error_code == "InvalidParameterValue"
    assert (await raw_client.send("vod", {**VOD_PARAMS, "SessionId": "s-1"})).task_id is not None


# --- parameter validation -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("service", "changes", "code", "names"),
    [
        ("vod", {"Colour": "red"}, "UnknownParameter", "`Colour`"),
        ("vod", {"OutputConfig": {"Ratio": "1:1"}}, "UnknownParameter", "`OutputConfig.Ratio`"),
        ("vod", {"SubAppId": None}, "MissingParameter", "`SubAppId`"),
        ("vod", {"Prompt": None}, "MissingParameter", "`Prompt`"),
        ("vod", {"SubAppId": "abc"}, "InvalidParameter", "`SubAppId`"),
        (
            "vod",
            {"OutputConfig": {"AspectRatio": 16}},
            "InvalidParameter",
            "`OutputConfig.AspectRatio`",
        ),
        ("vod", {"OutputConfig": "16:9"}, "InvalidParameter", "`OutputConfig`"),
        ("vod", {"EnhancePrompt": "yes"}, "InvalidParameterValue", "`EnhancePrompt`"),
        ("vod", {"TasksPriority": 11}, "InvalidParameterValue", "`TasksPriority`"),
        ("vod", {"FileInfos": [{"Type": "Photo"}]}, "InvalidParameterValue", "`FileInfos.0.Type`"),
        ("vod", {"SessionId": "s" * 51}, "InvalidParameterValue.SessionIdTooLong", "SessionId"),
        (
            "vod",
            {"SessionContext": "c" * 1001},
            "InvalidParameterValue.SessionContextTooLong",
            "SessionContext",
        ),
        ("vod", {"SubAppId": 0}, "InvalidParameterValue.SubAppId", "application id"),
        ("vod", {"Colour": "red", "SubAppId": None}, "UnknownParameter", "`Colour`"),
        ("mps", {"Prompt": "p" * 1001}, "InvalidParameterValue", "`Prompt`"),
        ("mps", {"EnhancePrompt": "maybe"}, "InvalidParameter", "`EnhancePrompt`"),
        ("mps", {"ImageInfos": [{"ImageUrl": 1}]}, "InvalidParameter", "`ImageInfos.0.ImageUrl`"),
        ("mps", {"Prompt": None}, "MissingParameter", "`Prompt`"),
    ],
)
async def test_parameter_errors_get_the_real_codes(
    raw_client, service: str, changes: dict[str, Any], code: str, names: str
) -> None:
    params = {**(VOD_PARAMS if service == "vod" else MPS_PARAMS), **changes}
    params = {key: value for key, value in params.items() if value is not None}
    reply = await raw_client.send(service, params)
    assert reply.error_code == code
    assert names in reply.error_message


async def test_messages_of_unknown_and_missing_parameters(raw_client) -> None:
    unknown = await raw_client.send("vod", {**VOD_PARAMS, "Colour": "red"})
    assert unknown.error_message == "The parameter `Colour` is not recognized"
    params = {key: value for key, value in VOD_PARAMS.items() if key != "ModelName"}
    missing = await raw_client.send("vod", params)
    assert missing.error_message == "The request is missing a required parameter `ModelName`."


async def test_numeric_strings_are_accepted_as_the_api_example_sends(raw_client):
    reply = await raw_client.send("vod", {**VOD_PARAMS, "TasksPriority": "10", "SubAppId": "7"})
    assert reply.task_id is not None and reply.task_id.startswith("7-AigcImage-")


async def test_body_must_be_a_json_object(raw_client) -> None:
    for body in (b"[1, 2]", b"{not json", b""):
        assert (await raw_client.send("vod", body=body)).error_code == "InvalidParameter"


@pytest.mark.parametrize("emulator_config", [EmulatorConfig(sub_app_ids=frozenset({251007502}))])
async def test_configured_sub_app_ids_are_the_only_ones(raw_client) -> None:
    assert (await raw_client.send("vod")).task_id is not None
    other = await raw_client.send("vod", {**VOD_PARAMS, "SubAppId": 1})
    assert other.error_code == "InvalidParameterValue.SubAppId"
    assert other.error_message == "Incorrect parameter value: application id."


# --- fault injection ------------------------------------------------------------------------


async def test_http_502_is_html_and_creates_nothing(raw_client_for) -> None:
    async with running_emulator(EmulatorConfig(faults=FaultConfig(http_502_rate=1.0))) as emulator:
        reply = await raw_client_for(emulator.url).send("vod")
        assert reply.status == 502
        assert reply.headers["Content-Type"] == "text/html"
        assert "502 Bad Gateway" in reply.text
        stats = emulator.stats()["services"]["vod"]
        assert (stats["created"], stats["http_502"]) == (0, 1)


async def test_drop_after_create_creates_the_task_and_the_client_sees_a_disconnect(
    raw_client_for, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    config = EmulatorConfig(faults=FaultConfig(drop_after_create_rate=1.0))
    async with running_emulator(config) as emulator:
        client = raw_client_for(emulator.url)
        params = {**VOD_PARAMS, "SessionId": "dropped-1"}
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await client.send("vod", params)
        stats = emulator.stats()["services"]["vod"]
        assert (stats["created"], stats["dropped_after_create"]) == (1, 1)
        assert emulator.records[-1].code == "dropped"
        assert emulator.records[-1].task_id is not None
        # The SessionId was recorded: the client's retry is refused as a duplicate.
        retry = await client.send("vod", params)
        assert retry.error_code == "InvalidParameterValue.SessionId"
    # Dropping is deliberate: the server does not log it as a failure of its own.
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING]


@pytest.mark.parametrize(
    ("faults", "code"),
    [
        (FaultConfig(internal_error_rate=1.0), "InternalError"),
        (FaultConfig(throttle_rate=1.0), "RequestLimitExceeded"),
        (
            FaultConfig(fail_codes=(("FailedOperation.InvalidVodUser", 1.0),)),
            "FailedOperation.InvalidVodUser",
        ),
    ],
)
async def test_injected_backend_errors(raw_client_for, faults: FaultConfig, code: str) -> None:
    async with running_emulator(EmulatorConfig(faults=faults)) as emulator:
        reply = await raw_client_for(emulator.url).send("vod")
        assert reply.status == 200
        assert reply.error_code == code
        assert emulator.stats()["services"]["vod"]["created"] == 0


async def test_faults_are_reproducible_with_a_seed(raw_client_for) -> None:
    async def outcomes(seed: int) -> list[str]:
        faults = FaultConfig(seed=seed, internal_error_rate=0.3, throttle_rate=0.3)
        async with running_emulator(EmulatorConfig(rate=0, faults=faults)) as emulator:
            client = raw_client_for(emulator.url)
            for _ in range(30):
                await client.send("mps")
            return [record.code for record in emulator.records]

    first, second = await outcomes(7), await outcomes(7)
    assert first == second
    assert {"ok", "InternalError", "RequestLimitExceeded"} == set(first)


async def test_latency_delays_the_answer(raw_client_for) -> None:
    faults = FaultConfig(latency_ms=(150.0, 200.0))
    async with running_emulator(EmulatorConfig(faults=faults)) as emulator:
        started = time.monotonic()
        reply = await raw_client_for(emulator.url).send("vod")
        assert reply.task_id is not None
        assert time.monotonic() - started >= 0.15


# --- observability --------------------------------------------------------------------------


async def test_records_stats_endpoint_and_jsonl_log(
    http: aiohttp.ClientSession, raw_client_for, tmp_path: Path
) -> None:
    log = tmp_path / "emulator.jsonl"
    async with running_emulator(EmulatorConfig(log_path=log)) as emulator:
        client = raw_client_for(emulator.url)
        ok = await client.send("vod", {**VOD_PARAMS, "SessionId": "s-1"})
        duplicate = await client.send("vod", {**VOD_PARAMS, "SessionId": "s-1"})
        await client.send("mps", {"Prompt": 3})
        async with http.get(emulator.url + "/_emulator/stats") as answer:
            assert answer.headers["Content-Type"] == "application/json"
            stats = await answer.json()
        async with http.get(emulator.url + "/_emulator/stats?sessions=0") as answer:
            assert "sessions" not in (await answer.json())["services"]["vod"]
    assert stats["services"]["vod"]["requests"] == 2
    assert stats["services"]["vod"]["sessions"] == {"s-1": 1}
    assert stats["services"]["vod"]["errors"] == {"InvalidParameterValue.SessionId": 1}
    assert stats["services"]["mps"]["errors"] == {"InvalidParameter": 1}
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [line["code"] for line in lines] == [
        "ok",
        "InvalidParameterValue.SessionId",
        "InvalidParameter",
    ]
    assert lines[0]["task_id"] == ok.task_id
    assert lines[1]["request_id"] == duplicate.response["RequestId"]
    assert lines[0]["session_id"] == "s-1"
    assert {"mono", "wall", "service", "request_id"} <= set(lines[0])


# --- the command ----------------------------------------------------------------------------


def _serve(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    environment = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.Popen(
        [sys.executable, "-m", "batcher.emulator", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
    )


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_serve_prints_its_url_first_and_exits_0_on_sigterm_or_sigint(
    raw_client_for, signum: signal.Signals
) -> None:
    secret = "a-key-from-the-environment"
    process = _serve("--port", "0", env={"TENCENTCLOUD_SECRET_KEY": secret})
    try:
        assert process.stdout is not None
        url = await asyncio.to_thread(process.stdout.readline)
        assert url.startswith("http://127.0.0.1:")
        url = url.strip()
        reply = await raw_client_for(url, secret_key=secret).send("vod")
        assert reply.task_id is not None
        process.send_signal(signum)
        stdout, stderr = await asyncio.to_thread(process.communicate, timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0
    assert stdout == ""  # nothing after the URL, nothing per request
    assert secret not in stderr


async def test_serve_refuses_a_non_loopback_host() -> None:
    process = _serve("--host", "0.0.0.0", "--port", "0")
    stdout, stderr = await asyncio.to_thread(process.communicate, timeout=10)
    assert process.returncode == 2
    assert stdout == ""
    assert "--allow-remote" in stderr


def test_loopback_addresses() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("example.com")


def test_the_token_option_makes_the_emulators_credentials_temporary(monkeypatch):
    from batcher.cli.main import build_parser
    from batcher.emulator.arguments import config_from_args

    monkeypatch.delenv("TENCENTCLOUD_TOKEN", raising=False)
    parse = build_parser().parse_args
    assert config_from_args(parse(["emulator"])).token is None
    assert config_from_args(parse(["emulator", "--token", "tk-7f3a91"])).token == "tk-7f3a91"
    monkeypatch.setenv("TENCENTCLOUD_TOKEN", "from-env")
    assert config_from_args(parse(["emulator"])).token == "from-env"
    assert "tk-7f3a91" not in repr(config_from_args(parse(["emulator", "--token", "tk-7f3a91"])))
