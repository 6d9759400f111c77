"""Which tasks a run sends, given what the ledger says of them
(docs/ledgers.md#replay-what-the-next-run-sends).

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
from typing import TYPE_CHECKING

from batcher.api.services import SERVICE_NAMES, get_service
from batcher.manifest import Manifest, Task, TaskKey
from batcher.manifest.keys import session_id_for
from batcher.state.events import TaskState
from batcher.state.replay import LedgerReplay

if TYPE_CHECKING:  # for annotations only: it imports the results ledger's writer (asyncio),
    # which `plan` must not pay for at start-up
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
    task: Task | TaskKey, state: TaskState, regeneration: Regeneration | None,
    rules: ResumeRules,
) -> Decision:
    """`decide` for a task whose next submission may be a regeneration (then it is sent even
    when done if `regeneration.resend`, and judged with the regeneration's SessionId)."""
    if regeneration is None:
        return decide(state, task.service, task.session_id, rules)
    if regeneration.resend and state.is_done:
        return Decision.SEND
    session_id = regeneration_session_id(task, regeneration.number)
    return decide(state, task.service, session_id, rules)


def regeneration_session_id(task: Task | TaskKey, number: int) -> str | None:
    """The SessionId regeneration `number` of `task` carries: derived from its key and the
    number on a service that dedups by SessionId (its own SessionId, if any, is replaced)."""
    if not get_service(task.service).dedups_session_id:
        return task.session_id
    return session_id_for(task.key, number)


def regenerated(task: Task, number: int) -> Task:
    """`task` as regeneration `number` sends it."""
    session_id = regeneration_session_id(task, number)
    if session_id is None or session_id == task.session_id:
        return task
    return dataclasses.replace(task, session_id=session_id,
                               params={**task.params, "SessionId": session_id})


@dataclass(slots=True)
class ModelPlan:
    """One model's tasks of a service, and the images they ask for."""

    tasks: int = 0
    images: int = 0
    tasks_to_send: int = 0
    images_to_send: int = 0


@dataclass(slots=True)
class ServicePlan:
    """How many tasks of one service fall under each decision."""

    decisions: Counter[Decision] = field(default_factory=Counter)
    send_from: int | None = None
    """The place (`Task.place`) of the first task to send: a lane starts reading there, so a
    half-done batch does not key its done half twice before its first request."""
    not_sent: int = 0
    """Of the tasks to send, those the ledger has never seen (the rest are sent again)."""
    models: dict[str, ModelPlan] = field(default_factory=dict)
    """Per model (`ModelName ModelVersion`): its tasks and images, all and to send."""
    apps_to_send: Counter[int] = field(default_factory=Counter)
    """vod: the images this run sends per SubAppId (each application has its own quota)."""

    def bill(self, model: str, app: int | None, tasks: int, images: int, send: bool) -> None:
        """Count `tasks` asking `images` in all under `model` (and vod application `app`),
        sent by this run if `send`."""
        entry = self.models.get(model)
        if entry is None:
            entry = self.models[model] = ModelPlan()
        entry.tasks += tasks
        entry.images += images
        if send:
            entry.tasks_to_send += tasks
            entry.images_to_send += images
            if app is not None:
                self.apps_to_send[app] += images

    @property
    def images(self) -> int:
        """Images every task of the service asks for (OutputImageCount, 1 when absent)."""
        return sum(model.images for model in self.models.values())

    @property
    def images_to_send(self) -> int:
        """Images the tasks this run sends ask for: what it may bill."""
        return sum(model.images_to_send for model in self.models.values())

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
    state_of = ledger.state_of
    # `decide` reads a task's state, service and whether it has a SessionId, nothing else: a
    # million tasks take a handful of answers, worked out once each (this runs per task before
    # a resumed run's first request).
    decided: dict[tuple[TaskState, str, bool], Decision] = {}

    def tally(task: TaskKey) -> None:
        state = state_of(task.key)
        regeneration = regenerations.get(task.key) if regenerations else None
        if regeneration is None:
            case = (state, task.service, not task.session_id)
            decision = decided.get(case)
            if decision is None:
                decision = decided[case] = decide(state, task.service, task.session_id, rules)
        else:
            decision = decide_task(task, state, regeneration, rules)
        plan = plans[task.service]
        plan.decisions[decision] += 1
        plan.bill(task.model, task.sub_app_id, 1, task.images, decision is Decision.SEND)
        if decision is Decision.SEND and plan.send_from is None:
            plan.send_from = task.place
        if state is TaskState.PENDING:
            plan.not_sent += 1

    if len(ledger) == 0:
        # A new batch: every task is sent, so no task needs its key yet (keys are most of the
        # cost of a pass: a million-row manifest validates in half the time without them).
        report = manifest.validate()
        for name, count in report.tasks_per_service.items():
            plans[name].decisions[Decision.SEND] = count
            plans[name].not_sent = count
        for (name, model, app), spend in report.spend.items():
            plans[name].bill(model, app, spend.tasks, spend.images, send=True)
    else:
        manifest.validate(on_key=tally)
    return {name: plan for name, plan in plans.items() if plan.total}
