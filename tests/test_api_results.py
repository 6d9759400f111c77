"""docs/results.md answer models (`batcher.api.results`): lax answers, strict requests, the API's
times."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from batcher.api.results import (
    DESCRIBE_TASKS_LIMIT_MAX,
    POLL_REQUESTS,
    POLL_RESPONSES,
    DescribeAigcImageTaskResponse,
    DescribeTaskDetailResponse,
    DescribeTasksRequest,
    DescribeTasksResponse,
)
from batcher.api.services import DESCRIBE_AIGC_QUOTAS, MPS, VOD
from batcher.api.times import format_api_time, parse_api_time


def test_task_detail_answer_parses_nested_files_and_ignores_unknown_fields():
    answer = DescribeTaskDetailResponse.model_validate(
        {
            "TaskType": "AigcImageTask",
            "Status": "FINISH",
            "SomethingNew": {"x": 1},
            "AigcImageTask": {
                "TaskId": "1-AigcImage-x",
                "Status": "FINISH",
                "ErrCode": 0,
                "ErrCodeExt": "",
                "Progress": 100,
                "Output": {
                    "FileInfos": [
                        {
                            "FileUrl": "http://h/a.png",
                            "FileType": "png",
                            "StorageMode": "Temporary",
                            "ExpireTime": "2026-12-01T00:00:00Z",
                            "MetaData": {"Size": 65536, "Width": 64, "Unknown": True},
                        }
                    ]
                },
            },
            "RequestId": "r",
        }
    )
    assert answer.AigcImageTask is not None and answer.AigcImageTask.Output is not None
    (file,) = answer.AigcImageTask.Output.FileInfos
    assert (file.FileUrl, file.StorageMode) == ("http://h/a.png", "Temporary")
    assert file.MetaData is not None and file.MetaData.Size == 65536


def test_answers_default_to_empty_lists():
    assert DescribeTasksResponse.model_validate({"RequestId": "r"}).TaskSet == []
    assert DescribeAigcImageTaskResponse.model_validate({"Status": "RUN"}).ImageUrls == []


def test_describe_tasks_request_is_strict_and_caps_limit():
    DescribeTasksRequest.model_validate({"Limit": DESCRIBE_TASKS_LIMIT_MAX})
    with pytest.raises(ValidationError):
        DescribeTasksRequest.model_validate({"Limit": DESCRIBE_TASKS_LIMIT_MAX + 1})
    with pytest.raises(ValidationError):
        DescribeTasksRequest.model_validate({"Offset": 0})


def test_every_poll_action_of_the_registry_has_its_models():
    # Every action but the create and the quota read (docs/spend.md) polls a task.
    poll_actions = ({action for service in (VOD, MPS) for action in service.caps}
                    - {VOD.action, DESCRIBE_AIGC_QUOTAS})
    assert set(POLL_REQUESTS) == set(POLL_RESPONSES) == poll_actions


def test_api_times_round_trip_in_whole_utc_seconds():
    assert format_api_time(1_764_547_200.9) == "2025-12-01T00:00:00Z"
    assert parse_api_time("2025-12-01T00:00:00Z") == 1_764_547_200
    assert parse_api_time("2025-12-01T08:00:00+08:00") == 1_764_547_200
    with pytest.raises(ValueError, match="time zone"):
        parse_api_time("2025-12-01T00:00:00")
