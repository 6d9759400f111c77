"""Expansion: a raw task becomes its variants, with the defaults merged under it, its `{name}`
placeholders filled in and the matrix applied; wrong defaults are reported once, at their line.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from batcher.api.models import field_annotation, request_model
from batcher.api.services import ServiceName
from batcher.manifest.coerce import Coercer, base_types, coercer_for
from batcher.manifest.messages import closest, explain
from batcher.manifest.plan import MatrixVariable, Plan, RawTask, merge
from batcher.manifest.task import Loc, Problems, format_loc
from batcher.manifest.templates import Template, may_be_template, parse_template, strings_in


@dataclass(slots=True)
class ServiceFrame:
    """What every task of one service starts from, prepared once per pass."""

    service: ServiceName
    model: type[BaseModel]
    params: dict[str, Any]
    variables: dict[str, str]
    templates: tuple[tuple[Loc, Template], ...]
    reported: frozenset[Loc]
    """Places whose default was already reported wrong: not repeated for every task."""
    lowercase_params: Mapping[str, str]
    coercers: dict[Loc, Coercer | None] = field(default_factory=dict)

    def coercer(self, loc: Loc) -> Coercer | None:
        if loc not in self.coercers:
            dotted = ".".join(str(part) for part in loc)
            inside_list = any(isinstance(part, int) for part in loc)
            annotation = None if inside_list else field_annotation(self.model, dotted)
            kinds = base_types(annotation)
            self.coercers[loc] = coercer_for(annotation) if bool in kinds or int in kinds else None
        return self.coercers[loc]


@dataclass(slots=True)
class Variant:
    """One expanded request before validation: a task with its matrix values filled in."""

    origin: str
    service: ServiceName
    params: dict[str, Any]
    raw: RawTask
    frame: ServiceFrame


class Expander:
    """Expands raw tasks into variants: defaults merged, placeholders filled, matrix applied."""

    def __init__(self, plan: Plan, problems: Problems) -> None:
        self._plan = plan
        self._problems = problems
        self._frames: dict[ServiceName, ServiceFrame] = {}
        self._matrix = {variable.name: variable for variable in plan.matrix}

    def frame(self, service: ServiceName) -> ServiceFrame:
        frame = self._frames.get(service)
        if frame is None:
            frame = self._frames[service] = _build_frame(self._plan, service, self._problems)
        return frame

    def expand(self, raw: RawTask) -> list[Variant]:
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
        merged = merge(frame.params, raw.params) if raw.params else frame.params
        templates = raw.templates
        if frame.templates:
            kept = frame.templates
            if raw.params:
                kept = tuple(entry for entry in kept if not task_sets(raw.params, entry[0]))
            templates = kept + templates
        if not templates:  # the common case of a CSV row: nothing to fill in, nothing to multiply
            if raw.variables and not self._variables_are_used(raw, frame, set()):
                return []
            return [Variant(raw.origin, service, merged, raw, frame)]
        names = {name for _, template in templates for name in template.names}
        placeholders_known = self._placeholders_are_known(raw, frame, templates)
        if not (self._variables_are_used(raw, frame, names) and placeholders_known):
            return []
        return self._render_variants(raw, frame, merged, templates, names)

    def _render_variants(
        self,
        raw: RawTask,
        frame: ServiceFrame,
        merged: dict[str, Any],
        templates: Sequence[tuple[Loc, Template]],
        names: set[str],
    ) -> list[Variant]:
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
                [] if params is None else [Variant(raw.origin, frame.service, params, raw, frame)]
            )
        variants = []
        for combination in itertools.product(*(axis.values for axis in axes)):
            values = fixed | dict(zip((axis.name for axis in axes), combination, strict=True))
            origin = _variant_origin(raw.origin, axes, combination)
            params = self._render(merged, templates, values, frame, origin)
            if params is not None:
                variants.append(Variant(origin, frame.service, params, raw, frame))
        return variants

    def _placeholders_are_known(
        self, raw: RawTask, frame: ServiceFrame, templates: Sequence[tuple[Loc, Template]]
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
                f"{format_loc(loc)}{source_note(self._plan, raw, frame, loc)}: set {name} on "
                f"the task, under defaults or in matrix{self._typo_hint(name, raw, frame)}"
            )
        return not unknown

    def _typo_hint(self, name: str, raw: RawTask, frame: ServiceFrame) -> str:
        own = closest(name, raw.variables)
        if own is not None:
            return f" (the task has {own!r}: a typo?)"
        other = closest(name, [*self._matrix, *frame.variables])
        return f" (did you mean {{{other}}}?)" if other else ""

    def _variables_are_used(self, raw: RawTask, frame: ServiceFrame, names: set[str]) -> bool:
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
        frame: ServiceFrame,
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
                        f"{origin}: {frame.service} task: {format_loc(loc)}: {error}"
                    )
                    return None
            _replace_at(params, loc, value)
        return params


def _build_frame(plan: Plan, service: ServiceName, problems: Problems) -> ServiceFrame:
    """Merge the defaults for one service and report their mistakes once, at their own lines."""
    model = request_model(service)
    params = plan.defaults.params_for(service)
    if plan.prompt is not None:
        params["Prompt"] = plan.prompt
    variables = plan.defaults.variables_for(service)
    templates = tuple((loc, parse_template(text)) for loc, text in strings_in(params, ()))
    reported = _check_defaults(plan, service, model, params, problems)
    lowercase = {name.lower(): name for name in model.model_fields}
    return ServiceFrame(service, model, params, variables, templates, reported, lowercase)


def _check_defaults(
    plan: Plan,
    service: ServiceName,
    model: type[BaseModel],
    params: dict[str, Any],
    problems: Problems,
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
                f"{explain(detail, service, model, plan, written)}"
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


def task_sets(params: Mapping[str, Any], loc: Loc) -> bool:
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


def _variant_origin(origin: str, axes: Sequence[MatrixVariable], values: Sequence[str]) -> str:
    if not axes:
        return origin
    chosen = ", ".join(f"{axis.name}={value}" for axis, value in zip(axes, values, strict=True))
    return f"{origin} ({chosen})"


def source_note(plan: Plan, raw: RawTask, frame: ServiceFrame, loc: Loc) -> str:
    """` (from defaults.vod, line 7)` when the value came from the manifest, not the task."""
    if task_sets(raw.params, loc):
        return ""
    source = plan.defaults_line(frame.service, loc)
    if source is None:
        return ""
    return f" (from {source[0]}, line {source[1]})"
