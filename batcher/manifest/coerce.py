"""How a text cell (a CSV cell, or a templated string once filled in) becomes a value of its
parameter's type, read from the request model's annotations.

    >>> cell_to_int(" 42 "), cell_to_bool("Yes")
    (42, True)
"""

from __future__ import annotations

import json
import re
import types
from collections.abc import Callable, Iterator
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel

Coercer = Callable[[str], Any]

_WHOLE_NUMBER = re.compile(r"\s*[+-]?[0-9]+\s*")
_BOOLEAN_WORDS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}


def cell_to_int(cell: str) -> int:
    if not _WHOLE_NUMBER.fullmatch(cell):
        raise ValueError(f"{cell!r} is not a whole number: write e.g. 42")
    return int(cell)


def cell_to_bool(cell: str) -> bool:
    value = _BOOLEAN_WORDS.get(cell.strip().lower())
    if value is None:
        raise ValueError(f"{cell!r} is not a yes/no value: write true or false")
    return value


def cell_to_json(cell: str) -> Any:
    try:
        return json.loads(cell)
    except json.JSONDecodeError as error:
        raise ValueError(
            f"is not valid JSON ({error.msg}, character {error.pos + 1}): write it as JSON, "
            'e.g. [{"Type": "Url", "Url": "https://..."}]'
        ) from None


def coercer_for(annotation: Any) -> Coercer | None:
    """How a text cell becomes a value of this parameter's type; None: the text as it is."""
    kinds = base_types(annotation)
    if bool in kinds:
        return cell_to_bool
    if int in kinds:
        return cell_to_int
    for kind in kinds:
        if get_origin(kind) in (list, dict) or kind in (list, dict) or _is_model(kind):
            return cell_to_json
    return None


def base_types(annotation: Any) -> list[Any]:
    """The types an annotation admits, with `Annotated[...]` and `| None` peeled off."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return base_types(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        return [
            kind
            for arg in get_args(annotation)
            if arg is not type(None)
            for kind in base_types(arg)
        ]
    return [annotation]


def _is_model(kind: Any) -> bool:
    return isinstance(kind, type) and issubclass(kind, BaseModel)


def inner_model(annotation: Any) -> type[BaseModel] | None:
    """The model a parameter holds, directly or as list items (`FileInfos`)."""
    for kind in base_types(annotation):
        if _is_model(kind):
            return kind  # type: ignore[no-any-return]
        if get_origin(kind) is list:
            return inner_model(get_args(kind)[0])
    return None


def parameter_paths(model: type[BaseModel], prefix: str = "") -> Iterator[str]:
    """Every dotted parameter a CSV header can name: `Prompt`, `OutputConfig.AspectRatio`, ..."""
    for name, info in model.model_fields.items():
        yield prefix + name
        nested = inner_model(info.annotation)
        if nested is not None and get_origin(base_types(info.annotation)[0]) is not list:
            yield from parameter_paths(nested, f"{prefix}{name}.")
