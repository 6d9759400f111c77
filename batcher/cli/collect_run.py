"""The `collect` command from start to end: rate store, client, progress, the run, the summary.

The face's half of a collect run: it opens the rate store and the client, chooses the progress
display, runs `batcher.results.collector.Collector`, prints the summary (or one JSON object) and
writes the metrics file, whatever the exit code.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from batcher.cli.collect_report import (
    BarCollectProgress,
    LineCollectProgress,
    render_summary,
    summary_dict,
    write_metrics,
)
from batcher.results.collector import (
    CollectJob,
    CollectObserver,
    Collector,
    CollectResult,
    CollectSettings,
)
from batcher.results.rows import ResultState
from batcher.run.eventloop import run as run_event_loop
from batcher.run.limiter import RateLimiter
from batcher.run.rate_scope import rate_scope
from batcher.run.rate_stores import open_store
from batcher.wire.client import AigcClient, ClientSettings
from batcher.wire.credentials import Credentials, CredentialsProvider, StaticCredentials


@dataclass(frozen=True, slots=True)
class CollectRunOptions:
    jobs: Sequence[CollectJob]
    credentials: Credentials | CredentialsProvider
    client: ClientSettings
    settings: CollectSettings
    rate_store: str
    store_timeout: float
    progress: str = "auto"
    metrics_file: Path | None = None
    json: bool = False
    quiet: bool = False
    log_summary: bool = False
    """Also write the summary's last line to the log (`--log-file`: cron keeps it there)."""


def run_collect(options: CollectRunOptions) -> int:
    """Run, print the summary, write the metrics; BatcherError for 2/3 (reports written)."""
    result = run_event_loop(_collect(options))
    if options.metrics_file is not None:
        write_metrics(options.metrics_file, result)
    if options.json:
        print(json.dumps(summary_dict(result), ensure_ascii=False))
    elif not options.quiet:
        print(render_summary(result))
    if options.log_summary:
        logging.getLogger("batcher").info("%s", render_summary(result).splitlines()[-1])
    return int(result.exit_code)


async def _collect(options: CollectRunOptions) -> CollectResult:
    credentials = options.credentials
    if isinstance(credentials, Credentials):
        credentials = StaticCredentials(credentials)
    scope = rate_scope(await credentials.current())  # a CVM role's first fetch: none, no run
    store = open_store(options.rate_store)
    observer, close = _observer(options)
    try:
        async with AigcClient(credentials, options.client) as client:

            def limiter_for(service: str, action: str, rate: float) -> RateLimiter:
                return RateLimiter(store, scope=scope, service=service, action=action,
                                   rate=rate, store_timeout=options.store_timeout)

            collector = Collector(options.jobs, options.settings, client, limiter_for, observer)
            return await collector.run()
    finally:
        close()
        with contextlib.suppress(Exception):
            await store.close()


class _NoProgress:
    def changed(self, counts: Mapping[ResultState, int]) -> None:
        return None


def _observer(options: CollectRunOptions) -> tuple[CollectObserver, Callable[[], None]]:
    mode = options.progress
    if mode == "auto":
        mode = "bar" if sys.stderr.isatty() else "lines"
    if mode == "bar":
        bar = BarCollectProgress()
        return bar, bar.close
    if mode == "lines":
        lines = LineCollectProgress()
        return lines, lines.close
    return _NoProgress(), lambda: None

