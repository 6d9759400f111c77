"""The API errors the emulator answers, with the messages the real TencentCloud API uses.

An `ApiError` is a value (code, message), not an exception: every check returns one or passes,
and the handler turns it into `{"Response": {"Error": {...}, "RequestId": ...}}` with HTTP 200.
The helpers below are the only place where a code's message is spelled.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ApiError:
    """One `Response.Error` of the API."""

    code: str
    message: str


# Messages of the common error codes, as the real API words them.
_MESSAGES: dict[str, str] = {
    "AuthFailure.InvalidAuthorization": "Authorization in the request header is invalid.",
    "AuthFailure.SecretIdNotFound": (
        "The SecretId is not found, please ensure that your SecretId is correct."
    ),
    "AuthFailure.SignatureFailure": (
        "The provided credentials could not be validated. Please check your signature is correct."
    ),
    "AuthFailure.SignatureExpire": (
        "Signature expired. Timestamp and server time cannot differ by more than five minutes. "
        "Please ensure your current local time matches the standard time."
    ),
    "AuthFailure.UnauthorizedOperation": "The request is not authorized through CAM.",
    "AuthFailure.TokenFailure": "Token error.",
    "InternalError": (
        "An internal error has occurred. Retry your request, but if the problem persists, "
        "contact us."
    ),
    "FailedOperation": "Operation failed.",
    "FailedOperation.InvalidVodUser": "The VOD service is not activated.",
    "UnauthorizedOperation": "Unauthorized operation.",
    "InvalidParameterValue.SubAppId": "Incorrect parameter value: application id.",
    "InvalidParameterValue.SessionId": (
        "The deduplication ID already exists. The request is removed due to duplication."
    ),
    "InvalidParameterValue.SessionIdTooLong": "SessionId is too long.",
    "InvalidParameterValue.SessionContextTooLong": "SessionContext is too long.",
    "InvalidParameterValue.FileId": "The FileId does not exist.",
    "ResourceUnavailable": "The resource is unavailable.",
    "InvalidParameterValue.TaskId": "The TaskId does not exist.",
    "ResourceNotFound.TaskNotFound": "The task does not exist.",
    "InvalidParameterValue.ScrollToken": "The ScrollToken is invalid or has expired.",
    "ServiceUnavailable": "Service is unavailable now.",
    # The account's state and money, as the SDKs' errorcodes.py describe them (in English here,
    # as the international site answers).
    "FailedOperation.UserStatusInavlid": "The user's service has been suspended.",
    "FailedOperation.InvalidAccount": "The user account is abnormal.",
    "ResourceNotFound.ServiceNotExist": "The service is not activated.",
    "LimitExceeded.Quota": "The quota limit is exceeded.",
    "FailedOperation.UserArrears": "The user's service is suspended (in arrears).",
    "FailedOperation.InvalidMpsUser": "Operation failed: invalid MPS user.",
    "FailedOperation.InvalidUser": "Operation failed: invalid user.",
    "LimitExceeded.CreateTask": (
        "Unable to create the task: the number of tasks being executed has reached the upper "
        "limit."
    ),
}


def token_failure(detail: str) -> ApiError:
    """`AuthFailure.TokenFailure` (the common code for a missing, wrong or expired token)."""
    return ApiError("AuthFailure.TokenFailure", f"Token error. {detail}")


def wrong_host(host: str) -> ApiError:
    """A `Host` header that is not this endpoint's. The real API's answer is not documented;
    it derives the signature from its own host, so the closest real code is SignatureFailure."""
    return ApiError(
        "AuthFailure.SignatureFailure",
        f"The Host header `{host[:100]}` is not this endpoint's host: send Host as host[:port] "
        "of the URL, with no scheme or user info.",
    )


def known(code: str) -> ApiError:
    """The error `code` with its real message (a neutral one for codes not listed above)."""
    message = _MESSAGES.get(code)
    if message is None:
        message = f"{code} (injected by the batcher emulator)."
    return ApiError(code, message)


def invalid_authorization(detail: str) -> ApiError:
    code = "AuthFailure.InvalidAuthorization"
    return ApiError(code, f"{_MESSAGES[code]} {detail}")


def missing_parameter(name: str) -> ApiError:
    return ApiError("MissingParameter", f"The request is missing a required parameter `{name}`.")


def unknown_parameter(name: str) -> ApiError:
    return ApiError("UnknownParameter", f"The parameter `{name}` is not recognized")


def invalid_parameter(detail: str) -> ApiError:
    return ApiError("InvalidParameter", detail)


def invalid_parameter_value(name: str, value: object, reason: str) -> ApiError:
    shown = repr(value)
    if len(shown) > 64:  # a base64 image would drown the reason
        shown = shown[:61] + "..."
    return ApiError(
        "InvalidParameterValue", f"The value `{shown}` of parameter `{name}` is invalid: {reason}"
    )


def invalid_action(action: str, service: str) -> ApiError:
    return ApiError(
        "InvalidAction", f"The requested action `{action}` of service `{service}` does not exist."
    )


def no_such_version(version: str, service: str) -> ApiError:
    return ApiError(
        "NoSuchVersion", f"The requested version `{version}` of service `{service}` does not exist."
    )


def request_limit_exceeded(count: int, limit: int) -> ApiError:
    return ApiError(
        "RequestLimitExceeded",
        f"Your current request times equals to `{count}` in a second, which exceeds the "
        f"frequency limit `{limit}` for a second. Please reduce the frequency of calls.",
    )
