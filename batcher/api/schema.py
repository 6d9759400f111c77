"""The request models' rules as a table: validation of the common request without pydantic.

`batcher.api.models` is the contract; importing pydantic and building those models costs more
than the rest of `batcher plan` of a small manifest. `schema_table` holds the same fields, types,
literals, lengths and bounds as plain data (generated from the models by `schema_gen`, checked
for drift by a test), and `check_request` applies them to a request in strict mode.

The table only ever says "valid, and this is what pydantic would serialise" or "undecided": any
value it does not accept (a wrong type, a bound crossed, an unknown field, an unusual string)
is left to the models, which decide and explain. So the table never changes what is valid or
what a message says; it only spares the import when nothing is wrong.

    >>> check_request("mps", {"Prompt": "a cat", "EnhancePrompt": True})
    {'Prompt': 'a cat', 'EnhancePrompt': True}
    >>> check_request("mps", {"Prompt": "a cat", "EnhancePrompt": "yes"}) is None
    True
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from batcher.api.schema_table import MODELS, PROMPT_OR, REQUESTS

Spec = Mapping[str, Any]

_INT64 = 1 << 63
"""Integers beyond 64 bits are left to pydantic, which has its own path for them."""


class _Undecided(Exception):
    """The table cannot say the value is valid: pydantic decides (and explains)."""



def check_request(service: str, params: Any) -> dict[str, Any] | None:
    """The request as `model.to_wire()` would give it, if the table finds it valid; else None.

    Strict, like the manifest's pydantic validation: no numeric strings, no floats for integers.
    """
    try:
        return _model(REQUESTS[service], params, partial=False)
    except _Undecided:
        return None


def defaults_are_valid(service: str, params: Any) -> bool:
    """True when these defaults hold no mistake of their own (missing fields aside: tasks add
    them); False when the table cannot tell, and pydantic must look."""
    try:
        _model(REQUESTS[service], params, partial=True)
    except _Undecided:
        return False
    return True


def field_spec(service: str, dotted: str) -> Spec | None:
    """The spec of a dotted parameter (`OutputConfig.AspectRatio`), or None if there is none."""
    model: str | None = REQUESTS[service]
    spec: Spec | None = None
    for part in dotted.split("."):
        if model is None:
            return None
        spec = field_spec_of(model, part)
        if spec is None:
            return None
        model = spec.get("model")
    return spec


def field_names(service: str) -> tuple[str, ...]:
    """The top-level parameters of a service's request, in declaration order."""
    return fields_of(REQUESTS[service])


def parameter_paths(service: str) -> Iterator[str]:
    """Every dotted parameter a CSV header can name: `Prompt`, `OutputConfig.AspectRatio`, ..."""
    return _paths(REQUESTS[service], "")


def _paths(model: str, prefix: str) -> Iterator[str]:
    for name, spec in MODELS[model]:
        yield prefix + name
        if spec["type"] == "model":
            yield from _paths(spec["model"], f"{prefix}{name}.")


def max_length(service: str, dotted: str) -> int:
    """The documented length limit of a string parameter."""
    spec = field_spec(service, dotted)
    if spec is None or "max_length" not in spec:
        raise KeyError(f"{service} {dotted} has no length limit")
    limit: int = spec["max_length"]
    return limit


def fields_of(model: str) -> tuple[str, ...]:
    """A model's field names (a name from `REQUESTS` or a nested `model` of a spec)."""
    return tuple(name for name, _ in MODELS[model])


def request_model_name(service: str) -> str:
    return REQUESTS[service]


def field_spec_of(model: str, name: str) -> Spec | None:
    """The spec of one field of a model, or None if it has no such field."""
    return _SPECS[model].get(name)


def inner_model(spec: Spec | None) -> str | None:
    """The model a field holds, directly or as list items (`FileInfos`)."""
    if spec is None:
        return None
    if spec["type"] == "list":
        return inner_model(spec["items"])
    model: str | None = spec.get("model")
    return model


