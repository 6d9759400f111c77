"""The answers of the poll actions, built with the shared models of `batcher.api.results`.

- VOD `DescribeTaskDetail`: top-level `Status` WAITING / PROCESSING / FINISH; `AigcImageTask`
  with `Status` PROCESSING / FINISH, `Progress`, the echoed `Input`, and once finished either
  `Output.FileInfos[]` (`ErrCodeExt` "") or `ErrCode` 40000 with `ErrCodeExt`
  `InvalidParameter.VoilationContent` and a `Message` (no files).
- VOD `DescribeTasks`: the tasks of the last three days matching the filters (`SubAppId`,
  `Status`, `FileId`, `CreateTime` / `FinishTime` windows, `After` <= t < `Before` in whole
  seconds), `Limit` (default 10, at most 100) per page. The order is `Sort` (default CreateTime
  Desc, newest first: the API does not document its default). `ScrollToken` is the TaskId of
  the next record, empty on the last page, so pages stay consistent while tasks are created.
- MPS `DescribeAigcImageTask`: `Status` WAIT / RUN / FAIL / DONE, `ImageUrls` once DONE,
  `Message` once FAIL.

An unknown TaskId (or one older than three days, or of another SubAppId) is answered
`InvalidParameterValue.TaskId` (VOD) or `ResourceNotFound.TaskNotFound` (MPS).
"""

from __future__ import annotations

from typing import Any

from batcher.api import results as api
from batcher.api.models import ApiModel
from batcher.api.services import DESCRIBE_AIGC_IMAGE_TASK, DESCRIBE_TASK_DETAIL, DESCRIBE_TASKS
from batcher.api.times import format_api_time, parse_api_time
from batcher.emulator import errors
from batcher.emulator.config import EmulatorConfig
from batcher.emulator.errors import ApiError
from batcher.emulator.files import FILE_TYPE, expires_at, file_url
from batcher.emulator.png import SIDE
from batcher.emulator.tasks import Task, TaskBook

VIOLATION_ERR_CODE = 40000
"""VOD's `ErrCode` for a task refused for its input (the class of `InvalidParameter.*`)."""
VIOLATION_MESSAGE = "The prompt violates the content security policy."
_VOD_STATUS = {
    "waiting": api.VOD_WAITING,
    "running": api.VOD_PROCESSING,
    "done": api.VOD_FINISH,
    "failed": api.VOD_FINISH,
}
_MPS_STATUS = {
    "waiting": api.MPS_WAIT,
    "running": api.MPS_RUN,
    "done": api.MPS_DONE,
    "failed": api.MPS_FAIL,
}
_SORT_FIELDS = ("CreateTime", "FinishTime")
_SORT_ORDERS = ("Asc", "Desc")


