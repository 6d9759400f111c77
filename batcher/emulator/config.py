"""The emulator's settings: one frozen `EmulatorConfig` (with its `FaultConfig`), nothing else.

Everything the emulator does differently from run to run is decided here, once, by whoever starts
it (the `batcher emulator` command or a test); the handlers only read it. The clocks are
injectable callables so that a test can move time (three days for SessionId expiry, or a skewed
server clock) without sleeping.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from batcher.api.services import MPS_IMAGE_URL_TTL_SECONDS, Service

DEFAULT_SECRET_ID = "AKIDbatcherEmulator0000000000000000"
DEFAULT_SECRET_KEY = "batcher-emulator-secret-key"  # a public test key, not a secret
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765

MAX_TIMESTAMP_SKEW_SECONDS = 300
"""The real API refuses a signature whose timestamp is more than five minutes off."""
DEDUP_WINDOW_SECONDS = 3 * 24 * 3600
"""VOD refuses a SessionId used by a task created in the last three days."""
DEFAULT_MAX_RECORDS = 200_000
"""Request records kept in memory (about 75 MB); the counters of `/_emulator/stats` never forget."""
DEFAULT_GENERATION_SECONDS = 2.0
DEFAULT_GENERATION_JITTER = 0.0
DEFAULT_FAIL_GENERATION_MARKER = "FAIL_GENERATION"
DEFAULT_IMAGE_BYTES = 64 * 1024
MIN_IMAGE_BYTES = 2048
"""The smallest PNG the emulator can pad to any exact size (its picture takes under 1 KiB)."""
DEFAULT_URL_TTL_SECONDS = float(MPS_IMAGE_URL_TTL_SECONDS)
VOD_TEMPORARY_TTL_SECONDS = 7 * 24 * 3600
"""VOD keeps a `Temporary` output 7 days (the SDK's `AigcImageOutputConfig.StorageMode`)."""

Clock = Callable[[], float]


def _check_share(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a share between 0 and 1, got {value}")


@dataclass(frozen=True, slots=True)
class FaultConfig:
    """Injected faults; every share is a probability per request, all off by default.

    With a `seed`, the same sequence of requests meets the same faults.
    """

    seed: int | None = None
    internal_error_rate: float = 0.0
    throttle_rate: float = 0.0
    http_502_rate: float = 0.0
    drop_after_create_rate: float = 0.0
    latency_ms: tuple[float, float] = (0.0, 0.0)
    """Uniform delay range (low, high) before each answer, in milliseconds."""
    fail_codes: tuple[tuple[str, float], ...] = ()
    """(error code, share) pairs answered instead of processing the request."""
    download_drop_rate: float = 0.0
    """Share of image downloads whose connection is closed halfway through the body."""
    download_error_rate: float = 0.0
    """Share of image downloads answered HTTP 503 instead of the file."""

    def __post_init__(self) -> None:
        _check_share("internal_error_rate", self.internal_error_rate)
        _check_share("throttle_rate", self.throttle_rate)
        _check_share("http_502_rate", self.http_502_rate)
        _check_share("drop_after_create_rate", self.drop_after_create_rate)
        _check_share("download_drop_rate", self.download_drop_rate)
        _check_share("download_error_rate", self.download_error_rate)
        for code, share in self.fail_codes:
            if not code:
                raise ValueError("a fail code must not be empty")
            _check_share(f"the share of {code}", share)
        low, high = self.latency_ms
        if not 0.0 <= low <= high:
            raise ValueError(f"latency_ms must be 0 <= low <= high, got {self.latency_ms}")


@dataclass(frozen=True, slots=True)
class TemporaryKey:
    """Temporary credentials (STS, a CVM role) the emulator accepts: only with their token, and
    only until `expires_at` (Unix seconds on the emulator's clock; None = no end)."""

    secret_id: str
    secret_key: str = field(repr=False)
    token: str = field(repr=False)
    expires_at: float | None = None


@dataclass(frozen=True, slots=True)
class GenerationConfig:
    """How created tasks live: how long they take, which fail, what files they leave
    (docs/emulator.md#the-result-side).

    A task waits for the first fifth of its generation time, runs for the rest, then finishes;
    its generation time is `seconds`, spread uniformly by +-`jitter` (0.5 = +-50%).
    """

    seconds: float = DEFAULT_GENERATION_SECONDS
    jitter: float = DEFAULT_GENERATION_JITTER
    fail_marker: str = DEFAULT_FAIL_GENERATION_MARKER
    """A prompt containing this fails at generation (content moderation)."""
    image_bytes: int = DEFAULT_IMAGE_BYTES
    """The exact size of every PNG served (and reported as `MetaData.Size`)."""
    url_ttl: float = DEFAULT_URL_TTL_SECONDS
    """Seconds an MPS image URL works after its task finished (then 403, as COS answers)."""

    def __post_init__(self) -> None:
        if self.seconds < 0:
            raise ValueError(f"the generation time must be >= 0 seconds, got {self.seconds}")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError(f"the generation jitter must be between 0 and 1, got {self.jitter}")
        if not self.fail_marker:
            raise ValueError("the fail-generation marker must not be empty")
        if self.image_bytes < MIN_IMAGE_BYTES:
            raise ValueError(
                f"images must be at least {MIN_IMAGE_BYTES} bytes, got {self.image_bytes}"
            )
        if self.url_ttl <= 0:
            raise ValueError(f"the URL lifetime must be > 0 seconds, got {self.url_ttl}")


@dataclass(frozen=True, slots=True)
class EmulatorConfig:
    """How one emulator instance behaves. Immutable: build a new one to change anything."""

    secret_id: str = DEFAULT_SECRET_ID
    secret_key: str = field(default=DEFAULT_SECRET_KEY, repr=False)
    token: str | None = field(default=None, repr=False)
    """With a token, `secret_id`/`secret_key` are temporary credentials: a request must carry
    this `X-TC-Token`. Without one they are permanent, and a request with a token is refused."""
    temporary_keys: tuple[TemporaryKey, ...] = ()
    """More temporary credentials accepted besides `secret_id` (e.g. a CVM role's, rotating)."""
    rate: int | None = None
    """Creations per rolling second per service; None = the registry's cap (20).

    0 lifts every cap, the poll actions' included: that is what a benchmark wants."""
    poll_rate: int | None = None
    """Requests per rolling second of each poll action; None = the registry's caps, 0 = none."""
    max_running: int | None = None
    """mps: the account's tasks that may be waiting or running at once; a create past it is
    refused with `LimitExceeded.CreateTask`. None = no limit (vod documents no such code)."""
    sub_app_ids: frozenset[int] = frozenset()
    """The VOD SubAppIds that exist; empty = any positive integer."""
    clock_skew: float = 0.0
    """Seconds added to `clock` to get the emulator's notion of now (timestamps, Date header)."""
    faults: FaultConfig = FaultConfig()
    generation: GenerationConfig = GenerationConfig()
    log_path: Path | None = None
    """When set, one JSON line per request is appended to this file."""
    host: str = DEFAULT_HOST
    port: int = 0
    """0 = let the OS pick a free port."""
    max_records: int | None = DEFAULT_MAX_RECORDS
    """In-memory request records kept (oldest dropped first); None = unbounded."""
    aigc_quotas: tuple[tuple[int, int], ...] = ()
    """(SubAppId, images) of each vod application with an AIGC image quota (`quotas.py`)."""
    mps_task_prefix: int = 4
    """The number before `-AigcImage-` in MPS TaskIds (the API's own example shows 4)."""
    clock: Clock = field(default=time.time, repr=False, compare=False)
    """Wall clock (Unix seconds) before `clock_skew` is added."""
    monotonic: Clock = field(default=time.monotonic, repr=False, compare=False)
    """Clock of the rate windows and of the records' `mono` field."""

    def __post_init__(self) -> None:
        if self.rate is not None and self.rate < 0:
            raise ValueError(f"rate must be >= 0 (0 = unlimited), got {self.rate}")
        if self.poll_rate is not None and self.poll_rate < 0:
            raise ValueError(f"poll rate must be >= 0 (0 = unlimited), got {self.poll_rate}")
        if self.max_running is not None and self.max_running < 1:
            raise ValueError(f"max running must be >= 1, got {self.max_running}")
        if any(sub_app_id <= 0 for sub_app_id in self.sub_app_ids):
            raise ValueError("every SubAppId must be a positive integer")
        if not self.secret_id or not self.secret_key:
            raise ValueError("the secret id and the secret key must not be empty")

    def key_for(self, secret_id: str) -> TemporaryKey | tuple[str, None] | None:
        """The credentials `secret_id` names: a `TemporaryKey`, (permanent key, None), or None."""
        if secret_id == self.secret_id:
            if self.token is not None:
                return TemporaryKey(self.secret_id, self.secret_key, self.token)
            return (self.secret_key, None)
        for key in self.temporary_keys:
            if key.secret_id == secret_id:
                return key
        return None

    def rate_for(self, service: Service) -> int:
        """The creation cap applied to `service`: requests per rolling second, 0 = unlimited."""
        return service.rate_cap if self.rate is None else self.rate

    def cap_for(self, service: Service, action: str) -> int:
        """The cap applied to `action` of `service`: requests per rolling second, 0 = unlimited."""
        if action == service.action:
            return self.rate_for(service)
        if self.rate == 0:
            return 0
        return service.cap(action) if self.poll_rate is None else self.poll_rate

    def now(self) -> float:
        """The emulator's wall clock, skew included."""
        return self.clock() + self.clock_skew
