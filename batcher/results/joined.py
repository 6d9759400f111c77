"""A manifest's tasks, in its order, each with what its two ledgers say of it: one stream whose
memory is bounded by a chunk of tasks, not by the batch (docs/results.md).

A batch of up to `CHUNK` tasks has both ledgers read whole, once. A larger one is read a chunk at
a time: the keys of the next chunk's tasks are looked up in one pass over each ledger, the other
keys' lines passed over unparsed, and those tasks are joined. The first join of a run
(`reduced_joined`) holds a chunk of tasks reduced to what the caller keeps of them, and notes
their keys in order (`KeyOrder`); the later ones (`joined`) take each chunk's keys from that
order, then stream the chunk's tasks from the manifest. A chunk is `CHUNK`
tasks, or a `MAX_CHUNKS`th of the batch when that is more: the passes over the ledgers per task
stay bounded (CPU per task the same at any size), and so does memory (about 1 KB a task of the
chunk: 30 MB at a million). A task whose key is not the one expected there (the manifest was
edited since) is looked up alone.

    order = KeyOrder()
    for identity, submission, record in reduced_joined(manifest, ledger, order, total, reduce):
        ...
    for row, task, submission, record in joined(manifest, ledger, order):
        ...
    for row, task, submission, record in joined_rows(manifest, ledger, order, wanted):
        ...   # only the rows whose byte in `wanted` is set

`joined_rows` is how a run comes back for the tasks it counted but did not hold (the window:
docs/results.md#memory): a chunk holding none of them costs a walk over its manifest rows, no
read of the ledgers.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from pathlib import Path
from typing import TypeVar

from batcher.manifest import Manifest, Task
from batcher.state.results_ledger import ResultRecord, replay_results, results_ledger_path
from batcher.state.submissions import Submission, read_submissions

CHUNK = 10_000
"""Tasks joined at a time, at least: their ledger records take about 10 MB."""
MAX_CHUNKS = 32
"""Chunks per batch at most: each costs one pass over each ledger."""
_KEY_BYTES = 16
NEAR = 4096
"""Tasks on either side of a hint that `KeyOrder.index` searches first."""

Joined = tuple[int, Task, Submission | None, ResultRecord | None]
"""(1-based row, task, its submission, its results record)."""
T = TypeVar("T")


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
        order.extend(task.key for task in manifest.tasks())
        return order

    def extend(self, keys: Iterable[str]) -> None:
        for key in keys:
            self._keys += bytes.fromhex(key)

    def key(self, index: int) -> str:
        """The key of task `index` (0-based), as hex."""
        return self._keys[index * _KEY_BYTES:(index + 1) * _KEY_BYTES].hex()

    def index(self, key: str, near: Iterable[int] = ()) -> int | None:
        """The 0-based index of `key` (None if the manifest has no such task), searched first
        within `NEAR` tasks of each index in `near`, then everywhere (16 MB scanned at C speed
        at a million tasks)."""
        try:
            wanted = bytes.fromhex(key)
        except ValueError:
            return None
        if len(wanted) != _KEY_BYTES:
            return None
        for around in near:
            found = self._find(wanted, max(0, around - NEAR), around + NEAR)
            if found is not None:
                return found
        return self._find(wanted, 0, len(self))

    def _find(self, wanted: bytes, start: int, end: int) -> int | None:
        keys, at, stop = self._keys, start * _KEY_BYTES, min(len(self._keys), end * _KEY_BYTES)
        while (at := keys.find(wanted, at, stop)) != -1:
            if at % _KEY_BYTES == 0:  # not the tail of one key and the head of the next
                return at // _KEY_BYTES
            at += 1
        return None

    def chunk(self, start: int, size: int) -> set[str]:
        """The keys of tasks `start` to `start + size` (0-based), as hex."""
        keys = self._keys
        return {keys[at:at + _KEY_BYTES].hex()
                for at in range(start * _KEY_BYTES, min(len(keys), (start + size) * _KEY_BYTES),
                                _KEY_BYTES)}


def joined(manifest: Manifest, ledger: Path, order: KeyOrder | None, chunk: int | None = None,
           *, warn: bool = True) -> Iterator[Joined]:
    """Every task of `manifest` with its submission and results record (None: none yet);
    `order` None reads both ledgers whole (a batch of one chunk), else `chunk` tasks at a time
    (by default `CHUNK` or a `MAX_CHUNKS`th of the batch). Unreadable ledger lines are said
    once, unless `warn` is False (they were, earlier in the run)."""
    results_path = results_ledger_path(ledger)
    tasks = enumerate(manifest.tasks(), 1)
    if order is None:
        submissions = read_submissions(ledger, warn=warn)
        records = replay_results(results_path, lean=True, warn=warn).records
        for row, task in tasks:
            yield row, task, submissions.get(task.key), records.get(task.key)
        return
    chunk = chunk or chunk_size(len(order))
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


def reduced_joined(manifest: Manifest, ledger: Path, order: KeyOrder, total: int,
                   reduce: Callable[[int, Task], T]) -> Iterator[tuple[T, Submission | None,
                                                                        ResultRecord | None]]:
    """`joined` for the first time in a run, the manifest's `total` tasks a chunk at a time,
    each held as `reduce(row, task)` until its chunk is looked up; their keys go to `order`."""
    results_path = results_ledger_path(ledger)
    tasks = enumerate(manifest.tasks(), 1)
    chunk, first = chunk_size(total), True
    while batch := [(task.key, reduce(row, task)) for row, task in islice(tasks, chunk)]:
        keys = {key for key, _ in batch}
        order.extend(key for key, _ in batch)
        submissions = read_submissions(ledger, keys, warn=first)
        records = replay_results(results_path, lean=True, keys=keys, warn=first).records
        first = False
        for key, item in batch:
            yield item, submissions.get(key), records.get(key)


def joined_rows(manifest: Manifest, ledger: Path, order: KeyOrder, wanted: bytearray,
                chunk: int | None = None) -> Iterator[Joined]:
    """`joined` for the tasks whose 1-based row has a byte other than 0 in `wanted` (read as it
    stands when each chunk is reached); the ledgers are read only for chunks holding some."""
    results_path = results_ledger_path(ledger)
    tasks = enumerate(manifest.tasks(), 1)
    chunk = chunk or chunk_size(len(order))
    for start in range(0, len(order), chunk):
        marks = wanted[start + 1:start + chunk + 1]
        if not marks.strip(b"\0"):
            deque(islice(tasks, chunk), maxlen=0)  # none wanted here: rows passed over
            continue
        keys = {order.key(start + at) for at, mark in enumerate(marks) if mark}
        submissions = read_submissions(ledger, keys, warn=False)
        records = replay_results(results_path, lean=True, keys=keys, warn=False).records
        for row, task in islice(tasks, chunk):
            if not wanted[row]:
                continue
            if task.key in keys:
                yield row, task, submissions.get(task.key), records.get(task.key)
            else:
                yield _alone(row, task, ledger)
        del submissions, records


def chunk_size(total: int) -> int:
    """Tasks a chunk of a batch of `total` tasks."""
    return max(CHUNK, -(-total // MAX_CHUNKS))


def _alone(row: int, task: Task, ledger: Path) -> Joined:
    keys = {task.key}
    record = replay_results(results_ledger_path(ledger), lean=True, keys=keys, warn=False)
    return row, task, read_submissions(ledger, keys, warn=False).get(task.key), record.get(
        task.key)
