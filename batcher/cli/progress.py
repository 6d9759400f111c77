"""What a person (or a log file) sees while a run goes on: bars, periodic lines, or nothing.

Three `RunObserver`s: `BarProgress` (a tqdm bar per service, on a terminal), `LineProgress`
(one log line every few seconds when there is no terminal: cron, CI, scripts) and
`ObserverGroup`, which fans the events out to several observers (progress and metrics).
"""

from __future__ import annotations

import logging
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence

from tqdm import tqdm

from batcher.run.pipeline import Job, Result, RunObserver
from batcher.run.resume import Decision

log = logging.getLogger("batcher")


class ObserverGroup:
    """Passes every event to each observer in turn."""

    def __init__(self, observers: Sequence[RunObserver]) -> None:
        self._observers = list(observers)

    def task_settled(self, job: Job, service: str, result: Result) -> None:
        for observer in self._observers:
            observer.task_settled(job, service, result)

    def request_answered(self, job: Job, service: str, code: str) -> None:
        for observer in self._observers:
            observer.request_answered(job, service, code)

    def tasks_skipped(self, job: Job, service: str, decision: Decision, count: int) -> None:
        for observer in self._observers:
            observer.tasks_skipped(job, service, decision, count)


class BarProgress:
    """One tqdm bar per service on stderr: the manifest's tasks, done before or settled now."""

    def __init__(self, totals: Mapping[str, int]) -> None:
        self._bars = {
            service: tqdm(
                total=total, desc=service, unit="task", file=sys.stderr, position=position,
                dynamic_ncols=True, leave=True,
            )
            for position, (service, total) in enumerate(sorted(totals.items()))
            if total
        }
        self._failed: Counter[str] = Counter()

    def tasks_skipped(self, job: Job, service: str, decision: Decision, count: int) -> None:
        bar = self._bars.get(service)
        if bar is not None:
            bar.update(count)

    def task_settled(self, job: Job, service: str, result: Result) -> None:
        bar = self._bars.get(service)
        if bar is None:
            return
        if result in (Result.FAILED, Result.IN_DOUBT):
            self._failed[service] += 1
            bar.set_postfix(failed=self._failed[service], refresh=False)
        bar.update(1)

    def request_answered(self, job: Job, service: str, code: str) -> None:
        return None

    def close(self) -> None:
        for bar in self._bars.values():
            bar.close()


class LineProgress:
    """A log line every `interval` seconds: per service, the manifest's tasks accounted for
    (done before, or settled by this run) and how this run's tasks ended."""

    def __init__(
        self,
        totals: Mapping[str, int],
        *,
        interval: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._totals = dict(totals)
        self._interval = interval
        self._clock = clock
        self._next_line = clock() + interval
        self._settled: Counter[tuple[str, Result]] = Counter()
        self._skipped: Counter[str] = Counter()

    def task_settled(self, job: Job, service: str, result: Result) -> None:
        self._settled[(service, result)] += 1
        self._maybe_log()

    def tasks_skipped(self, job: Job, service: str, decision: Decision, count: int) -> None:
        self._skipped[service] += count
        self._maybe_log()

    def _maybe_log(self) -> None:
        if self._clock() >= self._next_line:
            self._next_line = self._clock() + self._interval
            log.info("progress: %s", self.describe())

    def request_answered(self, job: Job, service: str, code: str) -> None:
        return None

    def describe(self) -> str:
        parts = []
        for service, total in sorted(self._totals.items()):
            if not total:
                continue
            counts = {r: self._settled[(service, r)] for r in Result}
            accounted = sum(counts.values()) + self._skipped[service]
            detail = ", ".join(f"{r.value} {n}" for r, n in counts.items() if n)
            if self._skipped[service]:
                detail = f"skipped (done or held) {self._skipped[service]}" + (
                    f", {detail}" if detail else "")
            parts.append(f"{service} {accounted}/{total}" + (f" ({detail})" if detail else ""))
        return "; ".join(parts) or "no tasks"

    def close(self) -> None:
        return None
