"""What a collect run shows: its progress (a bar on a terminal, log lines otherwise), its summary
(text or one JSON object) and its Prometheus metrics file, with the tasks per result state."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tqdm import tqdm

from batcher.cli.metrics import label_value
from batcher.results.collector import FINAL_STATES, UNFINISHED_STATES, CollectResult
from batcher.results.rows import ResultState
from batcher.state.atomic import replace_text

log = logging.getLogger("batcher")

LINE_INTERVAL = 10.0
"""Seconds between two progress lines when stderr is not a terminal."""


def _collectable(counts: Mapping[ResultState, int]) -> tuple[int, int]:
    """(final, total) over the tasks that were submitted: what collect can finish."""
    total = sum(counts.get(state, 0) for state in (*FINAL_STATES, *UNFINISHED_STATES))
    final = sum(counts.get(state, 0) for state in FINAL_STATES)
    return final, total


def _describe(counts: Mapping[ResultState, int]) -> str:
    return ", ".join(f"{counts[state]} {state}" for state in ResultState if counts.get(state))


class BarCollectProgress:
    """One tqdm bar on stderr: the submitted tasks that reached a final state."""

    def __init__(self) -> None:
        self._bar = tqdm(desc="collect", unit="task", file=sys.stderr, dynamic_ncols=True)

    def changed(self, counts: Mapping[ResultState, int]) -> None:
        final, total = _collectable(counts)
        self._bar.total = total
        self._bar.n = final
        self._bar.set_postfix_str(_describe(counts), refresh=False)
        self._bar.refresh()

    def close(self) -> None:
        self._bar.close()


class LineCollectProgress:
    """A log line every `LINE_INTERVAL` seconds (cron, scripts), and one at the end."""

    def __init__(self, interval: float = LINE_INTERVAL) -> None:
        self._interval = interval
        self._last = 0.0
        self._counts: Mapping[ResultState, int] = {}

    def changed(self, counts: Mapping[ResultState, int]) -> None:
        self._counts = counts
        now = time.monotonic()
        if now - self._last >= self._interval:
            self._last = now
            self._log()

    def _log(self) -> None:
        final, total = _collectable(self._counts)
        log.info("collect: %d/%d final (%s)", final, total, _describe(self._counts))

    def close(self) -> None:
        if self._counts:
            self._log()


_EXIT_MEANING = {
    0: "every submitted task has its files on disk",
    1: "finished; some tasks failed to generate, expired or were lost",
    75: "some tasks are still generating or left: run again later (or --wait)",
    130: "stopped by SIGINT",
    143: "stopped by SIGTERM",
}


def render_summary(result: CollectResult) -> str:
    lines = []
    for job in result.jobs:
        lines.append(f"{job.name}: {_describe(job.counts) or 'no tasks'}")
        lines.append(f"  gallery: {job.out_dir / 'index.html'}")
    meaning = _EXIT_MEANING.get(int(result.exit_code), "")
    stop = f" ({result.stop_detail})" if result.stop_detail else ""
    polls = sum(result.calls.values())
    lines.append(f"exit {int(result.exit_code)}: {meaning}{stop}; {polls} requests")
    return "\n".join(lines)


def summary_dict(result: CollectResult) -> dict[str, Any]:
    return {
        "exit_code": int(result.exit_code),
        "stopped": result.stop_detail or None,
        "requests": result.calls,
        "manifests": [
            {
                "manifest": job.name,
                "out": str(job.out_dir),
                "gallery": str(job.out_dir / "index.html"),
                "results_csv": str(job.out_dir / "results.csv"),
                "states": {str(state): job.counts.get(state, 0) for state in ResultState},
            }
            for job in result.jobs
        ],
    }


def render_metrics(result: CollectResult | None, exit_code: int, now: float) -> str:
    lines = [
        "# HELP batcher_results Tasks of the manifest by result state, as of this collect run.",
        "# TYPE batcher_results gauge",
    ]
    for job in result.jobs if result is not None else ():
        for state in ResultState:
            lines.append(f'batcher_results{{manifest="{label_value(job.name)}",state="{state}"}} '
                         f"{job.counts.get(state, 0)}")
    lines += [
        "# HELP batcher_collect_requests_total Requests sent by this collect run, by action.",
        "# TYPE batcher_collect_requests_total counter",
    ]
    for action, count in sorted((result.calls if result is not None else {}).items()):
        lines.append(f'batcher_collect_requests_total{{action="{action}"}} {count}')
    lines += _backlog_metrics(result)
    lines += [
        "# HELP batcher_collect_exit_code Exit code of the last collect run.",
        "# TYPE batcher_collect_exit_code gauge",
        f"batcher_collect_exit_code {exit_code}",
        "# HELP batcher_collect_end_timestamp_seconds When the last collect run ended.",
        "# TYPE batcher_collect_end_timestamp_seconds gauge",
        f"batcher_collect_end_timestamp_seconds {now:.3f}",
    ]
    return "\n".join(lines) + "\n"


def _backlog_metrics(result: CollectResult | None) -> list[str]:
    """Finished tasks not on disk yet, and the oldest one's age against its URLs' expiry: an
    alert fires on these before a paid image dies (docs/results.md)."""
    if result is None:
        return []
    backlog = result.backlog
    lines = [
        "# HELP batcher_collect_unsaved Finished tasks whose files are not on disk yet.",
        "# TYPE batcher_collect_unsaved gauge",
        f"batcher_collect_unsaved {backlog.count}",
        "# HELP batcher_collect_unsaved_oldest_age_seconds Since the oldest of them finished.",
        "# TYPE batcher_collect_unsaved_oldest_age_seconds gauge",
        f"batcher_collect_unsaved_oldest_age_seconds {backlog.oldest_age:.0f}",
    ]
    if backlog.oldest_expires_in is not None:
        lines += [
            "# HELP batcher_collect_unsaved_oldest_expires_in_seconds Until its URLs stop working.",
            "# TYPE batcher_collect_unsaved_oldest_expires_in_seconds gauge",
            f"batcher_collect_unsaved_oldest_expires_in_seconds {backlog.oldest_expires_in:.0f}",
        ]
    return lines


def write_metrics(path: Path, result: CollectResult) -> None:
    replace_text(path, render_metrics(result, int(result.exit_code), time.time()))


def write_failed_metrics(path: Path, exit_code: int) -> None:
    """A run that ended on an error before it had results still records its exit code."""
    replace_text(path, render_metrics(None, exit_code, time.time()))
