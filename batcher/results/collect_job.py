"""What a collect run is given and what it gives back: its settings, its manifests, its result.

Built once by the faces (`batcher.cli.collect`, `batcher.collect`), read by `collector`; kept apart
from the run itself so that the run's module holds only the run (docs/results.md).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from batcher.exceptions import ExitCode
from batcher.manifest import Manifest
from batcher.results.caller import CallerSettings
from batcher.results.deferred import WINDOW
from batcher.results.download import DownloadPolicy
from batcher.results.rows import ResultState
from batcher.results.schedule import PollTiming
from batcher.run.limiter import RateLimiter

FINAL_STATES = frozenset({ResultState.DOWNLOADED, ResultState.GENERATION_FAILED,
                          ResultState.EXPIRED, ResultState.LOST})
UNFINISHED_STATES = frozenset({ResultState.PENDING, ResultState.GENERATED})
FAILED_STATES = frozenset({ResultState.GENERATION_FAILED, ResultState.EXPIRED, ResultState.LOST})
DEFAULT_TIMEOUT = 3600.0
"""`--wait` gives up after this long (docs/results.md: one hour)."""


@dataclass(frozen=True, slots=True)
class CollectSettings:
    """Everything a collect run is configured with; built once by the CLI."""

    wait: bool = False
    timeout: float = DEFAULT_TIMEOUT
    """The run's overall bound, one pass or `wait`: a server that answers a byte a second must
    not hold a cron job for ever (docs/results.md)."""
    max_runtime: float | None = None
    poll_rate: float | None = None
    """Lowers every action's cap to this many requests per second; 0 lifts the caps (bench)."""
    timing: PollTiming = field(default_factory=PollTiming)
    download: DownloadPolicy = field(default_factory=DownloadPolicy)
    caller: CallerSettings = field(default_factory=CallerSettings)
    poll_concurrency: int = 64
    handle_signals: bool = True
    window: int = WINDOW
    """Tasks to poll or download held at once; the others wait, counted (docs/results.md#memory)."""

    def deadline(self) -> tuple[float, str]:
        """The seconds the run may take (a single pass is bounded too: docs/results.md), and the
        option that says so."""
        runtime = self.max_runtime
        if runtime is not None and runtime <= self.timeout:
            return min(runtime, _FOREVER), "--max-runtime"
        return min(self.timeout, _FOREVER), "--timeout"

    def rate_of(self, cap: float) -> float:
        """An action's requests per second: its cap, lowered by `poll_rate` (0: no cap)."""
        if self.poll_rate is None:
            return cap
        return min(cap, self.poll_rate) if self.poll_rate > 0 else 0


_FOREVER = 10 * 365 * 86400.0
"""A bound that the event loop's timer can hold (an unbounded run: ten years)."""


@dataclass(frozen=True, slots=True)
class CollectJob:
    """One manifest to collect: its submit ledger and its output directory."""

    manifest: Manifest
    ledger: Path
    out_dir: Path

    @property
    def name(self) -> str:
        return str(self.manifest.path)


class CollectObserver(Protocol):
    def changed(self, counts: Mapping[ResultState, int]) -> None:
        """Some task changed state; `counts` are every manifest's tasks per state (kept up to
        date in place: read it, do not keep a copy per call)."""
        ...


@dataclass(frozen=True, slots=True)
class Backlog:
    """Finished tasks whose files are not on disk yet: an operator's alert fires on these."""

    count: int = 0
    oldest_age: float = 0.0
    """Seconds since the oldest of them finished (0 when none)."""
    oldest_expires_in: float | None = None
    """Seconds left before the oldest one's URLs stop working (None when none or unknown)."""


@dataclass(slots=True)
class JobReport:
    name: str
    out_dir: Path
    counts: Counter[ResultState]


@dataclass(slots=True)
class CollectResult:
    jobs: list[JobReport]
    exit_code: ExitCode
    stop_detail: str = ""
    calls: dict[str, int] = field(default_factory=dict)
    """Requests sent per action."""
    polls: int = 0
    """Poll requests that were answered or given up (one per task asked)."""
    backlog: Backlog = field(default_factory=Backlog)
    """At the end of the run: finished tasks not yet on disk."""


LimiterFactory = Callable[[str, str, float], RateLimiter]
"""(service, action, rate) -> the limiter of that action's cap."""


def exit_code_of(counts: Mapping[ResultState, int], needs_recovery: bool) -> ExitCode:
    """A finished run's exit code from its tasks per state (docs/exit-codes.md#collect): 75 while
    some are unfinished (or a duplicate's TaskId is still to recover), 1 when some failed."""
    if needs_recovery or any(counts[state] for state in UNFINISHED_STATES):
        return ExitCode.TIME_LIMIT
    if any(counts[state] for state in FAILED_STATES):
        return ExitCode.TASKS_NOT_DONE
    return ExitCode.OK
