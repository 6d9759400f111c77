"""What a submit run did, per manifest, service and way a task ended: `JobSummary`.

A plain frozen dataclass built from a finished pipeline job (`summarize_job`), so the CLI's
summary, its `--json`, the metrics file and the Python API all count the same way. The column
names are the ones `plan`, `submit`, `status` and the metrics use (docs/exit-codes.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from batcher.run.resume import Decision

if TYPE_CHECKING:
    from batcher.run.pipeline import Job

IMAGES_CREATED = "images_created"
"""Images asked for by the tasks this run created (`submitted`): what it billed for sure."""

SUMMARY_COLUMNS = (
    "done_before",
    "submitted",
    "duplicate",
    "failed",
    "in_doubt",
    "held_failed",
    "held_in_doubt",
    "not_sent",
    IMAGES_CREATED,
)
NOT_DONE_COLUMNS = ("failed", "in_doubt", "held_failed", "held_in_doubt", "not_sent")
NOT_SENT = "not_sent"
"""The one word for tasks not sent yet, in `plan`, `submit`, `status`, the metrics and README."""


@dataclass(frozen=True, slots=True)
class JobSummary:
    """One manifest's tasks after a run, per service and per way they ended."""

    manifest: str
    ledger: str
    services: Mapping[str, Mapping[str, int]]

    @property
    def left(self) -> int:
        return sum(counts[NOT_SENT] for counts in self.services.values())

    @property
    def not_done(self) -> int:
        return sum(
            counts[column] for counts in self.services.values() for column in NOT_DONE_COLUMNS
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "manifest": self.manifest,
            "ledger": self.ledger,
            "services": {name: dict(counts) for name, counts in self.services.items()},
        }


def summarize_job(job: Job) -> JobSummary:
    # Late: the pipeline brings aiohttp, which `plan` and `status` (via `batcher.cli.report`)
    # never need.
    from batcher.run.pipeline import Result

    services: dict[str, dict[str, int]] = {}
    names = {s for s, _ in job.results} | {s for s, _ in job.held} | set(job.left)
    for service in sorted(names):
        services[service] = {
            "done_before": job.held[(service, Decision.DONE)],
            "submitted": job.results[(service, Result.SUBMITTED)],
            "duplicate": job.results[(service, Result.DUPLICATE)],
            "failed": job.results[(service, Result.FAILED)],
            "in_doubt": job.results[(service, Result.IN_DOUBT)],
            "held_failed": job.held[(service, Decision.HOLD_FAILED)],
            "held_in_doubt": job.held[(service, Decision.HOLD_IN_DOUBT)],
            NOT_SENT: job.left[service],
            IMAGES_CREATED: job.images_created[service],
        }
    return JobSummary(job.name, str(job.ledger.path), services)
