"""Fault injection: which request meets which injected failure, reproducibly.

One seeded `random.Random` per emulator decides; a fault whose share is 0 draws nothing, so
turning one fault on does not change the sequence another one sees for the same requests.
Where each fault strikes is the handler's business (see `app.py`): a proxy's 502 before anything
is checked, backend errors after the rate window admitted the request, a dropped connection after
the task was created; a dropped or failed image download in the file server (`files.py`).
"""

from __future__ import annotations

import random

from batcher.emulator.config import FaultConfig

THROTTLE = "RequestLimitExceeded"
INTERNAL_ERROR = "InternalError"
DOWNLOAD_DROP = "drop"
"""The file server closes the connection halfway through the body."""
DOWNLOAD_ERROR = "error"
"""The file server answers HTTP 503."""


class FaultInjector:
    """Draws the injected faults of one request at a time."""

    __slots__ = ("_config", "_rng")

    def __init__(self, config: FaultConfig) -> None:
        self._config = config
        self._rng = random.Random(config.seed)

    def _hit(self, share: float) -> bool:
        return share > 0.0 and self._rng.random() < share

    def http_502(self) -> bool:
        """Answer as a failing proxy would: HTTP 502, the backend never saw the request."""
        return self._hit(self._config.http_502_rate)

    def backend_error(self) -> str | None:
        """The error code to answer instead of processing the request, if any.

        The `--fail-code` codes first (in the order given), then `InternalError`, then an extra
        `RequestLimitExceeded` (THROTTLE).
        """
        for code, share in self._config.fail_codes:
            if self._hit(share):
                return code
        if self._hit(self._config.internal_error_rate):
            return INTERNAL_ERROR
        if self._hit(self._config.throttle_rate):
            return THROTTLE
        return None

    def drop_after_create(self) -> bool:
        """Create the task, then close the connection without answering."""
        return self._hit(self._config.drop_after_create_rate)

    def download_fault(self) -> str | None:
        """`DOWNLOAD_DROP`, `DOWNLOAD_ERROR` or None for one image download."""
        if self._hit(self._config.download_drop_rate):
            return DOWNLOAD_DROP
        if self._hit(self._config.download_error_rate):
            return DOWNLOAD_ERROR
        return None

    def latency(self) -> float:
        """Seconds to wait before answering (0 when no latency is configured)."""
        low, high = self._config.latency_ms
        if high <= 0.0:
            return 0.0
        return (low if low == high else self._rng.uniform(low, high)) / 1000.0
