"""The keyed pass's fast lane: plain CSV rows keyed straight from their cells.

A CSV of a million rows is mostly rows of one shape: the same service, the same columns filled,
plain text and numbers, no placeholder. The first row of a shape goes the whole way once (merged
over the defaults and validated by the request model); once one row of a shape is valid, a later
row of that shape differs from it only in its cells' values. So each later row needs only its
cells converted and checked against their own fields' limits (literals, lengths, bounds), and its
key is the SHA-256 of the canonical JSON written around those cells: no task, no dict, no model.

A row the lane cannot decide (a cell that fails its check, a placeholder, a JSON or SessionId
column, a template variable, templated or null defaults, `repeat`) goes the whole way instead, so
the lane never changes what is valid, what a key is, or what a message says
(tests/test_fastlane.py keys every row both ways). It serves only the keys-only pass
(`Manifest.validate(on_key=...)`, which `plan` and `submit` use to compare with a ledger).
"""

from __future__ import annotations

import hashlib
import json.encoder
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

from batcher.api import schema
from batcher.api.services import ServiceName
from batcher.manifest.coerce import cell_to_bool, cell_to_int
from batcher.manifest.expand import Expander, ServiceFrame
from batcher.manifest.images import (
    IMAGE_COUNT_AT,
    MODEL_FIELDS,
    SUB_APP_ID,
    task_images,
    task_model,
    task_sub_app_id,
)
from batcher.manifest.keys import KEY_HEX_CHARS, SESSION_ID_PREFIX, UNKEYED_PARAMS, canonical_json
from batcher.manifest.plan import CsvColumn, CsvLayout, Plan, merge, service_name
from batcher.manifest.task import TaskKey

_encode_text: Callable[[str], str] = json.encoder.encode_basestring
"""The string encoder of `keys.canonical_json` (UTF-8 text, not `\\u` escapes)."""

Convert = Callable[[str], str | None]
"""A cell as canonical JSON text, or None when the row must go the whole way."""


class _Slot:
    """Marks where a cell goes in a shape's merged parameters while they are encoded."""

    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index


class _Shape(NamedTuple):
    service: ServiceName
    parts: list[str]
    """The canonical JSON of the key's document, cut at the cells: a cell goes at each slot."""
    slots: tuple[tuple[int, int, Convert], ...]
    """(position in `parts`, cell index, conversion)."""
    bills: Callable[[list[str]], tuple[int, str, int | None]]
    """A row's images, model and SubAppId (`batcher.manifest.images`)."""


_THIS_ROW_IS_WRONG = _Shape("vod", [], (), lambda row: (1, "", None))
"""`_compile`'s answer for a shape it could decide whose first row is invalid: not cached."""


