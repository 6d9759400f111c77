"""`{name}` placeholders in manifest strings: parsing them and filling them in.

    >>> template = parse_template("a {animal} in {style} style, {{literal braces}}")
    >>> template.names
    ('animal', 'style')
    >>> template.render({"animal": "cat", "style": "ink"})
    'a cat in ink style, {literal braces}'

A placeholder is `{name}` with `name` an identifier (letters, digits, `_`); `{{` and `}}` stand for
literal braces, as in `str.format`. Any other brace is an error rather than literal text: a stray
brace is far more often a typo than intent, and a JSON string that must reach the API verbatim is
written with doubled braces. Unlike `str.format` there are no attributes, indexes or format specs,
so a manifest can never reach into Python objects. Which names are known is the caller's business.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from batcher.manifest.task import Loc, format_loc

_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class TemplateSyntaxError(ValueError):
    """Braces that are neither a placeholder nor doubled; the message says how to fix it."""


@dataclass(frozen=True, slots=True)
class Template:
    """A parsed string: `literals[i]` comes before `names[i]`, and `literals[-1]` ends it."""

    literals: tuple[str, ...]
    names: tuple[str, ...]

    def render(self, values: Mapping[str, str]) -> str:
        """The string with every placeholder replaced; `KeyError` for a name `values` lacks."""
        pieces = [self.literals[0]]
        for name, literal in zip(self.names, self.literals[1:], strict=True):
            pieces.append(values[name])
            pieces.append(literal)
        return "".join(pieces)


def may_be_template(text: str) -> bool:
    """False when `text` has no brace at all, so it is certainly literal: the cheap common case."""
    return "{" in text or "}" in text


def parse_template(text: str) -> Template:
    """Split `text` into literal text and placeholder names; `TemplateSyntaxError` if malformed."""
    literals: list[str] = []
    names: list[str] = []
    pending: list[str] = []
    position = 0
    for match in _TOKEN.finditer(text):
        pending.append(text[position : match.start()])
        token = match.group(0)
        if token in ("{{", "}}"):
            pending.append(token[0])
        elif match.group(1) is not None and _NAME.fullmatch(match.group(1)):
            literals.append("".join(pending))
            pending = []
            names.append(match.group(1))
        else:
            raise TemplateSyntaxError(_explain_bad_brace(token))
        position = match.end()
    pending.append(text[position:])
    literals.append("".join(pending))
    return Template(tuple(literals), tuple(names))


def _explain_bad_brace(token: str) -> str:
    if token in ("{", "}"):
        return f"unmatched {token!r}: write {token * 2!r} for a literal brace"
    return (
        f"{token!r} is not a placeholder: a placeholder is {{name}} (letters, digits, _); "
        "write {{ and }} for literal braces"
    )


class BadTemplateError(ValueError):
    """A malformed template, with the parameter it is in."""


def parse_templates_in(value: Any, loc: Loc) -> tuple[tuple[Loc, Template], ...]:
    """Every string inside `value` that holds braces, parsed; `BadTemplateError` if malformed."""
    templates = []
    for string_loc, text in strings_in(value, loc):
        try:
            templates.append((string_loc, parse_template(text)))
        except TemplateSyntaxError as error:
            raise BadTemplateError(f"{format_loc(string_loc)}: {error}") from None
    return tuple(templates)


def strings_in(value: Any, loc: Loc) -> Iterator[tuple[Loc, str]]:
    """Every string inside a parameter value that may hold a placeholder, with its place."""
    if isinstance(value, str):
        if may_be_template(value):
            yield loc, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from strings_in(item, (*loc, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from strings_in(item, (*loc, index))
