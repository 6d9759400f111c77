"""The end of every collect run, whatever its exit code: `results.csv` and the gallery rewritten
from each task's final state, its parameters and source read again from the manifest (a stream,
in manifest order); a full disk said in one line naming the file (docs/results.md)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime

from batcher.results.collect_job import CollectJob, JobReport
from batcher.results.disk import disk_error
from batcher.results.rows import ResultRow
from batcher.results.tracking import Tracked


def write_reports(spec: CollectJob, tracked: Sequence[Tracked]) -> JobReport:
    """Rewrite `results.csv` and the gallery of one manifest; its counts per state."""
    from batcher.results.gallery import write_gallery
    from batcher.results.table import write_results_csv

    out = spec.out_dir
    try:
        write_results_csv(out, _rows(spec, tracked))
    except OSError as error:
        raise disk_error(error, out / "results.csv") from None
    try:
        write_gallery(out, _rows(spec, tracked), spec.manifest.batch, updated=datetime.now(UTC))
    except OSError as error:
        raise disk_error(error, out / "index.html") from None
    return JobReport(spec.name, out, Counter(t.state for t in tracked))


def _rows(spec: CollectJob, tracked: Sequence[Tracked]) -> Iterator[ResultRow]:
    """Each task's row, its parameters and source read again from the manifest (a stream)."""
    tasks = spec.manifest.tasks()
    for one in tracked:
        task = next(tasks, None)
        yield one.to_row(task if task is not None and task.key == one.key else None)
