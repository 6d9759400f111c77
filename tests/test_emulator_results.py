"""docs/emulator.md: the emulator plays the result side — tasks live, fail, leave real PNG files.

Every test moves an injected clock instead of sleeping. The last section makes the official
SDK's clients call each poll action against the emulator and parse the answers into the SDK's
own response models: that is what proves the shapes.
"""

from __future__ import annotations

import asyncio
import json
import struct
import time
import zlib
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
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

from batcher.api.results import (
    DescribeAigcImageTaskResponse,
    DescribeTaskDetailResponse,
    DescribeTasksResponse,
)
from batcher.api.services import DESCRIBE_AIGC_IMAGE_TASK, DESCRIBE_TASK_DETAIL, DESCRIBE_TASKS
from batcher.api.times import format_api_time
from batcher.emulator import (
    DEFAULT_SECRET_ID,
    DEFAULT_SECRET_KEY,
    EmulatorConfig,
    FaultConfig,
    RunningEmulator,
    running_emulator,
)
from batcher.emulator.config import GenerationConfig
from tests.helpers import MPS_PARAMS, VOD_PARAMS, RawClient

START = 1_764_547_200.0  # 2025-12-01T00:00:00Z
THREE_DAYS = 3 * 24 * 3600
SUB_APP_ID = VOD_PARAMS["SubAppId"]


class FakeClock:
    """A wall clock the test moves by hand."""

    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


def config_with(clock: Callable[[], float], **generation: Any) -> EmulatorConfig:
    return EmulatorConfig(rate=0, clock=clock, generation=GenerationConfig(**generation))


@pytest.fixture
async def results_emulator(clock: FakeClock) -> AsyncIterator[RunningEmulator]:
    async with running_emulator(config_with(clock, seconds=10.0)) as running:
        yield running


@pytest.fixture
def client(http: aiohttp.ClientSession, results_emulator: RunningEmulator, clock: FakeClock):
    return RawClient(http, results_emulator.url, clock=clock)


async def create(client: RawClient, service: str = "vod", **params: Any) -> str:
    base = VOD_PARAMS if service == "vod" else MPS_PARAMS
    reply = await client.send(service, {**base, **params})
    assert reply.error_code is None, reply.text
    assert reply.task_id is not None
    return reply.task_id


async def detail(client: RawClient, task_id: str, **params: Any) -> dict[str, Any]:
    reply = await client.send(
        "vod", {"TaskId": task_id, "SubAppId": SUB_APP_ID, **params}, action=DESCRIBE_TASK_DETAIL
    )
    return reply.response


async def mps_poll(client: RawClient, task_id: str) -> dict[str, Any]:
    reply = await client.send("mps", {"TaskId": task_id}, action=DESCRIBE_AIGC_IMAGE_TASK)
    return reply.response


async def list_tasks(client: RawClient, **params: Any) -> dict[str, Any]:
    reply = await client.send("vod", {"SubAppId": SUB_APP_ID, **params}, action=DESCRIBE_TASKS)
    return reply.response


async def download(http: aiohttp.ClientSession, url: str) -> tuple[int, dict[str, str], bytes]:
    async with http.get(url) as response:
        return response.status, dict(response.headers), await response.read()


