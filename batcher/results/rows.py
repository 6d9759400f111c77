"""One row per task of a manifest, as `results.csv` and the gallery show it
(docs/results.md#resultscsv).

The collector builds the rows from the manifest, the submit ledger and the results ledger; the
CSV writer and the gallery only render them, so both always agree on every task's state.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


class ResultState(enum.StrEnum):
    """A task's state as the user sees it: its submission's until it is done, then its result's."""

    NOT_SUBMITTED = "not_submitted"
    FAILED = "failed"
    """The submission failed (the submit ledger's `failed`)."""
    IN_DOUBT = "in_doubt"
    """The submission may or may not have reached the server (mps after a crash)."""
    PENDING = "pending"
    """Submitted: waiting or generating."""
    GENERATED = "generated"
    """Done generating; its files are not on disk yet."""
    DOWNLOADED = "downloaded"
    GENERATION_FAILED = "generation_failed"
    EXPIRED = "expired"
    """Its files' URLs stopped working before they were downloaded."""
    LOST = "lost"
    """A vod duplicate whose TaskId could not be recovered."""


@dataclass(frozen=True, slots=True)
class ResultRow:
    """One task of the manifest and where it stands."""

    key: str
    service: str
    source: str
    """Where the task comes from: `file:line` (YAML) or `file:row` (CSV)."""
    prompt: str
    params: Mapping[str, Any]
    """The request's parameters, as sent (shown on the gallery's card)."""
    state: ResultState
    task_id: str = ""
    files: tuple[str, ...] = field(default=())
    """Downloaded files, relative to the output directory, in output order."""
    error_code: str = ""
    error_message: str = ""
