"""The `submit` command from start to end: validate, lock, replay, run, summarise, exit code.

Order matters and is the contract: every manifest is validated before anything is sent (a bad
one exits 2 with nothing sent); credentials are checked next; then each ledger is locked (a held
one exits 3 at once) and replayed; only then does the pipeline start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from batcher.client import AigcClient, ClientSettings
from batcher.credentials import Credentials
from batcher.exit_codes import ExitCode
from batcher.ledger import LedgerWriter, open_ledger, replay
from batcher.manifest import Manifest
from batcher.metrics import RunMetrics
from batcher.pipeline import Job, Pipeline, RunObserver, RunResult, RunSettings, StopReason
from batcher.progress import BarProgress, LineProgress, ObserverGroup
from batcher.report import JobSummary, summarize_job

log = logging.getLogger("batcher")


@dataclass(frozen=True, slots=True)
class ManifestRun:
    """A validated manifest, the ledger it settles in, and its task count per service."""

    manifest: Manifest
    ledger: Path
    tasks_per_service: Mapping[str, int]


@dataclass(frozen=True, slots=True)
class SubmitOptions:
    manifests: Sequence[ManifestRun]
    client: ClientSettings
    run: RunSettings
    progress: str = "auto"
    """`bar`, `lines`, `none`, or `auto` (a bar on a terminal, lines otherwise)."""
    progress_interval: float = 10.0
    metrics_file: Path | None = None
    metrics_interval: float = 15.0


@dataclass(frozen=True, slots=True)
class SubmitResult:
    summaries: list[JobSummary]
    exit_code: ExitCode
    stop_detail: str


async def run_submit(options: SubmitOptions, credentials: Credentials) -> SubmitResult:
    """Lock and replay each ledger, run the pipeline, close the ledgers, and judge the run."""
    async with contextlib.AsyncExitStack() as stack:
        jobs = []
        for item in options.manifests:
            writer: LedgerWriter = open_ledger(item.ledger)
            stack.push_async_callback(writer.close)
            jobs.append(Job(str(item.manifest.path), item.manifest, replay(item.ledger), writer,
                            item.tasks_per_service))
        metrics = RunMetrics(options.metrics_file, jobs) if options.metrics_file else None
        observer, closers = _observers(options, jobs, metrics)
        try:
            async with AigcClient(credentials, options.client) as client:
                pipeline = Pipeline(client, jobs, options.run, observer)
                result = await _run_with_metrics(pipeline, metrics, options.metrics_interval)
        finally:
            for close in closers:
                close()
    judged = _judge(result)
    if metrics is not None:
        metrics.finish(judged.exit_code)
        metrics.write()
    return judged


async def _run_with_metrics(
    pipeline: Pipeline, metrics: RunMetrics | None, interval: float
) -> RunResult:
    """Run the pipeline; meanwhile rewrite the metrics file every `interval` seconds."""
    if metrics is None:
        return await pipeline.run()

    async def keep_writing() -> None:
        while True:
            metrics.write()
            await asyncio.sleep(interval)

    writer = asyncio.create_task(keep_writing())
    try:
        return await pipeline.run()
    finally:
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writer


def _observers(
    options: SubmitOptions, jobs: list[Job], metrics: RunMetrics | None
) -> tuple[RunObserver, list[Callable[[], None]]]:
    mode = options.progress
    if mode == "auto":
        mode = "bar" if sys.stderr.isatty() else "lines"
    observers: list[RunObserver] = [metrics] if metrics is not None else []
    closers: list[Callable[[], None]] = []
    if mode in ("bar", "lines"):
        totals = Counter[str]()
        for job in jobs:
            totals.update(job.tasks_per_service)
        progress: BarProgress | LineProgress = (
            BarProgress(totals)
            if mode == "bar"
            else LineProgress(totals, interval=options.progress_interval)
        )
        observers.append(progress)
        closers.append(progress.close)
    return ObserverGroup(observers), closers


def _judge(result: RunResult) -> SubmitResult:
    summaries = [summarize_job(job) for job in result.jobs]
    stop = result.stop
    detail = stop.detail if stop else ""
    if stop is not None and stop.reason is StopReason.RUN_STOPPING_ERROR:
        return SubmitResult(summaries, ExitCode.USAGE, detail)
    if stop is not None and stop.reason is StopReason.SIGINT:
        return SubmitResult(summaries, ExitCode.SIGINT, detail)
    if stop is not None and stop.reason is StopReason.SIGTERM:
        return SubmitResult(summaries, ExitCode.SIGTERM, detail)
    left = sum(summary.left for summary in summaries)
    if stop is not None and stop.reason is StopReason.MAX_RUNTIME and left:
        return SubmitResult(summaries, ExitCode.TIME_LIMIT, detail)
    not_done = sum(summary.not_done for summary in summaries)
    return SubmitResult(summaries, ExitCode.TASKS_NOT_DONE if not_done else ExitCode.OK, detail)

