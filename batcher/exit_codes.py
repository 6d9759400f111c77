"""The process exit codes of SPEC §2, in one place for the CLI, the docs and the tests."""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    OK = 0
    """Every task is done."""
    TASKS_NOT_DONE = 1
    """The run finished and some tasks failed or are in doubt."""
    USAGE = 2
    """Bad usage, bad manifest, missing or refused credentials, or an account-wide refusal."""
    LEDGER_LOCKED = 3
    """Another run holds the ledger."""
    TIME_LIMIT = 75
    """Stopped by --max-runtime with tasks left: run again to go on (EX_TEMPFAIL)."""
    SIGINT = 130
    SIGTERM = 143
