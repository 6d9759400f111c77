"""What a run is made of and what it hands back: jobs, how each task ended, why a run stopped.

Plain data shared by the pipeline (`batcher.run.pipeline`), its parts (`batcher.run.producer`,
`batcher.run.verdict`) and the faces that watch a run (progress, metrics): a `Job` is one
manifest with its ledger and the counts of this run; a `RunObserver` hears each task settle.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from batcher.manifest import Manifest
from batcher.run.resume import Decision, ServicePlan
from batcher.state.ledger import LedgerReplay, LedgerWriter
from batcher.state.regeneration import Regeneration


class Result(enum.StrEnum):
    """How a task ended in this run."""

    SUBMITTED = "submitted"
    DUPLICATE = "duplicate"
    FAILED = "failed"
    IN_DOUBT = "in_doubt"


class StopReason(enum.StrEnum):
    SIGINT = "SIGINT"
    SIGTERM = "SIGTERM"
    MAX_RUNTIME = "max_runtime"
    RUN_STOPPING_ERROR = "run_stopping_error"
    STORE_UNREACHABLE = "store_unreachable"
    ENDPOINT_UNREACHABLE = "endpoint_unreachable"
    IMAGE_LIMIT = "image_limit"
    """`--max-images` or `--daily-images` reached: the rest is not sent (exit 75)."""
    UNEXPECTED_ERROR = "unexpected_error"
    """A worker met an error no rule covers (a full disk under the ledger): the run ends."""


@dataclass(slots=True)
class Job:
    """One manifest in a run, with the ledger its tasks are settled in."""

    name: str
    manifest: Manifest
    replay: LedgerReplay
    ledger: LedgerWriter
    plans: Mapping[str, ServicePlan]
    """service → what the validating pass decided for each of its tasks (`batcher.run.resume`):
    a lane streams only the tasks to send, and stops once it has them all."""
    results: Counter[tuple[str, Result]] = field(default_factory=Counter)
    """(service, result) → how many tasks ended so in this run."""
    left: Counter[str] = field(default_factory=Counter)
    """service → tasks this run meant to send but did not start (stopped)."""
    held: Counter[tuple[str, Decision]] = field(default_factory=Counter)
    """(service, decision) → tasks not sent by rule (done, held failed, held in doubt)."""
    regenerations: Mapping[str, Regeneration] = field(default_factory=dict)
    """key → the regeneration its next submission is (`batcher.state.regeneration`)."""

    @property
    def tasks_per_service(self) -> dict[str, int]:
        return {service: plan.total for service, plan in self.plans.items()}


class RunObserver(Protocol):
    """What the face wants to hear while a run goes on (progress, logs, metrics)."""

    def task_settled(self, job: Job, service: str, result: Result) -> None: ...

    def tasks_skipped(self, job: Job, service: str, decision: Decision, count: int) -> None:
        """`count` tasks are not sent, by rule: done before, or held (see `batcher.run.resume`)."""
        ...

    def request_answered(self, job: Job, service: str, code: str) -> None:
        """One HTTP exchange ended; `code` is `ok` or the error code."""
        ...


@dataclass(frozen=True, slots=True)
class StopCause:
    reason: StopReason
    detail: str = ""
    error: BaseException | None = None
    """For UNEXPECTED_ERROR: the error itself (its class decides the exit code)."""


@dataclass(slots=True)
class RunResult:
    jobs: Sequence[Job]
    stop: StopCause | None
