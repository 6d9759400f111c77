"""`SubmitResult`: how a submit run ended, and `judge_run`, which decides its exit code.

A plain frozen dataclass, the same for the CLI (its summary, `--json`, the metrics file) and the
Python API: a summary per manifest (counts per service and per way a task ended), the exit code,
and why the run stopped early, if it did (docs/exit-codes.md).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from batcher.exceptions import BatcherError, ExitCode
from batcher.run.pipeline import RunResult, StopReason
from batcher.run.summary import JobSummary, summarize_job


@dataclass(frozen=True, slots=True)
class SubmitResult:
    summaries: list[JobSummary]
    """One per manifest, in the order given."""
    exit_code: ExitCode
    stop_detail: str
    """Why the run stopped early ("" when it did not)."""
    account_error: bool = False
    """Stopped by an error that fails every task of the account (`stop_detail`: CODE: message)."""

    def counts(self) -> dict[str, dict[str, int]]:
        """Tasks per service and per way they ended, summed over the manifests."""
        totals: dict[str, Counter[str]] = {}
        for summary in self.summaries:
            for service, counts in summary.services.items():
                totals.setdefault(service, Counter()).update(counts)
        return {service: dict(counts) for service, counts in sorted(totals.items())}


_NOTHING_LOST_STOPS = frozenset(
    {StopReason.STORE_UNREACHABLE, StopReason.ENDPOINT_UNREACHABLE, StopReason.IMAGE_LIMIT}
)


def judge_run(result: RunResult) -> SubmitResult:
    """The pipeline's result → the summaries and the exit code (docs/exit-codes.md)."""
    summaries = [summarize_job(job) for job in result.jobs]
    stop = result.stop
    detail = stop.detail if stop else ""
    if stop is not None and stop.reason is StopReason.UNEXPECTED_ERROR:
        # A BatcherError has its own code (a full disk under a ledger: 2); anything else is a
        # fault of ours, reported in one line all the same.
        error = stop.error
        code = error.exit_code if isinstance(error, BatcherError) else ExitCode.TASKS_NOT_DONE
        return SubmitResult(summaries, code, detail)
    if stop is not None and stop.reason is StopReason.RUN_STOPPING_ERROR:
        return SubmitResult(summaries, ExitCode.USAGE, detail, account_error=True)
    if stop is not None and stop.reason is StopReason.SIGINT:
        return SubmitResult(summaries, ExitCode.SIGINT, detail)
    if stop is not None and stop.reason is StopReason.SIGTERM:
        return SubmitResult(summaries, ExitCode.SIGTERM, detail)
    left = sum(summary.left for summary in summaries)
    if stop is not None and stop.reason in _NOTHING_LOST_STOPS:
        # Stopped from outside the tasks (a store or an endpoint that is down, an image limit
        # reached): run again.
        return SubmitResult(summaries, ExitCode.TIME_LIMIT, detail)
    if stop is not None and stop.reason is StopReason.MAX_RUNTIME and left:
        return SubmitResult(summaries, ExitCode.TIME_LIMIT, detail)
    not_done = sum(summary.not_done for summary in summaries)
    return SubmitResult(summaries, ExitCode.TASKS_NOT_DONE if not_done else ExitCode.OK, detail)
