"""What one poll says of a task's generation (docs/results.md#failed-generations): still going,
generated, or failed.

vod `DescribeTaskDetail` answers `Status` WAITING / PROCESSING / FINISH and, in `AigcImageTask`,
`ErrCode`/`ErrCodeExt`/`Message` and `Output.FileInfos[]`; mps `DescribeAigcImageTask` answers
`Status` WAIT / RUN / FAIL / DONE, `ImageUrls[]` and `Message`. Both become a `Generation`.

Which failures `submit --regenerate` sends again is decided here, once:

>>> is_retryable_generation_error("vod", "ResourceInsufficient")
True
>>> is_retryable_generation_error("vod", "InvalidParameter.VoilationContent")
False
>>> is_retryable_generation_error("mps", "FAIL")
False
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from batcher.api.times import api_time_or_none
from batcher.state.results_ledger import GeneratedFile, GenerationError
from batcher.wire.errors import printable

MPS_FAILURE_CODE = "FAIL"
"""mps reports a failure as `Status: FAIL` and a `Message`, with no code: recorded as this."""

_RETRYABLE_GENERATION_PREFIXES = (
    "RequestLimitExceeded",  # the model's concurrency limit
    "FailedOperation",  # a backlog
    "InternalError",
    "ResourceInsufficient",
    "ModelGenerateFailed",
    "TaskTimeout",
)


def is_retryable_generation_error(service: str, code: str) -> bool:
    """True when generating again may succeed (docs/results.md#failed-generations's list); mps
    `FAIL` says nothing of why, so it is resent only by `--regenerate-all`."""
    if service == "mps" and code == MPS_FAILURE_CODE:
        return False
    return code.startswith(_RETRYABLE_GENERATION_PREFIXES)


class Stage(enum.StrEnum):
    PENDING = "pending"
    GENERATED = "generated"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Generation:
    """One poll's verdict on a task."""

    stage: Stage
    files: tuple[GeneratedFile, ...] = ()
    error: GenerationError | None = None
    progress: int | None = None
    """vod's `Progress` (0-100) while it generates, when it gives one."""
    expires_at: float | None = None
    """Unix seconds when the first of its URLs stops working (vod `ExpireTime`), None if unsaid."""


def read_generation(service: str, response: Mapping[str, Any]) -> Generation:
    """The verdict in a poll action's `Response` object, whatever its shape: a field of the
    wrong type counts as absent (tests/test_hostile_answers.py fuzzes it), server text is made
    `printable`."""
    if service == "mps":
        return _read_mps(response)
    return _read_vod(response)


def _read_vod(response: Mapping[str, Any]) -> Generation:
    task = response.get("AigcImageTask")
    task = task if isinstance(task, Mapping) else {}
    status = _text(response.get("Status")) or _text(task.get("Status"))
    code = _text(task.get("ErrCodeExt"))
    if not code and _nonzero(task.get("ErrCode")):
        code = f"ErrCode{task.get('ErrCode')}"
    if code:
        return _failed("vod", code, _text(task.get("Message")))
    if status != "FINISH":
        progress = task.get("Progress")
        return Generation(Stage.PENDING, progress=progress if isinstance(progress, int) else None)
    output = task.get("Output")
    infos = output.get("FileInfos") if isinstance(output, Mapping) else None
    infos = [info for info in _items(infos) if isinstance(info, Mapping)]
    files = tuple(_vod_file(info) for info in infos)
    if not files:
        return _failed("vod", "NoOutput", "the task finished without output files")
    expiries = [at for info in infos
                if (at := api_time_or_none(info.get("ExpireTime"))) is not None]
    return Generation(Stage.GENERATED, files, expires_at=min(expiries, default=None))


def _vod_file(info: Mapping[str, Any]) -> GeneratedFile:
    url = _text(info.get("FileUrl"))
    meta = info.get("MetaData")
    size = meta.get("Size") if isinstance(meta, Mapping) else None
    return GeneratedFile(
        url=url,
        type=_text(info.get("FileType")) or extension_of(url),
        size=size if isinstance(size, int) and _nonzero(size) and size > 0 else 0,
    )


def _read_mps(response: Mapping[str, Any]) -> Generation:
    status = _text(response.get("Status"))
    if status == "FAIL":
        return _failed("mps", MPS_FAILURE_CODE, _text(response.get("Message")))
    if status != "DONE":
        return Generation(Stage.PENDING)
    urls = [url for url in _items(response.get("ImageUrls")) if isinstance(url, str) and url]
    if not urls:
        return _failed("mps", "NoOutput", "the task is DONE without image URLs")
    return Generation(Stage.GENERATED, tuple(GeneratedFile(url, extension_of(url), 0)
                                             for url in urls))


def _failed(service: str, code: str, message: str) -> Generation:
    code, message = printable(code, 100), printable(message)
    retryable = is_retryable_generation_error(service, code)
    return Generation(Stage.FAILED, error=GenerationError(code, message, retryable))


def _text(value: Any) -> str:
    """A string field's value; "" when it is absent or not a string (a wrong shape)."""
    return value if isinstance(value, str) else ""


def _items(value: Any) -> list[Any]:
    """A list field's items; none when it is absent or not a list (a string is not one)."""
    return value if isinstance(value, list) else []


def _nonzero(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value != 0


def extension_of(url: str) -> str:
    """The file extension of a URL's path, lower-case, without the dot ("" when none)."""
    try:
        name = urlsplit(url).path.rsplit("/", 1)[-1]
    except ValueError:  # not a URL (e.g. an unclosed "[" of an IPv6 host): no extension
        return ""
    return name.rsplit(".", 1)[-1].lower() if "." in name else ""
