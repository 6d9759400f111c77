"""`RunSettings`: everything a submit run is configured with, built once by the CLI.

Frozen and passed down to the pipeline (`batcher.run.pipeline`, which re-exports it); each
default is written here once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from batcher.api.services import DEFAULT_RATE
from batcher.run.limiter import DEFAULT_STORE_TIMEOUT
from batcher.run.reachability import UNREACHABLE_WINDOW
from batcher.run.resume import ResumeRules
from batcher.run.retry import RetryPolicy


@dataclass(frozen=True, slots=True)
class RunSettings:
    """Everything a run is configured with; built once by the CLI and passed down."""

    rate: float = DEFAULT_RATE
    """Requests per second per service; 0 lifts the cap (benchmarks against the emulator)."""
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    rules: ResumeRules = field(default_factory=ResumeRules)
    max_runtime: float | None = None
    workers_per_service: int = 160
    """The most requests in flight per service: 20/s × 5 s of latency × a margin of 1.6."""
    store_timeout: float = DEFAULT_STORE_TIMEOUT
    """Seconds the rate store may stay unreachable before the run stops (exit 75)."""
    unreachable_window: float = UNREACHABLE_WINDOW
    max_images: int | None = None
    """`--max-images`: images this run may send (docs/spend.md); None = no limit."""
    daily_images: int | None = None
    """`--daily-images`: images the account may send per UTC day, counted in the rate store."""
    handle_signals: bool = True
    seed: int | None = None
