"""The exit codes of docs/exit-codes.md and the one exception tree every user-facing error belongs
to.

A leaf module: it imports nothing of batcher, so every layer may raise these, and the face
(`batcher.cli.main`) catches `BatcherError` once and exits with the error's code::

    BatcherError                 one line for the user, never a traceback
     ├── UsageError              2  bad command line
     ├── ManifestError           2  a manifest names its file:line and the fix
     ├── CredentialsError        2  missing or unreadable credentials
     ├── EndpointError           2  an endpoint URL that cannot be used
     ├── LedgerError             2  a ledger that cannot be read or written (a full disk)
     └── LedgerLocked            3  another run holds the ledger

`ManifestError` and the others are defined here, not beside the code that raises them, so that
the map above is the whole tree and the CLI needs no import of the layers to catch them.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "BatcherError",
    "CredentialsError",
    "EndpointError",
    "ExitCode",
    "LedgerError",
    "LedgerLocked",
    "ManifestError",
    "UsageError",
]


class ExitCode(enum.IntEnum):
    """The process exit codes of docs/exit-codes.md, in one place for the CLI, the docs and the
    tests."""

    OK = 0
    """Every task is done."""
    TASKS_NOT_DONE = 1
    """The run finished and some tasks failed or are in doubt."""
    USAGE = 2
    """Bad usage, bad manifest, missing or refused credentials, or an account-wide refusal."""
    LEDGER_LOCKED = 3
    """Another run holds the ledger."""
    TIME_LIMIT = 75
    """Stopped early with tasks left, nothing lost: run again to go on (EX_TEMPFAIL)."""
    SIGINT = 130
    SIGTERM = 143


class BatcherError(Exception):
    """An error the user can fix: printed as one line, exit with `exit_code`."""

    exit_code: ExitCode = ExitCode.USAGE


class UsageError(BatcherError):
    """A mistake in the command line."""


class ManifestError(BatcherError):
    """User mistakes in a manifest: one line each, naming file and line (or CSV row) and the fix.

    `messages` holds the first `shown`; `total` counts all of them.
    """

    def __init__(self, messages: Sequence[str], total: int | None = None, shown: int = 10) -> None:
        self.messages = list(messages)
        self.total = len(self.messages) if total is None else total
        super().__init__(self._render(shown))

    def _render(self, shown_count: int) -> str:
        lines = self.messages[:shown_count]
        hidden = self.total - len(lines)
        if hidden > 0:
            lines.append(f"... and {hidden} more error{'s' if hidden != 1 else ''}")
        return "\n".join(lines)


class CredentialsError(BatcherError):
    """Credentials missing or unreadable; the message never contains the secret."""


class EndpointError(BatcherError):
    """An endpoint URL that is malformed or not allowed (plain http off loopback)."""


class LedgerError(BatcherError):
    """A ledger that cannot be read or written (a full disk, a directory in its place)."""


class LedgerLocked(BatcherError):
    """Another run holds the ledger's lock; `holder` says who, when it has written its name."""

    exit_code = ExitCode.LEDGER_LOCKED

    def __init__(self, ledger: Path, holder: Any | None, who: str) -> None:
        self.ledger = ledger
        self.holder = holder
        super().__init__(f"ledger {ledger} is held by {who}")
