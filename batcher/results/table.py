"""`<out>/results.csv`: one row per task of the manifest, where it stands
(docs/results.md#resultscsv).

Written with the stdlib `csv` module (RFC 4180 quoting, UTF-8 without a byte-order mark) as the
rows arrive, so a million tasks are never held at once, and replaced atomically: a reader sees
the previous table or the new one, never half of it::

    path = write_results_csv(Path("spring-cats.results"), rows)

Cells are written verbatim, prompts included, even those starting with `=`, `+`, `-` or `@`
(which a spreadsheet may take for a formula). Prefixing them with `'`, the usual guard, would
change the data: a script joining the table with its manifest, or resubmitting its prompts,
would get other prompts than the ones sent, and prompts such as "- a cat, watercolor" are
ordinary. The prompts are the operator's own manifest cells, which the operator already opens
in the same spreadsheet, so verbatim cells add no exposure; the README says to import the table
as text if prompts come from untrusted people.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path

from batcher.results.rows import ResultRow
from batcher.state.atomic import replaced_text_file

__all__ = ["FILE_SEPARATOR", "RESULTS_CSV", "RESULTS_CSV_HEADER", "write_results_csv"]

RESULTS_CSV = "results.csv"
RESULTS_CSV_HEADER = (
    "key",
    "service",
    "source",
    "prompt",
    "state",
    "task_id",
    "files",
    "error_code",
    "error_message",
)
FILE_SEPARATOR = ";"
"""Between the relative paths of a task's files in the `files` column; so no file name the
collector makes may contain it."""


def write_results_csv(out_dir: Path, rows: Iterable[ResultRow]) -> Path:
    """Replace `<out_dir>/results.csv` with a header and one line per row; return its path."""
    path = out_dir / RESULTS_CSV
    with replaced_text_file(path, newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(RESULTS_CSV_HEADER)
        writer.writerows(_cells(row) for row in rows)
    return path


def _cells(row: ResultRow) -> tuple[str, ...]:
    return (
        row.key,
        row.service,
        row.source,
        row.prompt,
        row.state.value,
        row.task_id,
        FILE_SEPARATOR.join(row.files),
        row.error_code,
        row.error_message,
    )
