"""docs/emulator.md: the vod AIGC image quota (`--aigc-quota SUBAPPID=N`, `DescribeAigcQuotas`,
`LimitExceeded.Quota`) and the account-wide codes `--fail-code` injects, each proven with the
official SDK's clients calling the emulator and parsing its answers into the SDK's models."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

import pytest
from tencentcloud.common import credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.mps.v20190612 import errorcodes as mps_errors
from tencentcloud.mps.v20190612 import models as mps_models
from tencentcloud.mps.v20190612.mps_client import MpsClient
from tencentcloud.vod.v20180717 import errorcodes as vod_errors
from tencentcloud.vod.v20180717 import models as vod_models
from tencentcloud.vod.v20180717.vod_client import VodClient

from batcher.emulator import DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY, EmulatorConfig
from batcher.emulator.app import STATE_KEY
from batcher.emulator.arguments import add_arguments, config_from_args
from batcher.emulator.config import FaultConfig
from batcher.emulator.runner import running_emulator
from tests.helpers import MPS_PARAMS, VOD_PARAMS

APP = VOD_PARAMS["SubAppId"]


def sdk_client(service: str, endpoint: str) -> Any:
    cred = credential.Credential(DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY)
    profile = ClientProfile(httpProfile=HttpProfile(endpoint=endpoint, protocol="http"))
    return VodClient(cred, "", profile) if service == "vod" else MpsClient(cred, "", profile)


def sdk_call(client: Any, action: str, request: Any, params: dict[str, Any]) -> Any:
    request.from_json_string(json.dumps(params))
    return getattr(client, action)(request)


def quotas(vod: Any, app: int = APP) -> Any:
    return sdk_call(vod, "DescribeAigcQuotas", vod_models.DescribeAigcQuotasRequest(),
                    {"SubAppId": app, "QuotaType": "Image"})


def create(vod: Any, n: int, images: int) -> str:
    params = {**VOD_PARAMS, "SessionId": f"quota-{n}",
              "OutputConfig": {"OutputImageCount": images}}
    return str(sdk_call(vod, "CreateAigcImageTask", vod_models.CreateAigcImageTaskRequest(),
                        params).TaskId)


@pytest.mark.filterwarnings("error::UserWarning")  # a field the SDK's model lacks: an error
async def test_the_sdk_reads_a_quota_and_meets_limit_exceeded_quota_once_it_is_used_up():
    async with running_emulator(EmulatorConfig(aigc_quotas=((APP, 5),))) as emulator:
        vod = sdk_client("vod", emulator.endpoint)
        fresh = await asyncio.to_thread(quotas, vod)
        assert isinstance(fresh, vod_models.DescribeAigcQuotasResponse)
        assert fresh.TotalCount == 1
        [item] = fresh.QuotaSet
        assert isinstance(item, vod_models.AigcQuotaItem)
        assert (item.QuotaType, item.QuotaLimit, item.Usage) == ("Image", 5, 0)
        await asyncio.to_thread(create, vod, 1, 3)
        await asyncio.to_thread(create, vod, 2, 2)
        [item] = (await asyncio.to_thread(quotas, vod)).QuotaSet
        assert item.Usage == 5
        with pytest.raises(TencentCloudSDKException) as refused:
            await asyncio.to_thread(create, vod, 3, 1)
        assert refused.value.code == vod_errors.LIMITEXCEEDED_QUOTA
        assert [record.code for record in emulator.records][-1] == "LimitExceeded.Quota"
        # the refused create's SessionId was not taken: once the quota is raised, it goes
        sessions = emulator.app[STATE_KEY].sessions
        assert not sessions.is_duplicate("quota-3", time.time())
        # another application has no quota: it lists none and is never refused
        other = await asyncio.to_thread(quotas, vod, APP + 1)
        assert other.QuotaSet == [] and other.TotalCount == 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser


def test_aigc_quota_is_a_repeatable_option_and_a_bad_one_is_refused(capsys):
    args = build_parser().parse_args(["--aigc-quota", "1=10", "--aigc-quota", "2=0"])
    assert config_from_args(args).aigc_quotas == ((1, 10), (2, 0))
    for bad in ("1", "x=3", "1=-1", "0=5"):
        with pytest.raises(SystemExit):
            build_parser().parse_args(["--aigc-quota", bad])
    assert "SUBAPPID=N" in capsys.readouterr().err


VOD_ACCOUNT_CODES = [vod_errors.FAILEDOPERATION_USERSTATUSINAVLID,
                     vod_errors.FAILEDOPERATION_INVALIDACCOUNT,
                     vod_errors.RESOURCENOTFOUND_SERVICENOTEXIST, vod_errors.LIMITEXCEEDED_QUOTA]
MPS_ACCOUNT_CODES = [mps_errors.FAILEDOPERATION_USERARREARS,
                     mps_errors.FAILEDOPERATION_INVALIDMPSUSER,
                     mps_errors.FAILEDOPERATION_INVALIDUSER]


@pytest.mark.parametrize(("service", "code"), [*(("vod", code) for code in VOD_ACCOUNT_CODES),
                                               *(("mps", code) for code in MPS_ACCOUNT_CODES)])
async def test_fail_code_injects_each_account_wide_code_with_its_own_message(service, code):
    config = EmulatorConfig(faults=FaultConfig(fail_codes=((code, 1.0),)))
    async with running_emulator(config) as emulator:
        client = sdk_client(service, emulator.endpoint)
        request = (vod_models.CreateAigcImageTaskRequest() if service == "vod"
                   else mps_models.CreateAigcImageTaskRequest())
        params = VOD_PARAMS if service == "vod" else MPS_PARAMS
        with pytest.raises(TencentCloudSDKException) as refused:
            await asyncio.to_thread(sdk_call, client, "CreateAigcImageTask", request, params)
    assert refused.value.code == code
    assert "injected" not in refused.value.message and refused.value.message
