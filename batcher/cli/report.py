"""What the commands print: the submit summary, the plan table and the status report.

Each report is a plain data object first (so `--json` prints exactly what the text shows) and a
text rendering second. Counts come from the pipeline's jobs, `batcher.run.resume` plans and ledger
replays; nothing here reads files or talks to the network.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from batcher.run.resume import Decision, ServicePlan

if TYPE_CHECKING:
    from batcher.run.pipeline import Job

SUMMARY_COLUMNS = (
    "done_before",
    "submitted",
    "duplicate",
    "failed",
    "in_doubt",
    "held_failed",
    "held_in_doubt",
    "left",
)
NOT_DONE_COLUMNS = ("failed", "in_doubt", "held_failed", "held_in_doubt", "left")


@dataclass(frozen=True, slots=True)
class JobSummary:
    """One manifest's tasks after a run, per service and per way they ended."""

    manifest: str
    ledger: str
    services: Mapping[str, Mapping[str, int]]

    @property
    def left(self) -> int:
        return sum(counts["left"] for counts in self.services.values())

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
    # Late: the pipeline brings aiohttp, which `plan` and `status` (users of this module) never
    # need.
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
            "left": job.left[service],
        }
    return JobSummary(job.name, str(job.ledger.path), services)


def render_summary(summaries: Iterable[JobSummary], exit_code: int, stop_detail: str) -> str:
    """The human summary printed at the end of `submit`."""
    lines = []
    for summary in summaries:
        lines.append(f"{summary.manifest} (ledger {summary.ledger})")
        lines.extend(render_table(["service", *SUMMARY_COLUMNS], summary.services))
        hints = _hints(summary)
        lines.extend(f"  {hint}" for hint in hints)
    if stop_detail:
        lines.append(f"stopped: {stop_detail}")
    lines.append(f"exit code {exit_code}")
    return "\n".join(lines)


def _hints(summary: JobSummary) -> list[str]:
    totals = {c: sum(s[c] for s in summary.services.values()) for c in SUMMARY_COLUMNS}
    hints = []
    if totals["held_failed"]:
        hints.append(
            f"{totals['held_failed']} task(s) failed permanently before: fix the manifest, or "
            "send them again with --retry-failed"
        )
    if totals["in_doubt"] or totals["held_in_doubt"]:
        hints.append(
            f"{totals['in_doubt'] + totals['held_in_doubt']} mps task(s) are in doubt (the "
            "server may have created them): check them, then --resend-in-doubt to send again"
        )
    if totals["left"]:
        hints.append(f"{totals['left']} task(s) not sent yet: run the same command again")
    return hints


def render_table(header: list[str], rows: Mapping[str, Mapping[str, int]]) -> list[str]:
    body = [[name, *(str(counts.get(column, 0)) for column in header[1:])]
            for name, counts in rows.items()]
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    return [
        "  " + "  ".join(cell.rjust(width) if i else cell.ljust(width)
                         for i, (cell, width) in enumerate(zip(row, widths, strict=True)))
        for row in [header, *body]
    ]


# --- plan --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PlanReport:
    manifest: str
    batch: str
    ledger: str
    rate: float
    services: Mapping[str, ServicePlan] = field(default_factory=dict)

    def seconds_to_send(self) -> float:
        """Time at the rate cap; services run side by side, so the slowest one decides."""
        if self.rate <= 0:
            return 0.0
        return max((plan.to_send / self.rate for plan in self.services.values()), default=0.0)

    def rows(self) -> dict[str, dict[str, int]]:
        return {
            name: {
                "tasks": plan.total,
                "done": plan.done,
                "to_send": plan.to_send,
                "held": plan.held,
            }
            for name, plan in sorted(self.services.items())
        }


def render_plan(report: PlanReport) -> str:
    rows = report.rows()
    if len(rows) > 1:
        columns = ("tasks", "done", "to_send", "held")
        rows["total"] = {column: sum(row[column] for row in rows.values()) for column in columns}
    lines = [f"{report.manifest} (batch {report.batch}, ledger {report.ledger})"]
    lines.extend(render_table(["service", "tasks", "done", "to_send", "held"], rows))
    lines.append(
        f"  sending takes about {format_duration(report.seconds_to_send())} at "
        f"{report.rate:g} requests/s per service (services run side by side)"
    )
    return "\n".join(lines)


def format_duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s"


def dumps(value: Any) -> str:
    """One line of JSON, as every `--json` output is."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=False)
