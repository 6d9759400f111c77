"""Pydantic models of the poll actions (docs/results.md): their requests and the answers they give.

Names and nesting follow the official SDKs' `models.py`: VOD 2018-07-17 `DescribeTaskDetail`
(`DescribeTaskDetailResponse` > `AigcImageTask` > `Output.FileInfos[]` > `MetaData`) and
`DescribeTasks` (`TaskSet[]` of `TaskSimpleInfo`, `ScrollToken`), MPS 2019-06-12
`DescribeAigcImageTask` (`Status`, `ImageUrls[]`, `Message`). Each response model is what sits
inside the answer's `"Response"` object.

Requests are strict like every request model (`ApiModel`: unknown fields forbidden), since the
emulator validates what clients send with them. Responses are lax: unknown fields are ignored and
statuses are plain strings, so a field or a state the real API adds later does not break a
collect run; only what a client reads, plus what the SDK's parser reads, is modelled.
The API's time format is `batcher.api.times`'s.

    >>> answer = {"Status": "DONE", "ImageUrls": ["https://x/1.png"], "RequestId": "r"}
    >>> DescribeAigcImageTaskResponse.model_validate(answer).ImageUrls
    ['https://x/1.png']
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from batcher.api.models import ApiModel
from batcher.api.services import DESCRIBE_AIGC_IMAGE_TASK, DESCRIBE_TASK_DETAIL, DESCRIBE_TASKS

DESCRIBE_TASKS_LIMIT_MAX = 100
"""The most tasks one `DescribeTasks` page may list."""
DESCRIBE_TASKS_LIMIT_DEFAULT = 10
"""The page size when a `DescribeTasks` request sends no `Limit`."""
DESCRIBE_TASKS_HISTORY_SECONDS = 3 * 24 * 3600
"""`DescribeTasks` and `DescribeTaskDetail` know only the tasks of the last three days (72 h)."""

AIGC_IMAGE_TASK_TYPE = "AigcImageTask"
"""VOD `TaskType` of an AIGC image task (`DescribeTaskDetail` and `TaskSet[]`)."""

# VOD task statuses (`DescribeTaskDetail.Status`, `TaskSimpleInfo.Status`); `AigcImageTask.Status`
# is only ever PROCESSING or FINISH.
VOD_WAITING = "WAITING"
VOD_PROCESSING = "PROCESSING"
VOD_FINISH = "FINISH"
VOD_ABORTED = "ABORTED"

# MPS task statuses (`DescribeAigcImageTask.Status`).
MPS_WAIT = "WAIT"
MPS_RUN = "RUN"
MPS_FAIL = "FAIL"
MPS_DONE = "DONE"

STORAGE_TEMPORARY = "Temporary"
STORAGE_PERMANENT = "Permanent"

VIOLATION_CONTENT = "InvalidParameter.VoilationContent"
"""VOD `ErrCodeExt` of a prompt refused by content moderation (the API's own spelling)."""

TASK_NOT_FOUND: dict[str, str] = {
    "vod": "InvalidParameterValue.TaskId",
    "mps": "ResourceNotFound.TaskNotFound",
}
"""The error code each service answers a poll of a TaskId it does not know with."""


class ResponseModel(BaseModel):
    """Base of every answer model: API field names as they are, unknown fields ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)


# --- VOD 2018-07-17: requests ---------------------------------------------------------------


class TimeRange(ApiModel):
    """VOD: a time filter, `After` <= t < `Before`, each ISO 8601 (`YYYY-MM-DDThh:mm:ssZ`)."""

    After: str | None = None
    Before: str | None = None


class SortBy(ApiModel):
    """VOD: the order of a listing (`Field` CreateTime / FinishTime, `Order` Asc / Desc)."""

    Field: str
    Order: str


class DescribeTaskDetailRequest(ApiModel):
    """VOD `DescribeTaskDetail` request: one task's status and output files."""

    TaskId: str
    SubAppId: int | None = None


class DescribeTasksRequest(ApiModel):
    """VOD `DescribeTasks` request: the tasks of the last three days, a page at a time."""

    SubAppId: int | None = None
    Status: str | None = None
    FileId: str | None = None
    CreateTime: TimeRange | None = None
    FinishTime: TimeRange | None = None
    Sort: SortBy | None = None
    Limit: Annotated[int, Field(ge=1, le=DESCRIBE_TASKS_LIMIT_MAX)] | None = None
    ScrollToken: str | None = None


# --- VOD 2018-07-17: answers ----------------------------------------------------------------


class MediaMetaData(ResponseModel):
    """VOD: metadata of one output file; `Size` is its length in bytes."""

    Size: int | None = None
    Container: str | None = None
    Width: int | None = None
    Height: int | None = None
    Md5: str | None = None


class AigcImageTaskOutputFileInfo(ResponseModel):
    """VOD: one generated file. `ExpireTime` (ISO 8601) ends a `Temporary` file."""

    StorageMode: str | None = None
    MediaName: str | None = None
    ClassId: int | None = None
    ExpireTime: str | None = None
    FileType: str | None = None
    FileUrl: str | None = None
    FileId: str | None = None
    MetaData: MediaMetaData | None = None


class AigcImageTaskOutput(ResponseModel):
    """VOD: the files an AIGC image task produced."""

    FileInfos: list[AigcImageTaskOutputFileInfo] = []


class AigcImageTaskInput(ResponseModel):
    """VOD: the parameters the task was created with, as the API echoes them."""

    ModelName: str | None = None
    ModelVersion: str | None = None
    FileInfos: list[dict[str, Any]] | None = None
    Prompt: str | None = None
    NegativePrompt: str | None = None
    EnhancePrompt: str | None = None
    OutputConfig: dict[str, Any] | None = None
    Seed: int | None = None
    SceneType: str | None = None
    ExtInfo: str | None = None


class AigcImageTask(ResponseModel):
    """VOD: an AIGC image task. `ErrCodeExt` empty = success; else the generation's error code."""

    TaskId: str | None = None
    Status: str | None = None
    ErrCode: int | None = None
    ErrCodeExt: str | None = None
    Message: str | None = None
    Progress: int | None = None
    Input: AigcImageTaskInput | None = None
    Output: AigcImageTaskOutput | None = None
    SessionId: str | None = None
    SessionContext: str | None = None


# The answer's field is called like the class: annotations in its body would find the field.
_AigcImageTask = AigcImageTask


class DescribeTaskDetailResponse(ResponseModel):
    """VOD `DescribeTaskDetail` answer; `AigcImageTask` is set when `TaskType` is AigcImageTask."""

    TaskType: str | None = None
    Status: str | None = None
    CreateTime: str | None = None
    BeginProcessTime: str | None = None
    FinishTime: str | None = None
    AigcImageTask: _AigcImageTask | None = None
    RequestId: str | None = None


class TaskSimpleInfo(ResponseModel):
    """VOD: one task of a `DescribeTasks` page."""

    TaskId: str
    Status: str | None = None
    FileId: str | None = None
    TaskType: str | None = None
    CreateTime: str | None = None
    BeginProcessTime: str | None = None
    FinishTime: str | None = None
    SessionId: str | None = None
    SessionContext: str | None = None


class DescribeTasksResponse(ResponseModel):
    """VOD `DescribeTasks` answer; an empty or missing `ScrollToken` means the last page."""

    TaskSet: list[TaskSimpleInfo] = []
    ScrollToken: str | None = None
    RequestId: str | None = None


# --- MPS 2019-06-12 -------------------------------------------------------------------------


class DescribeAigcImageTaskRequest(ApiModel):
    """MPS `DescribeAigcImageTask` request."""

    TaskId: str


class DescribeAigcImageTaskResponse(ResponseModel):
    """MPS `DescribeAigcImageTask` answer: `ImageUrls` when DONE, `Message` when FAIL."""

    Status: str | None = None
    ImageUrls: list[str] = []
    Message: str | None = None
    RequestId: str | None = None


# --- per action -----------------------------------------------------------------------------

POLL_REQUESTS: dict[str, type[ApiModel]] = {
    DESCRIBE_TASK_DETAIL: DescribeTaskDetailRequest,
    DESCRIBE_TASKS: DescribeTasksRequest,
    DESCRIBE_AIGC_IMAGE_TASK: DescribeAigcImageTaskRequest,
}
"""The request model of each poll action."""

POLL_RESPONSES: dict[str, type[ResponseModel]] = {
    DESCRIBE_TASK_DETAIL: DescribeTaskDetailResponse,
    DESCRIBE_TASKS: DescribeTasksResponse,
    DESCRIBE_AIGC_IMAGE_TASK: DescribeAigcImageTaskResponse,
}
"""The answer model (the inside of `"Response"`) of each poll action."""
