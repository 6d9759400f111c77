"""A manifest's tasks, in its order, each with what its two ledgers say of it: one stream whose
memory is bounded by `CHUNK` tasks, not by the batch (docs/results.md).

A batch of up to `CHUNK` tasks has both ledgers read whole, once. A larger one is read a chunk at
a time: the keys of the next `CHUNK` tasks (from `KeyOrder`, taken in a first pass over the
manifest) are looked up in one pass over each ledger, the other keys' lines passed over
unparsed, and then those tasks are streamed from the manifest and joined. A task whose key is
not the one expected there (the manifest was edited since) is looked up alone.

    order = KeyOrder.of(manifest) if report.total > CHUNK else None
    for row, task, submission, record in joined(manifest, ledger, order):
        ...
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice
from pathlib import Path

from batcher.manifest import Manifest, Task
from batcher.state.results_ledger import ResultRecord, replay_results, results_ledger_path
from batcher.state.submissions import Submission, read_submissions

CHUNK = 25_000
"""Tasks joined at a time: their ledger records take a few tens of MB (see docs/results.md)."""
_KEY_BYTES = 16

Joined = tuple[int, Task, Submission | None, ResultRecord | None]
"""(1-based row, task, its submission, its results record)."""


class KeyOrder:
    """The manifest's task keys in its order, 16 bytes each (16 MB at a million tasks)."""

    __slots__ = ("_keys",)

    def __init__(self) -> None:
        self._keys = bytearray()

    def __len__(self) -> int:
        return len(self._keys) // _KEY_BYTES

    @classmethod
    def of(cls, manifest: Manifest) -> KeyOrder:
        order = cls()
        for task in manifest.tasks():
            order._keys += bytes.fromhex(task.key)
        return order

    def chunk(self, start: int, size: int) -> set[str]:
        """The keys of tasks `start` to `start + size` (0-based), as hex."""
        keys = self._keys
        return {keys[at:at + _KEY_BYTES].hex()
                for at in range(start * _KEY_BYTES, min(len(keys), (start + size) * _KEY_BYTES),
                                _KEY_BYTES)}


def joined(manifest: Manifest, ledger: Path, order: KeyOrder | None, chunk: int = CHUNK, *,
           warn: bool = True) -> Iterator[Joined]:
    """Every task of `manifest` with its submission and results record (None: none yet);
    `order` None reads both ledgers whole (a batch of at most `chunk` tasks). Unreadable
    ledger lines are said once, unless `warn` is False (they were, earlier in the run)."""
    results_path = results_ledger_path(ledger)
    tasks = enumerate(manifest.tasks(), 1)
    if order is None:
        submissions = read_submissions(ledger, warn=warn)
        records = replay_results(results_path, lean=True, warn=warn).records
        for row, task in tasks:
            yield row, task, submissions.get(task.key), records.get(task.key)
        return
    for start in range(0, len(order), chunk):
        keys = order.chunk(start, chunk)
        first = warn and start == 0  # a torn line is said once, not once a chunk
        submissions = read_submissions(ledger, keys, warn=first)
        records = replay_results(results_path, lean=True, keys=keys, warn=first).records
        for row, task in islice(tasks, chunk):
            if task.key in keys:
                yield row, task, submissions.get(task.key), records.get(task.key)
            else:
                yield _alone(row, task, ledger)
        del submissions, records
    for row, task in tasks:  # the manifest grew since its keys were taken
        yield _alone(row, task, ledger)


def _alone(row: int, task: Task, ledger: Path) -> Joined:
    keys = {task.key}
    record = replay_results(results_ledger_path(ledger), lean=True, keys=keys, warn=False)
    return row, task, read_submissions(ledger, keys, warn=False).get(task.key), record.get(
        task.key)
