"""Whether the endpoint can be reached at all (docs/architecture.md#submitting): every request of
the last 30 s failed before anything was sent (connection refused, DNS, a connect timeout) means it
cannot.

While that is suspected (the last answer was such a failure), one task at a time may try the
endpoint (`probe`): the other tasks wait as they were instead of each spending its retry budget
and writing two ledger lines per attempt. The first request that reaches the server ends the
suspicion; a window with nothing else ends the run (exit 75, every task left as it was).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from batcher.wire.errors import Accepted, ApiError, TransportError

UNREACHABLE_WINDOW = 30.0
"""Seconds in which every request failed before it was sent, after which the run stops."""

NEVER_SENT_CODES = frozenset({"NetworkError", "Timeout"})
"""Transport failures that, when `may_have_reached_server` is False, never left this host (a
429 from a proxy is an answer: the endpoint was reached)."""


def failed_before_sending(outcome: Accepted | ApiError | TransportError) -> bool:
    """True for a request that provably never reached the endpoint."""
    return (
        isinstance(outcome, TransportError)
        and not outcome.may_have_reached_server
        and outcome.code in NEVER_SENT_CODES
    )


class Reachability:
    """Tracks the failures before sending, per run; `probe` serialises tasks while suspected."""

    def __init__(
        self, window: float = UNREACHABLE_WINDOW, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.window = window
        self.probe = asyncio.Lock()
        self._clock = clock
        self._failing_since: float | None = None

    @property
    def suspected(self) -> bool:
        """The last answer was a failure before sending: new tasks go one at a time."""
        return self._failing_since is not None

    def answered(self, outcome: Accepted | ApiError | TransportError) -> bool:
        """Record one request's outcome; True when the endpoint counts as unreachable."""
        if not failed_before_sending(outcome):
            self._failing_since = None
            return False
        now = self._clock()
        if self._failing_since is None:
            self._failing_since = now
        return now - self._failing_since >= self.window