def model_accepts(service: str, params: Any) -> bool:
    """What the request model says of a request the table left undecided (imports pydantic)."""
    from pydantic import ValidationError  # only here: the table decides the common request

    from batcher.api.models import request_model

    try:
        request_model(service).__pydantic_validator__.validate_python(params, strict=True)
    except ValidationError:
        return False
    return True


Check = Callable[[Any, bool], Any]
"""A field's check: (value, partial) to its wire value, or `_Undecided` raised."""


def _model(model: str, value: Any, partial: bool) -> dict[str, Any]:
    wire: dict[str, Any] = _CHECKS[model](value, partial)
    return wire


def _model_check(model: str) -> Check:
    """A model's fields in declaration order, None left out (`exclude_none`); unknown fields,
    missing required ones and the Prompt rule left to pydantic (`partial`: the last two are
    not checked, as for defaults that tasks complete)."""
    fields = tuple(
        (name, bool(spec.get("required")), bool(spec.get("optional")), _check(spec))
        for name, spec in MODELS[model]
    )
    names = frozenset(name for name, _ in MODELS[model])
    inputs = PROMPT_OR.get(model)

    def check(value: Any, partial: bool) -> dict[str, Any]:
        if type(value) is not dict or not value.keys() <= names:
            raise _Undecided  # an unknown parameter: pydantic names it and guesses the right one
        wire: dict[str, Any] = {}
        for name, required, optional, check_field in fields:
            if name in value:
                item = value[name]
                if item is not None:
                    wire[name] = check_field(item, partial)
                elif not optional:
                    raise _Undecided
            elif required and not partial:
                raise _Undecided
        if inputs is not None and not partial and not wire.get("Prompt") and not wire.get(inputs):
            raise _Undecided
        return wire

    return check


def _check(spec: Spec) -> Check:
    kind = spec["type"]
    if kind == "str":
        return _text_check(spec)
    if kind == "int":
        return _integer_check(spec.get("ge"), spec.get("le"))
    if kind == "bool":
        return _boolean_check
    if kind == "model":
        nested = spec["model"]
        return lambda value, partial: _CHECKS[nested](value, partial)
    if kind == "list":
        return _list_check(spec)
    raise ValueError(f"schema_table: unknown type {kind!r}")  # schema_gen writes no other


def _text_check(spec: Spec) -> Check:
    choices = frozenset(spec["choices"]) if "choices" in spec else None
    longest, shortest = spec.get("max_length"), spec.get("min_length")

    def check(value: Any, partial: bool) -> Any:
        if type(value) is not str or not (value.isascii() or _encodable(value)):
            raise _Undecided
        if choices is not None and value not in choices:
            raise _Undecided
        if (longest is not None and len(value) > longest) or (
            shortest is not None and len(value) < shortest
        ):
            raise _Undecided
        return value

    return check


def _integer_check(low: int | None, high: int | None) -> Check:
    low = -_INT64 if low is None else max(low, -_INT64)
    high = _INT64 - 1 if high is None else min(high, _INT64 - 1)

    def check(value: Any, partial: bool) -> Any:
        if type(value) is not int or not low <= value <= high:
            raise _Undecided
        return value

    return check


def _boolean_check(value: Any, partial: bool) -> Any:
    if type(value) is not bool:
        raise _Undecided
    return value


def _list_check(spec: Spec) -> Check:
    check_item = _check(spec["items"])
    longest, shortest = spec.get("max_length"), spec.get("min_length")

    def check(value: Any, partial: bool) -> Any:
        if type(value) is not list:
            raise _Undecided
        if (longest is not None and len(value) > longest) or (
            shortest is not None and len(value) < shortest
        ):
            raise _Undecided
        return [check_item(item, partial) for item in value]

    return check


def _encodable(text: str) -> bool:
    """False for a lone surrogate, which pydantic may treat differently: left to it."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


_SPECS: dict[str, dict[str, Spec]] = {model: dict(fields) for model, fields in MODELS.items()}
_CHECKS: dict[str, Check] = {model: _model_check(model) for model in MODELS}
