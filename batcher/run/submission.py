"""A submit run from start to end: lock, replay, plan, run, judge, completion records.

`run_submit(options, credentials, watcher)` is the whole sequence, the same for the CLI and the
Python API; the face only builds `SubmitOptions` and reports the `SubmitResult`
(`batcher.run.outcome`). What the face shows meanwhile (progress, a metrics file) it passes in as
a `SubmitWatcher`, so nothing here knows a terminal or a file format.

Order matters and is the contract. Credentials are found first (the face does it: cheap, and a
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
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from batcher.exceptions import ManifestError
from batcher.manifest import Manifest
from batcher.run.outcome import SubmitResult, judge_run
from batcher.run.pipeline import Job, Pipeline, RunObserver, RunResult, RunSettings
from batcher.run.rate_scope import rate_scope
from batcher.run.rate_stores import open_store
from batcher.run.resume import Decision, ServicePlan, plan_manifest
from batcher.run.spend import SpendRefused, SpendRules, check_spend, sending
from batcher.run.summary import JobSummary
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
    """Everything a submit run is configured with; built once by the face."""

    manifests: Sequence[ManifestRun]
    client: ClientSettings
    run: RunSettings
    rate_store: str
    """The `--rate-store` URL (`batcher.run.rate_stores.open_store`)."""
    regeneration: RegenerationRules = field(default_factory=RegenerationRules)
    """`--regenerate` / `--regenerate-all`: resend the tasks whose generation failed."""
    spend: SpendRules | None = None
    """The quota read and the confirmation before the first request (`batcher.run.spend`);
    None checks nothing."""


class SubmitWatcher(Protocol):
    """What the face watches a submit run with (progress displays, a metrics file)."""

    def started(self, jobs: Sequence[Job]) -> RunObserver:
        """Every manifest is valid and planned: the pipeline's observer for these jobs."""
        ...

    async def watch(self) -> None:
        """Runs beside the pipeline and is cancelled when it ends (a periodic metrics file)."""
        ...

    def stopped(self) -> None:
        """The pipeline ended, however it did (the ledgers are still locked)."""
        ...

    def finished(self, result: SubmitResult) -> None:
        """The run is judged, its completion records written and every lock released."""
        ...


class _Unwatched:
    """No progress, no metrics: the Python API's default."""

    def started(self, jobs: Sequence[Job]) -> RunObserver:
        return self

    async def watch(self) -> None:
        return None

    def stopped(self) -> None:
        return None

    def finished(self, result: SubmitResult) -> None:
        return None

    def task_settled(self, job: Job, service: str, result: object) -> None:
        return None

    def tasks_skipped(self, job: Job, service: str, decision: Decision, count: int) -> None:
        return None

    def request_answered(self, job: Job, service: str, code: str) -> None:
        return None


async def run_submit(
    options: SubmitOptions,
    credentials: Credentials | CredentialsProvider,
    watcher: SubmitWatcher | None = None,
) -> SubmitResult:
    """Lock, replay and plan each manifest, run the pipeline, close the ledgers, judge the run.

    CredentialsError (no CVM role either), ManifestError (exit 2) or LedgerLocked (exit 3)
    before anything is sent."""
    watcher = watcher if watcher is not None else _Unwatched()
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
        async with AigcClient(credentials, options.client) as client:
            if options.spend is not None:  # still locked: a refusal releases the locks
                try:
                    await check_spend(options.spend, sending(job.plans for job in jobs), client)
                except SpendRefused:
                    _remove_if_empty(new_ledgers)
                    raise
            observer = watcher.started(jobs)
            try:
                scope = rate_scope(await credentials.current())
                pipeline = Pipeline(client, jobs, options.run, observer, store, scope=scope)
                result = await _run_watched(pipeline, watcher)
            finally:
                watcher.stopped()
        judged = judge_run(result)
        _record_completions(planned, judged.summaries)  # every line is written; still locked
    watcher.finished(judged)
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


async def _run_watched(pipeline: Pipeline, watcher: SubmitWatcher) -> RunResult:
    """Run the pipeline; meanwhile the watcher's `watch` runs beside it."""
    watching = asyncio.create_task(watcher.watch())
    try:
        return await pipeline.run()
    finally:
        watching.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watching