class RowShortcut:
    """Keys the rows it can decide and hands them to `emit`; says False for the others."""

    __slots__ = (
        "_columns", "_emit", "_expander", "_first_place", "_layout", "_plan", "_shapes",
        "_with_params",
    )

    def __init__(
        self, plan: Plan, layout: CsvLayout, expander: Expander, emit: Callable[[TaskKey], None],
        first_place: int, with_params: bool = False,
    ) -> None:
        self._with_params = with_params
        self._plan = plan
        self._layout = layout
        self._expander = expander
        self._emit = emit
        self._first_place = first_place
        self._columns = {column.index: column for column in layout.params}
        self._shapes: dict[tuple[str, tuple[bool, ...]], _Shape | None] = {}

    def __call__(self, row: list[str], row_number: int) -> bool:
        """True when the row is keyed and emitted here; False: it must go the whole way."""
        layout = self._layout
        if len(row) != layout.width:
            return False
        index = layout.service_index
        shape_key = (row[index] if index is not None else "", tuple(map(bool, row)))
        shape = self._shapes.get(shape_key)
        if shape is None:
            if shape_key in self._shapes:
                return False  # a shape this lane does not decide
            shape = self._compile(row, shape_key)
            if shape is _THIS_ROW_IS_WRONG:
                return False  # the row's value, not the shape: the next row may compile it
            self._shapes[shape_key] = shape
            if shape is None:
                return False
        parts = shape.parts.copy()
        for position, cell_index, convert in shape.slots:
            text = convert(row[cell_index])
            if text is None:
                return False
            parts[position] = text
        params = "".join(parts[1:-1])
        document = f"{parts[0]}{params}{parts[-1]}".encode()
        key = hashlib.sha256(document).hexdigest()[:KEY_HEX_CHARS]
        place = self._first_place + row_number
        sent = params if self._with_params else None
        images, model, app = shape.bills(row)
        if shape.service != "vod":
            self._emit(TaskKey(key, shape.service, None, place, sent, images, model, app))
            return True
        session_id = SESSION_ID_PREFIX + key
        if sent is not None:  # the parameters sent: the derived SessionId too (hex, no escape)
            sent = f'{params[:-1]},"SessionId":"{session_id}"}}'
        self._emit(TaskKey(key, shape.service, session_id, place, sent, images, model, app))
        return True

    def _compile(self, row: list[str], shape_key: tuple[str, tuple[bool, ...]]) -> _Shape | None:
        """The shape of `row`, if this lane decides it and `row` itself is valid; None if the
        lane does not decide the shape; `_THIS_ROW_IS_WRONG` if only this row's values fail."""
        service = self._service(shape_key[0])
        if service is None or self._plan.repeat != 1 or not any(shape_key[1]):
            return None  # a row of empty cells is not a task: the whole way says so
        frame = self._expander.frame(service)
        if frame.templates or frame.reported or _holds_none(frame.params):
            return None
        if any(shape_key[1][index] for index, _ in self._layout.variables):
            return None
        params: dict[str, Any] = {}
        converts: dict[int, Convert] = {}
        for index, filled in enumerate(shape_key[1]):
            column = self._columns.get(index)
            if not filled or column is None:
                continue
            convert = _converter(column, service)
            if convert is None or column.loc[0] in UNKEYED_PARAMS:
                return None
            converts[index] = convert
            _set(params, column.loc, _Slot(index))
        merged = merge(frame.params, params)
        if "SessionId" in merged:
            return None  # a SessionId of the manifest's own: duplicates are the whole way's
        if self._with_params and not UNKEYED_PARAMS.isdisjoint(merged):
            return None  # the parameters sent would differ from the keyed ones
        if not self._row_is_valid(row, frame, merged, converts):
            return _THIS_ROW_IS_WRONG
        keyed = {name: value for name, value in merged.items() if name not in UNKEYED_PARAMS}
        parts = [f'{{"batch":{canonical_json(self._plan.batch)},"copy":0,"params":']
        slots: list[tuple[int, int, Convert]] = []
        for piece in _encode(keyed):
            if isinstance(piece, _Slot):
                slots.append((len(parts), piece.index, converts[piece.index]))
                parts.append("")
            else:
                parts.append(piece)
        parts.append(f',"service":{canonical_json(service)}}}')
        return _Shape(service, parts, tuple(slots), _bills(service, merged, self._columns))

    def _service(self, cell: str) -> ServiceName | None:
        if not cell.strip():
            services = self._plan.default_services
            return services[0] if len(services) == 1 else None
        return service_name(cell.strip())

    def _row_is_valid(
        self, row: list[str], frame: ServiceFrame, merged: dict[str, Any],
        converts: dict[int, Convert],
    ) -> bool:
        """What the request model says of this row, with its cells converted as the slow way
        converts them."""
        if any(convert(row[index]) is None for index, convert in converts.items()):
            return False
        params: dict[str, Any] = {}
        for index in converts:
            column = self._columns[index]
            _set(params, column.loc, _cell_value(row[index], column, frame.service))
        request = merge(frame.params, params)
        if schema.check_request(frame.service, request) is not None:
            return True
        return schema.model_accepts(frame.service, request)


