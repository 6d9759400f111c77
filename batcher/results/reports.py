"""The end of every collect run, whatever its exit code: `results.csv` and the gallery rewritten
from each task's final state, its parameters and source read again from the manifest (a stream,
in manifest order, joined with the ledgers: `tracking.FinalRows`); a full disk said in one line
naming the file (docs/results.md)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime

from batcher.results.collect_job import CollectJob, JobReport
from batcher.results.disk import disk_error
from batcher.results.rows import ResultRow, ResultState
from batcher.results.tracking import FinalRows


def write_reports(spec: CollectJob, final: FinalRows) -> JobReport:
    """Rewrite `results.csv` and the gallery of one manifest; its counts per state."""
    from batcher.results.gallery import write_gallery
    from batcher.results.table import write_results_csv

    out = spec.out_dir
    counts: Counter[ResultState] = Counter()
    try:
        write_results_csv(out, _counted(final.rows(), counts))
    except OSError as error:
        raise disk_error(error, out / "results.csv") from None
    try:
        write_gallery(out, final.rows(), spec.manifest.batch, updated=datetime.now(UTC))
    except OSError as error:
        raise disk_error(error, out / "index.html") from None
    return JobReport(spec.name, out, counts)


def _counted(rows: Iterator[ResultRow], counts: Counter[ResultState]) -> Iterator[ResultRow]:
    for row in rows:
        counts[row.state] += 1
        yield row
