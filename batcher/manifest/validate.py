"""Validation and keys: every expanded request checked against its service's request model, the
one code path of both passes, and a valid request turned into keyed `Task` copies.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from typing import Any

from pydantic import ValidationError

from batcher.api.models import RequestModel, VodCreateAigcImageTaskRequest
from batcher.api.services import ServiceName
from batcher.manifest.csv_source import csv_tasks
from batcher.manifest.expand import Expander, Variant, source_note, task_sets
from batcher.manifest.fastlane import RowShortcut
from batcher.manifest.keys import session_id_for, task_key
from batcher.manifest.messages import explain
from batcher.manifest.plan import Plan, RawTask
from batcher.manifest.task import Problems, Task, TaskKey


def checked_requests(
    plan: Plan,
    problems: Problems,
    only: ServiceName | None = None,
    start: int = 0,
    on_fast_key: Callable[[TaskKey], None] | None = None,
    with_params: bool = False,
) -> Iterator[tuple[Variant, RequestModel]]:
    """Every request of the manifest in order, validated: the one code path of both passes.

    With `only`, tasks of the other service are passed over before they are expanded or
    validated: the pipeline streams each service's tasks on its own, and need not pay twice.
    With `start`, so are the tasks placed before it (`RawTask.place`). With `on_fast_key`, the
    CSV rows that `fastlane` can key from their cells go there instead, as keys (with their
    parameters' JSON if `with_params`).
    """
    expander = Expander(plan, problems)
    raw_tasks: Iterable[RawTask] = plan.tasks[start:] if start else plan.tasks
    if plan.csv is not None:
        first_place = len(plan.tasks)
        shortcut = None
        if on_fast_key is not None:
            shortcut = RowShortcut(
                plan, plan.csv, expander, on_fast_key, first_place, with_params
            )
        csv_rows = csv_tasks(
            plan.csv, plan.default_services, problems, first_place, start, shortcut
        )
        raw_tasks = itertools.chain(raw_tasks, csv_rows)
    for raw in _each_service(raw_tasks, plan.matrix_services):
        if only is not None and (raw.service or plan.service) != only:
            continue
        variants = expander.expand(raw)
        # A mistake the matrix does not change is reported once, not once per combination.
        reported: set[str] = set()
        for variant in variants:
            request = _validated(variant, plan, problems, reported)
            if request is not None:
                yield variant, request


def _each_service(
    raw_tasks: Iterable[RawTask], services: tuple[ServiceName, ...]
) -> Iterable[RawTask]:
    """With `service` a matrix variable, a task that names no service goes to each in turn."""
    if not services:
        return raw_tasks
    return (
        replace(raw, service=service) if raw.service is None else raw
        for raw in raw_tasks
        for service in (services if raw.service is None else (raw.service,))
    )


def _validated(
    variant: Variant, plan: Plan, problems: Problems, reported: set[str]
) -> RequestModel | None:
    """The request of a variant, or None after reporting why the API would refuse it.

    `reported` holds what was said about earlier variants of the same task.
    """
    frame = variant.frame
    try:
        # Strict: YAML's `ModelVersion: 2.5` is a float, and the user must hear about it.
        request: RequestModel = frame.model.__pydantic_validator__.validate_python(
            variant.params, strict=True
        )
    except ValidationError as error:
        for detail in error.errors():
            loc = detail["loc"]
            if loc in frame.reported and not task_sets(variant.raw.params, loc):
                continue  # a wrong default, reported once at its own line
            note = source_note(plan, variant.raw, frame, loc) if loc else ""
            if task_sets(variant.raw.params, loc):
                written = variant.raw.written.get(loc)
            else:
                written = plan.default_written(variant.service, loc)
            explained = explain(detail, variant.service, frame.model, plan, written)
            message = f"{explained}{note}"
            if message not in reported:
                reported.add(message)
                problems.add(f"{variant.origin}: {variant.service} task: {message}")
        return None
    if plan.repeat > 1 and own_session_id(request) is not None:
        problems.add(
            f"{variant.origin}: vod task: SessionId is set and repeat is {plan.repeat}: "
            "every copy would send the same SessionId and VOD would refuse all but the "
            "first: drop SessionId (batcher derives one per copy) or set repeat: 1"
        )
        return None
    return request


def own_session_id(request: RequestModel) -> str | None:
    """The SessionId a task sets itself (only VOD has the parameter)."""
    # isinstance, not getattr(..., None): a missing attribute takes pydantic's slow path.
    return request.SessionId if isinstance(request, VodCreateAigcImageTaskRequest) else None


def keyed_task(plan: Plan, variant: Variant, params: dict[str, Any], copy: int) -> Task:
    """One copy of a validated request, keyed; `params` is its own to_wire() dict or a copy."""
    key = task_key(plan.batch, variant.service, params, copy)
    if variant.service != "vod":
        return Task(key, variant.service, params, None, variant.origin, copy, variant.raw.place)
    # A task's own SessionId is kept (and then repeat is 1: _validated saw to that).
    session_id = params.get("SessionId") if copy == 0 else None
    if session_id is None:
        params["SessionId"] = session_id = session_id_for(key)
    return Task(key, variant.service, params, session_id, variant.origin, copy, variant.raw.place)
