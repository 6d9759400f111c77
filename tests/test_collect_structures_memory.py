"""docs/results.md#memory: what a collect run keeps beside its window of tasks does not grow with
the batch. The schedule and the backlog are driven through 100,000 tasks (each added, asked,
finished, then downloaded) as a run with the caps lifted drives them, and what they still hold
afterwards is measured with tracemalloc: a per-task leftover (a poll time, a stale heap entry:
some 100 bytes a task, 10 MB here, 100 MB at a million) fails it."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from typing import TypeVar

from batcher.results.counts import FinishedBacklog
from batcher.results.schedule import PollSchedule, PollTiming

TASKS = 100_000
WINDOW = 1_000
LEFT_AT_MOST = 1_000_000
"""Bytes they may still hold after every task has gone through: the open window (about 500 KB
for the backlog of 1,000 open tasks); a per-task leftover holds 3 MB and more here."""
T = TypeVar("T")


def _held_after(run: Callable[[], T]) -> tuple[int, T]:
    """The bytes still allocated once `run()` returned (what it returned is kept), and that."""
    tracemalloc.start()
    try:
        kept = run()
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return held, kept


def _schedule_through(rate: float) -> PollSchedule:
    now = [0.0]
    schedule = PollSchedule(PollTiming(), clock=lambda: now[0], rate=rate)
    for start in range(0, TASKS, WINDOW):
        for task in range(start, start + WINDOW):
            schedule.add(str(task), now[0])
        while (key := schedule.pop_due()) is not None:
            schedule.finished(key)
            now[0] += 1 / rate if rate else 0.0  # the cap's pace: never waiting, always due
        now[0] += 0.001
    assert schedule.polls == TASKS and len(schedule) == 0
    return schedule


def test_a_schedule_with_the_caps_lifted_keeps_nothing_per_poll() -> None:
    assert _held_after(lambda: _schedule_through(rate=0))[0] < LEFT_AT_MOST


def test_a_capped_schedule_keeps_nothing_per_poll() -> None:
    assert _held_after(lambda: _schedule_through(rate=20))[0] < LEFT_AT_MOST


def test_the_backlog_keeps_nothing_of_the_tasks_that_settled() -> None:
    def through() -> FinishedBacklog:
        backlog = FinishedBacklog()
        for task in range(TASKS):
            backlog.finished(task, finished_at=float(task), expires_at=None)
            if task >= WINDOW:
                backlog.settled(task - WINDOW)
        return backlog

    # Measured before anything asks for the oldest (a status report may not come for hours).
    held, backlog = _held_after(through)
    assert held < LEFT_AT_MOST
    assert len(backlog) == WINDOW
    assert backlog.oldest() == (float(TASKS - WINDOW), None)
