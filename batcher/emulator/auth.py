"""Verification of the TencentCloud API 3.0 common headers and the TC3-HMAC-SHA256 signature.

`verify` checks one request the way the real endpoint does and answers either the `Service` the
request is for (the credential scope's service picks it: both services share one port) or the
`ApiError` the real API would return. It recomputes the signature over the request's own `Host`
and `Content-Type` headers with `batcher.wire.signing.expected_signature`, the same code the client
signs with, so both sides can never drift apart unnoticed (the SDK test proves the pair right).
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from urllib.parse import urlsplit

from batcher.api.services import SERVICES, Service
from batcher.emulator import errors
from batcher.emulator.config import MAX_TIMESTAMP_SKEW_SECONDS, EmulatorConfig, TemporaryKey
from batcher.emulator.errors import ApiError
from batcher.wire.addresses import is_loopback
from batcher.wire.signing import (
    SIGNED_HEADERS,
    ParsedAuthorization,
    expected_signature,
    parse_authorization,
    utc_date,
)

UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
"""`X-TC-Content-SHA256` value by which the SDK asks for the body to be left out of the hash."""


def parse(authorization: str | None) -> ParsedAuthorization | None:
    """The parsed `Authorization` header, or None (missing or not TC3). Used for routing too."""
    if not authorization:
        return None
    return parse_authorization(authorization)


def verify(
    *,
    headers: Mapping[str, str],
    body: bytes,
    auth: ParsedAuthorization | None,
    config: EmulatorConfig,
    now: float,
    own_port: int | None = None,
) -> Service | ApiError:
    """The service this request is for, or the error the real API answers it with.

    `auth` is `parse(headers["Authorization"])`, computed once by the caller; `now` is the
    emulator's (possibly skewed) wall clock; `own_port` the port the request arrived on (None:
    the `Host` header is not checked).
    """
    if own_port is not None:
        wrong_host = _check_host(headers.get("Host", ""), config.host, own_port)
        if wrong_host is not None:
            return wrong_host
    if auth is None:
        if headers.get("Authorization"):
            return errors.invalid_authorization("It is not a TC3-HMAC-SHA256 authorization.")
        return errors.invalid_authorization("The Authorization header is missing.")
    service = SERVICES.get(auth.service)
    if service is None:
        return errors.invalid_authorization(
            f"The credential scope names service `{auth.service}`; "
            f"this endpoint serves {', '.join(SERVICES)}."
        )
    if auth.signed_headers != SIGNED_HEADERS:
        # The real API accepts more signed headers; batcher and the SDK sign exactly these two,
        # and `expected_signature` knows only them, so anything else is refused loudly.
        return errors.invalid_authorization(f"SignedHeaders must be `{SIGNED_HEADERS}`.")

    problem = _check_common_parameters(headers, service)
    if problem is not None:
        return problem

    timestamp = _timestamp(headers)
    if isinstance(timestamp, ApiError):
        return timestamp
    if abs(timestamp - now) > MAX_TIMESTAMP_SKEW_SECONDS:
        return errors.known("AuthFailure.SignatureExpire")
    if auth.date != utc_date(timestamp):
        # The server derives the key from the scope's day; a scope day that is not the
        # timestamp's day can only come from a wrong signature computation.
        return errors.known("AuthFailure.SignatureFailure")
    key = config.key_for(auth.secret_id)
    if key is None:
        return errors.known("AuthFailure.SecretIdNotFound")
    if isinstance(key, TemporaryKey):
        secret_key = key.secret_key
        token_problem = _check_token(headers.get("X-TC-Token"), key, now)
        if token_problem is not None:
            return token_problem
    else:
        secret_key = key[0]
        if headers.get("X-TC-Token"):
            return errors.token_failure("A token was sent with permanent credentials.")

    payload = body
    if headers.get("X-TC-Content-SHA256") == UNSIGNED_PAYLOAD:
        payload = UNSIGNED_PAYLOAD.encode()
    expected = expected_signature(
        secret_key=secret_key,
        host=headers.get("Host", ""),
        content_type=headers.get("Content-Type", ""),
        payload=payload,
        timestamp=timestamp,
        service=service.name,
        date=auth.date,
    )
    if not hmac.compare_digest(expected, auth.signature):
        return errors.known("AuthFailure.SignatureFailure")
    return service


def _check_host(host_header: str, own_host: str, own_port: int) -> ApiError | None:
    """The `Host` header must name this endpoint: its host (any loopback name when it listens
    on loopback, any name when it listens on every address) and its port."""
    try:
        parts = urlsplit("//" + host_header)
        port = parts.port or 80
    except ValueError:
        return errors.wrong_host(host_header)
    host = parts.hostname or ""
    if port != own_port or not host or parts.username is not None or parts.path:
        return errors.wrong_host(host_header)
    if own_host in ("0.0.0.0", "::") or host == own_host.strip("[]").lower():
        return None
    if is_loopback(own_host) and is_loopback(host):
        return None
    return errors.wrong_host(host_header)


def _check_token(token: str | None, key: TemporaryKey, now: float) -> ApiError | None:
    """Temporary credentials are accepted with their own token, until they expire."""
    if not token:
        return errors.token_failure("Temporary credentials need their token in X-TC-Token.")
    if not hmac.compare_digest(token.encode(), key.token.encode()):
        return errors.token_failure("The token does not belong to this SecretId.")
    if key.expires_at is not None and now >= key.expires_at:
        return errors.token_failure("The token has expired.")
    return None


def _check_common_parameters(headers: Mapping[str, str], service: Service) -> ApiError | None:
    """`X-TC-Action` and `X-TC-Version` present and naming what this service offers.

    The actions a service offers are those the registry gives a cap: creation and polls.
    """
    action = headers.get("X-TC-Action")
    if not action:
        return errors.missing_parameter("Action")
    if action not in service.caps:
        return errors.invalid_action(action, service.name)
    version = headers.get("X-TC-Version")
    if not version:
        return errors.missing_parameter("Version")
    if version != service.version:
        return errors.no_such_version(version, service.name)
    return None


def _timestamp(headers: Mapping[str, str]) -> int | ApiError:
    raw = headers.get("X-TC-Timestamp")
    if not raw:
        return errors.missing_parameter("Timestamp")
    try:
        return int(raw)
    except ValueError:
        return errors.invalid_parameter(f"The value `{raw}` of parameter `Timestamp` is invalid.")
