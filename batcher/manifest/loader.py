"""Job manifests (SPEC §3): a YAML or CSV file expanded into a stream of validated, keyed tasks.

    manifest = load_manifest(Path("jobs/example.yaml"))   # reads the structure; ManifestError
    report = manifest.validate()                           # pass 1: every error, or the counts
    for task in manifest.tasks():                          # pass 2: the same tasks, streamed
        ...

This module owns how a manifest combines (defaults under tasks, the `prompt` template, `{name}`
placeholders, the matrix, CSV rows, `repeat`), how CSV cells become typed parameters, and every
message a user sees about a mistake in a manifest: one line each, naming the file and the YAML
line or CSV row, what is wrong and how to fix it. Keys and SessionIds come from `keys`,
placeholders from `batcher.manifest.templates`, request models from `batcher.api.models`.

Both passes stream: the explicit YAML tasks are held (they are in the document anyway) but CSV
rows are read one at a time, and the only per-task state kept between rows is 8 bytes per task
for duplicate detection. CSV rows are numbered as a spreadsheet shows them: the header is row 1.
YAML is composed to a node tree first, so that messages name lines and quote values as written
(`AspectRatio: 16:9` unquoted is the number 969 to YAML 1.1, and the message says so).

The rules where SPEC §3 leaves room, decided here:
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
- An empty or absent `tasks` list counts as no tasks.
- A SessionId that the manifest sets may be sent by one task only: VOD would refuse the others.
"""

from __future__ import annotations

import codecs
import csv
import difflib
import itertools
import json
import re
import types
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from batcher.api.models import (
    RequestModel,
    VodCreateAigcImageTaskRequest,
    field_annotation,
    request_model,
)
from batcher.api.services import SERVICE_NAMES, ServiceName
from batcher.exceptions import ManifestError
from batcher.manifest.keys import UNKEYED_PARAMS, session_id_for, task_key
from batcher.manifest.templates import (
    Template,
    TemplateSyntaxError,
    may_be_template,
    parse_template,
)

try:  # libyaml's parser is several times faster; the pure-Python one behaves the same.
    from yaml import CSafeLoader as _YamlLoader
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    from yaml import SafeLoader as _YamlLoader  # type: ignore[assignment]

Loc = tuple[str | int, ...]
"""A place inside a request's parameters: keys and list indexes, `("OutputConfig", "Seed")`."""

TOP_LEVEL_KEYS = ("batch", "service", "defaults", "prompt", "matrix", "tasks", "csv", "repeat")
MESSAGES_SHOWN = 10


# --- What callers get ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Task:
    """One request to send: validated, keyed, and traceable to the line that produced it.

    `params` is the exact wire JSON object (for `vod` including the SessionId sent); treat it as
    read-only. `session_id` is that SessionId (`vod`, the task's own or derived) or None (`mps`).
    """

    key: str
    service: ServiceName
    params: dict[str, Any]
    session_id: str | None
    origin: str
    copy: int


@dataclass(frozen=True, slots=True)
class ValidationReport:
    """What a valid manifest expands to: its batch and its task count per service."""

    batch: str
    tasks_per_service: Mapping[ServiceName, int]

    @property
    def total(self) -> int:
        """Every task of the manifest, `repeat` copies included."""
        return sum(self.tasks_per_service.values())


class Manifest:
    """A loaded manifest; `validate()` first, then `tasks()` as often as needed."""

    __slots__ = ("_plan",)

    def __init__(self, plan: _Plan) -> None:
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
    ) -> ValidationReport:
        """Expand and check every task; ManifestError lists the first `max_errors` mistakes.

        Keys are not computed here unless `on_task` asks for the tasks: two requests are
        compared by a 64-bit fingerprint (the first copy's key when keys are computed anyway,
        else a cheaper in-process hash), and only when two fingerprints meet does a second pass
        name the pair. `on_task` sees every valid task as it is checked, so that a caller
        (`plan`, `submit`) can tally them in this same pass; if the manifest turns out to be
        invalid, ManifestError is raised at the end and what it tallied must be dropped.
        """
        plan = self._plan
        problems = _Problems(keep=max_errors)
        counts: dict[ServiceName, int] = dict.fromkeys(SERVICE_NAMES, 0)
        same_requests, same_session_ids = _CollisionFinder(), _CollisionFinder()
        fingerprint = _key_fingerprint if on_task is not None else _request_fingerprint
        for variant, request in _checked_requests(plan, problems):
            counts[variant.service] += plan.repeat
            if on_task is not None:
                wire = request.to_wire()
                first = _task(plan, variant, wire, 0)
                on_task(first)
                for copy in range(1, plan.repeat):
                    on_task(_task(plan, variant, dict(wire), copy))
                # The key hashes exactly the request's identity (SessionId and SessionContext
                # aside), so the first copy's key is the fingerprint, at no extra cost.
                same_requests.add(int(first.key[:16], 16))
            else:
                same_requests.add(_request_fingerprint(plan, variant.service, request))
            own_session_id = _own_session_id(request)
            if own_session_id is not None:
                same_session_ids.add(_text_fingerprint(own_session_id))
        suspects = same_requests.repeated(), same_session_ids.repeated()
        if suspects[0] or suspects[1]:
            _report_duplicates(plan, fingerprint, *suspects, problems)
        problems.raise_if_any()
        return ValidationReport(plan.batch, counts)

    def tasks(self, service: ServiceName | None = None) -> Iterator[Task]:
        """The tasks in manifest order (of one `service` only, if given); ManifestError at the
        first invalid one.

        Run `validate()` first: only it reports every mistake, and duplicate requests.
        """
        plan = self._plan
        problems = _Problems(keep=1, fatal=True)
        for variant, request in _checked_requests(plan, problems, service):
            wire = request.to_wire()
            yield _task(plan, variant, wire, 0)
            for copy in range(1, plan.repeat):
                yield _task(plan, variant, dict(wire), copy)


def load_manifest(path: Path) -> Manifest:
    """Read a manifest's structure (`.yaml`, `.yml`, or a bare `.csv`); ManifestError if wrong."""
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        return Manifest(_load_yaml_plan(path))
    if suffix == ".csv":
        return Manifest(_load_csv_plan(path))
    raise ManifestError(
        [f"{path}: not a manifest: name it .yaml or .yml (a job manifest) or .csv (one task a row)"]
    )


# --- Collecting problems ------------------------------------------------------------------------


class _Problems:
    """Where a pass reports user mistakes: collected by validate(), fatal in tasks()."""

    __slots__ = ("_fatal", "_keep", "count", "messages")

    def __init__(self, keep: int, fatal: bool = False) -> None:
        self._keep = keep
        self._fatal = fatal
        self.messages: list[str] = []
        self.count = 0

    def add(self, message: str) -> None:
        self.count += 1
        if self._fatal:
            raise ManifestError([message])
        if len(self.messages) < self._keep:
            self.messages.append(message)

    def raise_if_any(self) -> None:
        if self.count:
            raise ManifestError(self.messages, self.count)


# --- The parsed manifest ------------------------------------------------------------------------

_NOTHING_WRITTEN: Mapping[Loc, str] = types.MappingProxyType({})


@dataclass(slots=True)
class _RawTask:
    """A task as written: its own parameters and variables, before defaults and templates."""

    origin: str
    service: ServiceName | None
    params: dict[str, Any]
    variables: dict[str, str]
    templates: tuple[tuple[Loc, Template], ...]
    """The strings of `params` that hold braces, parsed once (most tasks have none)."""
    written: Mapping[Loc, str]
    """YAML scalars that did not become strings, as written (`16:9` became 969)."""


