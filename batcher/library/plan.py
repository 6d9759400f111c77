"""`batcher.plan(manifest)`: expand and validate, compare with the ledger, send nothing.

The same one pass as `batcher plan` (`batcher.run.resume.plan_manifest`): every task validated
and keyed, each decided against its ledger (done, to send, held). Needs no credentials. A broken
manifest raises `batcher.ManifestError`, naming its file and line.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from batcher.library.results import ManifestPlan, PlanResult, ServicePlan
from batcher.run.account import locate_manifests
from batcher.run.resume import ResumeRules, plan_manifest
from batcher.state.replay import replay

__all__ = ["plan"]

TOO_MANY = ("ledger= names one ledger, but several manifests were given: leave it out (each "
            "manifest's ledger is <stem>.ledger.jsonl beside it)")

Manifests = str | os.PathLike[str] | Sequence[str | os.PathLike[str]]
"""One manifest (or directory of manifests), or several."""


def plan(manifest: Manifests, *, ledger: str | os.PathLike[str] | None = None,
         retry_failed: bool = False, resend_in_doubt: bool = False) -> PlanResult:
    """Every manifest's tasks per service: how many, done, to send, held."""
    rules = ResumeRules(retry_failed=retry_failed, resend_in_doubt=resend_in_doubt)
    plans = []
    for located in locate_manifests(manifest_paths(manifest), _path(ledger), too_many=TOO_MANY):
        decided = plan_manifest(located.manifest, replay(located.ledger), rules)
        services = {name: ServicePlan(tasks=item.total, done=item.done, to_send=item.to_send,
                                      held=item.held, images=item.images,
                                      images_to_send=item.images_to_send)
                    for name, item in sorted(decided.items())}
        plans.append(ManifestPlan(located.manifest.path, located.ledger, services))
    return PlanResult(tuple(plans))


def manifest_paths(manifest: Manifests) -> list[Path]:
    """The `manifest` argument of every call as paths (a str is one path, not characters)."""
    if isinstance(manifest, str | os.PathLike):
        return [Path(manifest)]
    return [Path(item) for item in manifest]


def _path(value: str | os.PathLike[str] | None) -> Path | None:
    return None if value is None else Path(value)
