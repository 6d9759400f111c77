"""`batcher status --tasks`: one row per task — key, service, state, task id, source, prompt, error.

With a manifest, every task of the manifest in its order, with the `file:line` or `file:row N`
it came from and its prompt; from a ledger alone, the keys the ledger has seen (no source or
prompt: only the manifest knows them). `--state` keeps the tasks in the states named (`failed`
covers both kinds, `done` both `submitted` and `duplicate`). The task id and the error come from
a second streaming read of the ledger, kept only for the tasks listed.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from batcher.exceptions import UsageError
from batcher.manifest import Manifest
from batcher.results.status import STATE_NAMES
from batcher.state.ledger import LedgerReplay, TaskState, replay

COLUMNS = ("key", "service", "state", "task_id", "source", "prompt", "error")
STATE_GROUPS: dict[str, frozenset[TaskState]] = {
    **{name: frozenset({state}) for state, name in STATE_NAMES.items()},
    "failed": frozenset({TaskState.FAILED_RETRYABLE, TaskState.FAILED_PERMANENT}),
    "done": frozenset({TaskState.SUBMITTED, TaskState.DUPLICATE}),
}
_TEXT_WIDTHS = {"prompt": 50, "error": 70}
"""Cells cut to this many characters in the text table (CSV keeps them whole)."""


@dataclass(frozen=True, slots=True)
class TaskRow:
    key: str
    service: str
    state: str
    task_id: str
    source: str
    prompt: str
    error: str

    def cells(self) -> tuple[str, ...]:
        return (self.key, self.service, self.state, self.task_id, self.source, self.prompt,
                self.error)


def wanted_states(names: Sequence[str] | None) -> frozenset[TaskState]:
    """The ledger states `--state` names (every state without it); UsageError for a typo."""
    if not names:
        return frozenset(TaskState)
    unknown = [name for name in names if name not in STATE_GROUPS]
    if unknown:
        raise UsageError(f"--state {unknown[0]}: not a state: use one of "
                         f"{', '.join(STATE_GROUPS)}")
    return frozenset().union(*(STATE_GROUPS[name] for name in names))


def print_task_list(
    ledger_path: Path,
    manifest: Manifest | None,
    states: Sequence[str] | None,
    *,
    as_csv: bool,
    out: TextIO | None = None,
) -> int:
    """Print the rows (a table, or CSV with a header); return how many were printed."""
    out = out if out is not None else sys.stdout
    rows = task_rows(ledger_path, manifest, wanted_states(states))
    if as_csv:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(COLUMNS)
        count = 0
        for row in rows:
            writer.writerow(row.cells())
            count += 1
        return count
    return _print_table(rows, out)


def task_rows(
    ledger_path: Path, manifest: Manifest | None, wanted: frozenset[TaskState]
) -> Iterator[TaskRow]:
    ledger = replay(ledger_path)
    details = _ledger_details(ledger_path, ledger, wanted)
    if manifest is None:
        for state in sorted(wanted - {TaskState.PENDING}):
            for service, _ in sorted(ledger.counts_by_service().items()):
                for key in ledger.keys_in(state, service):
                    task_id, error = details.get(key, ("", ""))
                    yield TaskRow(key, service, STATE_NAMES[state], task_id, "", "", error)
        return
    for task in manifest.tasks():
        state = ledger.state_of(task.key)
        if state not in wanted:
            continue
        task_id, error = details.get(task.key, ("", ""))
        prompt = task.params.get("Prompt")
        yield TaskRow(task.key, task.service, STATE_NAMES[state], task_id, task.origin,
                      prompt if isinstance(prompt, str) else "", error)


def _ledger_details(
    path: Path, ledger: LedgerReplay, wanted: frozenset[TaskState]
) -> dict[str, tuple[str, str]]:
    """key → (task id, "CODE: message") from the ledger's lines, for keys in `wanted` states."""
    details: dict[str, tuple[str, str]] = {}
    if not path.exists() or wanted <= {TaskState.PENDING}:
        return details
    with path.open("rb") as lines:
        for line in lines:
            try:
                record = json.loads(line)
                key = record["key"]
            except (ValueError, KeyError, TypeError):
                continue  # a torn or corrupt line: the replay has warned about it
            if not isinstance(key, str) or ledger.state_of(key) not in wanted:
                continue
            task_id, error = details.get(key, ("", ""))
            event = record.get("event")
            if event == "submitted":
                task_id, error = str(record.get("task_id") or ""), ""
            elif event == "failed" and isinstance(record.get("error"), dict):
                failure = record["error"]
                error = f"{failure.get('code', '')}: {failure.get('message', '')}"
            elif event == "sending":
                error = ""  # a later attempt: the older error no longer describes the task
            details[key] = (task_id, error)
    return details


def _print_table(rows: Iterable[TaskRow], out: TextIO) -> int:
    """An aligned text table. Rows are gathered first: widths need every row (a filtered
    listing is meant for reading; `--csv` streams)."""
    cells = [[_cut(column, value) for column, value in zip(COLUMNS, row.cells(), strict=True)]
             for row in rows]
    if not cells:
        print("no tasks in the states asked for", file=out)
        return 0
    header = list(COLUMNS)
    widths = [max(len(line[i]) for line in [header, *cells]) for i in range(len(header))]
    for line in [header, *cells]:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True))
              .rstrip(), file=out)
    return len(cells)


def _cut(column: str, value: str) -> str:
    value = " ".join(value.split())  # one line per row: newlines in a prompt become spaces
    width = _TEXT_WIDTHS.get(column)
    if width is not None and len(value) > width:
        return value[: width - 1] + "…"
    return value