@dataclass(slots=True)
class _Defaults:
    """The `defaults` section: parameters and variables, common and per service."""

    common_params: dict[str, Any] = field(default_factory=dict)
    common_variables: dict[str, str] = field(default_factory=dict)
    section_params: dict[str, dict[str, Any]] = field(
        default_factory=lambda: {name: {} for name in SERVICE_NAMES}
    )
    section_variables: dict[str, dict[str, str]] = field(
        default_factory=lambda: {name: {} for name in SERVICE_NAMES}
    )

    def params_for(self, service: ServiceName) -> dict[str, Any]:
        """The section's parameters merged over the common ones."""
        return _merge(self.common_params, self.section_params[service])

    def variables_for(self, service: ServiceName) -> dict[str, str]:
        return {**self.common_variables, **self.section_variables[service]}

    def variable_names(self) -> set[str]:
        names = set(self.common_variables)
        for variables in self.section_variables.values():
            names.update(variables)
        return names

    def sets_prompt(self) -> bool:
        return "Prompt" in self.common_params or any(
            "Prompt" in params for params in self.section_params.values()
        )


@dataclass(frozen=True, slots=True)
class _MatrixVariable:
    name: str
    values: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _CsvColumn:
    """A parameter column: where its cells go and how each service's type reads them."""

    index: int
    header: str
    loc: tuple[str, ...]
    coercers: Mapping[ServiceName, _Coercer | None]


@dataclass(frozen=True, slots=True)
class _CsvLayout:
    """A CSV file's header, read once, so that every row is only a lookup per cell."""

    path: Path
    display: str
    width: int
    service_index: int | None
    variables: tuple[tuple[int, str], ...]
    params: tuple[_CsvColumn, ...]


@dataclass(frozen=True, slots=True)
class _Plan:
    """Everything a pass needs to expand a manifest; no task is expanded yet."""

    path: Path
    display: str
    batch: str
    service: ServiceName | None
    repeat: int
    defaults: _Defaults = field(default_factory=_Defaults)
    prompt: str | None = None
    matrix: tuple[_MatrixVariable, ...] = ()
    tasks: tuple[_RawTask, ...] = ()
    csv: _CsvLayout | None = None
    lines: Mapping[Loc, int] = field(default_factory=dict)
    """YAML line of each top-level key, defaults entry and matrix variable, by path."""
    written: Mapping[Loc, str] = field(default_factory=dict)
    """The defaults' YAML scalars that did not become strings, as written, by path."""

    def default_written(self, service: ServiceName, loc: Loc) -> str | None:
        """How the user wrote a default that YAML turned into a number, a boolean or a date."""
        for section in (("defaults", service), ("defaults",)):
            text = self.written.get((*section, *loc))
            if text is not None:
                return text
        return None

    def defaults_line(self, service: ServiceName, loc: Loc) -> tuple[str, int] | None:
        """Where a parameter's default was written: (`defaults.vod`, line) or None."""
        if loc[:1] == ("Prompt",) and self.prompt is not None:
            return "prompt", self.lines.get(("prompt",), 1)
        for section in (("defaults", service), ("defaults",)):
            for length in range(len(loc), 0, -1):
                line = self.lines.get((*section, *loc[:length]))
                if line is not None:
                    return ".".join(section), line
        return None

    def missing_hint(self, service: ServiceName, name: str) -> str:
        """How to supply a required parameter, in this kind of manifest."""
        if self.path.suffix.lower() == ".csv":
            return f"add a {name} column and fill it on every {service} row"
        return f"set it under defaults.{service} (or on each task)"


# --- Reading files ------------------------------------------------------------------------------


