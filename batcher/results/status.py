"""`batcher status`'s figures (docs/ledgers.md): how many tasks stand in each state, the failures
grouped by error code, and what collect left not yet on disk, read from the ledgers alone.

From a ledger alone, the states are those of the keys it has seen. With a manifest, every task
of the manifest is counted, so tasks never sent show as `not_sent`, and ledger keys that the
manifest no longer has (an edited manifest) are left out.

Beside the submission states, the generation states that `collect` recorded in the results
ledger (`<stem>.results.jsonl`): each key's last result event (`generated`, `downloaded`,
`generation_failed`, `expired`, `lost`, `recovered`). The face renders a `StatusReport`
(`batcher.cli.status_report`) or prints its `as_dict()`.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from batcher.api.times import api_time_or_none
from batcher.manifest import Manifest
from batcher.results.counts import MPS_URL_LIFETIME
from batcher.run.summary import NOT_SENT
from batcher.state.events import FailureGroup, TaskState
from batcher.state.replay import replay
from batcher.state.results_ledger import (
    ResultEvent,
    ResultRecord,
    replay_results,
    results_ledger_path,
)

STATE_NAMES = {
    TaskState.PENDING: NOT_SENT,
    TaskState.SUBMITTED: "submitted",
    TaskState.DUPLICATE: "duplicate",
    TaskState.IN_DOUBT: "in_doubt",
    TaskState.FAILED_RETRYABLE: "failed_retryable",
    TaskState.FAILED_PERMANENT: "failed_permanent",
}


@dataclass(frozen=True, slots=True)
class StatusReport:
    ledger: str
    manifest: str | None
    states: dict[str, dict[str, int]]
    """service → state name → tasks."""
    failures: list[FailureGroup]
    torn_lines: int
    generation: dict[str, dict[str, int]]
    """service → last result event → tasks, from the results ledger (empty without one)."""
    unsaved: Unsaved | None = None
    """Finished tasks whose files are not on disk yet (None without a results ledger)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "ledger": self.ledger,
            "manifest": self.manifest,
            "services": self.states,
            "failures": [
                {"code": f.code, "count": f.count, "retryable": f.retryable, "example": f.example}
                for f in self.failures
            ],
            "torn_lines": self.torn_lines,
            "generation": self.generation,
            "unsaved": None if self.unsaved is None else {
                "tasks": self.unsaved.count, "oldest_age_s": round(self.unsaved.oldest_age),
                "oldest_expires_in_s": None if self.unsaved.expires_in is None
                else round(self.unsaved.expires_in)},
        }


@dataclass(frozen=True, slots=True)
class Unsaved:
    """Tasks whose last result is `generated`: paid for, not on disk, their URLs ageing."""

    count: int
    oldest_age: float
    """Seconds since the oldest of them was seen finished."""
    expires_in: float | None
    """Seconds before its URLs stop working (mps: 12 h after; None when unknown: vod)."""


def status_report(ledger_path: Path, manifest: Manifest | None) -> StatusReport:
    ledger = replay(ledger_path)
    # The manifest's keys, to count its generation states, only when collect has written any.
    keys: set[str] | None = set() if results_ledger_path(ledger_path).exists() else None
    if manifest is None:
        states = {
            service: {STATE_NAMES[state]: n for state, n in counts.items() if n}
            for service, counts in ledger.counts_by_service().items()
        }
    else:
        tally: dict[str, Counter[str]] = {}
        for task in manifest.tasks():
            state = ledger.state_of(task.key)
            tally.setdefault(task.service, Counter())[STATE_NAMES[state]] += 1
            if keys is not None:
                keys.add(task.key)
        states = {service: dict(counts) for service, counts in sorted(tally.items())}
    failures = sorted(ledger.failures_by_code().values(), key=lambda f: (-f.count, f.code))
    return StatusReport(
        ledger=str(ledger_path),
        manifest=str(manifest.path) if manifest else None,
        states=states,
        failures=failures,
        torn_lines=ledger.torn_lines,
        generation=_generation_states(ledger_path, keys),
        unsaved=_unsaved(ledger_path, keys),
    )


def _unsaved(ledger_path: Path, keys: set[str] | None) -> Unsaved | None:
    path = results_ledger_path(ledger_path)
    if not path.exists():
        return None
    oldest: tuple[float, ResultRecord] | None = None
    count = 0
    for key, record in replay_results(path).records.items():
        if record.event is not ResultEvent.GENERATED or (keys and key not in keys):
            continue
        count += 1
        try:
            at = datetime.fromisoformat(record.generated_at).timestamp()
        except ValueError:
            continue
        if oldest is None or at < oldest[0]:
            oldest = (at, record)
    if oldest is None:
        return Unsaved(count, 0.0, None)
    now = time.time()
    at, record = oldest
    # mps URLs live 12 hours from the finish; vod files end at the `ExpireTime` the API gave.
    end = at + MPS_URL_LIFETIME if record.service == "mps" else (
        api_time_or_none(record.generated_expires))
    return Unsaved(count, now - at, None if end is None else end - now)


def _generation_states(ledger_path: Path, keys: set[str] | None) -> dict[str, dict[str, int]]:
    """Last result event -> keys, per service (`keys`: the manifest's only; None: no results
    ledger, or no manifest to restrict to)."""
    results = replay_results(results_ledger_path(ledger_path))
    tally: dict[str, Counter[str]] = {}
    for key, record in results.records.items():
        if not keys or key in keys:
            tally.setdefault(record.service, Counter())[str(record.event)] += 1
    return {service: dict(counts) for service, counts in sorted(tally.items())}
