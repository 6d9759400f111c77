"""Request-body validation: the action's pydantic model, its errors mapped to API error codes.

The models of `batcher.api.models` are the contract both sides share; here they run in lax mode, as
the real API accepts numeric strings (its own example sends `"TasksPriority": "10"`). A failed
validation becomes the error the real API answers, reporting a single problem the way it does,
chosen by how basic it is: `UnknownParameter`, then `MissingParameter`, then `InvalidParameter`
(wrong type), then `InvalidParameterValue[.*]` (bad value, range or enumeration). Nested
parameters are named with dots (`OutputConfig.AspectRatio`, `FileInfos.0.Type`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from batcher.api.models import (
    ApiModel,
    MpsCreateAigcImageTaskRequest,
    RequestModel,
    VodCreateAigcImageTaskRequest,
    request_model,
)
from batcher.api.services import Service
from batcher.emulator import errors
from batcher.emulator.errors import ApiError

JSON_MEDIA_TYPE = "application/json"

# Type errors: the value is of the wrong JSON type (or a string that does not parse as one).
_TYPE_ERROR_SUFFIXES = ("_type", "_parsing")
_TYPE_ERRORS = frozenset({"int_from_float"})
# "Value error, Prompt is required when ..." from a model validator names a missing parameter.
_REQUIRED = re.compile(r"^(?:Value error, )?(?P<name>[A-Z]\w*) is required")
# VOD has dedicated codes for its two over-long strings.
_VOD_TOO_LONG = {
    "SessionId": "InvalidParameterValue.SessionIdTooLong",
    "SessionContext": "InvalidParameterValue.SessionContextTooLong",
}


def validate(
    service: Service, body: bytes, content_type: str, sub_app_ids: Collection[int]
) -> RequestModel | ApiError:
    """The parsed `CreateAigcImageTask` request, or the error the real API answers it with.

    `sub_app_ids` are the VOD applications that exist; empty means any positive integer.
    """
    request = validate_as(request_model(service.name), service, body, content_type, sub_app_ids)
    if isinstance(request, ApiError):
        return request
    assert isinstance(request, (VodCreateAigcImageTaskRequest, MpsCreateAigcImageTaskRequest))
    return request


def validate_as(
    model: type[ApiModel],
    service: Service,
    body: bytes,
    content_type: str,
    sub_app_ids: Collection[int],
) -> ApiModel | ApiError:
    """The body parsed as `model` (any action's request), or the error the API answers it with.

    A `SubAppId` the request carries must be positive and, when `sub_app_ids` is not empty, one
    of them.
    """
    media_type = content_type.partition(";")[0].strip().lower()
    if media_type != JSON_MEDIA_TYPE:
        return errors.invalid_parameter(
            f"Content-Type `{content_type}` is not supported: send `{JSON_MEDIA_TYPE}`."
        )
    try:
        data: Any = json.loads(body)
    except ValueError:  # also UnicodeDecodeError
        return errors.invalid_parameter("The request body is not valid JSON.")
    if not isinstance(data, dict):
        return errors.invalid_parameter("The request body must be a JSON object.")

    try:
        request = model.model_validate(data)
    except ValidationError as exc:
        return _first_error(service, exc.errors())

    sub_app_id = getattr(request, "SubAppId", None)
    if sub_app_id is not None and (
        sub_app_id <= 0 or (sub_app_ids and sub_app_id not in sub_app_ids)
    ):
        return errors.known("InvalidParameterValue.SubAppId")
    return request


def parameter_path(loc: tuple[int | str, ...]) -> str:
    """`("FileInfos", 0, "Type")` -> `"FileInfos.0.Type"`."""
    return ".".join(str(part) for part in loc)


def _first_error(service: Service, details: list[ErrorDetails]) -> ApiError:
    """The one error reported for a failed validation: the most basic kind, first in order."""
    mapped = [_map(service, detail) for detail in details]
    return min(mapped, key=lambda ranked: ranked[0])[1]


def _map(service: Service, detail: ErrorDetails) -> tuple[int, ApiError]:
    """(rank, error) of one pydantic error; lower ranks are reported first."""
    kind = detail["type"]
    name = parameter_path(detail["loc"])
    if kind == "extra_forbidden":
        return 0, errors.unknown_parameter(name)
    if kind == "missing":
        return 1, errors.missing_parameter(name)
    if not name:
        # A model validator: the only ones say which parameter a request cannot do without.
        required = _REQUIRED.match(detail["msg"])
        if required is not None:
            return 1, errors.missing_parameter(required["name"])
        reason = detail["msg"].removeprefix("Value error, ")
        return 3, ApiError("InvalidParameterValue", reason)
    if kind in _TYPE_ERRORS or kind.endswith(_TYPE_ERROR_SUFFIXES):
        return 2, errors.invalid_parameter(
            f"The parameter `{name}` has an invalid type: {detail['msg']}."
        )
    if service.name == "vod" and kind == "string_too_long" and name in _VOD_TOO_LONG:
        return 3, errors.known(_VOD_TOO_LONG[name])
    return 3, errors.invalid_parameter_value(name, detail.get("input"), detail["msg"] + ".")
