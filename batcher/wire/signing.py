"""TC3-HMAC-SHA256 request signing (TencentCloud API 3.0 signature v3), both directions.

`Signer` turns a JSON payload into the signed headers of a `POST /` request; the emulator uses
`parse_authorization` and `expected_signature` to verify one. The canonical request signs the
headers `content-type;host`, the credential scope is `DATE/SERVICE/tc3_request` with DATE the UTC
day of the timestamp, exactly as the official SDK does (see tests/test_signing.py, which compares
with it). The derived signing key depends only on (secret key, day, service), so it is cached per
Signer for the day, as an HMAC object keyed once and copied for each request (a copy instead of a
fresh HMAC: signing is on every request's path).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from dataclasses import dataclass
from functools import lru_cache

ALGORITHM = "TC3-HMAC-SHA256"
SIGNED_HEADERS = "content-type;host"
JSON_CONTENT_TYPE = "application/json"
_DAY_SECONDS = 86_400


def utc_date(timestamp: int) -> str:
    """The UTC day (YYYY-MM-DD) of a Unix timestamp: the DATE of the credential scope."""
    return _utc_day(timestamp // _DAY_SECONDS)


@lru_cache(maxsize=8)
def _utc_day(day: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(day * _DAY_SECONDS))


def signing_key(secret_key: str, date: str, service: str) -> bytes:
    """The TC3 signing key: HMAC chain over the day, the service and `tc3_request`."""
    k_date = hmac.new(("TC3" + secret_key).encode(), date.encode(), hashlib.sha256).digest()
    k_service = hmac.new(k_date, service.encode(), hashlib.sha256).digest()
    return hmac.new(k_service, b"tc3_request", hashlib.sha256).digest()


def string_to_sign(
    *,
    host: str,
    content_type: str,
    payload: bytes,
    timestamp: int,
    service: str,
    date: str | None = None,
) -> str:
    """The TC3 string to sign of a `POST /` request with the given headers and body.

    The canonical request: method, path `/`, no query, the two signed headers, their names and
    the body's SHA-256. `date` defaults to the timestamp's UTC day (a caller may pass it cached).
    """
    canonical_request = (
        f"POST\n/\n\ncontent-type:{content_type}\nhost:{host}\n\n{SIGNED_HEADERS}\n"
        f"{hashlib.sha256(payload).hexdigest()}"
    )
    scope = f"{date or utc_date(timestamp)}/{service}/tc3_request"
    digest = hashlib.sha256(canonical_request.encode("utf-8")).hexdigest()
    return f"{ALGORITHM}\n{timestamp}\n{scope}\n{digest}"


def expected_signature(
    *,
    secret_key: str,
    host: str,
    content_type: str,
    payload: bytes,
    timestamp: int,
    service: str,
    date: str | None = None,
) -> str:
    """The hex signature a correct client sends for this request (used to verify one)."""
    key = signing_key(secret_key, date or utc_date(timestamp), service)
    text = string_to_sign(
        host=host, content_type=content_type, payload=payload, timestamp=timestamp, service=service
    )
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).hexdigest()


class Signer:
    """Signs requests with one credential pair; caches the day's signing key per service.

    >>> signer = Signer("AKIDexample", "secret")
    >>> headers = signer.sign_headers(service="vod", host="vod.intl.tencentcloudapi.com",
    ...     action="CreateAigcImageTask", version="2018-07-17", payload=b"{}", timestamp=1700000000)
    >>> headers["Authorization"].split(",")[0]
    'TC3-HMAC-SHA256 Credential=AKIDexample/2023-11-14/vod/tc3_request'
    """

    __slots__ = ("_date", "_day", "_keys", "_secret_key", "secret_id", "token")

    def __init__(self, secret_id: str, secret_key: str, token: str | None = None) -> None:
        self.secret_id = secret_id
        self._secret_key = secret_key
        self.token = token
        self._day: int | None = None
        """The UTC day (timestamp // 86400) that `_date` and `_keys` are for."""
        self._date = ""
        self._keys: dict[str, hmac.HMAC] = {}
        """service -> an HMAC keyed with the day's signing key, to copy for each request."""

    def __repr__(self) -> str:
        return f"Signer(secret_id={self.secret_id!r}, secret_key=<hidden>)"

    def _key(self, service: str) -> hmac.HMAC:
        # An HMAC keyed once, copied per request: its padded-key states are not recomputed.
        key = self._keys[service] = hmac.new(
            signing_key(self._secret_key, self._date, service), digestmod=hashlib.sha256
        )
        return key

    def sign_headers(
        self,
        *,
        service: str,
        host: str,
        action: str,
        version: str,
        payload: bytes,
        timestamp: int,
        region: str | None = None,
    ) -> dict[str, str]:
        """Every header of a signed `POST /` JSON request, `Authorization` included."""
        day = timestamp // _DAY_SECONDS
        if day != self._day:  # a new day (or the first request): a new date, new keys
            self._day, self._date = day, utc_date(timestamp)
            self._keys.clear()
        date = self._date
        text = string_to_sign(host=host, content_type=JSON_CONTENT_TYPE, payload=payload,
                              timestamp=timestamp, service=service, date=date)
        mac = (self._keys.get(service) or self._key(service)).copy()
        mac.update(text.encode())
        signature = mac.hexdigest()
        headers = {
            "Content-Type": JSON_CONTENT_TYPE,
            "Host": host,
            "X-TC-Action": action,
            "X-TC-Version": version,
            "X-TC-Timestamp": str(timestamp),
            "Authorization": (
                f"{ALGORITHM} Credential={self.secret_id}/{date}/{service}/tc3_request, "
                f"SignedHeaders={SIGNED_HEADERS}, Signature={signature}"
            ),
        }
        if region:
            headers["X-TC-Region"] = region
        if self.token:
            headers["X-TC-Token"] = self.token
        return headers


@dataclass(frozen=True, slots=True)
class ParsedAuthorization:
    """The parts of a TC3 `Authorization` header."""

    secret_id: str
    date: str
    service: str
    signed_headers: str
    signature: str


_AUTHORIZATION = re.compile(
    r"^TC3-HMAC-SHA256\s+Credential=(?P<secret_id>[^/,\s]+)/(?P<date>\d{4}-\d{2}-\d{2})/"
    r"(?P<service>[a-z0-9]+)/tc3_request,\s*SignedHeaders=(?P<signed>[a-z0-9;-]+),\s*"
    r"Signature=(?P<signature>[0-9a-f]{64})$"
)


def parse_authorization(header: str) -> ParsedAuthorization | None:
    """Split a TC3 `Authorization` header, or None when it is not one."""
    match = _AUTHORIZATION.match(header.strip())
    if match is None:
        return None
    return ParsedAuthorization(
        secret_id=match["secret_id"],
        date=match["date"],
        service=match["service"],
        signed_headers=match["signed"],
        signature=match["signature"],
    )
