"""Job manifests (docs/manifests.md): a YAML or CSV file expanded into a stream of validated, keyed
tasks.

    manifest = load_manifest(Path("jobs/example.yaml"))   # reads the structure; ManifestError
    report = manifest.validate()                           # pass 1: every error, or the counts
    for task in manifest.tasks():                          # pass 2: the same tasks, streamed
        ...

This module owns the two passes over a manifest and nothing else; each idea has its module:
`files` opens regular files only and bounds every read, `yaml_bounds` bounds alias expansion
and depth, `yaml_nodes` and `yaml_source` read YAML with positions, `csv_source` reads CSV,
`coerce` turns cells into typed values, `templates` fills placeholders, `expand` applies
defaults, templates, matrix and repeat, `validate` checks requests and keys them (`keys`),
`collisions` finds duplicates, `messages` explains mistakes: one line each, naming the file
and the YAML line or CSV row, what is wrong and how to fix it.

Both passes stream: the explicit YAML tasks are held (they are in the document anyway) but CSV
rows are read one at a time, and the only per-task state kept between rows is 8 bytes per task
for duplicate detection. CSV rows are numbered as a spreadsheet shows them: the header is row 1.
YAML is composed to a node tree first, so that messages name lines and quote values as written
(`AspectRatio: 16:9` unquoted is the number 969 to YAML 1.1, and the message says so).

The rules where docs/manifests.md leaves room, decided here:
- A YAML manifest names its `service` at the top or on each task; a bare CSV without a `service`
  column sends `vod` tasks.
- `defaults` may hold lower-case keys too: default template variables, common or per service.
  A task's own variable wins over the matrix (the task is then not multiplied by it) and over
  the defaults; a defaults variable may not share a matrix variable's name.
- `prompt` is the templated default of `Prompt`, so a task (or a CSV cell) giving `Prompt`
  replaces it; `Prompt` under `defaults` as well as `prompt` is an error.
- A parameter set to null drops a default; lists replace the default list whole.
- A templated string at an integer or boolean parameter is converted like a CSV cell, so
  `Seed: "{seed}"` with `matrix: {seed: [1, 2]}` sends integers.
- An absent `tasks` (and no `csv`) is the one implicit task; `tasks: []` is no task. A manifest
  that expands to no task at all is an error naming the file (docs/manifests.md).
- `matrix: {service: [vod, mps]}` sends every task that names no service (a YAML task without
  `service:`, a CSV row with an empty service cell) to each service in turn, with that
  service's defaults; it cannot be combined with a top-level `service:`.
- A CSV row of empty cells (a spreadsheet's trailing line) is not a task.
- A SessionId that the manifest sets may be sent by one task only: VOD would refuse the others.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

from batcher.api.services import SERVICE_NAMES, ServiceName
from batcher.exceptions import ManifestError
from batcher.manifest.collisions import (
    CollisionFinder,
    key_fingerprint,
    report_duplicates,
    request_fingerprint,
    text_fingerprint,
)
from batcher.manifest.csv_source import load_csv_plan
from batcher.manifest.images import task_images, task_model, task_sub_app_id
from batcher.manifest.plan import Plan
from batcher.manifest.task import (
    MESSAGES_SHOWN,
    Problems,
    Spend,
    Task,
    TaskKey,
    ValidationReport,
)
from batcher.manifest.validate import checked_requests, keyed_task, own_session_id
from batcher.manifest.yaml_source import load_yaml_plan


class Manifest:
    """A loaded manifest; `validate()` first, then `tasks()` as often as needed."""

    __slots__ = ("_plan",)

    def __init__(self, plan: Plan) -> None:
        self._plan = plan

    @property
    def path(self) -> Path:
        """The manifest file (YAML, or the bare CSV)."""
        return self._plan.path

    @property
    def batch(self) -> str:
        """The batch name that is part of every task key."""
        return self._plan.batch

    @property
    def csv_path(self) -> Path | None:
        """The CSV the rows come from: a YAML manifest's `csv:` file, or the bare CSV itself."""
        return self._plan.csv.path if self._plan.csv is not None else None

    @property
    def source_files(self) -> list[Path]:
        """Every file the tasks come from: the manifest, then the CSV it includes (if another)."""
        if self.csv_path is None or self.csv_path == self.path:
            return [self.path]
        return [self.path, self.csv_path]

    def validate(
        self,
        max_errors: int = MESSAGES_SHOWN,
        on_task: Callable[[Task], None] | None = None,
        on_key: Callable[[TaskKey], None] | None = None,
        with_params: bool = False,
    ) -> ValidationReport:
        """Expand and check every task; ManifestError lists the first `max_errors` mistakes.

        Keys are not computed here unless `on_task` asks for the tasks: two requests are
        compared by a 64-bit fingerprint (the first copy's key when keys are computed anyway,
        else a cheaper in-process hash), and only when two fingerprints meet does a second pass
        name the pair. `on_task` sees every valid task as it is checked, so that a caller
        (`plan`, `submit`) can tally them in this same pass; if the manifest turns out to be
        invalid, ManifestError is raised at the end and what it tallied must be dropped.
        `on_key` is the same with each task's key, service, SessionId and place only: plain CSV
        rows are then keyed from their cells (`fastlane`), several times faster; with
        `with_params`, each `TaskKey` also carries the parameters sent as compact JSON.
        """
        if on_task is not None and on_key is not None:
            raise ValueError("validate() takes on_task or on_key, not both")
        plan = self._plan
        problems = Problems(keep=max_errors)
        counts: dict[ServiceName, int] = dict.fromkeys(SERVICE_NAMES, 0)
        spend: dict[tuple[ServiceName, str, int | None], Spend] = {}

        def bill(service: ServiceName, model: str, app: int | None, tasks: int,
                 images: int) -> None:
            entry = spend.get((service, model, app))
            if entry is None:
                entry = spend[(service, model, app)] = Spend()
            entry.add(tasks, images * tasks)
        same_requests, same_session_ids = CollisionFinder(), CollisionFinder()
        keyed = on_task is not None or on_key is not None
        fingerprint = key_fingerprint if keyed else request_fingerprint
        deliver = on_task if on_key is None else _as_key(on_key, with_params)

        fast: Callable[[TaskKey], None] | None = None
        if on_key is not None:
            emit = on_key

            def fast_key(task: TaskKey) -> None:  # a plain CSV row: repeat 1, no own SessionId
                counts[task.service] += 1
                bill(task.service, task.model, task.sub_app_id, 1, task.images)
                emit(task)
                same_requests.add(int(task.key[:16], 16))

            fast = fast_key
        for variant, request in checked_requests(
            plan, problems, on_fast_key=fast, with_params=with_params
        ):
            counts[variant.service] += plan.repeat
            wire_params = request.wire
            bill(variant.service, task_model(variant.service, wire_params),
                 task_sub_app_id(variant.service, wire_params), plan.repeat,
                 task_images(variant.service, wire_params))
            if deliver is not None:
                wire = request.to_wire()
                first = keyed_task(plan, variant, wire, 0)
                deliver(first)
                for copy in range(1, plan.repeat):
                    deliver(keyed_task(plan, variant, dict(wire), copy))
                # The key hashes exactly the request's identity (SessionId and SessionContext
                # aside), so the first copy's key is the fingerprint, at no extra cost.
                same_requests.add(int(first.key[:16], 16))
            else:
                same_requests.add(request_fingerprint(plan, variant.service, request))
            session_id = own_session_id(request)
            if session_id is not None:
                same_session_ids.add(text_fingerprint(session_id))
        suspects = same_requests.repeated(), same_session_ids.repeated()
        if suspects[0] or suspects[1]:
            report_duplicates(plan, fingerprint, *suspects, problems)
        if not problems.count and not any(counts.values()):
            problems.add(f"{plan.display}: {_no_task_hint(plan)}")
        problems.raise_if_any()
        return ValidationReport(plan.batch, counts, spend)

    def tasks(self, service: ServiceName | None = None, start: int = 0) -> Iterator[Task]:
        """The tasks in manifest order (of one `service` only, if given); ManifestError at the
        first invalid one. With `start` (a `Task.place`), from that place on: the tasks before
        it are passed over without being read into tasks.

        Run `validate()` first: only it reports every mistake, and duplicate requests.
        """
        plan = self._plan
        problems = Problems(keep=1, fatal=True)
        for variant, request in checked_requests(plan, problems, service, start):
            wire = request.to_wire()
            yield keyed_task(plan, variant, wire, 0)
            for copy in range(1, plan.repeat):
                yield keyed_task(plan, variant, dict(wire), copy)


