"""The tasks a collect run has counted but does not hold yet: the window that keeps its memory
flat however large the batch (docs/results.md#memory).

A run holds at most `WINDOW` tasks with work (to poll or to download) at once. The others of a
large batch are noted here when they are placed, one byte per manifest row (the state each was
counted in: 1 MB at a million tasks), and are placed again from the ledgers, in manifest order,
whenever the held ones fall below half the window. Tasks are submitted in manifest order, so the
oldest are held first, and their URLs, which die first, are fetched first.

    deferred = DeferredTasks(rows=1_000_000)
    deferred.defer(row=20_001, state=ResultState.PENDING)
    joined_rows(manifest, ledger, order, deferred.marks)  # the deferred rows, joined again
    deferred.take(20_001)                                 # -> ResultState.PENDING

`CountedStates` keeps, the same way, the state each row of a manifest is counted in, for a run
that follows a running submit (`follow`): a task the submit names is placed anew from there.
"""

from __future__ import annotations

from batcher.results.rows import ResultState

WINDOW = 20_000
"""Tasks with work held at most (about 1.5 KB each: 30 MB)."""

_STATES = tuple(ResultState)
_CODES = {state: code for code, state in enumerate(_STATES)}
"""A state's byte: its index in `ResultState`."""


class DeferredTasks:
    """Rows of a manifest deferred by a run, each with the state it was counted in."""

    __slots__ = ("count", "marks")

    def __init__(self, rows: int) -> None:
        self.marks = bytearray(rows + 1)
        """Byte `row` (1-based): 0 if not deferred, else 1 + the index of its counted state."""
        self.count = 0

    def __bool__(self) -> bool:
        return self.count > 0

    def __repr__(self) -> str:
        return f"<DeferredTasks {self.count}>"

    def defer(self, row: int, state: ResultState) -> None:
        _grow(self.marks, row, 0)
        if not self.marks[row]:
            self.count += 1
        self.marks[row] = _CODES[state] + 1

    def take(self, row: int) -> ResultState:
        """`row` is placed again: no longer deferred; the state it was counted in."""
        code = self.marks[row]
        self.marks[row] = 0
        self.count -= 1
        return _STATES[code - 1]

    def drop_rest(self) -> None:
        """The manifest holds no more of them (edited meanwhile): none is deferred any more."""
        self.marks = bytearray(len(self.marks))
        self.count = 0


class CountedStates:
    """The state each row of a manifest is counted in, one byte a row (1 MB at a million).

    >>> counted = CountedStates(rows=3)
    >>> counted.set(2, ResultState.PENDING)
    >>> counted.set(5, ResultState.DOWNLOADED)  # the manifest grew
    >>> [counted.get(row).value for row in (2, 4, 5)]
    ['pending', 'not_submitted', 'downloaded']
    """

    __slots__ = ("_codes",)

    def __init__(self, rows: int) -> None:
        self._codes = bytearray([_NOT_SUBMITTED]) * (rows + 1)

    def __repr__(self) -> str:
        return f"<CountedStates {len(self._codes) - 1} rows>"

    def set(self, row: int, state: ResultState) -> None:
        _grow(self._codes, row, _NOT_SUBMITTED)
        self._codes[row] = _CODES[state]

    def get(self, row: int) -> ResultState:
        return _STATES[self._codes[row]] if row < len(self._codes) else ResultState.NOT_SUBMITTED


_NOT_SUBMITTED = _CODES[ResultState.NOT_SUBMITTED]


def _grow(rows: bytearray, row: int, fill: int) -> None:
    """Room for byte `row`: the manifest grew while it was being read."""
    if row >= len(rows):
        rows += bytes([fill]) * (row + 1 - len(rows))
