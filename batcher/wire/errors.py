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
An answer that is not the API's (unparseable, too large, nested too deep, the wrong shape) is a
`TransportError` with code `MALFORMED_ANSWER`: the request reached the server, so it is ambiguous
for a create, and a poll may simply be asked again (docs/operating.md).

Text the server chose (error codes, messages, URLs) goes through `printable` before it is logged
or printed, so a newline in it cannot forge a log line:

>>> printable("Bad.Code\\n2026-12-02 INFO all done\\x1b[2J")
'Bad.Code\\\\n2026-12-02 INFO all done\\\\x1b[2J'
"""

from __future__ import annotations

import enum
import unicodedata
from dataclasses import dataclass

from batcher.api.services import Service


class ErrorClass(enum.StrEnum):
    RETRYABLE = "retryable"
    DUPLICATE = "duplicate"
    PERMANENT = "permanent"
    RUN_STOPPING = "run_stopping"


SIGNATURE_EXPIRED = "AuthFailure.SignatureExpire"
MALFORMED_ANSWER = "MalformedAnswer"
"""Our code for an answer that is not the API's documented shape (see the module docstring)."""
SESSION_ID_USED = "InvalidParameterValue.SessionId"
THROTTLED_PREFIX = "RequestLimitExceeded"

_RETRYABLE_PREFIXES = ("InternalError", THROTTLED_PREFIX)
_RETRYABLE_CODES = frozenset({SIGNATURE_EXPIRED, "ServiceUnavailable"})
_RUN_STOPPING_CODES = frozenset(
    {
        "UnauthorizedOperation",
        "FailedOperation.InvalidVodUser",
        "InvalidParameterValue.SubAppId",
        # The account cannot create anything until it is fixed (docs/spend.md): in arrears,
        # the service not activated or the user invalid, the application's AIGC quota used up.
        "FailedOperation.UserStatusInavlid",  # sic, as the API spells it
        "FailedOperation.InvalidAccount",
        "ResourceNotFound.ServiceNotExist",
        "LimitExceeded.Quota",
        "FailedOperation.UserArrears",
        "FailedOperation.InvalidMpsUser",
        "FailedOperation.InvalidUser",
    }
)

CAPACITY_REFUSED = "LimitExceeded.CreateTask"
"""mps: the account's tasks being executed are at their limit; nothing was created."""


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


def is_capacity_refusal(service: str, code: str) -> bool:
    """True when the service refused for lack of room for running tasks (try again later)."""
    return service == "mps" and code == CAPACITY_REFUSED


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


# --- Server text, made safe to log -----------------------------------------------------------

PRINTABLE_MAX = 500
"""Characters of server text kept: a 4 MB error message is not one log line."""
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
"""Controls, format characters (bidi overrides), surrogates, unassigned, line/paragraph
separators: what can end a line, move the cursor or reorder what a reader sees."""


def printable(text: object, limit: int = PRINTABLE_MAX) -> str:
    """`text` (server-chosen) as one safe line: control and format characters escaped as
    `\\n`, `\\x1b`, `\\u202e`; cut to `limit` characters. Non-ASCII letters are kept."""
    value = text if isinstance(text, str) else str(text)
    if len(value) > limit:
        value = value[:limit] + "..."
    if value.isprintable():  # the common case: nothing to escape, no per-character work
        return value
    return "".join(_escape(char) for char in value)


def _escape(char: str) -> str:
    if char == " " or unicodedata.category(char) not in _UNSAFE_CATEGORIES:
        return char
    return repr(char)[1:-1] if ord(char) < 0x10000 else f"\\U{ord(char):08x}"
