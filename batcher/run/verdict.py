"""Judging one answer: what it settles for the task, written in its ledger, and what it means
for the run.

- accepted → `submitted`; a vod SessionId already used → `duplicate`;
- a transport failure that may have reached the server → *in doubt* unless a SessionId makes a
  resend safe (vod), else retried within the budget;
- retryable errors (throttling with a budget of its own) → try again;
- mps `LimitExceeded.CreateTask` (the account's running tasks are at their limit) → *held*: the
  task waits in its lane for capacity, outside every retry budget (`batcher.run.capacity`);
- an account-wide refusal (arrears, service not activated, quota used up, bad credentials) → the
  run stops; the task is written as a retryable failure (nothing was created, so the next run
  sends it) but counted as *not sent*, like every task the stop left;
- anything else → a permanent failure.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from batcher.manifest import Task
from batcher.run.jobs import Result, StopCause, StopReason
from batcher.run.resume import is_resend_safe
from batcher.run.retry import RetryBudget
from batcher.state.ledger import LedgerWriter
from batcher.wire.errors import (
    Accepted,
    ApiError,
    ErrorClass,
    TransportError,
    is_capacity_refusal,
    is_throttling,
)

log = logging.getLogger("batcher")

Outcome = Accepted | ApiError | TransportError


@dataclass(frozen=True, slots=True)
class Verdict:
    """What an answer settles. `result` None: the task is not settled (try again, or left)."""

    result: Result | None = None
    retry: bool = False
    """Try again after the budget's back-off."""
    held: bool = False
    """Refused for capacity: try again as the account's running tasks finish."""
    throttled: bool = False
    """The service said "slow down": the lane's rate drops."""
    stop: StopCause | None = None


RETRY = Verdict(retry=True)


async def record(
    ledger: LedgerWriter, task: Task, outcome: Outcome, budget: RetryBudget
) -> Verdict:
    """Write what the outcome settles in the task's ledger, and say what follows."""
    if isinstance(outcome, Accepted):
        await ledger.submitted(
            task.key, task.service, outcome.task_id, outcome.request_id, task.session_id
        )
        return Verdict(Result.SUBMITTED)
    if isinstance(outcome, TransportError):
        return await _transport_failure(ledger, task, outcome, budget)
    if outcome.error_class is ErrorClass.DUPLICATE:
        await ledger.duplicate(
            task.key, task.service, outcome.request_id or "", task.session_id or ""
        )
        return Verdict(Result.DUPLICATE)
    if is_capacity_refusal(task.service, outcome.code):
        return Verdict(held=True)
    if outcome.error_class is ErrorClass.RETRYABLE:
        throttled = is_throttling(outcome.code)
        if budget.throttled() if throttled else budget.failed():
            return Verdict(retry=True, throttled=throttled)
        await ledger.failed(
            task.key, task.service, outcome.code, outcome.message, True, outcome.request_id
        )
        return Verdict(Result.FAILED, throttled=throttled)
    if outcome.error_class is ErrorClass.RUN_STOPPING:
        # Nothing was created: a retryable line (not `sending`, which would read as in doubt)
        # so that once the account is fixed a plain rerun sends it; this run counts it not sent.
        await ledger.failed(
            task.key, task.service, outcome.code, outcome.message, True, outcome.request_id
        )
        cause = StopCause(StopReason.RUN_STOPPING_ERROR, f"{outcome.code}: {outcome.message}")
        return Verdict(stop=cause)
    await ledger.failed(
        task.key, task.service, outcome.code, outcome.message, False, outcome.request_id
    )
    return Verdict(Result.FAILED)


async def _transport_failure(
    ledger: LedgerWriter, task: Task, outcome: TransportError, budget: RetryBudget
) -> Verdict:
    if outcome.may_have_reached_server and not is_resend_safe(task.service, task.session_id):
        # The task may exist: its last line stays `sending`, so the next run reports it.
        log.warning("%s task %s in doubt after %s (%s)", task.service, task.key,
                    outcome.code, outcome.message)
        return Verdict(Result.IN_DOUBT)
    if budget.failed():
        return RETRY
    await ledger.failed(task.key, task.service, outcome.code, outcome.message, True, None)
    return Verdict(Result.FAILED)


def message_of(outcome: Outcome) -> str:
    return "" if isinstance(outcome, Accepted) else outcome.message


def request_id_of(outcome: Outcome) -> str | None:
    return outcome.request_id if isinstance(outcome, ApiError | Accepted) else None


def code_of(outcome: Outcome) -> str:
    return "ok" if isinstance(outcome, Accepted) else outcome.code