def _as_key(on_key: Callable[[TaskKey], None], with_params: bool) -> Callable[[Task], None]:
    """`on_key` fed with the tasks of the whole way."""
    encode = _PARAMS_ENCODER.encode if with_params else None

    def deliver(task: Task) -> None:
        params = encode(task.params) if encode is not None else None
        on_key(TaskKey(task.key, task.service, task.session_id, task.place, params,
                       task_images(task.service, task.params),
                       task_model(task.service, task.params),
                       task_sub_app_id(task.service, task.params)))

    return deliver


_PARAMS_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
"""Compact JSON of the parameters sent, as `plan --json` prints them."""


def _no_task_hint(plan: Plan) -> str:
    """Why a valid manifest has no task, and what to add (docs/manifests.md: it is an error)."""
    if plan.csv is not None and plan.csv.path == plan.path:
        return "no task: the CSV has a header but no rows: add one row per task"
    if plan.csv is not None:
        return f"no task: the tasks list is empty and {plan.csv.display} has no rows: add tasks"
    return "no task: the tasks list is empty: add a task, or drop `tasks:` for the implicit one"


def load_manifest(path: Path) -> Manifest:
    """Read a manifest's structure (`.yaml`, `.yml`, or a bare `.csv`); ManifestError if wrong."""
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        return Manifest(load_yaml_plan(path))
    if suffix == ".csv":
        return Manifest(load_csv_plan(path))
    raise ManifestError(
        [f"{path}: not a manifest: name it .yaml or .yml (a job manifest) or .csv (one task a row)"]
    )
