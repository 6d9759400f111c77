"""Rolling one-second windows: the per-service request cap, and the peak rate a client reached.

`RollingWindow.admit(now)` admits a request when fewer than `limit` admitted requests lie in the
window `(now - 1 s, now]`; a refused request does not enter the window, so a client that backs
off is not punished for its refused attempts. `PeakMeter` counts every arrival the same way and
remembers the highest count: that is how a test proves a client never sent more than R requests
in any rolling second (a fixed per-second bucket would hide a burst across a second boundary).

    >>> window = RollingWindow(2)
    >>> [window.admit(t) for t in (0.0, 0.1, 0.2, 1.05)]
    [None, None, 3, None]
"""

from __future__ import annotations

import contextlib
from collections import deque

WINDOW_SECONDS = 1.0


def _expire(times: deque[float], now: float) -> None:
    """Drop the times that left the window ending at `now`."""
    horizon = now - WINDOW_SECONDS
    while times and times[0] <= horizon:
        times.popleft()


class RollingWindow:
    """At most `limit` admissions in any rolling second; `limit` 0 admits everything."""

    __slots__ = ("_times", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._times: deque[float] = deque()

    def admit(self, now: float) -> int | None:
        """None if admitted (and counted); else the window's count including this request."""
        if self.limit <= 0:
            return None
        times = self._times
        _expire(times, now)
        if len(times) >= self.limit:
            return len(times) + 1
        times.append(now)
        return None

    def release(self, at: float) -> None:
        """Take back the admission made at `at` (a request refused for another reason)."""
        with contextlib.suppress(ValueError):  # already out of the window
            self._times.remove(at)

    def count(self, now: float) -> int:
        """Admissions in the window ending at `now`."""
        _expire(self._times, now)
        return len(self._times)


class PeakMeter:
    """The highest number of arrivals seen in any rolling second."""

    __slots__ = ("_times", "peak")

    def __init__(self) -> None:
        self._times: deque[float] = deque()
        self.peak = 0

    def observe(self, now: float) -> None:
        """Count one arrival at `now` (times must not go backwards)."""
        times = self._times
        _expire(times, now)
        times.append(now)
        if len(times) > self.peak:
            self.peak = len(times)
