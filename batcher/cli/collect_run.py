"""The `collect` command's half of a run: progress, the summary, the metrics file.

It chooses the progress display, runs collect's sequence (`batcher.results.collection.collect`:
the rate store, the client, the collector), prints the summary (or one JSON object) and writes
the metrics file, whatever the exit code.
"""

from __future__ import annotations

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
    CollectResult,
    CollectSettings,
)
from batcher.results.rows import ResultState
from batcher.run.account import Account
from batcher.run.eventloop import run as run_event_loop


@dataclass(frozen=True, slots=True)
class CollectRunOptions:
    jobs: Sequence[CollectJob]
    account: Account
    settings: CollectSettings
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
    from batcher.results.collection import collect

    observer, close = progress_display(options.progress)
    try:
        return await collect(options.jobs, options.settings, options.account,
                             options.store_timeout, observer)
    finally:
        close()


class _NoProgress:
    def changed(self, counts: Mapping[ResultState, int]) -> None:
        return None


def progress_display(mode: str) -> tuple[CollectObserver, Callable[[], None]]:
    """`bar`, `lines`, `none` or `auto` (a bar on a terminal, else lines): the observer and the
    function that closes it (the Python API's `progress=True` uses it too)."""
    if mode == "auto":
        mode = "bar" if sys.stderr.isatty() else "lines"
    if mode == "bar":
        bar = BarCollectProgress()
        return bar, bar.close
    if mode == "lines":
        lines = LineCollectProgress()
        return lines, lines.close
    return _NoProgress(), lambda: None
