"""The `submit` command from start to end: lock, replay, validate, run, summarise, exit code.

Order matters and is the contract. Credentials are found first (the CLI does it: cheap, and a
user without them learns at once). Then each ledger is locked (a held one exits 3 at once, not
after validating a million rows: that is the overlapping cron run) and replayed, and each
manifest is validated in ONE pass that also keys every task and decides, against the ledger,
what this run sends (`batcher.run.resume.plan_manifest`). A bad manifest exits 2 with nothing sent
and the locks released; only when every manifest is valid does the pipeline start, and it reads
a manifest again only as far as its last task to send.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from batcher.cli.metrics import RunMetrics
from batcher.cli.progress import BarProgress, LineProgress, ObserverGroup
from batcher.cli.report import JobSummary, summarize_job
from batcher.exceptions import ExitCode, ManifestError
from batcher.manifest import Manifest
from batcher.run.pipeline import Job, Pipeline, RunObserver, RunResult, RunSettings, StopReason
from batcher.run.rate_stores import open_store
from batcher.run.resume import Decision, ServicePlan, plan_manifest
from batcher.state.completion import (
    completed_tasks,
    manifest_digest,
    record_completion,
    record_path,
)
from batcher.state.ledger import LedgerReplay, LedgerWriter, open_ledger, replay
from batcher.state.regeneration import RegenerationRules, plan_regenerations
from batcher.wire.client import AigcClient, ClientSettings
from batcher.wire.credentials import Credentials, CredentialsProvider, StaticCredentials

log = logging.getLogger("batcher")


@dataclass(frozen=True, slots=True)
class ManifestRun:
    """A loaded manifest (its structure read, its tasks not yet) and the ledger it settles in."""

    manifest: Manifest
    ledger: Path


@dataclass(frozen=True, slots=True)
class SubmitOptions:
    manifests: Sequence[ManifestRun]
    client: ClientSettings
    run: RunSettings
    rate_store: str
    """The `--rate-store` URL (`batcher.run.rate_stores.open_store`)."""
    progress: str = "auto"
    """`bar`, `lines`, `none`, or `auto` (a bar on a terminal, lines otherwise)."""
    progress_interval: float = 10.0
    metrics_file: Path | None = None
    metrics_interval: float = 15.0
    regeneration: RegenerationRules = field(default_factory=RegenerationRules)
    """`--regenerate` / `--regenerate-all`: resend the tasks whose generation failed."""


@dataclass(frozen=True, slots=True)
class SubmitResult:
    summaries: list[JobSummary]
    exit_code: ExitCode
    stop_detail: str
    account_error: bool = False
    """Stopped by an error that fails every task of the account (`stop_detail`: CODE: message)."""


async def run_submit(
    options: SubmitOptions, credentials: Credentials | CredentialsProvider
) -> SubmitResult:
    """Lock, replay and plan each manifest, run the pipeline, close the ledgers, judge the run.

    CredentialsError (no CVM role either), ManifestError (exit 2) or LedgerLocked (exit 3)
    before anything is sent."""
    if isinstance(credentials, Credentials):
        credentials = StaticCredentials(credentials)
    found = await credentials.current()  # the CVM role's first fetch: no role, no run
    log.debug("credentials: %s", found)
    async with contextlib.AsyncExitStack() as stack:
        store = open_store(options.rate_store)  # a bad URL exits 2 before any lock is taken
        stack.push_async_callback(store.close)
        new_ledgers = [item.ledger for item in options.manifests if not item.ledger.exists()]
        writers: list[LedgerWriter] = []
        for item in options.manifests:
            writers.append(open_ledger(item.ledger))
            stack.push_async_callback(writers[-1].close)
        try:
            planned = _plan_jobs(options, writers)
        except ManifestError:
            # Still under the locks: a ledger this run created for a bad manifest goes again.
            _remove_if_empty(new_ledgers)
            raise
        jobs = [job for job, _, _ in planned]
        metrics = RunMetrics(options.metrics_file, jobs) if options.metrics_file else None
        observer, closers = _observers(options, jobs, metrics)
        try:
            async with AigcClient(credentials, options.client) as client:
                scope = rate_scope(await credentials.current())
                pipeline = Pipeline(client, jobs, options.run, observer, store, scope=scope)
                result = await _run_with_metrics(pipeline, metrics, options.metrics_interval)
        finally:
            for close in closers:
                close()
        judged = _judge(result)
        _record_completions(planned, judged.summaries)  # every line is written; still locked
    if metrics is not None:
        metrics.finish(judged.exit_code)
        metrics.write()
    return judged


_PlannedJob = tuple[Job, str, bool]
"""A job, its manifest's digest when it was planned, and whether a completion record said that
it is entirely done already."""


def _plan_jobs(options: SubmitOptions, writers: Sequence[LedgerWriter]) -> list[_PlannedJob]:
    """Each manifest validated and planned against its replayed ledger, in one pass each, unless
    a completion record shows that it is entirely done in its ledger as it is."""
    planned = []
    for item, writer in zip(options.manifests, writers, strict=True):
        name = str(item.manifest.path)
        digest = manifest_digest(item.manifest.source_files)
        regenerations = plan_regenerations(item.ledger, options.regeneration)
        # A completion record knows nothing of generations: with regenerations, read it all.
        done = None if regenerations else completed_tasks(digest, item.ledger)
        if done is not None:
            log.info("%s: every task is done (%s): nothing to read or send", name,
                     record_path(item.ledger))
            plans = {service: ServicePlan(Counter({Decision.DONE: count}))
                     for service, count in done.items() if count}
            job = Job(name, item.manifest, LedgerReplay(item.ledger), writer, plans)
        else:
            replayed = replay(item.ledger)
            plans = plan_manifest(item.manifest, replayed, options.run.rules, regenerations)
            job = Job(name, item.manifest, replayed, writer, plans,
                      regenerations=regenerations)
        planned.append((job, digest, done is not None))
    return planned


def _record_completions(planned: Sequence[_PlannedJob], summaries: Sequence[JobSummary]) -> None:
    """A completion record for each manifest this run finished, unless it changed meanwhile."""
    for (job, digest, from_record), summary in zip(planned, summaries, strict=True):
        if from_record or summary.not_done or summary.left:
            continue
        if manifest_digest(job.manifest.source_files) != digest:
            log.warning("%s changed during the run: its tasks will be read again next time",
                        job.name)
            continue
        try:
            record_completion(job.ledger.path, {digest: job.tasks_per_service})
        except OSError as error:  # only a shortcut for the next run: the run itself succeeded
            log.warning("%s: cannot write its completion record: %s", job.name, error)


def _remove_if_empty(ledgers: Sequence[Path]) -> None:
    for ledger in ledgers:
        with contextlib.suppress(OSError):
            if ledger.stat().st_size == 0:
                ledger.unlink()


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


def rate_scope(credentials: Credentials) -> str:
    """What scopes the rate store's keys: the account's SecretId (hashed by the store). A CVM
    role's temporary SecretId changes at every refresh and differs between hosts, so its
    runs are scoped by the role's name instead: the hosts that share a role share its cap."""
    if credentials.source.startswith("CVM role "):
        return credentials.source
    return credentials.secret_id


