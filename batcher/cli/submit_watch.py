"""What `batcher submit` shows while it runs: the progress display and the metrics file.

`CliWatcher` is the face's `batcher.run.submission.SubmitWatcher`: once the jobs are planned it
builds a bar (on a terminal) or periodic lines (otherwise) and the `RunMetrics` file, rewrites
that file every `metrics_interval` seconds while the pipeline runs, and writes it a last time,
with the exit code, when the run has ended and its locks are released.
"""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

from batcher.cli.metrics import RunMetrics
from batcher.cli.progress import BarProgress, LineProgress, ObserverGroup
from batcher.run.outcome import SubmitResult
from batcher.run.pipeline import Job, RunObserver


class CliWatcher:
    """Progress (`bar`, `lines`, `none`, or `auto`: a bar on a terminal, lines otherwise) and an
    optional Prometheus metrics file."""

    def __init__(self, progress: str = "auto", *, progress_interval: float = 10.0,
                 metrics_file: Path | None = None, metrics_interval: float = 15.0) -> None:
        self._mode = progress
        self._progress_interval = progress_interval
        self._metrics_file = metrics_file
        self._metrics_interval = metrics_interval
        self._metrics: RunMetrics | None = None
        self._closers: list[Callable[[], None]] = []

    def started(self, jobs: Sequence[Job]) -> RunObserver:
        jobs = list(jobs)
        if self._metrics_file is not None:
            self._metrics = RunMetrics(self._metrics_file, jobs)
        mode = self._mode
        if mode == "auto":
            mode = "bar" if sys.stderr.isatty() else "lines"
        observers: list[RunObserver] = [self._metrics] if self._metrics is not None else []
        if mode in ("bar", "lines"):
            totals = Counter[str]()
            for job in jobs:
                totals.update(job.tasks_per_service)
            progress: BarProgress | LineProgress = (
                BarProgress(totals)
                if mode == "bar"
                else LineProgress(totals, interval=self._progress_interval)
            )
            observers.append(progress)
            self._closers.append(progress.close)
        return ObserverGroup(observers)

    async def watch(self) -> None:
        """Rewrite the metrics file every `metrics_interval` seconds (none: nothing to do)."""
        metrics = self._metrics
        if metrics is None:
            return
        while True:
            metrics.write()
            await asyncio.sleep(self._metrics_interval)

    def stopped(self) -> None:
        for close in self._closers:
            close()

    def finished(self, result: SubmitResult) -> None:
        if self._metrics is not None:
            self._metrics.finish(result.exit_code)
            self._metrics.write()
