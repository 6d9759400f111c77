"""Which tasks a run sends, given what the ledger says of them (SPEC §6, "On the next submit").

Done tasks (`submitted`, `duplicate`) are skipped; a `failed` task whose error was retryable is
sent again, a permanent failure only with `--retry-failed`; a task in doubt (last line `sending`)
is sent again when its service dedups by SessionId and it carries one (vod), otherwise it is
held and reported, and sent only with `--resend-in-doubt`. `plan` and `submit` share this rule.

A task whose generation failed (`batcher.state.regeneration`) is a *regeneration*: sent again
although done when `--regenerate` asks for it, and always with its regeneration's SessionId
(`regenerated`), also when a crashed regeneration is resumed without the flag.
"""

from __future__ import annotations

import dataclasses
import enum
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from batcher.api.services import SERVICE_NAMES, get_service
from batcher.manifest import Manifest, Task
from batcher.manifest.keys import session_id_for
from batcher.state.ledger import LedgerReplay, TaskState
from batcher.state.regeneration import Regeneration


class Decision(enum.StrEnum):
    SEND = "send"
    DONE = "done"
    HOLD_FAILED = "held_failed"
    """A permanent failure, not sent again without --retry-failed."""
    HOLD_IN_DOUBT = "held_in_doubt"
    """Possibly created already and not protected by a SessionId: needs --resend-in-doubt."""


@dataclass(frozen=True, slots=True)
class ResumeRules:
    retry_failed: bool = False
    resend_in_doubt: bool = False


def is_resend_safe(service: str, session_id: str | None) -> bool:
    """True when sending the task twice cannot create two tasks (the server dedups it)."""
    return get_service(service).dedups_session_id and bool(session_id)


def decide(state: TaskState, service: str, session_id: str | None, rules: ResumeRules) -> Decision:
    """What this run does with a task the ledger knows in `state`."""
    if state.is_done:
        return Decision.DONE
    if state is TaskState.FAILED_PERMANENT and not rules.retry_failed:
        return Decision.HOLD_FAILED
    if (
        state is TaskState.IN_DOUBT
        and not rules.resend_in_doubt
        and not is_resend_safe(service, session_id)
    ):
        return Decision.HOLD_IN_DOUBT
    return Decision.SEND


def decide_task(
    task: Task, state: TaskState, regeneration: Regeneration | None, rules: ResumeRules
) -> tuple[Decision, Task]:
    """What this run does with `task`, and the task to send (a regeneration's own SessionId)."""
    if regeneration is None:
        return decide(state, task.service, task.session_id, rules), task
    task = regenerated(task, regeneration.number)
    if regeneration.resend and state.is_done:
        return Decision.SEND, task
    return decide(state, task.service, task.session_id, rules), task


def regenerated(task: Task, number: int) -> Task:
    """`task` as regeneration `number` sends it: on a service that dedups by SessionId, with the
    SessionId of the key and that number (the task's own SessionId, if any, is replaced)."""
    if not get_service(task.service).dedups_session_id:
        return task
    session_id = session_id_for(task.key, number)
    return dataclasses.replace(task, session_id=session_id,
                               params={**task.params, "SessionId": session_id})


@dataclass(slots=True)
class ServicePlan:
    """How many tasks of one service fall under each decision."""

    decisions: Counter[Decision] = field(default_factory=Counter)
    not_sent: int = 0
    """Of the tasks to send, those the ledger has never seen (the rest are sent again)."""

    @property
    def total(self) -> int:
        return sum(self.decisions.values())

    @property
    def to_send(self) -> int:
        return self.decisions[Decision.SEND]

    @property
    def done(self) -> int:
        return self.decisions[Decision.DONE]

    @property
    def held(self) -> int:
        return self.decisions[Decision.HOLD_FAILED] + self.decisions[Decision.HOLD_IN_DOUBT]


def plan_manifest(
    manifest: Manifest,
    ledger: LedgerReplay,
    rules: ResumeRules,
    regenerations: Mapping[str, Regeneration] | None = None,
) -> dict[str, ServicePlan]:
    """Validate the manifest and count, per service, what this run would do with each task:
    one streaming pass (ManifestError if the manifest is invalid)."""
    plans = {name: ServicePlan() for name in SERVICE_NAMES}
    regenerations = regenerations or {}

    def tally(task: Task) -> None:
        state = ledger.state_of(task.key)
        plan = plans[task.service]
        decision, _ = decide_task(task, state, regenerations.get(task.key), rules)
        plan.decisions[decision] += 1
        if state is TaskState.PENDING:
            plan.not_sent += 1

    if len(ledger) == 0:
        # A new batch: every task is sent, so no task needs its key yet (keys are most of the
        # cost of a pass: a million-row manifest validates in half the time without them).
        report = manifest.validate()
        for name, count in report.tasks_per_service.items():
            plans[name].decisions[Decision.SEND] = count
            plans[name].not_sent = count
    else:
        manifest.validate(on_task=tally)
    return {name: plan for name, plan in plans.items() if plan.total}
