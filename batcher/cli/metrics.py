"""Prometheus text-format metrics of a run, for node_exporter's textfile collector.

`RunMetrics` is a `RunObserver`: it counts requests by error code and tasks by how they ended,
per manifest and service, and `write()` replaces the metrics file atomically (a temporary file
in the same directory, fsynced, then renamed), so the collector never reads half a file. The
time of the last fully successful run is carried over from the previous file, so an alert such
as `time() - batcher_last_success_timestamp_seconds > 86400` keeps working across failing runs.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from batcher.run.pipeline import Job, Result
from batcher.run.resume import Decision
from batcher.run.summary import NOT_SENT, summarize_job
from batcher.state.atomic import replace_text

_LAST_SUCCESS = "batcher_last_success_timestamp_seconds"
_PREVIOUS_SUCCESS = re.compile(
    rf'^{_LAST_SUCCESS}\{{manifest="((?:[^"\\]|\\.)*)"\}} ([0-9.e+]+)$', re.MULTILINE
)

_HELP = {
    "batcher_tasks": ("gauge", "Tasks of the manifest by state, as of this run."),
    "batcher_requests_total": ("counter", "Requests sent in this run, by answer code."),
    "batcher_run_start_timestamp_seconds": ("gauge", "When the last run started."),
    "batcher_run_end_timestamp_seconds": ("gauge", "When the last run ended (0 while running)."),
    "batcher_run_exit_code": ("gauge", "Exit code of the last run (-1 while running)."),
    _LAST_SUCCESS: ("gauge", "When a run last ended with every task done (exit 0)."),
}


class RunMetrics:
    """Counts what a run does, and writes it as a Prometheus textfile."""

    def __init__(
        self,
        path: Path,
        jobs: Sequence[Job],
        *,
        manifests: Sequence[str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self._jobs = jobs
        self._manifests = [job.name for job in jobs] if manifests is None else list(manifests)
        """The manifests the run-level gauges are labelled with: the jobs', or, for a run that
        failed before it had jobs (a bad manifest, no credentials, a held lock), those named."""
        self._clock = clock
        self._started = clock()
        self._ended: float | None = None
        self._exit_code: int | None = None
        self._requests: Counter[tuple[str, str, str]] = Counter()
        self._last_success = _read_previous_success(path)

    def task_settled(self, job: Job, service: str, result: Result) -> None:
        return None  # the jobs' own counters are read at write time

    def request_answered(self, job: Job, service: str, code: str) -> None:
        self._requests[(job.name, service, code)] += 1

    def tasks_skipped(self, job: Job, service: str, decision: Decision, count: int) -> None:
        return None  # idem

    def finish(self, exit_code: int) -> None:
        """Mark the run ended; a run where every task is done updates the last success time."""
        self._ended = self._clock()
        self._exit_code = exit_code
        if exit_code == 0:
            for name in self._manifests:
                self._last_success[name] = self._ended

    def write(self) -> None:
        """Replace the metrics file atomically with the current figures."""
        replace_text(self.path, self.render())

    def render(self) -> str:
        samples: dict[str, list[str]] = {name: [] for name in _HELP}
        for job in self._jobs:
            manifest = label_value(job.name)
            for service, states in _task_states(job).items():
                for state, count in sorted(states.items()):
                    samples["batcher_tasks"].append(
                        f'{{manifest="{manifest}",service="{service}",state="{state}"}} {count}'
                    )
        for name in self._manifests:
            manifest = label_value(name)
            samples["batcher_run_start_timestamp_seconds"].append(
                f'{{manifest="{manifest}"}} {self._started:.3f}'
            )
            samples["batcher_run_end_timestamp_seconds"].append(
                f'{{manifest="{manifest}"}} {self._ended or 0:.3f}'
            )
            exit_code = -1 if self._exit_code is None else self._exit_code
            samples["batcher_run_exit_code"].append(f'{{manifest="{manifest}"}} {exit_code}')
        for (name, service, code), count in sorted(self._requests.items()):
            samples["batcher_requests_total"].append(
                f'{{manifest="{label_value(name)}",service="{service}",'
                f'code="{label_value(code)}"}} {count}'
            )
        for name, moment in sorted(self._last_success.items()):
            samples[_LAST_SUCCESS].append(f'{{manifest="{label_value(name)}"}} {moment:.3f}')
        return "".join(_family(name, lines) for name, lines in samples.items() if lines)


def write_failed_run(path: Path, manifests: Sequence[str], exit_code: int) -> None:
    """The metrics of a run that stopped on an error before or while running (exit 2 or 3):
    its exit code for every manifest it named, the last success time carried over."""
    metrics = RunMetrics(path, [], manifests=manifests)
    metrics.finish(exit_code)
    metrics.write()


def _family(name: str, lines: Iterable[str]) -> str:
    kind, help_text = _HELP[name]
    body = "".join(f"{name}{line}\n" for line in lines)
    return f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n{body}"


def _task_states(job: Job) -> dict[str, dict[str, int]]:
    """service → state → tasks: what the ledger held before, plus what this run settled."""
    return {
        service: {
            "done": counts["done_before"] + counts["submitted"] + counts["duplicate"],
            "failed": counts["failed"],
            "failed_permanent": counts["held_failed"],
            "in_doubt": counts["in_doubt"] + counts["held_in_doubt"],
            NOT_SENT: counts[NOT_SENT],
        }
        for service, counts in summarize_job(job).services.items()
    }


def label_value(value: str) -> str:
    """A label value escaped as the text format requires."""
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _unlabel(value: str) -> str:
    return re.sub(r"\\(.)", lambda m: "\n" if m[1] == "n" else m[1], value)


def _read_previous_success(path: Path) -> dict[str, float]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return {}
    return {_unlabel(name): float(value) for name, value in _PREVIOUS_SUCCESS.findall(text)}
