"""`batcher.collect(manifest, ...)` and `await batcher.collect_async(...)`: a collect run.

The same sequence as `batcher collect` (`batcher.results.collection.collect`): duplicates
recovered, unfinished tasks polled within each action's budget, images downloaded, and every
manifest's results.csv and gallery rewritten however the run ends. Returns a `CollectResult`
whatever its exit code (1: some failed, expired or were lost; 75: still generating); what stops
a run before it polls (a broken manifest, no credentials, a held results ledger) raises.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from batcher.library.plan import Manifests, manifest_paths
from batcher.library.results import CollectResult, Rows
from batcher.library.submit import PathLike, account_for
from batcher.library.sync import synchronous
from batcher.results.collection import collect as run_collect
from batcher.results.collector import (
    DEFAULT_TIMEOUT,
    CollectJob,
    CollectObserver,
    CollectSettings,
)
from batcher.results.rows import ResultState
from batcher.results.schedule import DEFAULT_PRIOR_GENERATION, PollTiming
from batcher.results.table import RESULTS_CSV
from batcher.run.account import locate_manifests
from batcher.run.limiter import DEFAULT_STORE_TIMEOUT

__all__ = ["collect", "collect_async"]

TOO_MANY = ("ledger= and out= name one manifest's files, but several manifests were given: "
            "leave them out (each manifest's are beside it)")


async def collect_async(
    manifest: Manifests,
    *,
    ledger: PathLike | None = None,
    out: PathLike | None = None,
    wait: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
    poll_rate: float | None = None,
    max_runtime: float | None = None,
    expected_generation: float = DEFAULT_PRIOR_GENERATION,
    endpoint: str | Sequence[str] | None = None,
    site: str | None = None,
    profile: str | None = None,
    region: str | None = None,
    rate_store: str | None = None,
    store_timeout: float = DEFAULT_STORE_TIMEOUT,
    secret_id: str | None = None,
    secret_key: str | None = None,
    token: str | None = None,
    progress: bool = False,
) -> CollectResult:
    """Fetch what `manifest`'s submitted tasks generated (`wait=True`: until every task is
    final or `timeout` seconds pass); durations are in seconds."""
    account = account_for(endpoint, site, profile, region, rate_store, secret_id, secret_key,
                          token)
    located = locate_manifests(manifest_paths(manifest), _path(ledger), _path(out),
                               too_many=TOO_MANY)
    jobs = [CollectJob(item.manifest, item.ledger, item.out) for item in located]
    settings = CollectSettings(wait=wait, timeout=timeout, max_runtime=max_runtime,
                               poll_rate=poll_rate, handle_signals=False,
                               timing=PollTiming(prior_generation=expected_generation))
    observer, close = _observer(progress)
    try:
        result = await run_collect(jobs, settings, account, store_timeout, observer)
    finally:
        close()
    counts: Counter[str] = Counter()
    for job in result.jobs:
        counts.update({str(state): n for state, n in job.counts.items() if n})
    out_dirs = tuple(job.out_dir.absolute() for job in result.jobs)
    rows = Rows(tuple(out_dir / RESULTS_CSV for out_dir in out_dirs), sum(counts.values()))
    return CollectResult(exit_code=result.exit_code, counts=dict(counts), out_dirs=out_dirs,
                         stop_detail=result.stop_detail, rows=rows)


collect = synchronous(collect_async)
"""`collect_async` run to its end (the same arguments); works inside a running event loop too."""


class _Silent:
    """No progress: the library prints nothing unless asked."""

    def changed(self, counts: Mapping[ResultState, int]) -> None:
        return None


def _observer(progress: bool) -> tuple[CollectObserver, Callable[[], None]]:
    if not progress:
        return _Silent(), lambda: None
    from batcher.cli.collect_run import progress_display

    return progress_display("auto")


def _path(value: PathLike | None) -> Path | None:
    return None if value is None else Path(value)

