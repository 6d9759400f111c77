"""Which tasks `submit --regenerate` sends again, and with which regeneration number
(docs/results.md#failed-generations).

The number comes from the ledgers alone, so a crash can never make it skip ahead: regeneration
`n` of a key is the one sent after its `n`-th failed generation (the results ledger's distinct
TaskIds with `generation_failed`). A vod regeneration carries the SessionId derived from the key
and `n` (`batcher.manifest.keys.session_id_for`): if the run crashes after sending it, the next
run sends the same SessionId and the server refuses the repeat (`duplicate`), so the image is
billed once. A key whose current submission is a regeneration not settled yet (last line
`sending` or `failed` after a failed generation) keeps its number, whatever the flags.

    plans = plan_regenerations(ledger_path, RegenerationRules(retryable=True))
    plans.get(key)   # None: not a regeneration; else Regeneration(number, resend)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from batcher.state.results_ledger import (
    ResultEvent,
    ResultRecord,
    replay_results,
    results_ledger_path,
)
from batcher.state.submissions import Submission, read_submissions


@dataclass(frozen=True, slots=True)
class RegenerationRules:
    retryable: bool = False
    """`--regenerate`: resend the generations that failed with a retryable error."""
    everything: bool = False
    """`--regenerate-all`: resend every failed generation (mps `FAIL`, content refusals...)."""

    @property
    def any(self) -> bool:
        return self.retryable or self.everything


@dataclass(frozen=True, slots=True)
class Regeneration:
    number: int
    """1 for the first regeneration of a key, 2 for the next..."""
    resend: bool
    """True: the task is done (submitted) but its generation failed, and the rules resend it;
    False: a regeneration already under way (in doubt, or failed to submit), which the usual
    resume rules send again, with this same number."""


def plan_regenerations(submit_ledger: Path, rules: RegenerationRules) -> dict[str, Regeneration]:
    """Every key with a failed generation whose next submission is a regeneration."""
    results = replay_results(results_ledger_path(submit_ledger))
    failed = {key: record for key, record in results.records.items() if record.failed_task_ids}
    if not failed:
        return {}
    submissions = read_submissions(submit_ledger, keys=failed.keys())
    plans: dict[str, Regeneration] = {}
    for key, record in failed.items():
        submission = submissions.get(key)
        if submission is None:
            continue
        plan = _plan(record, submission, rules)
        if plan is not None:
            plans[key] = plan
    return plans


def _plan(record: ResultRecord, submission: Submission, rules: RegenerationRules) -> (
    Regeneration | None
):
    number = len(record.failed_task_ids)
    if submission.event in ("sending", "failed"):
        return Regeneration(number, resend=False)
    current = _current_task_id(record, submission)
    if not current or not record.about(current) or record.event is not (
        ResultEvent.GENERATION_FAILED
    ):
        return None  # a newer TaskId, not known to have failed (yet)
    error = record.error
    wanted = rules.everything or (rules.retryable and error is not None and error.retryable)
    return Regeneration(number, resend=True) if wanted else None


def _current_task_id(record: ResultRecord, submission: Submission) -> str:
    if submission.event == "submitted":
        return submission.task_id
    if record.recovered_session_id and record.recovered_session_id == submission.session_id:
        return record.recovered_task_id
    return ""