def png_colour(data: bytes) -> bytes:
    """The first pixel of one of the emulator's PNGs (IDAT right after the 25-byte IHDR)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    length, kind = struct.unpack(">I4s", data[33:41])
    assert kind == b"IDAT"
    return zlib.decompress(data[41 : 41 + length])[1:4]


# --- a task's life ---------------------------------------------------------------------------


async def test_vod_task_waits_runs_then_finishes_with_a_file_of_the_reported_size(
    client: RawClient, http: aiohttp.ClientSession, clock: FakeClock
):
    task_id = await create(client)
    waiting = await detail(client, task_id)
    assert (waiting["Status"], waiting["TaskType"]) == ("WAITING", "AigcImageTask")
    assert waiting["AigcImageTask"]["Progress"] == 0
    assert waiting["AigcImageTask"]["Input"]["Prompt"] == VOD_PARAMS["Prompt"]
    assert waiting["CreateTime"] == "2025-12-01T00:00:00Z"
    assert waiting["BeginProcessTime"] == ""

    clock.advance(6)
    running = await detail(client, task_id)
    assert running["Status"] == "PROCESSING"
    assert 0 < running["AigcImageTask"]["Progress"] < 100
    assert "Output" not in running["AigcImageTask"]

    clock.advance(4)
    done = await detail(client, task_id)
    task = done["AigcImageTask"]
    assert (done["Status"], task["Status"], task["ErrCodeExt"], task["ErrCode"]) == (
        "FINISH", "FINISH", "", 0
    )
    assert done["FinishTime"] == "2025-12-01T00:00:10Z"
    (info,) = task["Output"]["FileInfos"]
    assert (info["FileType"], info["StorageMode"]) == ("png", "Temporary")
    # Temporary outputs are kept 7 days.
    assert info["ExpireTime"] == format_api_time(START + 10 + 7 * 24 * 3600)
    status, headers, body = await download(http, info["FileUrl"])
    assert status == 200
    assert headers["Content-Type"] == "image/png"
    assert len(body) == int(headers["Content-Length"]) == info["MetaData"]["Size"] == 64 * 1024
    assert png_colour(body) != b"\x00\x00\x00"
    async with http.head(info["FileUrl"]) as head:
        assert (head.status, head.headers["Content-Length"]) == (200, str(64 * 1024))


async def test_mps_task_goes_wait_run_done_and_its_urls_expire_with_403(
    client: RawClient, http: aiohttp.ClientSession, clock: FakeClock
):
    task_id = await create(client, "mps", OutputImageCount=3)
    assert (await mps_poll(client, task_id))["Status"] == "WAIT"
    clock.advance(5)
    running = await mps_poll(client, task_id)
    assert (running["Status"], running["ImageUrls"]) == ("RUN", [])
    clock.advance(5)
    done = await mps_poll(client, task_id)
    assert done["Status"] == "DONE"
    assert len(done["ImageUrls"]) == 3
    bodies = [await download(http, url) for url in done["ImageUrls"]]
    assert all(status == 200 for status, _, _ in bodies)
    assert len({png_colour(body) for _, _, body in bodies}) == 3  # a gallery shows 3 pictures

    clock.advance(12 * 3600 - 1)
    assert (await download(http, done["ImageUrls"][0]))[0] == 200
    clock.advance(1)
    status, _, body = await download(http, done["ImageUrls"][0])
    assert status == 403
    assert b"AccessDenied" in body


async def test_a_prompt_with_the_marker_fails_at_generation(client: RawClient, clock: FakeClock):
    vod_id = await create(client, Prompt="a cat FAIL_GENERATION")
    mps_id = await create(client, "mps", Prompt="a dog FAIL_GENERATION")
    clock.advance(10)
    vod = (await detail(client, vod_id))["AigcImageTask"]
    assert vod["Status"] == "FINISH"
    assert vod["ErrCodeExt"] == "InvalidParameter.VoilationContent"
    assert vod["ErrCode"] != 0 and vod["Message"]
    assert "Output" not in vod
    mps = await mps_poll(client, mps_id)
    assert (mps["Status"], mps["ImageUrls"]) == ("FAIL", [])
    assert "VoilationContent" in mps["Message"]


async def test_unknown_and_forgotten_task_ids_answer_each_services_code(
    client: RawClient, clock: FakeClock
):
    vod_id = await create(client)
    assert (await detail(client, "251007502-AigcImage-nope"))["Error"]["Code"] == (
        "InvalidParameterValue.TaskId"
    )
    assert (await detail(client, vod_id, SubAppId=SUB_APP_ID + 1))["Error"]["Code"] == (
        "InvalidParameterValue.TaskId"
    )
    assert (await mps_poll(client, vod_id))["Error"]["Code"] == "ResourceNotFound.TaskNotFound"
    clock.advance(THREE_DAYS + 1)
    assert (await detail(client, vod_id))["Error"]["Code"] == "InvalidParameterValue.TaskId"


async def test_generation_time_spreads_with_jitter(http: aiohttp.ClientSession, clock: FakeClock):
    config = config_with(clock, seconds=10.0, jitter=0.5)
    async with running_emulator(config) as emulator:
        client = RawClient(http, emulator.url, clock=clock)
        for _ in range(40):
            await create(client)
        tasks = emulator.state.tasks.created_between(float("-inf"), float("inf"), clock())
        finishes = [task.finished - task.created for task in tasks]
    assert all(5.0 <= seconds <= 15.0 for seconds in finishes)
    assert max(finishes) - min(finishes) > 5.0


async def test_image_size_is_settable_and_vod_permanent_files_end_at_their_expire_time(
    http: aiohttp.ClientSession, clock: FakeClock
):
    async with running_emulator(config_with(clock, seconds=0.0, image_bytes=5000)) as emulator:
        client = RawClient(http, emulator.url, clock=clock)
        output = {"StorageMode": "Permanent", "ExpireTime": format_api_time(START + 60)}
        task_id = await create(client, OutputConfig=output)
        (info,) = (await detail(client, task_id))["AigcImageTask"]["Output"]["FileInfos"]
        assert info["StorageMode"] == "Permanent" and info["FileId"].isdigit()
        assert info["ExpireTime"] == "2025-12-01T00:01:00Z"
        status, _, body = await download(http, info["FileUrl"])
        assert (status, len(body), info["MetaData"]["Size"]) == (200, 5000, 5000)
        clock.advance(60)
        assert (await download(http, info["FileUrl"]))[0] == 404


async def test_describe_tasks_pages_through_a_create_time_window(
    client: RawClient, clock: FakeClock
):
    before_window = await create(client, SessionId="early")
    clock.advance(60)
    ids = []
    for n in range(25):
        ids.append(await create(client, SessionId=f"s{n}", SessionContext=f"ctx{n}"))
        clock.advance(1)
    clock.advance(60)
    await create(client, SessionId="late")

    window = {"After": format_api_time(START + 60), "Before": format_api_time(START + 85)}
    seen: list[dict[str, Any]] = []
    token = ""
    pages = 0
    while True:
        params: dict[str, Any] = {"CreateTime": window, "Limit": 10}
        if token:
            params["ScrollToken"] = token
        page = await list_tasks(client, **params)
        pages += 1
        seen.extend(page["TaskSet"])
        token = page["ScrollToken"]
        if not token:
            break
    assert pages == 3
    assert sorted(info["TaskId"] for info in seen) == sorted(ids)
    assert before_window not in {info["TaskId"] for info in seen}
    newest = seen[0]  # default order: newest first
    assert newest["SessionId"] == "s24" and newest["SessionContext"] == "ctx24"
    assert newest["CreateTime"] == format_api_time(START + 60 + 24)
    assert newest["TaskType"] == "AigcImageTask"

    ascending = await list_tasks(
        client, CreateTime=window, Limit=100, Sort={"Field": "CreateTime", "Order": "Asc"}
    )
    assert [info["TaskId"] for info in ascending["TaskSet"]] == ids
    assert ascending["ScrollToken"] == ""


async def test_describe_tasks_refuses_bad_limits_times_and_tokens(client: RawClient):
    assert (await list_tasks(client, Limit=101))["Error"]["Code"] == "InvalidParameterValue"
    bad_time = await list_tasks(client, CreateTime={"After": "yesterday"})
    assert bad_time["Error"]["Code"] == "InvalidParameterValue"
    assert "CreateTime" in bad_time["Error"]["Message"]
    token = await list_tasks(client, ScrollToken="1-AigcImage-unknown")
    assert token["Error"]["Code"] == "InvalidParameterValue.ScrollToken"
    assert (await list_tasks(client, Offset=3))["Error"]["Code"] == "UnknownParameter"


async def test_describe_tasks_lists_only_the_last_three_days(client: RawClient, clock: FakeClock):
    old = await create(client)
    clock.advance(THREE_DAYS - 10)
    recent = await create(client)
    assert {t["TaskId"] for t in (await list_tasks(client))["TaskSet"]} == {old, recent}
    clock.advance(11)
    assert [t["TaskId"] for t in (await list_tasks(client))["TaskSet"]] == [recent]


# --- caps and stats ------------------------------------------------------------------------


async def test_each_poll_action_has_its_own_rolling_cap(http: aiohttp.ClientSession):
    mono = FakeClock(1000.0)
    config = EmulatorConfig(poll_rate=3, monotonic=mono)
    async with running_emulator(config) as emulator:
        client = RawClient(http, emulator.url)
        codes = [(await detail(client, "x"))["Error"]["Code"] for _ in range(4)]
        assert codes == ["InvalidParameterValue.TaskId"] * 3 + ["RequestLimitExceeded"]
        # DescribeTasks and the creations have windows of their own.
        assert "Error" not in await list_tasks(client)
        assert (await client.send("vod")).error_code is None
        mono.advance(1.0)
        assert (await detail(client, "x"))["Error"]["Code"] == "InvalidParameterValue.TaskId"
        stats = emulator.stats()["services"]["vod"]
    assert stats["requests_per_action"] == {
        "CreateAigcImageTask": 1, "DescribeTaskDetail": 5, "DescribeTasks": 1
    }
    assert stats["rate_limits"] == {
        "CreateAigcImageTask": 20, "DescribeTaskDetail": 3, "DescribeTasks": 3,
        "DescribeAigcQuotas": 3,
    }
    assert stats["max_requests_in_rolling_second"] == 1  # the creation rate: polls left out


def test_caps_come_from_the_registry_and_rate_zero_lifts_them_all():
    from batcher.api.services import MPS, VOD

    default = EmulatorConfig()
    assert default.cap_for(VOD, DESCRIBE_TASK_DETAIL) == 100
    assert default.cap_for(MPS, DESCRIBE_AIGC_IMAGE_TASK) == 20
    assert EmulatorConfig(rate=5).cap_for(VOD, DESCRIBE_TASKS) == 100
    assert EmulatorConfig(rate=5).cap_for(VOD, VOD.action) == 5
    lifted = EmulatorConfig(rate=0)
    assert {lifted.cap_for(s, a) for s in (VOD, MPS) for a in s.caps} == {0}


# --- download faults -----------------------------------------------------------------------


async def test_download_faults_drop_mid_body_or_answer_503(
    http: aiohttp.ClientSession, clock: FakeClock
):
    for faults, expected in (
        (FaultConfig(download_drop_rate=1.0), "dropped_mid_body"),
        (FaultConfig(download_error_rate=1.0), "http_503"),
    ):
        config = replace(config_with(clock, seconds=0.0), faults=faults)
        async with running_emulator(config) as emulator:
            client = RawClient(http, emulator.url, clock=clock)
            task_id = await create(client, "mps")
            (url,) = (await mps_poll(client, task_id))["ImageUrls"]
            if expected == "dropped_mid_body":
                async with http.get(url) as response:
                    assert response.status == 200
                    with pytest.raises(aiohttp.ClientPayloadError):
                        await response.read()
            else:
                assert (await download(http, url))[0] == 503
            files = emulator.stats()["files"]
        assert files[expected] == 1 and files["served"] == 0


# --- the official SDK as the oracle of the shapes --------------------------------------------


def sdk_client(service: str, endpoint: str) -> Any:
    cred = credential.Credential(DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY)
    profile = ClientProfile(httpProfile=HttpProfile(endpoint=endpoint, protocol="http"))
    return VodClient(cred, "", profile) if service == "vod" else MpsClient(cred, "", profile)


def sdk_call(client: Any, action: str, request: Any, params: dict[str, Any]) -> Any:
    request.from_json_string(json.dumps(params))
    return getattr(client, action)(request)


@pytest.fixture
async def live_emulator() -> AsyncIterator[tuple[RunningEmulator, FakeClock]]:
    """An emulator on the real clock plus a shift the test can move (the SDK signs with now)."""
    shift = FakeClock(0.0)
    config = config_with(lambda: time.time() + shift(), seconds=100.0)
    async with running_emulator(config) as emulator:
        yield emulator, shift


# The SDK warns "... fileds are useless" for a field its model lacks: an error here.
@pytest.mark.filterwarnings("error::UserWarning")
async def test_sdk_parses_describe_task_detail_and_describe_tasks(
    live_emulator: tuple[RunningEmulator, FakeClock],
):
    emulator, shift = live_emulator
    vod = sdk_client("vod", emulator.endpoint)
    created = vod_models.CreateAigcImageTaskRequest()
    ids = [
        (await asyncio.to_thread(
            sdk_call, vod, "CreateAigcImageTask", created,
            {**VOD_PARAMS, "SessionId": f"sdk-{n}", "OutputConfig": {"OutputImageCount": 2}},
        )).TaskId
        for n in range(3)
    ]
    ask = {"TaskId": ids[0], "SubAppId": SUB_APP_ID}
    waiting = await asyncio.to_thread(
        sdk_call, vod, DESCRIBE_TASK_DETAIL, vod_models.DescribeTaskDetailRequest(), ask
    )
    assert isinstance(waiting, vod_models.DescribeTaskDetailResponse)
    assert (waiting.Status, waiting.TaskType) == ("WAITING", "AigcImageTask")
    assert waiting.AigcImageTask.Progress == 0

    shift.now = 150.0  # past the generation time, within the 5-minute signature tolerance
    done = await asyncio.to_thread(
        sdk_call, vod, DESCRIBE_TASK_DETAIL, vod_models.DescribeTaskDetailRequest(), ask
    )
    task = done.AigcImageTask
    assert (done.Status, task.Status, task.ErrCodeExt, task.TaskId) == (
        "FINISH", "FINISH", "", ids[0]
    )
    assert task.SessionId == "sdk-0" and task.Input.ModelName == VOD_PARAMS["ModelName"]
    files = task.Output.FileInfos
    assert [f.MetaData.Size for f in files] == [64 * 1024, 64 * 1024]
    assert all(f.FileUrl.startswith(emulator.url + "/_files/") for f in files)
    assert done.RequestId
    # Our own model reads what the SDK read.
    ours = DescribeTaskDetailResponse.model_validate(json.loads(done.to_json_string()))
    assert ours.AigcImageTask is not None and ours.AigcImageTask.Output is not None
    assert [f.FileUrl for f in ours.AigcImageTask.Output.FileInfos] == [f.FileUrl for f in files]

    listed: list[Any] = []
    token = None
    while True:
        params: dict[str, Any] = {"SubAppId": SUB_APP_ID, "Limit": 2}
        if token:
            params["ScrollToken"] = token
        page = await asyncio.to_thread(
            sdk_call, vod, DESCRIBE_TASKS, vod_models.DescribeTasksRequest(), params
        )
        assert isinstance(page, vod_models.DescribeTasksResponse)
        listed.extend(page.TaskSet)
        token = page.ScrollToken
        if not token:
            break
    assert sorted(info.TaskId for info in listed) == sorted(ids)
    assert {info.SessionId for info in listed} == {"sdk-0", "sdk-1", "sdk-2"}
    assert all(info.Status == "FINISH" and info.FinishTime.endswith("Z") for info in listed)
    assert DescribeTasksResponse.model_validate(json.loads(page.to_json_string())).TaskSet

    with pytest.raises(TencentCloudSDKException) as missing:
        await asyncio.to_thread(
            sdk_call, vod, DESCRIBE_TASK_DETAIL, vod_models.DescribeTaskDetailRequest(),
            {"TaskId": "251007502-AigcImage-missing"},
        )
    assert missing.value.get_code() == "InvalidParameterValue.TaskId"


@pytest.mark.filterwarnings("error::UserWarning")
async def test_sdk_filters_and_sorts_describe_tasks_as_collect_asks_it(
    live_emulator: tuple[RunningEmulator, FakeClock],
):
    # What collect's finder sends (docs/results.md#polling): Status FINISH, a FinishTime window,
    # sorted by FinishTime. The SDK builds the request from its own models and parses the answer.
    emulator, shift = live_emulator
    vod = sdk_client("vod", emulator.endpoint)
    created = vod_models.CreateAigcImageTaskRequest()
    ids = []
    for n, at in enumerate((0.0, 30.0, 60.0, 150.0)):  # finish at 100, 130, 160 and 250
        shift.now = at
        ids.append((await asyncio.to_thread(
            sdk_call, vod, "CreateAigcImageTask", created, {**VOD_PARAMS, "SessionId": f"f-{n}"},
        )).TaskId)
    shift.now = 200.0

    def listing(**filters: Any) -> Any:
        return sdk_call(vod, DESCRIBE_TASKS, vod_models.DescribeTasksRequest(),
                        {"SubAppId": SUB_APP_ID, "Limit": 100, **filters})

    finished = await asyncio.to_thread(
        listing, Status="FINISH", Sort={"Field": "FinishTime", "Order": "Asc"})
    assert [info.TaskId for info in finished.TaskSet] == ids[:3], "the running one is left out"
    first, second, third = (info.FinishTime for info in finished.TaskSet)
    assert first < second < third
    window = await asyncio.to_thread(
        listing, Status="FINISH", FinishTime={"After": second, "Before": "2100-01-01T00:00:00Z"},
        Sort={"Field": "FinishTime", "Order": "Desc"})
    assert [info.TaskId for info in window.TaskSet] == [ids[2], ids[1]]  # After is inclusive
    assert DescribeTasksResponse.model_validate(json.loads(window.to_json_string())).TaskSet


@pytest.mark.filterwarnings("error::UserWarning")
async def test_sdk_parses_describe_aigc_image_task(
    live_emulator: tuple[RunningEmulator, FakeClock], http: aiohttp.ClientSession
):
    emulator, shift = live_emulator
    mps = sdk_client("mps", emulator.endpoint)
    create = mps_models.CreateAigcImageTaskRequest()
    ok = (await asyncio.to_thread(sdk_call, mps, "CreateAigcImageTask", create, MPS_PARAMS)).TaskId
    bad = (await asyncio.to_thread(
        sdk_call, mps, "CreateAigcImageTask", create, {**MPS_PARAMS, "Prompt": "FAIL_GENERATION"}
    )).TaskId

    def poll(task_id: str) -> Any:
        return sdk_call(
            mps, DESCRIBE_AIGC_IMAGE_TASK, mps_models.DescribeAigcImageTaskRequest(),
            {"TaskId": task_id},
        )

    waiting = await asyncio.to_thread(poll, ok)
    assert isinstance(waiting, mps_models.DescribeAigcImageTaskResponse)
    assert waiting.Status == "WAIT"
    shift.now = 50.0
    assert (await asyncio.to_thread(poll, ok)).Status == "RUN"
    shift.now = 150.0
    done = await asyncio.to_thread(poll, ok)
    assert done.Status == "DONE" and len(done.ImageUrls) == 1
    status, headers, body = await download(http, done.ImageUrls[0])
    assert (status, len(body), headers["Content-Length"]) == (200, 64 * 1024, str(64 * 1024))
    ours = DescribeAigcImageTaskResponse.model_validate(json.loads(done.to_json_string()))
    assert ours.ImageUrls == done.ImageUrls
    failed = await asyncio.to_thread(poll, bad)
    assert failed.Status == "FAIL" and failed.Message

    with pytest.raises(TencentCloudSDKException) as missing:
        await asyncio.to_thread(poll, "4-AigcImage-missing")
    assert missing.value.get_code() == "ResourceNotFound.TaskNotFound"


# --- the command's options -----------------------------------------------------------------


def test_emulator_options_build_the_result_side_config():
    from batcher.cli.main import build_parser
    from batcher.emulator.arguments import config_from_args

    args = build_parser().parse_args([
        "emulator", "--generation-seconds", "5", "--generation-jitter", "0.5",
        "--fail-generation-marker", "NOPE", "--image-bytes", "1000000", "--url-ttl", "60",
        "--poll-rate", "7", "--download-drop-rate", "0.1", "--download-error-rate", "0.2",
    ])
    config = config_from_args(args)
    assert config.generation == GenerationConfig(
        seconds=5.0, jitter=0.5, fail_marker="NOPE", image_bytes=1_000_000, url_ttl=60.0
    )
    assert config.poll_rate == 7
    assert (config.faults.download_drop_rate, config.faults.download_error_rate) == (0.1, 0.2)
    assert config_from_args(build_parser().parse_args(["emulator"])).generation == (
        GenerationConfig()
    )


@pytest.mark.parametrize(
    "option",
    [["--image-bytes", "100"], ["--generation-jitter", "2"], ["--url-ttl", "0"],
     ["--generation-seconds", "-1"], ["--poll-rate", "-3"]],
)
def test_emulator_refuses_bad_result_options(option, capsys):
    from batcher.cli.main import build_parser

    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["emulator", *option])
    assert exited.value.code == 2
    assert option[0] in capsys.readouterr().err


# --- the PNG files -------------------------------------------------------------------------


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(type, data) of every chunk, each CRC checked."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, offset = [], 8
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind = data[offset + 4 : offset + 8]
        body = data[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack(">I", data[offset + 8 + length : offset + 12 + length])
        assert crc == zlib.crc32(kind + body), kind
        chunks.append((kind, body))
        offset += 12 + length
    assert offset == len(data)
    return chunks


@pytest.mark.parametrize("size", [2048, 2049, 65536, 3 * 1024 * 1024 + 7])
@pytest.mark.parametrize("colour", [(0, 0, 0), (255, 255, 255), (17, 200, 93), (255, 1, 128)])
def test_pngs_are_valid_and_exactly_the_size_asked(size, colour):
    from batcher.emulator.png import SIDE, PngFile

    data = b"".join(PngFile(colour, size).pieces())
    assert len(data) == size
    kinds = [kind for kind, _ in png_chunks(data)]
    assert kinds == [b"IHDR", b"IDAT", b"baTc", b"IEND"]
    width, height = struct.unpack(">II", png_chunks(data)[0][1][:8])
    assert (width, height) == (SIDE, SIDE)
    pixels = zlib.decompress(png_chunks(data)[1][1])
    assert len(pixels) == SIDE * (1 + 3 * SIDE)
    assert pixels[1:4] == bytes(colour)


async def test_the_command_serves_the_result_side_with_its_options(http: aiohttp.ClientSession):
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "batcher.emulator", "--port", "0", "--generation-seconds", "0",
         "--image-bytes", "4096", "--fail-generation-marker", "BAD"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(repo)},
    )
    try:
        assert process.stdout is not None
        url = (await asyncio.to_thread(process.stdout.readline)).strip()
        client = RawClient(http, url)
        good = await create(client, "mps")
        bad = await create(client, "mps", Prompt="BAD idea")
        done = await mps_poll(client, good)
        assert done["Status"] == "DONE"
        status, _, body = await download(http, done["ImageUrls"][0])
        assert (status, len(body)) == (200, 4096)
        assert (await mps_poll(client, bad))["Status"] == "FAIL"
        process.terminate()
        _, stderr = await asyncio.to_thread(process.communicate, timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0
    assert "images 4096 bytes" in stderr and "DescribeTaskDetail 100/s" in stderr


def test_the_cli_parser_with_the_emulator_options_imports_neither_pydantic_nor_aiohttp():
    # `batcher --help` adds the emulator's options; they must stay light (start under 150 ms).
    import subprocess
    import sys

    code = (
        "import sys, batcher.cli.main as m; m.build_parser(); "
        "print(sorted({'pydantic', 'aiohttp'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
