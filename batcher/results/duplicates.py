"""The vod duplicates of a collect run, settled: their TaskIds recovered from the listing
(`recovery`), each verdict written to the task's results ledger before the task moves on (to
polling, or `lost`).

    await settle_duplicates(caller, [(name, writer, tracked), ...], moved)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from batcher.results.caller import ApiCaller, Stopped
from batcher.results.recovery import Duplicate, Lost, recover
from batcher.results.rows import ResultState
from batcher.results.tracking import Tracked, Work
from batcher.state.results_ledger import ResultsLedgerWriter

log = logging.getLogger("batcher")

Wanted = tuple[str, ResultsLedgerWriter, Tracked]
"""(the manifest's name, its results ledger, a task of it that needs recovery)."""


async def settle_duplicates(
    caller: ApiCaller, wanted: Sequence[Wanted], moved: Callable[[Tracked, ResultState], None]
) -> None:
    """Recover each wanted task's TaskId; `moved(tracked, old state)` after each verdict. A task
    whose listing failed, or a stop, leaves it as it was (tried again next run)."""
    if not wanted:
        return
    duplicates = [
        Duplicate(tracked.key, tracked.who.sub_app_id, tracked.session_id, tracked.sending_times)
        for _, _, tracked in wanted
    ]
    try:
        verdicts = await recover(caller, duplicates, time.time())
    except Stopped:
        return
    for name, writer, tracked in wanted:
        verdict = verdicts.get(tracked.key)
        if verdict is None:
            continue
        old_state = tracked.state
        if isinstance(verdict, Lost):
            await writer.lost(tracked.key, tracked.service, verdict.reason, tracked.session_id)
            tracked.fail(ResultState.LOST, "TaskIdNotRecovered", verdict.reason)
            log.warning("%s: %s task %s is lost: %s", name, tracked.service, tracked.key,
                        verdict.reason)
        else:
            await writer.recovered(tracked.key, tracked.service, verdict.task_id,
                                   tracked.session_id)
            tracked.task_id, tracked.work = verdict.task_id, Work.POLL
            tracked.state = ResultState.PENDING
        moved(tracked, old_state)
