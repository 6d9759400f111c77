"""How a text cell (a CSV cell, or a templated string once filled in) becomes a value of its
parameter's type, read from the request model's spec in `batcher.api.schema`.

    >>> cell_to_int(" 42 "), cell_to_bool("Yes")
    (42, True)
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from batcher.api.schema import Spec

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


MAX_JSON_DEPTH = 100
"""Nesting of a JSON cell's lists and objects; an API parameter nests a few levels. Deeper is
refused before it is parsed: `json.loads` recurses, and so does every later walk."""

_TOO_DEEP = (
    f"is nested more than {MAX_JSON_DEPTH} levels deep: an API parameter nests a few levels"
)


def cell_to_json(cell: str) -> Any:
    if _json_depth_exceeds(cell, MAX_JSON_DEPTH):
        raise ValueError(_TOO_DEEP)
    try:
        return json.loads(cell)
    except RecursionError:  # pragma: no cover - the depth is bounded above
        raise ValueError(_TOO_DEEP) from None
    except json.JSONDecodeError as error:
        raise ValueError(
            f"is not valid JSON ({error.msg}, character {error.pos + 1}): write it as JSON, "
            'e.g. [{"Type": "Url", "Url": "https://..."}]'
        ) from None


def _json_depth_exceeds(text: str, limit: int) -> bool:
    """Whether brackets outside JSON strings nest deeper than `limit` (an upper bound of the
    depth: a malformed text is left for `json.loads` to explain)."""
    if text.count("[") + text.count("{") <= limit:
        return False  # the common case: too few brackets to nest that deep
    depth = 0
    in_string = escaped = False
    for character in text:
        if in_string:
            if escaped:
                escaped = False
            elif character == "\\":
                escaped = True
            elif character == '"':
                in_string = False
        elif character == '"':
            in_string = True
        elif character in "[{":
            depth += 1
            if depth > limit:
                return True
        elif character in "]}":
            depth -= 1
    return False


def coercer_for(spec: Spec | None) -> Coercer | None:
    """How a text cell becomes a value of this parameter's type (its `schema` spec, None for an
    unknown parameter); None: the text as it is."""
    kind = None if spec is None else spec["type"]
    if kind == "bool":
        return cell_to_bool
    if kind == "int":
        return cell_to_int
    if kind in ("list", "model"):
        return cell_to_json
    return None
