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

from collections.abc import Iterator, Mapping
from typing import Any

from batcher.api.schema_table import MODELS, PROMPT_OR, REQUESTS

Spec = Mapping[str, Any]

_INT64 = 1 << 63
"""Integers beyond 64 bits are left to pydantic, which has its own path for them."""


class _Undecided(Exception):
    """The table cannot say the value is valid: pydantic decides (and explains)."""


_UNDECIDED = _Undecided()


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


def _model(model: str, value: Any, partial: bool) -> dict[str, Any]:
    """A model's fields in declaration order, None left out (`exclude_none`)."""
    if type(value) is not dict:
        raise _UNDECIDED
    fields = MODELS[model]
    if len(value) > len(fields) or not value.keys() <= _NAMES[model]:
        raise _UNDECIDED  # an unknown parameter: pydantic names it and guesses the right one
    wire: dict[str, Any] = {}
    for name, spec in fields:
        if name not in value:
            if spec.get("required") and not partial:
                raise _UNDECIDED
            continue
        item = value[name]
        if item is None:
            if not spec.get("optional"):
                raise _UNDECIDED
            continue
        wire[name] = _value(spec, item, partial)
    inputs = PROMPT_OR.get(model)
    if inputs is not None and not partial and not wire.get("Prompt") and not wire.get(inputs):
        raise _UNDECIDED
    return wire


def _value(spec: Spec, value: Any, partial: bool) -> Any:
    kind = spec["type"]
    if kind == "str":
        if type(value) is not str or not (value.isascii() or _encodable(value)):
            raise _UNDECIDED
        choices = spec.get("choices")
        if choices is not None and value not in choices:
            raise _UNDECIDED
        _check_length(spec, value)
        return value
    if kind == "int":
        if type(value) is not int or not -_INT64 <= value < _INT64:
            raise _UNDECIDED
        low, high = spec.get("ge"), spec.get("le")
        if (low is not None and value < low) or (high is not None and value > high):
            raise _UNDECIDED
        return value
    if kind == "bool":
        if type(value) is not bool:
            raise _UNDECIDED
        return value
    if kind == "model":
        return _model(spec["model"], value, partial)
    if kind == "list" and type(value) is list:
        _check_length(spec, value)
        return [_value(spec["items"], item, partial) for item in value]
    raise _UNDECIDED


def _check_length(spec: Spec, value: str | list[Any]) -> None:
    longest, shortest = spec.get("max_length"), spec.get("min_length")
    if (longest is not None and len(value) > longest) or (
        shortest is not None and len(value) < shortest
    ):
        raise _UNDECIDED


def _encodable(text: str) -> bool:
    """False for a lone surrogate, which pydantic may treat differently: left to it."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


_NAMES = {model: frozenset(name for name, _ in fields) for model, fields in MODELS.items()}


def fields_of(model: str) -> tuple[str, ...]:
    """A model's field names (a name from `REQUESTS` or a nested `model` of a spec)."""
    return tuple(name for name, _ in MODELS[model])


def request_model_name(service: str) -> str:
    return REQUESTS[service]


def field_spec_of(model: str, name: str) -> Spec | None:
    """The spec of one field of a model, or None if it has no such field."""
    return dict(MODELS[model]).get(name)


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
