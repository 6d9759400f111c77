"""Recovering the TaskId of a vod `duplicate` (docs/results.md): the server refused a resend because
an earlier request with the same SessionId created the task, and the ledger never got its TaskId.

`DescribeTasks` lists the tasks created in a `CreateTime` window (whole seconds, `YYYY-MM-DDT
hh:mm:ssZ`, the last 3 days only), 100 a page, with their `SessionId`. The window of a duplicate
is the span of its `sending` lines that carried its SessionId, widened by `WINDOW_MARGIN` on each
side (clock skew between this host and the server); overlapping windows of one SubAppId are
merged and each merged window is paged through once, so a thousand duplicates sent together cost
a few pages, not a thousand. A SessionId not listed is `lost`, with the reason.

    found = await recover(caller, [Duplicate(key, sub_app_id, session_id, sending_times)], now)
    found[key]  # Recovered(task_id) or Lost(reason)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from batcher.api.results import (
    DESCRIBE_TASKS_HISTORY_SECONDS,
    DESCRIBE_TASKS_LIMIT_MAX,
    DescribeTasksResponse,
)
from batcher.api.services import DESCRIBE_TASKS, VOD
from batcher.api.times import format_api_time
from batcher.results.caller import ApiCaller
from batcher.wire.client import Answer

WINDOW_MARGIN = 300.0
"""Seconds added before the first and after the last `sending` line of a duplicate."""
MAX_PAGES = 1000
"""Pages read per window at most (100,000 tasks): a bound, not an expected figure."""


@dataclass(frozen=True, slots=True)
class Duplicate:
    """A vod task the ledger knows only as `duplicate`."""

    key: str
    sub_app_id: int | None
    session_id: str
    sending_times: Sequence[str]
    """The ledger `ts` of its `sending` lines that carried `session_id`."""


@dataclass(frozen=True, slots=True)
class Recovered:
    task_id: str


@dataclass(frozen=True, slots=True)
class Lost:
    reason: str


@dataclass(frozen=True, slots=True)
class _Window:
    sub_app_id: int | None
    after: float
    before: float


async def recover(
    caller: ApiCaller, duplicates: Sequence[Duplicate], now: float
) -> dict[str, Recovered | Lost]:
    """Each duplicate's TaskId, or why it is lost; `now` is Unix time (the 3-day horizon).

    A window whose listing failed (network, after retries) leaves its duplicates out of the
    result: they are tried again in the next run, not declared lost."""
    verdicts: dict[str, Recovered | Lost] = {}
    searchable: list[tuple[Duplicate, _Window]] = []
    for duplicate in duplicates:
        window_or_reason = _window(duplicate, now)
        if isinstance(window_or_reason, Lost):
            verdicts[duplicate.key] = window_or_reason
        else:
            searchable.append((duplicate, window_or_reason))
    for window, members in _merge(searchable):
        listed = await _list_session_ids(caller, window)
        if listed is None:
            continue
        for duplicate in members:
            task_id = listed.get(duplicate.session_id)
            verdicts[duplicate.key] = Recovered(task_id) if task_id else Lost(
                f"no task with SessionId {duplicate.session_id} was created between "
                f"{format_api_time(window.after)} and {format_api_time(window.before)}"
            )
    return verdicts


def _window(duplicate: Duplicate, now: float) -> _Window | Lost:
    times = [_ledger_time(ts) for ts in duplicate.sending_times]
    known = [t for t in times if t is not None]
    if not known:
        return Lost(f"the ledger has no sending line with SessionId {duplicate.session_id}")
    after, before = min(known) - WINDOW_MARGIN, max(known) + WINDOW_MARGIN
    horizon = now - DESCRIBE_TASKS_HISTORY_SECONDS
    if before < horizon:
        return Lost(
            f"SessionId {duplicate.session_id} was sent more than 3 days ago: DescribeTasks no "
            "longer lists it; find it in the VOD console"
        )
    return _Window(duplicate.sub_app_id, max(after, horizon), before)


def _ledger_time(ts: str) -> float | None:
    try:
        return datetime.fromisoformat(ts).timestamp()
    except ValueError:
        return None


def _merge(
    items: Iterable[tuple[Duplicate, _Window]],
) -> list[tuple[_Window, list[Duplicate]]]:
    """Overlapping windows of one SubAppId merged, each with the duplicates it covers."""
    merged: list[tuple[_Window, list[Duplicate]]] = []
    ordered = sorted(items, key=lambda item: (str(item[1].sub_app_id), item[1].after))
    for duplicate, window in ordered:
        if merged:
            last, members = merged[-1]
            if last.sub_app_id == window.sub_app_id and window.after <= last.before:
                merged[-1] = (
                    _Window(last.sub_app_id, last.after, max(last.before, window.before)),
                    [*members, duplicate],
                )
                continue
        merged.append((window, [duplicate]))
    return merged


async def _list_session_ids(caller: ApiCaller, window: _Window) -> Mapping[str, str] | None:
    """SessionId -> TaskId of every task created in `window`; None if a page could not be had."""
    found: dict[str, str] = {}
    params: dict[str, object] = {
        "CreateTime": {
            "After": format_api_time(window.after),
            # Whole seconds, truncated: one more second so the window's last moment is in.
            "Before": format_api_time(window.before + 1),
        },
        "Limit": DESCRIBE_TASKS_LIMIT_MAX,
    }
    if window.sub_app_id is not None:
        params["SubAppId"] = window.sub_app_id
    for _ in range(MAX_PAGES):
        answer = await caller.call(VOD, DESCRIBE_TASKS, params)
        if not isinstance(answer, Answer):
            return None
        page = DescribeTasksResponse.model_validate(answer.response)
        for task in page.TaskSet:
            if task.SessionId:
                found.setdefault(task.SessionId, task.TaskId)
        if not page.ScrollToken or not page.TaskSet:
            break
        params["ScrollToken"] = page.ScrollToken
    return found