def _read_text(path: Path, display: str) -> str:
    """A whole text file, or a ManifestError that says why it cannot be read."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ManifestError([f"{display}: no such file: check the path"]) from None
    except IsADirectoryError:
        raise ManifestError([f"{display}: is a directory, not a manifest file"]) from None
    except OSError as error:
        raise ManifestError([f"{display}: cannot read it: {error.strerror}"]) from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise ManifestError(
            [f"{display}:{line}: not UTF-8 text (byte {data[error.start]:#04x}): save it as UTF-8"]
        ) from None


def _compose_yaml(text: str, display: str) -> tuple[yaml.Node | None, Any]:
    """The YAML node tree (for line numbers) and its Python value; syntax errors with a line."""
    loader = _YamlLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, None
        # Before construction: merge keys (`<<`) are flattened into the node tree there.
        duplicates = list(_duplicate_keys(node, display))
        if duplicates:
            raise ManifestError(duplicates)
        return node, loader.construct_document(node)
    except yaml.MarkedYAMLError as error:
        raise ManifestError([_yaml_syntax_message(error, display)]) from None
    except yaml.YAMLError as error:
        raise ManifestError([f"{display}: not valid YAML: {error}"]) from None
    finally:
        loader.dispose()


def _yaml_syntax_message(error: yaml.MarkedYAMLError, display: str) -> str:
    """`file:line:column: YAML syntax error: problem (context, from line n): how to fix`."""
    mark = error.problem_mark or error.context_mark
    where = f"{display}:{mark.line + 1}:{mark.column + 1}" if mark else display
    problem = error.problem or "not valid YAML"
    if error.context:
        start = error.context_mark
        since = (
            f", from line {start.line + 1}" if start and mark and start.line != mark.line else ""
        )
        problem += f" ({error.context}{since})"
    return f"{where}: YAML syntax error: {problem}: check indentation, colons and quoting"


def _duplicate_keys(node: yaml.Node, display: str) -> Iterator[str]:
    """A message for every key written twice in one mapping: YAML would silently keep the last."""
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                line = key_node.start_mark.line + 1
                if key_node.value in seen:
                    yield (
                        f"{display}:{line}: {key_node.value!r} is given twice in one mapping "
                        f"(first on line {seen[key_node.value]}): keep one"
                    )
                seen.setdefault(key_node.value, line)
            yield from _duplicate_keys(value_node, display)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            yield from _duplicate_keys(item, display)


def _node_entries(node: yaml.Node | None) -> dict[str, tuple[yaml.Node, yaml.Node]]:
    """A mapping node's entries by (string) key: key node and value node."""
    if not isinstance(node, yaml.MappingNode):
        return {}
    return {str(key.value): (key, value) for key, value in node.value}


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def _record_lines(node: yaml.Node, prefix: Loc, lines: dict[Loc, int]) -> None:
    """The line of every entry under `node`, by path, so a default's error names its own line."""
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            loc = (*prefix, str(key_node.value))
            lines[loc] = _line(key_node)
            _record_lines(value_node, loc, lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines[(*prefix, index)] = _line(item)
            _record_lines(item, (*prefix, index), lines)


_YAML_TEXT_TAGS = frozenset({"tag:yaml.org,2002:str", "tag:yaml.org,2002:null"})


def _record_written(node: yaml.Node, prefix: Loc, written: dict[Loc, str]) -> None:
    """The source text of every scalar YAML did not keep as text: numbers, booleans, dates.

    A message about `AspectRatio: 16:9` must quote `16:9`, not the 969 that YAML 1.1 made of it.
    """
    if isinstance(node, yaml.ScalarNode):
        if node.tag not in _YAML_TEXT_TAGS:
            written[prefix] = str(node.value)
    elif isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            _record_written(value_node, (*prefix, str(key_node.value)), written)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _record_written(item, (*prefix, index), written)


# --- YAML manifests -----------------------------------------------------------------------------


def _load_yaml_plan(path: Path) -> _Plan:
    display = str(path)
    root, data = _compose_yaml(_read_text(path, display), display)
    if root is None:
        raise ManifestError([f"{display}: the manifest is empty: see jobs/all-features.yaml"])
    if not isinstance(data, dict):
        raise ManifestError(
            [f"{display}:{_line(root)}: a manifest is a mapping (batch:, defaults:, tasks:, ...)"]
        )
    return _YamlPlanReader(path, display, root, data).read()


class _YamlPlanReader:
    """Turns a YAML manifest's top-level mapping into a `_Plan`, collecting every mistake."""

    def __init__(self, path: Path, display: str, root: yaml.Node, data: dict[Any, Any]) -> None:
        self.path = path
        self.display = display
        self.data = data
        self.entries = _node_entries(root)
        self.lines: dict[Loc, int] = {}
        self.written: dict[Loc, str] = {}  # of the defaults
        self.problems: list[tuple[int, str]] = []  # (line, message), reported in line order

    def read(self) -> _Plan:
        for name, (key_node, _) in self.entries.items():
            self.lines[(name,)] = _line(key_node)
        self._check_top_level_keys()
        defaults = self._defaults()
        prompt = self._prompt()
        if prompt is not None and defaults.sets_prompt():
            self._problem(("prompt",), "both `prompt` and a Prompt under defaults: keep one")
        matrix = self._matrix(defaults.variable_names())
        tasks = self._tasks()
        csv_layout = self._csv()
        if not tasks and csv_layout is None:
            implicit_line = self.lines.get(("prompt",)) or self.lines.get(("defaults",)) or 1
            implicit = _RawTask(f"{self.display}:{implicit_line}", None, {}, {}, (), {})
            tasks = (implicit,)
        plan = _Plan(
            path=self.path,
            display=self.display,
            batch=self._batch(),
            service=self._service(),
            repeat=self._repeat(),
            defaults=defaults,
            prompt=prompt,
            matrix=matrix,
            tasks=tasks,
            csv=csv_layout,
            lines=self.lines,
            written=self.written,
        )
        if self.problems:
            raise ManifestError([message for _, message in sorted(self.problems)])
        return plan

    # Helpers ----------------------------------------------------------------------------------

    def _problem(self, loc: Loc, message: str) -> None:
        self._problem_at(self.lines.get(loc) or self.lines.get(loc[:1]) or 1, message)

    def _problem_at(self, line: int, message: str) -> None:
        self.problems.append((line, f"{self.display}:{line}: {message}"))

    def _value_node(self, name: str) -> yaml.Node | None:
        entry = self.entries.get(name)
        return entry[1] if entry else None

    def _check_top_level_keys(self) -> None:
        for name in self.data:
            if name in TOP_LEVEL_KEYS:
                continue
            text = str(name)
            if text[:1].isupper():
                hint = "API parameters go under `defaults:` or on a task"
            else:
                hint = _did_you_mean(text, TOP_LEVEL_KEYS) or f"use {', '.join(TOP_LEVEL_KEYS)}"
            self._problem((text,), f"unknown manifest key {text!r}: {hint}")

    def _batch(self) -> str:
        value = self.data.get("batch", self.path.stem)
        if not isinstance(value, str) or not value:
            self._problem(
                ("batch",), f"batch must be a non-empty string, got {_show(value)}: quote it"
            )
            return self.path.stem
        return value

    def _service(self) -> ServiceName | None:
        if "service" not in self.data:
            return None
        service = _service_name(self.data["service"])
        if service is None:
            self._problem(
                ("service",), f"service must be vod or mps, got {_show(self.data['service'])}"
            )
        return service

    def _repeat(self) -> int:
        value = self.data.get("repeat", 1)
        if type(value) is not int or value < 1:
            self._problem(("repeat",), f"repeat must be a whole number ≥ 1, got {_show(value)}")
            return 1
        return value

    def _prompt(self) -> str | None:
        value = self.data.get("prompt")
        if value is None:
            if "prompt" in self.data:
                self._problem(("prompt",), "prompt is empty: write the Prompt template or drop it")
            return None
        if not isinstance(value, str):
            self._problem(("prompt",), f"prompt must be a string, got {_show(value)}: quote it")
            return None
        try:
            parse_template(value)
        except TemplateSyntaxError as error:
            self._problem(("prompt",), f"prompt: {error}")
        return value

    # defaults -------------------------------------------------------------------------------

    def _defaults(self) -> _Defaults:
        defaults = _Defaults()
        node = self._value_node("defaults")
        value = self.data.get("defaults")
        if node is not None:
            _record_lines(node, ("defaults",), self.lines)
            _record_written(node, ("defaults",), self.written)
        if value is None:
            return defaults
        if not isinstance(value, dict):
            self._problem(("defaults",), "defaults must be a mapping of parameters and variables")
            return defaults
        for key, item in value.items():
            loc: Loc = ("defaults", str(key))
            if key in SERVICE_NAMES:
                self._defaults_section(
                    key, item, defaults.section_params[key], defaults.section_variables[key]
                )
            elif key == "service":
                self._problem(loc, "service is not a default: set it at the top of the manifest")
            else:
                self._sort_entry(loc, key, item, defaults.common_params, defaults.common_variables)
        return defaults

    def _defaults_section(
        self, service: str, value: Any, params: dict[str, Any], variables: dict[str, str]
    ) -> None:
        loc: Loc = ("defaults", service)
        if value is None:
            return
        if not isinstance(value, dict):
            self._problem(loc, f"defaults.{service} must be a mapping of {service} parameters")
            return
        for key, item in value.items():
            if key in ("service", *SERVICE_NAMES):
                self._problem((*loc, str(key)), f"{key!r} cannot be used inside defaults.{service}")
            else:
                self._sort_entry((*loc, str(key)), key, item, params, variables)

    def _sort_entry(
        self, loc: Loc, key: Any, value: Any, params: dict[str, Any], variables: dict[str, str]
    ) -> None:
        """File a key under parameters (Upper-case) or variables (lower-case), or complain."""
        problem = _sort_key(key, value, params, variables)
        if problem is not None:
            self._problem(loc, problem)
            return
        try:
            _parse_templates(value, loc[1:])
        except _BadTemplateError as error:
            self._problem(loc, str(error))

    # matrix ---------------------------------------------------------------------------------

    def _matrix(self, defaults_variables: set[str]) -> tuple[_MatrixVariable, ...]:
        value = self.data.get("matrix")
        node = self._value_node("matrix")
        if node is not None:
            _record_lines(node, ("matrix",), self.lines)
        if value is None:
            return ()
        if not isinstance(value, dict):
            self._problem(("matrix",), "matrix must map variable names to lists of values")
            return ()
        matrix = []
        for name, values in value.items():
            variable = self._matrix_variable(name, values, defaults_variables)
            if variable is not None:
                matrix.append(variable)
        return tuple(matrix)

    def _matrix_variable(
        self, name: Any, values: Any, defaults_variables: set[str]
    ) -> _MatrixVariable | None:
        loc: Loc = ("matrix", str(name))
        if not _is_variable_name(name) or name == "service":
            self._problem(
                loc,
                f"matrix variable {name!r} must be a lower-case name (letters, "
                "digits, _); parameters cannot be multiplied directly: use "
                'Param: "{name}"',
            )
            return None
        if name in defaults_variables:
            self._problem(
                loc, f"{name!r} is both a matrix variable and a default variable: keep one"
            )
            return None
        if not isinstance(values, list) or not values:
            self._problem(loc, f"matrix.{name} must be a non-empty list, e.g. [a, b]")
            return None
        texts = []
        for value in values:
            text = _variable_text(value)
            if text is None:
                self._problem(loc, f"matrix.{name}: {_show(value)} is not a string or a number")
                return None
            if text in texts:
                self._problem(loc, f"matrix.{name} lists {text!r} twice: keep one")
                return None
            texts.append(text)
        return _MatrixVariable(name, tuple(texts))

    # tasks ----------------------------------------------------------------------------------

    def _tasks(self) -> tuple[_RawTask, ...]:
        value = self.data.get("tasks")
        node = self._value_node("tasks")
        if value is None:
            return ()
        if not isinstance(value, list) or not isinstance(node, yaml.SequenceNode):
            self._problem(("tasks",), "tasks must be a list, one `- ` item per task")
            return ()
        tasks = []
        for item, item_node in zip(value, node.value, strict=True):
            task = self._task(item, item_node)
            if task is not None:
                tasks.append(task)
        return tuple(tasks)

    def _task(self, value: Any, node: yaml.Node) -> _RawTask | None:
        line = _line(node)
        if value is None:
            value = {}
        if not isinstance(value, dict):
            self._problem_at(
                line,
                "a task is a mapping of parameters and variables, "
                f"e.g. {{Prompt: a red car}}, got {_show(value)}",
            )
            return None
        params: dict[str, Any] = {}
        variables: dict[str, str] = {}
        service: ServiceName | None = None
        found_problem = False
        for key, item in value.items():
            problem = None
            if key == "service":
                service = _service_name(item)
                if service is None:
                    problem = f"service must be vod or mps, got {_show(item)}"
            else:
                problem = _sort_key(key, item, params, variables)
            if problem is not None:
                self._problem_at(line, problem)
                found_problem = True
        try:
            templates = _parse_templates(params, ())
        except _BadTemplateError as error:
            self._problem_at(line, str(error))
            return None
        if found_problem:
            return None
        written: dict[Loc, str] = {}
        _record_written(node, (), written)
        origin = f"{self.display}:{line}"
        return _RawTask(origin, service, params, variables, templates, written or _NOTHING_WRITTEN)

    # csv ------------------------------------------------------------------------------------

    def _csv(self) -> _CsvLayout | None:
        value = self.data.get("csv")
        if value is None:
            return None
        if not isinstance(value, str) or not value:
            self._problem(("csv",), "csv must be a file path, relative to the manifest")
            return None
        csv_path = self.path.parent / value
        try:
            return _read_csv_layout(csv_path, str(csv_path))
        except ManifestError as error:
            for message in error.messages:
                self._problem(("csv",), f"csv: {message}")
            return None


def _sort_key(
    key: Any, value: Any, params: dict[str, Any], variables: dict[str, str]
) -> str | None:
    """File one task or defaults entry as a parameter or a variable; a problem text if neither."""
    if not isinstance(key, str) or not key[:1].isalpha():
        return (
            f"{key!r} is neither a parameter (Upper-case, like Prompt) nor a variable "
            "(lower-case, like animal)"
        )
    if key[0].isupper():
        params[key] = value
        return None
    if not _is_variable_name(key):
        return f"variable {key!r}: a variable name is letters, digits and _"
    text = _variable_text(value)
    if text is None:
        hint = (
            f"; parameters start with an upper-case letter ({key[0].upper()}{key[1:]})"
            if isinstance(value, dict | list)
            else ""
        )
        return f"variable {key!r} must be a string or a number, got {_show(value)}{hint}"
    variables[key] = text
    return None


class _BadTemplateError(ValueError):
    """A malformed template, with the parameter it is in."""


def _parse_templates(value: Any, loc: Loc) -> tuple[tuple[Loc, Template], ...]:
    """Every string inside `value` that holds braces, parsed; `_BadTemplateError` if malformed."""
    templates = []
    for string_loc, text in _strings(value, loc):
        try:
            templates.append((string_loc, parse_template(text)))
        except TemplateSyntaxError as error:
            raise _BadTemplateError(f"{_format_loc(string_loc)}: {error}") from None
    return tuple(templates)


def _strings(value: Any, loc: Loc) -> Iterator[tuple[Loc, str]]:
    """Every string inside a parameter value that may hold a placeholder, with its place."""
    if isinstance(value, str):
        if may_be_template(value):
            yield loc, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, (*loc, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, (*loc, index))


def _is_variable_name(name: Any) -> bool:
    return isinstance(name, str) and re.fullmatch(r"[a-z][A-Za-z0-9_]*", name) is not None


def _variable_text(value: Any) -> str | None:
    """A variable's value as placeholders insert it, or None for values that cannot be inserted."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    if isinstance(value, date):
        return value.isoformat()
    return None


def _service_name(value: Any) -> ServiceName | None:
    for name in SERVICE_NAMES:
        if value == name:
            return name
    return None


# --- CSV ----------------------------------------------------------------------------------------

_Coercer = Callable[[str], Any]

_WHOLE_NUMBER = re.compile(r"\s*[+-]?[0-9]+\s*")
_BOOLEAN_WORDS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}


def _cell_to_int(cell: str) -> int:
    if not _WHOLE_NUMBER.fullmatch(cell):
        raise ValueError(f"{cell!r} is not a whole number: write e.g. 42")
    return int(cell)


def _cell_to_bool(cell: str) -> bool:
    value = _BOOLEAN_WORDS.get(cell.strip().lower())
    if value is None:
        raise ValueError(f"{cell!r} is not a yes/no value: write true or false")
    return value


def _cell_to_json(cell: str) -> Any:
    try:
        return json.loads(cell)
    except json.JSONDecodeError as error:
        raise ValueError(
            f"is not valid JSON ({error.msg}, character {error.pos + 1}): write it as JSON, "
            'e.g. [{"Type": "Url", "Url": "https://..."}]'
        ) from None


def _coercer_for(annotation: Any) -> _Coercer | None:
    """How a text cell becomes a value of this parameter's type; None: the text as it is."""
    kinds = _base_types(annotation)
    if bool in kinds:
        return _cell_to_bool
    if int in kinds:
        return _cell_to_int
    for kind in kinds:
        if get_origin(kind) in (list, dict) or kind in (list, dict) or _is_model(kind):
            return _cell_to_json
    return None


def _base_types(annotation: Any) -> list[Any]:
    """The types an annotation admits, with `Annotated[...]` and `| None` peeled off."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _base_types(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        return [
            kind
            for arg in get_args(annotation)
            if arg is not type(None)
            for kind in _base_types(arg)
        ]
    return [annotation]


def _is_model(kind: Any) -> bool:
    return isinstance(kind, type) and issubclass(kind, BaseModel)


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    """The model a parameter holds, directly or as list items (`FileInfos`)."""
    for kind in _base_types(annotation):
        if _is_model(kind):
            return kind  # type: ignore[no-any-return]
        if get_origin(kind) is list:
            return _inner_model(get_args(kind)[0])
    return None


def _parameter_paths(model: type[BaseModel], prefix: str = "") -> Iterator[str]:
    """Every dotted parameter a CSV header can name: `Prompt`, `OutputConfig.AspectRatio`, ..."""
    for name, info in model.model_fields.items():
        yield prefix + name
        nested = _inner_model(info.annotation)
        if nested is not None and get_origin(_base_types(info.annotation)[0]) is not list:
            yield from _parameter_paths(nested, f"{prefix}{name}.")


def _read_csv_layout(path: Path, display: str) -> _CsvLayout:
    """Read and check a CSV header; ManifestError naming every bad column."""
    header = _read_csv_header(path, display)
    problems: list[str] = []
    service_index: int | None = None
    variables: list[tuple[int, str]] = []
    params: list[_CsvColumn] = []
    seen: dict[str, int] = {}
    for index, raw_name in enumerate(header):
        name = raw_name.strip()
        where = f"{display}:row 1: column {index + 1}"
        problem = _csv_header_problem(name, seen)
        seen.setdefault(name, index + 1)
        if problem is not None:
            problems.append(f"{where}: {problem}")
        elif name == "service":
            service_index = index
        elif name[0].islower():
            variables.append((index, name))
        else:
            params.append(_csv_param_column(index, name))
    problems.extend(f"{display}:row 1: {problem}" for problem in _overlapping_columns(params))
    if problems:
        raise ManifestError(problems)
    return _CsvLayout(path, display, len(header), service_index, tuple(variables), tuple(params))


def _read_csv_header(path: Path, display: str) -> list[str]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as stream:
            header = next(csv.reader(stream), None)
    except FileNotFoundError:
        raise ManifestError([f"{display}: no such file: check the path"]) from None
    except UnicodeDecodeError:
        raise ManifestError([_not_utf8_message(path, display)]) from None
    except (OSError, csv.Error) as error:
        raise ManifestError([f"{display}: cannot read it: {error}"]) from None
    if not header:
        raise ManifestError(
            [
                f"{display}:row 1: no header: the first row must name the columns "
                "(Prompt, OutputConfig.AspectRatio, service, ...)"
            ]
        )
    return header


def _csv_header_problem(name: str, seen: Mapping[str, int]) -> str | None:
    if not name:
        return "has no name: name it (a parameter like Prompt) or delete the column"
    if name in seen:
        return f"{name!r} is also column {seen[name]}: keep one"
    if name == "service" or _is_variable_name(name):
        return None
    if not name[0].isupper():
        return (
            f"{name!r} is neither a parameter (Upper-case, like Prompt) nor a variable "
            "(lower-case, like animal)"
        )
    if not any(field_annotation(request_model(s), name) is not None for s in SERVICE_NAMES):
        known = sorted({p for s in SERVICE_NAMES for p in _parameter_paths(request_model(s))})
        hint = _did_you_mean(name, known) or "see the parameters in jobs/all-features.yaml"
        return f"{name!r} is not a vod or mps parameter: {hint}"
    return None


def _csv_param_column(index: int, name: str) -> _CsvColumn:
    coercers = {
        service: _coercer_for(field_annotation(request_model(service), name))
        for service in SERVICE_NAMES
    }
    return _CsvColumn(index, name, tuple(name.split(".")), coercers)


def _overlapping_columns(columns: Iterable[_CsvColumn]) -> Iterator[str]:
    """A column that sets a whole object cannot also be filled in part by a dotted one."""
    names = {column.header for column in columns}
    for column in columns:
        for length in range(1, len(column.loc)):
            parent = ".".join(column.loc[:length])
            if parent in names:
                yield f"columns {parent!r} and {column.header!r} both set {parent}: keep one"


def _load_csv_plan(path: Path) -> _Plan:
    display = str(path)
    layout = _read_csv_layout(path, display)
    return _Plan(path=path, display=display, batch=path.stem, service="vod", repeat=1, csv=layout)


def _csv_tasks(
    layout: _CsvLayout, default_service: ServiceName | None, problems: _Problems
) -> Iterator[_RawTask]:
    """One raw task per data row, read as a stream; bad cells are reported, their rows skipped."""
    row_number = 1
    reader_columns = _CsvRowReader(layout, default_service)
    try:
        with layout.path.open(newline="", encoding="utf-8-sig") as stream:
            rows = csv.reader(stream)
            next(rows, None)  # the header, checked when the manifest was loaded
            for row in rows:
                row_number += 1
                task = reader_columns.task(row, row_number, problems)
                if task is not None:
                    yield task
    except UnicodeDecodeError:
        problems.add(_not_utf8_message(layout.path, layout.display))
    except csv.Error as error:
        problems.add(f"{layout.display}:row {row_number + 1}: malformed CSV: {error}")
    except OSError as error:
        problems.add(f"{layout.display}: cannot read it: {error.strerror}")


def _not_utf8_message(path: Path, display: str) -> str:
    """Where a file stops being UTF-8, by line: text is decoded in blocks, not rows."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    line = 1
    try:
        with path.open("rb") as stream:
            while block := stream.read(1 << 16):
                try:
                    decoder.decode(block)
                except UnicodeDecodeError as error:
                    line += block[: max(error.start, 0)].count(b"\n")
                    break
                line += block.count(b"\n")
    except OSError:
        pass
    return f"{display}:line {line}: not UTF-8 text: save it as UTF-8"


class _CsvRowReader:
    """Turns a CSV row into a raw task, with the work per cell decided once from the header."""

    __slots__ = ("_columns", "_default_service", "_layout")

    def __init__(self, layout: _CsvLayout, default_service: ServiceName | None) -> None:
        self._layout = layout
        self._default_service = default_service
        # Per service: (cell index, top-level name if not dotted, dotted path, coercer, header).
        self._columns = {
            service: tuple(
                (
                    column.index,
                    column.loc[0] if len(column.loc) == 1 else None,
                    column.loc,
                    column.coercers[service],
                    column.header,
                )
                for column in layout.params
            )
            for service in SERVICE_NAMES
        }

    def task(self, row: list[str], row_number: int, problems: _Problems) -> _RawTask | None:
        layout = self._layout
        origin = f"{layout.display}:row {row_number}"
        if len(row) != layout.width:
            if row:  # a blank line is not a task
                problems.add(
                    f"{origin}: {len(row)} cells but the header names {layout.width} "
                    "columns: quote cells that contain commas"
                )
            return None
        service = self._service(row, origin, problems)
        if service is None:
            return None
        params: dict[str, Any] = {}
        templates: list[tuple[Loc, Template]] = []
        for index, name, loc, coerce, header in self._columns[service]:
            cell = row[index]
            if not cell:
                continue  # an empty cell leaves the default
            if coerce is None and "{" not in cell and "}" not in cell:
                value: Any = cell  # the common case, kept free of calls
            else:
                try:
                    value = _cell_value(cell, loc, coerce, templates)
                except (ValueError, _BadTemplateError) as error:
                    problems.add(f"{origin}: {service} task: column {header}: {error}")
                    return None
            if name is not None:
                params[name] = value
            else:
                _set_new(params, loc, value)
        variables = {name: row[index] for index, name in layout.variables if row[index]}
        return _RawTask(origin, service, params, variables, tuple(templates), _NOTHING_WRITTEN)

    def _service(self, row: list[str], origin: str, problems: _Problems) -> ServiceName | None:
        index = self._layout.service_index
        cell = row[index].strip() if index is not None else ""
        if not cell:
            if self._default_service is None:
                problems.add(
                    f"{origin}: no service: fill the service column with vod or mps, "
                    "or set `service:` in the manifest"
                )
            return self._default_service
        service = _service_name(cell)
        if service is None:
            problems.add(f"{origin}: service must be vod or mps, got {cell!r}")
        return service


def _cell_value(
    cell: str, loc: tuple[str, ...], coerce: _Coercer | None, templates: list[tuple[Loc, Template]]
) -> Any:
    """A non-empty cell as its parameter's value; templated strings are noted in `templates`."""
    if coerce is _cell_to_json:
        value = coerce(cell)
        templates.extend(_parse_templates(value, loc))
        return value
    if may_be_template(cell):  # converted to the parameter's type once filled in
        try:
            templates.append((loc, parse_template(cell)))
        except TemplateSyntaxError as error:
            raise _BadTemplateError(str(error)) from None
        return cell
    return cell if coerce is None else coerce(cell)


def _set_new(params: dict[str, Any], loc: tuple[str, ...], value: Any) -> None:
    """Set a dotted parameter in a dict built for one row (so nothing shared is changed)."""
    node = params
    for part in loc[:-1]:
        node = node.setdefault(part, {})
    node[loc[-1]] = value


# --- Expansion: defaults, templates, matrix ------------------------------------------------------


@dataclass(slots=True)
class _ServiceFrame:
    """What every task of one service starts from, prepared once per pass."""

    service: ServiceName
    model: type[BaseModel]
    params: dict[str, Any]
    variables: dict[str, str]
    templates: tuple[tuple[Loc, Template], ...]
    reported: frozenset[Loc]
    """Places whose default was already reported wrong: not repeated for every task."""
    lowercase_params: Mapping[str, str]
    coercers: dict[Loc, _Coercer | None] = field(default_factory=dict)

    def coercer(self, loc: Loc) -> _Coercer | None:
        if loc not in self.coercers:
            dotted = ".".join(str(part) for part in loc)
            inside_list = any(isinstance(part, int) for part in loc)
            annotation = None if inside_list else field_annotation(self.model, dotted)
            kinds = _base_types(annotation)
            self.coercers[loc] = _coercer_for(annotation) if bool in kinds or int in kinds else None
        return self.coercers[loc]


@dataclass(slots=True)
class _Variant:
    """One expanded request before validation: a task with its matrix values filled in."""

    origin: str
    service: ServiceName
    params: dict[str, Any]
    raw: _RawTask
    frame: _ServiceFrame


class _Expander:
    """Expands raw tasks into variants: defaults merged, placeholders filled, matrix applied."""

    def __init__(self, plan: _Plan, problems: _Problems) -> None:
        self._plan = plan
        self._problems = problems
        self._frames: dict[ServiceName, _ServiceFrame] = {}
        self._matrix = {variable.name: variable for variable in plan.matrix}

    def frame(self, service: ServiceName) -> _ServiceFrame:
        frame = self._frames.get(service)
        if frame is None:
            frame = self._frames[service] = _build_frame(self._plan, service, self._problems)
        return frame

    def expand(self, raw: _RawTask) -> list[_Variant]:
        """The variants of one task (one, unless it uses matrix variables); [] if it is wrong."""
        service = raw.service or self._plan.service
        if service is None:
            self._problems.add(
                f"{raw.origin}: no service: add `service: vod` (or mps) at the top "
                "of the manifest or on this task"
            )
            return []
        frame = self.frame(service)
        # Without own params the defaults are shared as they are: nothing mutates them.
        merged = _merge(frame.params, raw.params) if raw.params else frame.params
        templates = raw.templates
        if frame.templates:
            kept = frame.templates
            if raw.params:
                kept = tuple(entry for entry in kept if not _task_sets(raw.params, entry[0]))
            templates = kept + templates
        if not templates:  # the common case of a CSV row: nothing to fill in, nothing to multiply
            if raw.variables and not self._variables_are_used(raw, frame, set()):
                return []
            return [_Variant(raw.origin, service, merged, raw, frame)]
        names = {name for _, template in templates for name in template.names}
        placeholders_known = self._placeholders_are_known(raw, frame, templates)
        if not (self._variables_are_used(raw, frame, names) and placeholders_known):
            return []
        return self._render_variants(raw, frame, merged, templates, names)

    def _render_variants(
        self,
        raw: _RawTask,
        frame: _ServiceFrame,
        merged: dict[str, Any],
        templates: Sequence[tuple[Loc, Template]],
        names: set[str],
    ) -> list[_Variant]:
        """One variant per combination of the matrix variables the task uses and does not set."""
        axes = [
            variable
            for name, variable in self._matrix.items()
            if name in names and name not in raw.variables
        ]
        fixed = {**frame.variables, **raw.variables} if frame.variables else raw.variables
        if not axes:  # filled in, but not multiplied: the usual CSV row with a prompt template
            params = self._render(merged, templates, fixed, frame, raw.origin)
            return (
                [] if params is None else [_Variant(raw.origin, frame.service, params, raw, frame)]
            )
        variants = []
        for combination in itertools.product(*(axis.values for axis in axes)):
            values = fixed | dict(zip((axis.name for axis in axes), combination, strict=True))
            origin = _variant_origin(raw.origin, axes, combination)
            params = self._render(merged, templates, values, frame, origin)
            if params is not None:
                variants.append(_Variant(origin, frame.service, params, raw, frame))
        return variants

    def _placeholders_are_known(
        self, raw: _RawTask, frame: _ServiceFrame, templates: Sequence[tuple[Loc, Template]]
    ) -> bool:
        """Every placeholder has a value, from the task, the matrix or the defaults."""
        unknown: dict[str, Loc] = {}  # in the order written, so messages come out the same
        for loc, template in templates:
            for name in template.names:
                if not (name in raw.variables or name in self._matrix or name in frame.variables):
                    unknown.setdefault(name, loc)
        for name, loc in unknown.items():
            self._problems.add(
                f"{raw.origin}: {frame.service} task: unknown placeholder {{{name}}} in "
                f"{_format_loc(loc)}{_source_note(self._plan, raw, frame, loc)}: set {name} on "
                f"the task, under defaults or in matrix{self._typo_hint(name, raw, frame)}"
            )
        return not unknown

    def _typo_hint(self, name: str, raw: _RawTask, frame: _ServiceFrame) -> str:
        own = _closest(name, raw.variables)
        if own is not None:
            return f" (the task has {own!r}: a typo?)"
        other = _closest(name, [*self._matrix, *frame.variables])
        return f" (did you mean {{{other}}}?)" if other else ""

    def _variables_are_used(self, raw: _RawTask, frame: _ServiceFrame, names: set[str]) -> bool:
        """No variable is a parameter spelled lower-case (`prompt`) that nothing uses."""
        fine = True
        for name in raw.variables:
            parameter = frame.lowercase_params.get(name.lower())
            if parameter is not None and name not in names:
                fine = False
                self._problems.add(
                    f"{raw.origin}: {frame.service} task: {name!r} is a template variable that "
                    f"no placeholder uses: for the parameter write {parameter!r} (upper-case)"
                )
        return fine

    def _render(
        self,
        merged: dict[str, Any],
        templates: Sequence[tuple[Loc, Template]],
        values: Mapping[str, str],
        frame: _ServiceFrame,
        origin: str,
    ) -> dict[str, Any] | None:
        params = dict(merged)  # each variant gets its own top level; nested levels copy on write
        for loc, template in templates:
            value: Any = template.render(values)
            coerce = frame.coercer(loc)
            if coerce is not None:
                try:
                    value = coerce(value)
                except ValueError as error:
                    self._problems.add(
                        f"{origin}: {frame.service} task: {_format_loc(loc)}: {error}"
                    )
                    return None
            _replace_at(params, loc, value)
        return params


def _build_frame(plan: _Plan, service: ServiceName, problems: _Problems) -> _ServiceFrame:
    """Merge the defaults for one service and report their mistakes once, at their own lines."""
    model = request_model(service)
    params = plan.defaults.params_for(service)
    if plan.prompt is not None:
        params["Prompt"] = plan.prompt
    variables = plan.defaults.variables_for(service)
    templates = tuple((loc, parse_template(text)) for loc, text in _strings(params, ()))
    reported = _check_defaults(plan, service, model, params, problems)
    lowercase = {name.lower(): name for name in model.model_fields}
    return _ServiceFrame(service, model, params, variables, templates, reported, lowercase)


def _check_defaults(
    plan: _Plan,
    service: ServiceName,
    model: type[BaseModel],
    params: dict[str, Any],
    problems: _Problems,
) -> frozenset[Loc]:
    """Validate the literal defaults alone; templated strings are checked per task, once filled."""
    try:
        model.model_validate(_without_templates(params), strict=True)
    except ValidationError as error:
        reported = set()
        for detail in error.errors():
            loc = detail["loc"]
            if not loc or detail["type"] == "missing":
                continue  # these depend on what each task adds
            section, line = plan.defaults_line(service, loc) or ("defaults", 1)
            written = plan.default_written(service, loc)
            problems.add(
                f"{plan.display}:{line}: {section}: "
                f"{_explain(detail, service, model, plan, written)}"
            )
            reported.add(loc)
        return frozenset(reported)
    return frozenset()


def _without_templates(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            key: _without_templates(item)
            for key, item in value.items()
            if not (isinstance(item, str) and may_be_template(item))
        }
    if isinstance(value, list):
        return [_without_templates(item) for item in value]
    return value


def _merge(defaults: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """`overrides` over `defaults`: objects merge key by key, anything else replaces.

    Unchanged subtrees are shared, not copied: nothing downstream mutates them (rendering copies
    on write), and a deep copy per CSV row would cost more than the rest of the row.
    """
    merged = dict(defaults)
    for key, value in overrides.items():
        base = merged.get(key)
        if isinstance(value, dict) and isinstance(base, dict):
            merged[key] = _merge(base, value)
        else:
            merged[key] = value
    return merged


def _task_sets(params: Mapping[str, Any], loc: Loc) -> bool:
    """Whether a task's own params decide the value at `loc` (rather than its defaults)."""
    node: Any = params
    for part in loc:
        if isinstance(part, int) or not isinstance(node, dict):
            return True  # the task replaced a list (or an object) whole
        if part not in node:
            return False
        node = node[part]
    return True


def _replace_at(root: dict[str, Any], loc: Loc, value: Any) -> None:
    """Set `value` at `loc`, copying the containers on the way: they may be shared."""
    node: Any = root
    for part in loc[:-1]:
        child = node[part]
        child = dict(child) if isinstance(child, dict) else list(child)
        node[part] = child
        node = child
    node[loc[-1]] = value


def _variant_origin(origin: str, axes: Sequence[_MatrixVariable], values: Sequence[str]) -> str:
    if not axes:
        return origin
    chosen = ", ".join(f"{axis.name}={value}" for axis, value in zip(axes, values, strict=True))
    return f"{origin} ({chosen})"


def _source_note(plan: _Plan, raw: _RawTask, frame: _ServiceFrame, loc: Loc) -> str:
    """` (from defaults.vod, line 7)` when the value came from the manifest, not the task."""
    if _task_sets(raw.params, loc):
        return ""
    source = plan.defaults_line(frame.service, loc)
    if source is None:
        return ""
    return f" (from {source[0]}, line {source[1]})"


# --- Validation and keys ------------------------------------------------------------------------


def _checked_requests(
    plan: _Plan, problems: _Problems, only: ServiceName | None = None
) -> Iterator[tuple[_Variant, RequestModel]]:
    """Every request of the manifest in order, validated: the one code path of both passes.

    With `only`, tasks of the other service are passed over before they are expanded or
    validated: the pipeline streams each service's tasks on its own, and need not pay twice.
    """
    expander = _Expander(plan, problems)
    raw_tasks: Iterable[_RawTask] = plan.tasks
    if plan.csv is not None:
        raw_tasks = itertools.chain(raw_tasks, _csv_tasks(plan.csv, plan.service, problems))
    for raw in raw_tasks:
        if only is not None and (raw.service or plan.service) != only:
            continue
        variants = expander.expand(raw)
        # A mistake the matrix does not change is reported once, not once per combination.
        reported: set[str] = set()
        for variant in variants:
            request = _validated(variant, plan, problems, reported)
            if request is not None:
                yield variant, request


def _validated(
    variant: _Variant, plan: _Plan, problems: _Problems, reported: set[str]
) -> RequestModel | None:
    """The request of a variant, or None after reporting why the API would refuse it.

    `reported` holds what was said about earlier variants of the same task.
    """
    frame = variant.frame
    try:
        # Strict: YAML's `ModelVersion: 2.5` is a float, and the user must hear about it.
        request: RequestModel = frame.model.__pydantic_validator__.validate_python(
            variant.params, strict=True
        )
    except ValidationError as error:
        for detail in error.errors():
            loc = detail["loc"]
            if loc in frame.reported and not _task_sets(variant.raw.params, loc):
                continue  # a wrong default, reported once at its own line
            note = _source_note(plan, variant.raw, frame, loc) if loc else ""
            if _task_sets(variant.raw.params, loc):
                written = variant.raw.written.get(loc)
            else:
                written = plan.default_written(variant.service, loc)
            explained = _explain(detail, variant.service, frame.model, plan, written)
            message = f"{explained}{note}"
            if message not in reported:
                reported.add(message)
                problems.add(f"{variant.origin}: {variant.service} task: {message}")
        return None
    if plan.repeat > 1 and _own_session_id(request) is not None:
        problems.add(
            f"{variant.origin}: vod task: SessionId is set and repeat is {plan.repeat}: "
            "every copy would send the same SessionId and VOD would refuse all but the "
            "first: drop SessionId (batcher derives one per copy) or set repeat: 1"
        )
        return None
    return request


def _own_session_id(request: RequestModel) -> str | None:
    """The SessionId a task sets itself (only VOD has the parameter)."""
    # isinstance, not getattr(..., None): a missing attribute takes pydantic's slow path.
    return request.SessionId if isinstance(request, VodCreateAigcImageTaskRequest) else None


def _task(plan: _Plan, variant: _Variant, params: dict[str, Any], copy: int) -> Task:
    """One copy of a validated request, keyed; `params` is its own to_wire() dict or a copy."""
    key = task_key(plan.batch, variant.service, params, copy)
    if variant.service != "vod":
        return Task(key, variant.service, params, None, variant.origin, copy)
    # A task's own SessionId is kept (and then repeat is 1: _validated saw to that).
    session_id = params.get("SessionId") if copy == 0 else None
    if session_id is None:
        params["SessionId"] = session_id = session_id_for(key)
    return Task(key, variant.service, params, session_id, variant.origin, copy)


# --- Duplicates ---------------------------------------------------------------------------------


def _request_json(request: RequestModel) -> bytes:
    """A request's identity within this process: what its key hashes, in the model's field order.

    Not the canonical JSON of `keys` (which sorts keys, and costs three times as much):
    the serializer writes fields in declaration order whatever order the manifest used, which is
    all that comparing two requests of one run needs.
    """
    serializer = request.__pydantic_serializer__
    if isinstance(request, VodCreateAigcImageTaskRequest) and (
        request.SessionId is not None or request.SessionContext is not None
    ):
        return serializer.to_json(request, exclude_none=True, exclude=set(UNKEYED_PARAMS))
    return serializer.to_json(request, exclude_none=True)


_Fingerprint = Callable[["_Plan", ServiceName, RequestModel], int]


def _request_fingerprint(plan: _Plan, service: ServiceName, request: RequestModel) -> int:
    """64 bits of a request's identity, stable within this process only."""
    return hash((service, _request_json(request))) & _SIXTY_FOUR_BITS


def _key_fingerprint(plan: _Plan, service: ServiceName, request: RequestModel) -> int:
    """64 bits of a request's identity: the first 16 hex digits of its first copy's key."""
    return int(task_key(plan.batch, service, request.to_wire(), 0)[:16], 16)


def _text_fingerprint(text: str) -> int:
    """64 bits of any text, stable within the process: enough to pick suspects to compare."""
    return hash(text) & _SIXTY_FOUR_BITS


_SIXTY_FOUR_BITS = 0xFFFF_FFFF_FFFF_FFFF


class _CollisionFinder:
    """Finds repeated 64-bit fingerprints among millions, in 8 bytes each.

    Fingerprints go into 256 arrays by their top byte, so finding repeats sorts one small bucket
    at a time instead of a list of a million Python ints.
    """

    __slots__ = ("_buckets",)

    def __init__(self) -> None:
        self._buckets = [array("Q") for _ in range(256)]

    def add(self, fingerprint: int) -> None:
        self._buckets[fingerprint >> 56].append(fingerprint)

    def repeated(self) -> set[int]:
        found: set[int] = set()
        for bucket in self._buckets:
            ordered = sorted(bucket)
            found.update(a for a, b in itertools.pairwise(ordered) if a == b)
        return found


def _report_duplicates(
    plan: _Plan,
    fingerprint: _Fingerprint,
    suspect_requests: set[int],
    suspect_session_ids: set[int],
    problems: _Problems,
) -> None:
    """Second pass, only after a fingerprint repeated: name both origins of each duplicate."""
    first_request: dict[tuple[ServiceName, bytes], tuple[int, str]] = {}
    first_session_id: dict[str, tuple[int, str]] = {}
    stream = _checked_requests(plan, _Problems(keep=0))
    for position, (variant, request) in enumerate(stream):
        here = (position, variant.origin)  # two tasks may share an origin: one line, `[{}, {}]`
        if fingerprint(plan, variant.service, request) in suspect_requests:
            identity = (variant.service, _request_json(request))
            first = first_request.setdefault(identity, here)
            if first != here:
                problems.add(
                    f"{variant.origin}: {variant.service} task: the same request as {first[1]} "
                    "(SessionId and SessionContext aside): change one, or use `repeat` for "
                    "deliberate copies"
                )
                continue  # one message for one mistake, whatever SessionId it repeats
        session_id = _own_session_id(request)
        if session_id is not None and _text_fingerprint(session_id) in suspect_session_ids:
            first = first_session_id.setdefault(session_id, here)
            if first != here:
                problems.add(
                    f"{variant.origin}: vod task: SessionId {session_id!r} is also sent by "
                    f"{first[1]}: VOD would refuse the second as a duplicate: give each its own "
                    "SessionId"
                )


# --- Messages -----------------------------------------------------------------------------------


def _format_loc(loc: Loc) -> str:
    """`("FileInfos", 0, "Url")` as `FileInfos[0].Url`."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _show(value: Any) -> str:
    """A value and its type as a message shows it: `2.5 (float)`."""
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({type(value).__name__})"


def _closest(name: str, choices: Iterable[str]) -> str | None:
    """The choice `name` most likely misspells (ignoring case), if any is close."""
    lowered = {choice.lower(): choice for choice in choices}
    close = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.6)
    return lowered[close[0]] if close else None


def _did_you_mean(name: str, choices: Iterable[str]) -> str | None:
    match = _closest(name, choices)
    return None if match is None else f"did you mean {match!r}?"


def _explain(
    detail: ErrorDetails,
    service: ServiceName,
    model: type[BaseModel],
    plan: _Plan,
    written: str | None = None,
) -> str:
    """One pydantic error as what is wrong and how to fix it; `written`: the YAML source text."""
    kind = detail["type"]
    loc = detail["loc"]
    where = _format_loc(loc)
    value = detail.get("input")
    context = detail.get("ctx", {})
    if kind == "missing":
        return f"{where} is required: {plan.missing_hint(service, where)}"
    if kind == "extra_forbidden":
        return _explain_unknown_parameter(loc, service, model)
    if kind == "value_error" and not loc:
        files = "FileInfos" if service == "vod" else "ImageInfos"
        return (
            f"no Prompt (and no {files}): give the task a Prompt, or the manifest a "
            "`prompt:` template"
        )
    if kind == "string_type":
        return f"{where} {_must_be_string(value, written)}"
    explainer = _TYPE_EXPLAINERS.get(kind)
    if explainer is not None:
        return f"{where} {explainer(value, context)}"
    return f"{where or 'request'}: {detail['msg']}"


def _explain_unknown_parameter(loc: Loc, service: ServiceName, model: type[BaseModel]) -> str:
    name = str(loc[-1])
    where = _format_loc(loc)
    parent: type[BaseModel] | None = model
    for part in loc[:-1]:
        if isinstance(part, str) and parent is not None and part in parent.model_fields:
            parent = _inner_model(parent.model_fields[part].annotation)
    if len(loc) == 1:
        other = next(s for s in SERVICE_NAMES if s != service)
        if name in request_model(other).model_fields:
            return (
                f"{name} is {_a(other)} parameter, not {_a(service)} one: set it under "
                f"defaults.{other} or on {other} tasks (`service: {other}`)"
            )
    hint = _did_you_mean(name, parent.model_fields if parent else ())
    return f"unknown parameter {where}: {hint or f'not a {service} parameter'}"


def _a(service: ServiceName) -> str:
    """The service with its article, as it is read aloud: "a vod", "an mps"."""
    return f"an {service}" if service == "mps" else f"a {service}"


def _must_be_string(value: Any, written: str | None) -> str:
    """`got 2.5 (float): quote it`; for `16:9` say that YAML made it 969."""
    if not isinstance(value, bool | int | float | date):
        return f"must be a string, got {_show(value)}"
    if written is None:
        written = str(value).lower() if isinstance(value, bool) else str(value)
    got = (
        _show(value) if written == str(value) else f"{written}, which YAML reads as {_show(value)}"
    )
    return f'must be a string, got {got}: quote it, e.g. "{written}"'


def _must_be_integer(value: Any, context: Mapping[str, Any]) -> str:
    fix = "write it without quotes" if isinstance(value, str) else "write a whole number"
    return f"must be an integer, got {_show(value)}: {fix}"


def _must_be_boolean(value: Any, context: Mapping[str, Any]) -> str:
    return f"must be true or false, got {_show(value)}"


def _must_be_one_of(value: Any, context: Mapping[str, Any]) -> str:
    return f"must be {context.get('expected', 'one of the listed values')}, got {_show(value)}"


def _must_be_object(value: Any, context: Mapping[str, Any]) -> str:
    return f"must be a mapping of parameters, got {_show(value)}"


def _must_be_list(value: Any, context: Mapping[str, Any]) -> str:
    return f"must be a list, got {_show(value)}"


def _too_long(value: Any, context: Mapping[str, Any]) -> str:
    unit = "characters" if isinstance(value, str) else "items"
    return f"takes at most {context.get('max_length')} {unit}, got {len(value)}: shorten it"


def _out_of_range(value: Any, context: Mapping[str, Any]) -> str:
    bounds = {"ge": "≥", "le": "≤", "gt": ">", "lt": "<"}
    limit = " and ".join(f"{sign} {context[key]}" for key, sign in bounds.items() if key in context)
    return f"must be {limit}, got {value!r}"


_TYPE_EXPLAINERS: Mapping[str, Callable[[Any, Mapping[str, Any]], str]] = {
    "int_type": _must_be_integer,
    "int_from_float": _must_be_integer,
    "bool_type": _must_be_boolean,
    "literal_error": _must_be_one_of,
    "model_type": _must_be_object,
    "model_attributes_type": _must_be_object,
    "dict_type": _must_be_object,
    "list_type": _must_be_list,
    "string_too_long": _too_long,
    "too_long": _too_long,
    "greater_than_equal": _out_of_range,
    "less_than_equal": _out_of_range,
    "greater_than": _out_of_range,
    "less_than": _out_of_range,
}