def _bills(
    service: ServiceName, merged: dict[str, Any], columns: dict[int, CsvColumn]
) -> Callable[[list[str]], tuple[int, str, int | None]]:
    """How a row of this shape says what it bills: fixed by the shape, unless a cell of the row
    holds the image count, the model or the SubAppId."""
    wanted = (IMAGE_COUNT_AT[service], *((name,) for name in MODEL_FIELDS), (SUB_APP_ID,))
    cells = [slot for slot in (_at(merged, loc) for loc in wanted) if isinstance(slot, _Slot)]
    if not cells:
        fixed = (task_images(service, merged), task_model(service, merged),
                 task_sub_app_id(service, merged))
        return lambda row: fixed

    def bills(row: list[str]) -> tuple[int, str, int | None]:
        params: dict[str, Any] = {}
        for loc in wanted:
            value = _at(merged, loc)
            if isinstance(value, _Slot):
                value = _cell_value(row[value.index], columns[value.index], service)
            if value is not None:
                _set(params, loc, value)
        return (task_images(service, params), task_model(service, params),
                task_sub_app_id(service, params))

    return bills


def _at(params: dict[str, Any], loc: tuple[str, ...]) -> Any:
    node: Any = params
    for part in loc:
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def _cell_value(cell: str, column: CsvColumn, service: ServiceName) -> Any:
    coerce = column.coercers[service]
    return cell if coerce is None else coerce(cell)


def _set(params: dict[str, Any], loc: tuple[str, ...], value: Any) -> None:
    node = params
    for part in loc[:-1]:
        node = node.setdefault(part, {})
    node[loc[-1]] = value


def _holds_none(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, dict):
        return any(_holds_none(item) for item in value.values())
    if isinstance(value, list):
        return any(_holds_none(item) for item in value)
    return False


def _encode(value: Any) -> Iterator[str | _Slot]:
    """`canonical_json(value)` in pieces, with each `_Slot` left in place of its cell."""
    if isinstance(value, _Slot):
        yield value
    elif isinstance(value, dict) and _has_slot(value):
        yield "{"
        for position, name in enumerate(sorted(value)):
            yield f"{',' if position else ''}{_encode_text(name)}:"
            yield from _encode(value[name])
        yield "}"
    else:
        yield canonical_json(value)


def _has_slot(value: Any) -> bool:
    if isinstance(value, _Slot):
        return True
    return isinstance(value, dict) and any(_has_slot(item) for item in value.values())


def _converter(column: CsvColumn, service: ServiceName) -> Convert | None:
    """How a cell of this column becomes canonical JSON text, its field's limits checked (from
    the schema table); None when the field is not a plain string, integer, boolean or string
    literal."""
    spec = schema.field_spec(service, column.header)
    if spec is None or not spec.keys() <= _PLAIN_SPEC_KEYS:
        return None
    kind = spec["type"]
    coerce = column.coercers[service]
    if kind == "str" and coerce is None:
        return _text_check(spec.get("choices"), spec.get("max_length"))
    if kind == "int" and coerce is cell_to_int:
        return _integer_check(spec.get("ge"), spec.get("le"))
    if kind == "bool" and coerce is cell_to_bool:
        return _boolean
    return None


_PLAIN_SPEC_KEYS = frozenset({"type", "required", "optional", "choices", "max_length", "ge", "le"})
"""What the lane's checks cover; a field with any other rule goes the whole way."""


def _boolean(cell: str) -> str | None:
    if "{" in cell or "}" in cell:
        return None
    try:
        return "true" if cell_to_bool(cell) else "false"
    except ValueError:
        return None


def _text_check(choices: tuple[str, ...] | None, max_length: int | None) -> Convert:
    allowed = None if choices is None else frozenset(choices)

    def convert(cell: str) -> str | None:
        if "{" in cell or "}" in cell:
            return None  # a placeholder: the whole way, where templates are filled
        if allowed is not None and cell not in allowed:
            return None
        if max_length is not None and len(cell) > max_length:
            return None
        return _encode_text(cell)

    return convert


def _integer_check(low: int | None, high: int | None) -> Convert:
    def convert(cell: str) -> str | None:
        try:
            value = cell_to_int(cell)
        except ValueError:
            return None
        if (low is not None and value < low) or (high is not None and value > high):
            return None
        return str(value)

    return convert
