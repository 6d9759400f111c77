"""A manifest as read, before any task is expanded: `Plan` and its parts (`RawTask`, `Defaults`,
the matrix, a CSV file's layout), how parameters merge over defaults, and the few rules about
names and values that both the YAML and the CSV reader apply.

    >>> merge({"OutputConfig": {"AspectRatio": "1:1", "Seed": 1}}, {"OutputConfig": {"Seed": 2}})
    {'OutputConfig': {'AspectRatio': '1:1', 'Seed': 2}}
"""

from __future__ import annotations

import re
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from batcher.api.services import SERVICE_NAMES, ServiceName
from batcher.manifest.coerce import Coercer
from batcher.manifest.task import Loc
from batcher.manifest.templates import Template

NOTHING_WRITTEN: Mapping[Loc, str] = types.MappingProxyType({})


@dataclass(slots=True)
class RawTask:
    """A task as written: its own parameters and variables, before defaults and templates."""

    origin: str
    service: ServiceName | None
    params: dict[str, Any]
    variables: dict[str, str]
    templates: tuple[tuple[Loc, Template], ...]
    """The strings of `params` that hold braces, parsed once (most tasks have none)."""
    written: Mapping[Loc, str]
    """YAML scalars that did not become strings, as written (`16:9` became 969)."""
    place: int = 0
    """Where the task is in the manifest: its index among the YAML tasks, or after them its CSV
    row number. Increasing in manifest order; `Manifest.tasks(start=)` resumes at one."""


@dataclass(slots=True)
class Defaults:
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
        return merge(self.common_params, self.section_params[service])

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
class MatrixVariable:
    name: str
    values: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CsvColumn:
    """A parameter column: where its cells go and how each service's type reads them."""

    index: int
    header: str
    loc: tuple[str, ...]
    coercers: Mapping[ServiceName, Coercer | None]


@dataclass(frozen=True, slots=True)
class CsvLayout:
    """A CSV file's header, read once, so that every row is only a lookup per cell."""

    path: Path
    display: str
    width: int
    service_index: int | None
    variables: tuple[tuple[int, str], ...]
    params: tuple[CsvColumn, ...]


@dataclass(frozen=True, slots=True)
class Plan:
    """Everything a pass needs to expand a manifest; no task is expanded yet."""

    path: Path
    display: str
    batch: str
    service: ServiceName | None
    repeat: int
    matrix_services: tuple[ServiceName, ...] = ()
    """`matrix: {service: [vod, mps]}`: the services of a task that names none
    (docs/manifests.md)."""
    defaults: Defaults = field(default_factory=Defaults)
    prompt: str | None = None
    matrix: tuple[MatrixVariable, ...] = ()
    tasks: tuple[RawTask, ...] = ()
    csv: CsvLayout | None = None
    lines: Mapping[Loc, int] = field(default_factory=dict)
    """YAML line of each top-level key, defaults entry and matrix variable, by path."""
    written: Mapping[Loc, str] = field(default_factory=dict)
    """The defaults' YAML scalars that did not become strings, as written, by path."""

    @property
    def default_services(self) -> tuple[ServiceName, ...]:
        """Where a task that names no service goes: the manifest's service, or the matrix's."""
        return (self.service,) if self.service is not None else self.matrix_services

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


def merge(defaults: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """`overrides` over `defaults`: objects merge key by key, anything else replaces.

    Unchanged subtrees are shared, not copied: nothing downstream mutates them (rendering copies
    on write), and a deep copy per CSV row would cost more than the rest of the row.
    """
    merged = dict(defaults)
    for key, value in overrides.items():
        base = merged.get(key)
        if isinstance(value, dict) and isinstance(base, dict):
            merged[key] = merge(base, value)
        else:
            merged[key] = value
    return merged


def is_variable_name(name: Any) -> bool:
    return isinstance(name, str) and re.fullmatch(r"[a-z][A-Za-z0-9_]*", name) is not None


def variable_text(value: Any) -> str | None:
    """A variable's value as placeholders insert it, or None for values that cannot be inserted."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    if isinstance(value, date):
        return value.isoformat()
    return None


def service_name(value: Any) -> ServiceName | None:
    for name in SERVICE_NAMES:
        if value == name:
            return name
    return None
