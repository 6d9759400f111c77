"""vod in bulk: the finished tasks found a hundred at a time with `DescribeTasks` (`Status:
FINISH`, a `FinishTime` window), so `DescribeTaskDetail` is asked only of those.

The listing's coverage of AIGC tasks is not documented, so it is never depended on alone: it
only brings a task's poll forward; a task it does not show in time is asked on the schedule
(`schedule`) all the same (docs/results.md). Each round lists what finished since the last one,
with a few seconds of overlap (the API's times are whole seconds, and its clock is not ours).

    finder = FinishedFinder(caller, sub_app_ids={251007502}, since=time.time() - 60)
    task_ids = await finder.round(time.time())   # TaskIds finished since the last round
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from batcher.api.results import DESCRIBE_TASKS_LIMIT_MAX, DescribeTasksResponse
from batcher.api.services import DESCRIBE_TASKS, VOD
from batcher.api.times import format_api_time
from batcher.results.caller import ApiCaller, Stopped
from batcher.wire.client import Answer

OVERLAP = 5.0
"""Seconds each window reaches back into the last one."""
MAX_PAGES = 1000
"""Pages one round reads at most (100,000 tasks): a round always ends."""


class FinishedFinder:
    """One listing window per SubAppId (None: the account's default application)."""

    __slots__ = ("_caller", "_since", "_sub_app_ids", "requests")

    def __init__(self, caller: ApiCaller, sub_app_ids: set[int | None], since: float) -> None:
        self._caller = caller
        self._sub_app_ids = sub_app_ids
        """Read at each round: the caller adds to it as it takes vod tasks in."""
        self._since = since
        self.requests = 0

    def __repr__(self) -> str:
        return f"<FinishedFinder apps={len(self._sub_app_ids)} requests={self.requests}>"

    async def round(self, now: float) -> set[str]:
        """TaskIds listed as finished between the last round (less `OVERLAP`) and `now`. A page
        that could not be had ends the round early; the next one starts from the same place."""
        found: set[str] = set()
        complete = True
        for sub_app_id in sorted(self._sub_app_ids, key=lambda app: app or 0):
            complete = await self._list(sub_app_id, now, found) and complete
        if complete:
            self._since = now - OVERLAP
        return found

    async def _list(self, sub_app_id: int | None, now: float, found: set[str]) -> bool:
        params: dict[str, object] = {
            "Status": "FINISH",
            "FinishTime": {"After": format_api_time(self._since),
                           "Before": format_api_time(now + 1)},
            "Sort": {"Field": "FinishTime", "Order": "Asc"},
            "Limit": DESCRIBE_TASKS_LIMIT_MAX,
        }
        if sub_app_id is not None:
            params["SubAppId"] = sub_app_id
        for _ in range(MAX_PAGES):
            self.requests += 1
            answer = await self._caller.call(VOD, DESCRIBE_TASKS, params)
            if not isinstance(answer, Answer):
                return False
            try:
                page = DescribeTasksResponse.model_validate(answer.response)
            except ValueError:
                return False
            found.update(task.TaskId for task in page.TaskSet if task.TaskId)
            if not page.ScrollToken or not page.TaskSet:
                return True
            params["ScrollToken"] = page.ScrollToken
        return True


ROUND_INTERVAL = 1.0
"""Seconds between two listing rounds."""


async def bring_forward(
    finder: FinishedFinder,
    poll_now: Callable[[str], bool],
    active: Callable[[], bool],
    clock: Callable[[], float],
    interval: float = ROUND_INTERVAL,
) -> None:
    """Every `interval`, when `active()` (beside a running submit, while young tasks wait for
    their planned ask: where a page of finished tasks saves a request each): list
    what finished and have each of those TaskIds polled now (`poll_now`: False for one this run
    is not waiting for). Runs until cancelled; ends quietly when the run stops."""
    while True:
        await asyncio.sleep(interval)
        if not active():
            continue
        try:
            found = await finder.round(clock())
        except Stopped:
            return
        for task_id in found:
            poll_now(task_id)
