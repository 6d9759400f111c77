"""What the library's calls return: plain frozen values a script can read, print or compare.

`PlanResult` (tasks and images per service), `SubmitResult` (the run's exit code and tasks per
service and state: `batcher.run.outcome`'s own), `CollectResult` (the exit code, counts per state,
the gallery, and `rows`, read lazily from each manifest's results.csv so that a million-task
batch costs no memory until it is iterated).
"""

from __future__ import annotations

import csv
import dataclasses
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from batcher.exceptions import ExitCode
from batcher.results.table import FILE_SEPARATOR, RESULTS_CSV
from batcher.run.outcome import SubmitResult

__all__ = ["CollectResult", "ManifestPlan", "PlanResult", "ResultRow", "Rows", "ServicePlan",
           "SubmitResult"]


@dataclass(frozen=True, slots=True)
class ServicePlan:
    """One service's tasks in a plan: how many, how many are done, how many this run sends."""

    tasks: int
    done: int
    to_send: int
    held: int
    """Failed for good (`retry_failed`) or in doubt (`resend_in_doubt`): not sent."""
    images: int = 0
    """Images the tasks ask for (OutputImageCount, 1 when absent)."""
    images_to_send: int = 0


@dataclass(frozen=True, slots=True)
class ManifestPlan:
    manifest: Path
    ledger: Path
    services: Mapping[str, ServicePlan]


@dataclass(frozen=True, slots=True)
class PlanResult:
    """`batcher.plan(...)`: every manifest's plan; totals over them as properties."""

    manifests: tuple[ManifestPlan, ...]

    @property
    def services(self) -> dict[str, ServicePlan]:
        """Per service, summed over the manifests."""
        totals: dict[str, Counter[str]] = {}
        for plan in self.manifests:
            for name, counts in plan.services.items():
                totals.setdefault(name, Counter()).update(_fields(counts))
        return {name: ServicePlan(**counts) for name, counts in sorted(totals.items())}

    @property
    def tasks(self) -> int:
        return sum(plan.tasks for plan in self.services.values())

    @property
    def images(self) -> int:
        return sum(plan.images for plan in self.services.values())

    @property
    def to_send(self) -> int:
        return sum(plan.to_send for plan in self.services.values())


def _fields(plan: ServicePlan) -> dict[str, int]:
    return dataclasses.asdict(plan)


@dataclass(frozen=True, slots=True)
class ResultRow:
    """One task's line of results.csv, with its files as paths (docs/results.md)."""

    key: str
    service: str
    source: str
    prompt: str
    state: str
    task_id: str | None
    files: tuple[Path, ...]
    error: str | None
    """`CODE: message`, or None."""


@dataclass(frozen=True, slots=True)
class Rows:
    """Every task's `ResultRow`, read from the results.csv files as it is iterated."""

    tables: tuple[Path, ...]
    count: int

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[ResultRow]:
        for table in self.tables:
            yield from _read_table(table)


def _read_table(path: Path) -> Iterator[ResultRow]:
    out_dir = path.parent
    with path.open(newline="", encoding="utf-8") as stream:
        for line in csv.DictReader(stream):
            code, message = line["error_code"], line["error_message"]
            files = tuple(out_dir / name for name in line["files"].split(FILE_SEPARATOR) if name)
            yield ResultRow(
                key=line["key"], service=line["service"], source=line["source"],
                prompt=line["prompt"], state=line["state"], task_id=line["task_id"] or None,
                files=files, error=f"{code}: {message}" if code else None,
            )


@dataclass(frozen=True, slots=True)
class CollectResult:
    """`batcher.collect(...)`: how the run ended, and where its results are."""

    exit_code: ExitCode
    counts: Mapping[str, int]
    """Tasks per result state, over every manifest."""
    out_dirs: tuple[Path, ...]
    stop_detail: str = ""
    rows: Rows = field(default_factory=lambda: Rows((), 0))

    @property
    def gallery(self) -> Path:
        """The first manifest's `index.html` (`galleries` has every manifest's)."""
        return self.galleries[0]

    @property
    def galleries(self) -> tuple[Path, ...]:
        return tuple(out / "index.html" for out in self.out_dirs)

    @property
    def tables(self) -> tuple[Path, ...]:
        return tuple(out / RESULTS_CSV for out in self.out_dirs)
