"""Every explanation a user reads about a wrong value: a pydantic error turned into what is
wrong and how to fix it, with the value as written in the file.

    >>> show(2.5)
    '2.5 (float)'
    >>> did_you_mean("AspectRatoi", ["AspectRatio", "Resolution"])
    "did you mean 'AspectRatio'?"
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping
from datetime import date
from typing import TYPE_CHECKING, Any

from batcher.api.models import request_model
from batcher.api.services import SERVICE_NAMES, ServiceName
from batcher.manifest.coerce import inner_model
from batcher.manifest.task import Loc, format_loc

if TYPE_CHECKING:
    from pydantic import BaseModel
    from pydantic_core import ErrorDetails

    from batcher.manifest.plan import Plan


def show(value: Any) -> str:
    """A value and its type as a message shows it: `2.5 (float)`."""
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({type(value).__name__})"


def closest(name: str, choices: Iterable[str]) -> str | None:
    """The choice `name` most likely misspells (ignoring case), if any is close."""
    lowered = {choice.lower(): choice for choice in choices}
    close = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.6)
    return lowered[close[0]] if close else None


def did_you_mean(name: str, choices: Iterable[str]) -> str | None:
    match = closest(name, choices)
    return None if match is None else f"did you mean {match!r}?"


def explain(
    detail: ErrorDetails,
    service: ServiceName,
    model: type[BaseModel],
    plan: Plan,
    written: str | None = None,
) -> str:
    """One pydantic error as what is wrong and how to fix it; `written`: the YAML source text."""
    kind = detail["type"]
    loc = detail["loc"]
    where = format_loc(loc)
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
    if kind in ("int_type", "int_from_float"):
        return f"{where} {_must_be_integer(value, written)}"
    if kind == "string_type":
        return f"{where} {_must_be_string(value, written)}"
    explainer = _TYPE_EXPLAINERS.get(kind)
    if explainer is not None:
        return f"{where} {explainer(value, context)}"
    return f"{where or 'request'}: {detail['msg']}"


def _explain_unknown_parameter(loc: Loc, service: ServiceName, model: type[BaseModel]) -> str:
    name = str(loc[-1])
    where = format_loc(loc)
    parent: type[BaseModel] | None = model
    for part in loc[:-1]:
        if isinstance(part, str) and parent is not None and part in parent.model_fields:
            parent = inner_model(parent.model_fields[part].annotation)
    if len(loc) == 1:
        other = next(s for s in SERVICE_NAMES if s != service)
        if name in request_model(other).model_fields:
            return (
                f"{name} is {_a(other)} parameter, not {_a(service)} one: set it under "
                f"defaults.{other} or on {other} tasks (`service: {other}`)"
            )
    hint = did_you_mean(name, parent.model_fields if parent else ())
    return f"unknown parameter {where}: {hint or f'not a {service} parameter'}"


def _a(service: ServiceName) -> str:
    """The service with its article, as it is read aloud: "a vod", "an mps"."""
    return f"an {service}" if service == "mps" else f"a {service}"


def _must_be_string(value: Any, written: str | None) -> str:
    """`got 2.5 (float): quote it`; for `16:9` say that YAML made it 969."""
    if not isinstance(value, bool | int | float | date):
        return f"must be a string, got {show(value)}"
    if written is None:
        written = str(value).lower() if isinstance(value, bool) else str(value)
    got = show(value) if written == str(value) else f"{written}, which YAML reads as {show(value)}"
    return f'must be a string, got {got}: quote it, e.g. "{written}"'


def _must_be_integer(value: Any, written: str | None) -> str:
    """`got '42' (str): write it without quotes` only when the file had quotes around 42."""
    quoted = written is not None and written[:1] in ("'", '"')
    number = isinstance(value, str) and value.strip().lstrip("+-").isdigit()
    fix = "write it without quotes" if quoted and number else "write a whole number"
    return f"must be an integer, got {show(value)}: {fix}"


def _must_be_boolean(value: Any, context: Mapping[str, Any]) -> str:
    return f"must be true or false, got {show(value)}"


def _must_be_one_of(value: Any, context: Mapping[str, Any]) -> str:
    return f"must be {context.get('expected', 'one of the listed values')}, got {show(value)}"


def _must_be_object(value: Any, context: Mapping[str, Any]) -> str:
    return f"must be a mapping of parameters, got {show(value)}"


def _must_be_list(value: Any, context: Mapping[str, Any]) -> str:
    return f"must be a list, got {show(value)}"


def _too_long(value: Any, context: Mapping[str, Any]) -> str:
    unit = "characters" if isinstance(value, str) else "items"
    return f"takes at most {context.get('max_length')} {unit}, got {len(value)}: shorten it"


def _out_of_range(value: Any, context: Mapping[str, Any]) -> str:
    bounds = {"ge": "≥", "le": "≤", "gt": ">", "lt": "<"}
    limit = " and ".join(f"{sign} {context[key]}" for key, sign in bounds.items() if key in context)
    return f"must be {limit}, got {value!r}"


_TYPE_EXPLAINERS: Mapping[str, Callable[[Any, Mapping[str, Any]], str]] = {
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
