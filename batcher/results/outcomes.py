"""What one poll says of a task's generation (SPEC §9): still going, generated, or failed.

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
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from batcher.api.results import parse_api_time
from batcher.state.results_ledger import GeneratedFile, GenerationError

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
    """True when generating again may succeed (SPEC §9's list); mps `FAIL` says nothing of why,
    so it is resent only by `--regenerate-all`."""
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
    """The verdict in a poll action's `Response` object."""
    if service == "mps":
        return _read_mps(response)
    return _read_vod(response)


def _read_vod(response: Mapping[str, Any]) -> Generation:
    task = response.get("AigcImageTask")
    task = task if isinstance(task, Mapping) else {}
    status = str(response.get("Status") or task.get("Status") or "")
    code = str(task.get("ErrCodeExt") or "")
    if not code and _nonzero(task.get("ErrCode")):
        code = f"ErrCode{task.get('ErrCode')}"
    if code:
        return _failed("vod", code, str(task.get("Message") or ""))
    if status != "FINISH":
        progress = task.get("Progress")
        return Generation(Stage.PENDING, progress=progress if isinstance(progress, int) else None)
    output = task.get("Output")
    infos = output.get("FileInfos") if isinstance(output, Mapping) else None
    infos = [info for info in infos or () if isinstance(info, Mapping)]
    files = tuple(_vod_file(info) for info in infos)
    if not files:
        return _failed("vod", "NoOutput", "the task finished without output files")
    expiries = [at for info in infos if (at := _api_time(info.get("ExpireTime"))) is not None]
    return Generation(Stage.GENERATED, files, expires_at=min(expiries, default=None))


def _api_time(text: Any) -> float | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return parse_api_time(text)
    except ValueError:
        return None


def _vod_file(info: Mapping[str, Any]) -> GeneratedFile:
    url = str(info.get("FileUrl") or "")
    meta = info.get("MetaData")
    size = meta.get("Size") if isinstance(meta, Mapping) else None
    return GeneratedFile(
        url=url,
        type=str(info.get("FileType") or extension_of(url)),
        size=size if isinstance(size, int) and size > 0 else 0,
    )


def _read_mps(response: Mapping[str, Any]) -> Generation:
    status = str(response.get("Status") or "")
    if status == "FAIL":
        return _failed("mps", MPS_FAILURE_CODE, str(response.get("Message") or ""))
    if status != "DONE":
        return Generation(Stage.PENDING)
    urls = [url for url in response.get("ImageUrls") or () if isinstance(url, str) and url]
    if not urls:
        return _failed("mps", "NoOutput", "the task is DONE without image URLs")
    return Generation(Stage.GENERATED, tuple(GeneratedFile(url, extension_of(url), 0)
                                             for url in urls))


_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")


def loggable(text: str) -> str:
    """`text` with its control characters escaped: an answer's error code with a newline in it
    must not forge a log line.

    >>> loggable("Bad\\nINFO forged")
    'Bad\\\\x0aINFO forged'
    """
    return _CONTROL.sub(lambda match: f"\\x{ord(match.group()):02x}", text)


def _failed(service: str, code: str, message: str) -> Generation:
    retryable = is_retryable_generation_error(service, code)
    return Generation(Stage.FAILED, error=GenerationError(code, message, retryable))


def _nonzero(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value != 0


def extension_of(url: str) -> str:
    """The file extension of a URL's path, lower-case, without the dot ("" when none)."""
    name = urlsplit(url).path.rsplit("/", 1)[-1]
    return name.rsplit(".", 1)[-1].lower() if "." in name else ""
