"""A YAML manifest read into a `Plan`: its top-level keys, defaults, prompt, matrix, tasks and
`csv:` include, with every structural mistake collected and reported in line order.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from batcher.api.services import SERVICE_NAMES, ServiceName
from batcher.exceptions import ManifestError
from batcher.manifest.csv_source import read_csv_layout
from batcher.manifest.messages import did_you_mean, show
from batcher.manifest.plan import (
    NOTHING_WRITTEN,
    CsvLayout,
    Defaults,
    MatrixVariable,
    Plan,
    RawTask,
    is_variable_name,
    service_name,
    variable_text,
)
from batcher.manifest.task import Loc
from batcher.manifest.templates import (
    BadTemplateError,
    TemplateSyntaxError,
    parse_template,
    parse_templates_in,
)
from batcher.manifest.yaml_nodes import (
    compose_yaml,
    line_of,
    node_entries,
    read_text,
    record_lines,
    record_written,
)

TOP_LEVEL_KEYS = ("batch", "service", "defaults", "prompt", "matrix", "tasks", "csv", "repeat")


def load_yaml_plan(path: Path) -> Plan:
    display = str(path)
    root, data = compose_yaml(read_text(path, display), display)
    if root is None:
        raise ManifestError([f"{display}: the manifest is empty: see jobs/all-features.yaml"])
    if not isinstance(data, dict):
        raise ManifestError(
            [f"{display}:{line_of(root)}: a manifest is a mapping (batch:, defaults:, tasks:, ...)"]
        )
    return _YamlPlanReader(path, display, root, data).read()


class _YamlPlanReader:
    """Turns a YAML manifest's top-level mapping into a `Plan`, collecting every mistake."""

    def __init__(self, path: Path, display: str, root: yaml.Node, data: dict[Any, Any]) -> None:
        self.path = path
        self.display = display
        self.data = data
        self.entries = node_entries(root)
        self.lines: dict[Loc, int] = {}
        self.written: dict[Loc, str] = {}  # of the defaults
        self.problems: list[tuple[int, str]] = []  # (line, message), reported in line order
        self.matrix_services: tuple[ServiceName, ...] = ()  # `matrix: {service: [vod, mps]}`

    def read(self) -> Plan:
        for name, (key_node, _) in self.entries.items():
            self.lines[(name,)] = line_of(key_node)
        self._check_top_level_keys()
        defaults = self._defaults()
        prompt = self._prompt()
        if prompt is not None and defaults.sets_prompt():
            self._problem(("prompt",), "both `prompt` and a Prompt under defaults: keep one")
        matrix = self._matrix(defaults.variable_names())
        service = self._service()
        if service is not None and self.matrix_services:
            self._problem(("service",), "service is set here and is a matrix variable: keep one")
        tasks = self._tasks()
        csv_layout = self._csv()
        # An absent `tasks` with no CSV is the one implicit task; `tasks: []` is no task at all.
        if "tasks" not in self.data and csv_layout is None:
            implicit_line = self.lines.get(("prompt",)) or self.lines.get(("defaults",)) or 1
            implicit = RawTask(f"{self.display}:{implicit_line}", None, {}, {}, (), {})
            tasks = (implicit,)
        plan = Plan(
            path=self.path,
            display=self.display,
            batch=self._batch(),
            service=service,
            matrix_services=self.matrix_services,
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
                hint = did_you_mean(text, TOP_LEVEL_KEYS) or f"use {', '.join(TOP_LEVEL_KEYS)}"
            self._problem((text,), f"unknown manifest key {text!r}: {hint}")

    def _batch(self) -> str:
        value = self.data.get("batch", self.path.stem)
        if not isinstance(value, str) or not value:
            self._problem(
                ("batch",), f"batch must be a non-empty string, got {show(value)}: quote it"
            )
            return self.path.stem
        return value

    def _service(self) -> ServiceName | None:
        if "service" not in self.data:
            return None
        service = service_name(self.data["service"])
        if service is None:
            self._problem(
                ("service",), f"service must be vod or mps, got {show(self.data['service'])}"
            )
        return service

    def _repeat(self) -> int:
        value = self.data.get("repeat", 1)
        if type(value) is not int or value < 1:
            self._problem(("repeat",), f"repeat must be a whole number ≥ 1, got {show(value)}")
            return 1
        return value

    def _prompt(self) -> str | None:
        value = self.data.get("prompt")
        if value is None:
            if "prompt" in self.data:
                self._problem(("prompt",), "prompt is empty: write the Prompt template or drop it")
            return None
        if not isinstance(value, str):
            self._problem(("prompt",), f"prompt must be a string, got {show(value)}: quote it")
            return None
        try:
            parse_template(value)
        except TemplateSyntaxError as error:
            self._problem(("prompt",), f"prompt: {error}")
        return value

    # defaults -------------------------------------------------------------------------------

    def _defaults(self) -> Defaults:
        defaults = Defaults()
        node = self._value_node("defaults")
        value = self.data.get("defaults")
        if node is not None:
            record_lines(node, ("defaults",), self.lines)
            record_written(node, ("defaults",), self.written)
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
            parse_templates_in(value, loc[1:])
        except BadTemplateError as error:
            self._problem(loc, str(error))

    # matrix ---------------------------------------------------------------------------------

    def _matrix(self, defaults_variables: set[str]) -> tuple[MatrixVariable, ...]:
        value = self.data.get("matrix")
        node = self._value_node("matrix")
        if node is not None:
            record_lines(node, ("matrix",), self.lines)
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
    ) -> MatrixVariable | None:
        loc: Loc = ("matrix", str(name))
        if name == "service":
            self.matrix_services = self._matrix_services(loc, values)
            return None
        if not is_variable_name(name):
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
            text = variable_text(value)
            if text is None:
                self._problem(loc, f"matrix.{name}: {show(value)} is not a string or a number")
                return None
            if text in texts:
                self._problem(loc, f"matrix.{name} lists {text!r} twice: keep one")
                return None
            texts.append(text)
        return MatrixVariable(name, tuple(texts))

    def _matrix_services(self, loc: Loc, values: Any) -> tuple[ServiceName, ...]:
        """`matrix: {service: [vod, mps]}`: every task that names no service goes to each."""
        services: list[ServiceName] = []
        for value in values if isinstance(values, list) else ():
            service = service_name(value)
            if service is None:
                self._problem(loc, f"matrix.service: {show(value)} is not vod or mps")
                return ()
            if service in services:
                self._problem(loc, f"matrix.service lists {service!r} twice: keep one")
                return ()
            services.append(service)
        if not services:
            self._problem(loc, "matrix.service must be a non-empty list, e.g. [vod, mps]")
        return tuple(services)

    # tasks ----------------------------------------------------------------------------------

    def _tasks(self) -> tuple[RawTask, ...]:
        value = self.data.get("tasks")
        node = self._value_node("tasks")
        if value is None:
            return ()
        if not isinstance(value, list) or not isinstance(node, yaml.SequenceNode):
            self._problem(("tasks",), "tasks must be a list, one `- ` item per task")
            return ()
        tasks = []
        for place, (item, item_node) in enumerate(zip(value, node.value, strict=True)):
            task = self._task(item, item_node)
            if task is not None:
                task.place = place
                tasks.append(task)
        return tuple(tasks)

    def _task(self, value: Any, node: yaml.Node) -> RawTask | None:
        line = line_of(node)
        if value is None:
            value = {}
        if not isinstance(value, dict):
            self._problem_at(
                line,
                "a task is a mapping of parameters and variables, "
                f"e.g. {{Prompt: a red car}}, got {show(value)}",
            )
            return None
        params: dict[str, Any] = {}
        variables: dict[str, str] = {}
        service: ServiceName | None = None
        found_problem = False
        for key, item in value.items():
            problem = None
            if key == "service":
                service = service_name(item)
                if service is None:
                    problem = f"service must be vod or mps, got {show(item)}"
            else:
                problem = _sort_key(key, item, params, variables)
            if problem is not None:
                self._problem_at(line, problem)
                found_problem = True
        try:
            templates = parse_templates_in(params, ())
        except BadTemplateError as error:
            self._problem_at(line, str(error))
            return None
        if found_problem:
            return None
        written: dict[Loc, str] = {}
        record_written(node, (), written)
        origin = f"{self.display}:{line}"
        return RawTask(origin, service, params, variables, templates, written or NOTHING_WRITTEN)

    # csv ------------------------------------------------------------------------------------

    def _csv(self) -> CsvLayout | None:
        value = self.data.get("csv")
        if value is None:
            return None
        if not isinstance(value, str) or not value:
            self._problem(("csv",), "csv must be a file path, relative to the manifest")
            return None
        csv_path = self.path.parent / value
        try:
            return read_csv_layout(csv_path, str(csv_path))
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
    if not is_variable_name(key):
        return f"variable {key!r}: a variable name is letters, digits and _"
    text = variable_text(value)
    if text is None:
        hint = (
            f"; parameters start with an upper-case letter ({key[0].upper()}{key[1:]})"
            if isinstance(value, dict | list)
            else ""
        )
        return f"variable {key!r} must be a string or a number, got {show(value)}{hint}"
    variables[key] = text
    return None
