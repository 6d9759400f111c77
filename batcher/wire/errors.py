"""The error classes of docs/architecture.md#submitting, as a map of what the caller can do about
each failure.

- RETRYABLE: send again after a back-off (network before sending, timeouts, HTTP 5xx,
  `InternalError*`, `RequestLimitExceeded*` (also slows the service down), `ServiceUnavailable`,
  `AuthFailure.SignatureExpire` (re-signed at send time, clock corrected)).
- DUPLICATE: `InvalidParameterValue.SessionId` on a service that dedups by SessionId (vod): the
  task was accepted before, so it is done.
- PERMANENT: anything else; recorded, and only re-sent with `--retry-failed`.
- RUN_STOPPING: an error that will fail every task of the account (bad credentials, service not
  activated, wrong SubAppId, no permission): the run stops at once.

Transport failures carry `may_have_reached_server`: a request that might have been acted upon
(dropped connection, timeout while waiting, a proxy's 5xx) is *ambiguous*; one that never left
(connection refused, DNS) is not. The pipeline decides what ambiguity means per service.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from batcher.api.services import Service


class ErrorClass(enum.StrEnum):
    RETRYABLE = "retryable"
    DUPLICATE = "duplicate"
    PERMANENT = "permanent"
    RUN_STOPPING = "run_stopping"


SIGNATURE_EXPIRED = "AuthFailure.SignatureExpire"
SESSION_ID_USED = "InvalidParameterValue.SessionId"
THROTTLED_PREFIX = "RequestLimitExceeded"

_RETRYABLE_PREFIXES = ("InternalError", THROTTLED_PREFIX)
_RETRYABLE_CODES = frozenset({SIGNATURE_EXPIRED, "ServiceUnavailable"})
_RUN_STOPPING_CODES = frozenset(
    {
        "UnauthorizedOperation",
        "FailedOperation.InvalidVodUser",
        "InvalidParameterValue.SubAppId",
    }
)


def classify(service: Service, code: str) -> ErrorClass:
    """The class of an API error code returned by `service`."""
    if code == SESSION_ID_USED and service.dedups_session_id:
        return ErrorClass.DUPLICATE
    if code in _RETRYABLE_CODES or code.startswith(_RETRYABLE_PREFIXES):
        return ErrorClass.RETRYABLE
    if code.startswith("AuthFailure") or code.startswith("UnauthorizedOperation"):
        return ErrorClass.RUN_STOPPING
    if code in _RUN_STOPPING_CODES:
        return ErrorClass.RUN_STOPPING
    return ErrorClass.PERMANENT


def is_throttling(code: str) -> bool:
    """True for the codes that mean "slow down" (they have their own retry budget)."""
    return code.startswith(THROTTLED_PREFIX)


# --- What the client returns ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Accepted:
    """The server created the task."""

    task_id: str
    request_id: str


@dataclass(frozen=True, slots=True)
class ApiError:
    """The server answered with `Response.Error` (HTTP 200): it saw the request and refused it."""

    code: str
    message: str
    request_id: str | None
    error_class: ErrorClass


@dataclass(frozen=True, slots=True)
class TransportError:
    """No usable answer: a network failure, a timeout, a non-200 status or an unreadable body."""

    code: str
    """`NetworkError`, `Timeout`, `HttpStatus502`, `BadResponse`, ..."""
    message: str
    may_have_reached_server: bool
    """False only when the request provably never left (connection refused, DNS failure)."""


Outcome = Accepted | ApiError | TransportError