class Polls:
    """Answers one poll request at a time from the emulator's `TaskBook`."""

    __slots__ = ("config", "tasks")

    def __init__(self, config: EmulatorConfig, tasks: TaskBook) -> None:
        self.config = config
        self.tasks = tasks

    def answer(
        self, action: str, request: ApiModel, now: float, base_url: str
    ) -> api.ResponseModel | ApiError:
        """The answer (without its RequestId) to a validated poll `request`, or its error."""
        if action == DESCRIBE_TASK_DETAIL:
            assert isinstance(request, api.DescribeTaskDetailRequest)
            return self._task_detail(request, now, base_url)
        if action == DESCRIBE_TASKS:
            assert isinstance(request, api.DescribeTasksRequest)
            return self._tasks(request, now)
        if action == DESCRIBE_AIGC_IMAGE_TASK:
            assert isinstance(request, api.DescribeAigcImageTaskRequest)
            return self._aigc_image_task(request, now, base_url)
        raise ValueError(f"{action} is not a poll action")

    # --- VOD ---------------------------------------------------------------------------------

    def _task_detail(
        self, request: api.DescribeTaskDetailRequest, now: float, base_url: str
    ) -> api.DescribeTaskDetailResponse | ApiError:
        task = self.tasks.get(request.TaskId, now)
        if (
            task is None
            or task.spec.service != "vod"
            or (request.SubAppId is not None and request.SubAppId != task.spec.sub_app_id)
        ):
            return errors.known(api.TASK_NOT_FOUND["vod"])
        phase = task.phase(now)
        times = _times(task, now)
        return api.DescribeTaskDetailResponse(
            TaskType=api.AIGC_IMAGE_TASK_TYPE,
            Status=_VOD_STATUS[phase],
            CreateTime=times["CreateTime"],
            BeginProcessTime=times["BeginProcessTime"],
            FinishTime=times["FinishTime"],
            AigcImageTask=self._aigc_task(task, now, base_url),
        )

    def _aigc_task(self, task: Task, now: float, base_url: str) -> api.AigcImageTask:
        spec = task.spec
        phase = task.phase(now)
        finished = phase in ("done", "failed")
        output = None
        if phase == "done":
            output = api.AigcImageTaskOutput(FileInfos=self._vod_files(task, base_url))
        return api.AigcImageTask(
            TaskId=spec.task_id,
            Status=api.VOD_FINISH if finished else api.VOD_PROCESSING,
            ErrCode=VIOLATION_ERR_CODE if phase == "failed" else 0,
            ErrCodeExt=api.VIOLATION_CONTENT if phase == "failed" else "",
            Message=VIOLATION_MESSAGE if phase == "failed" else "",
            Progress=task.progress(now),
            Input=api.AigcImageTaskInput(
                ModelName=spec.model_name, ModelVersion=spec.model_version, Prompt=spec.prompt
            ),
            Output=output,
            SessionId=spec.session_id or "",
            SessionContext=spec.session_context or "",
        )

    def _vod_files(self, task: Task, base_url: str) -> list[api.AigcImageTaskOutputFileInfo]:
        spec = task.spec
        expires = expires_at(task, self.config)
        permanent = (spec.storage_mode or api.STORAGE_TEMPORARY) == api.STORAGE_PERMANENT
        size = self.config.generation.image_bytes
        return [
            api.AigcImageTaskOutputFileInfo(
                StorageMode=spec.storage_mode or api.STORAGE_TEMPORARY,
                MediaName=(spec.media_name or task.task_id) if permanent else "",
                ExpireTime=format_api_time(expires) if expires is not None else "",
                FileType=FILE_TYPE,
                FileUrl=file_url(base_url, task, index, expires),
                FileId=_file_id(task, index) if permanent else "",
                MetaData=api.MediaMetaData(Size=size, Container=FILE_TYPE, Width=SIDE, Height=SIDE),
            )
            for index in range(spec.image_count)
        ]

    def _tasks(
        self, request: api.DescribeTasksRequest, now: float
    ) -> api.DescribeTasksResponse | ApiError:
        windows = _windows(request)
        if isinstance(windows, ApiError):
            return windows
        (after, before), finish_window = windows
        sort = request.Sort or api.SortBy(Field="CreateTime", Order="Desc")
        if sort.Field not in _SORT_FIELDS or sort.Order not in _SORT_ORDERS:
            return errors.invalid_parameter_value(
                "Sort", sort.model_dump(), f"Field is one of {_SORT_FIELDS}, Order {_SORT_ORDERS}."
            )
        matching = [
            task
            for task in self.tasks.created_between(after, before, now)
            if _matches(task, request, now, finish_window)
        ]
        if sort.Field == "FinishTime":
            matching.sort(key=lambda task: (int(task.finished), task.seq))
        if sort.Order == "Desc":
            matching.reverse()
        start = 0
        if request.ScrollToken:
            ids = [task.task_id for task in matching]
            if request.ScrollToken not in ids:
                return errors.known("InvalidParameterValue.ScrollToken")
            start = ids.index(request.ScrollToken)
        limit = request.Limit or api.DESCRIBE_TASKS_LIMIT_DEFAULT
        page = matching[start : start + limit]
        following = matching[start + limit] if start + limit < len(matching) else None
        return api.DescribeTasksResponse(
            TaskSet=[_simple_info(task, now) for task in page],
            ScrollToken=following.task_id if following is not None else "",
        )

    # --- MPS ---------------------------------------------------------------------------------

    def _aigc_image_task(
        self, request: api.DescribeAigcImageTaskRequest, now: float, base_url: str
    ) -> api.DescribeAigcImageTaskResponse | ApiError:
        task = self.tasks.get(request.TaskId, now)
        if task is None or task.spec.service != "mps":
            return errors.known(api.TASK_NOT_FOUND["mps"])
        phase = task.phase(now)
        urls: list[str] = []
        if phase == "done":
            expires = expires_at(task, self.config)
            count = task.spec.image_count
            urls = [file_url(base_url, task, index, expires) for index in range(count)]
        return api.DescribeAigcImageTaskResponse(
            Status=_MPS_STATUS[phase],
            ImageUrls=urls,
            Message=f"{VIOLATION_MESSAGE} ({api.VIOLATION_CONTENT})" if phase == "failed" else "",
        )