_NOTHING_LOST_STOPS = frozenset({StopReason.STORE_UNREACHABLE, StopReason.ENDPOINT_UNREACHABLE})


def _judge(result: RunResult) -> SubmitResult:
    summaries = [summarize_job(job) for job in result.jobs]
    stop = result.stop
    detail = stop.detail if stop else ""
    if stop is not None and stop.reason is StopReason.RUN_STOPPING_ERROR:
        return SubmitResult(summaries, ExitCode.USAGE, detail, account_error=True)
    if stop is not None and stop.reason is StopReason.SIGINT:
        return SubmitResult(summaries, ExitCode.SIGINT, detail)
    if stop is not None and stop.reason is StopReason.SIGTERM:
        return SubmitResult(summaries, ExitCode.SIGTERM, detail)
    left = sum(summary.left for summary in summaries)
    if stop is not None and stop.reason in _NOTHING_LOST_STOPS:
        # Stopped from outside the tasks (a store or an endpoint that is down): run again.
        return SubmitResult(summaries, ExitCode.TIME_LIMIT, detail)
    if stop is not None and stop.reason is StopReason.MAX_RUNTIME and left:
        return SubmitResult(summaries, ExitCode.TIME_LIMIT, detail)
    not_done = sum(summary.not_done for summary in summaries)
    return SubmitResult(summaries, ExitCode.TASKS_NOT_DONE if not_done else ExitCode.OK, detail)