def _times(task: Task, now: float) -> dict[str, str]:
    """CreateTime, BeginProcessTime and FinishTime as the API writes them ("" until reached)."""
    return {
        "CreateTime": format_api_time(task.created),
        "BeginProcessTime": format_api_time(task.began) if now >= task.began else "",
        "FinishTime": format_api_time(task.finished) if now >= task.finished else "",
    }


def _simple_info(task: Task, now: float) -> api.TaskSimpleInfo:
    return api.TaskSimpleInfo(
        TaskId=task.task_id,
        Status=_VOD_STATUS[task.phase(now)],
        FileId="",
        TaskType=api.AIGC_IMAGE_TASK_TYPE,
        SessionId=task.spec.session_id or "",
        SessionContext=task.spec.session_context or "",
        **_times(task, now),
    )


Window = tuple[float, float]


def _windows(request: api.DescribeTasksRequest) -> tuple[Window, Window | None] | ApiError:
    """The CreateTime window (open-ended when absent) and the FinishTime window, if any."""
    created = _window("CreateTime", request.CreateTime)
    if isinstance(created, ApiError):
        return created
    finished = _window("FinishTime", request.FinishTime) if request.FinishTime else None
    if isinstance(finished, ApiError):
        return finished
    return created, finished


def _window(name: str, bounds: api.TimeRange | None) -> Window | ApiError:
    after, before = float("-inf"), float("inf")
    if bounds is None:
        return after, before
    try:
        if bounds.After:
            after = parse_api_time(bounds.After)
        if bounds.Before:
            before = parse_api_time(bounds.Before)
    except ValueError as exc:
        return errors.invalid_parameter_value(
            name, bounds.model_dump(exclude_none=True), f"{exc} (ISO 8601, YYYY-MM-DDThh:mm:ssZ)."
        )
    return after, before


def _matches(
    task: Task, request: api.DescribeTasksRequest, now: float, finish_window: Window | None
) -> bool:
    spec = task.spec
    if spec.service != "vod":
        return False
    if request.SubAppId is not None and request.SubAppId != spec.sub_app_id:
        return False
    if request.Status is not None and request.Status != _VOD_STATUS[task.phase(now)]:
        return False
    if request.FileId is not None and request.FileId not in _file_ids(task):
        return False
    if finish_window is not None:
        if now < task.finished:
            return False
        second = int(task.finished)
        return finish_window[0] <= second < finish_window[1]
    return True


def _file_ids(task: Task) -> set[str]:
    if task.spec.storage_mode != api.STORAGE_PERMANENT:
        return set()
    return {_file_id(task, index) for index in range(task.spec.image_count)}


def _file_id(task: Task, index: int) -> str:
    """A VOD-looking FileId (19 digits) for a permanently stored output."""
    return str(5_000_000_000_000_000_000 + (task.seq * 10 + index) % 10**18)


def dump(model: api.ResponseModel, request_id: str) -> dict[str, Any]:
    """The `"Response"` object of an answer: the model's fields, unset ones left out."""
    body: dict[str, Any] = model.model_dump(exclude_none=True)
    body["RequestId"] = request_id
    return body
