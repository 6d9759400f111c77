"""CSV files, a bare manifest or a YAML manifest's `csv:` include: the header checked once into a
`CsvLayout`, then the rows streamed one at a time as raw tasks, each cell coerced to its
parameter's type. Rows are numbered as a spreadsheet shows them: the header is row 1.
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from batcher.api import schema
from batcher.api.services import SERVICE_NAMES, ServiceName
from batcher.exceptions import ManifestError
from batcher.manifest.coerce import Coercer, cell_to_json, coercer_for
from batcher.manifest.files import CsvLines, CsvTextError, open_csv_text
from batcher.manifest.messages import did_you_mean
from batcher.manifest.plan import (
    NOTHING_WRITTEN,
    CsvColumn,
    CsvLayout,
    Plan,
    RawTask,
    is_variable_name,
    service_name,
)
from batcher.manifest.task import Loc, Problems
from batcher.manifest.templates import (
    BadTemplateError,
    Template,
    TemplateSyntaxError,
    may_be_template,
    parse_template,
    parse_templates_in,
)


def read_csv_layout(path: Path, display: str) -> CsvLayout:
    """Read and check a CSV header; ManifestError naming every bad column."""
    header = _read_csv_header(path, display)
    problems: list[str] = []
    service_index: int | None = None
    variables: list[tuple[int, str]] = []
    params: list[CsvColumn] = []
    seen: dict[str, int] = {}
    for index, raw_name in enumerate(header):
        name = raw_name.strip()
        where = f"{display}:row 1: column {index + 1}"
        problem = _csv_header_problem(name, seen)
        seen.setdefault(name, index + 1)
        if problem is not None:
            problems.append(f"{where}: {problem}")
        elif name == "service":
            service_index = index
        elif name[0].islower():
            variables.append((index, name))
        else:
            params.append(_csv_param_column(index, name))
    problems.extend(f"{display}:row 1: {problem}" for problem in _overlapping_columns(params))
    if problems:
        raise ManifestError(problems)
    return CsvLayout(path, display, len(header), service_index, tuple(variables), tuple(params))


def _read_csv_header(path: Path, display: str) -> list[str]:
    try:
        with open_csv_text(path, display) as stream:
            header = next(csv.reader(CsvLines(stream)), None)
    except UnicodeDecodeError:
        raise ManifestError([_not_utf8_message(path, display)]) from None
    except CsvTextError as error:
        raise ManifestError([f"{display}:row 1: {error}"]) from None
    except (OSError, csv.Error) as error:
        raise ManifestError([f"{display}: cannot read it: {error}"]) from None
    if not header:
        raise ManifestError(
            [
                f"{display}:row 1: no header: the first row must name the columns "
                "(Prompt, OutputConfig.AspectRatio, service, ...)"
            ]
        )
    return header


def _csv_header_problem(name: str, seen: Mapping[str, int]) -> str | None:
    if not name:
        return "has no name: name it (a parameter like Prompt) or delete the column"
    if name in seen:
        return f"{name!r} is also column {seen[name]}: keep one"
    if name == "service" or is_variable_name(name):
        return None
    if not name[0].isupper():
        return (
            f"{name!r} is neither a parameter (Upper-case, like Prompt) nor a variable "
            "(lower-case, like animal)"
        )
    if not any(schema.field_spec(s, name) is not None for s in SERVICE_NAMES):
        known = sorted({p for s in SERVICE_NAMES for p in schema.parameter_paths(s)})
        hint = did_you_mean(name, known) or "see the parameters in jobs/all-features.yaml"
        return f"{name!r} is not a vod or mps parameter: {hint}"
    return None


def _csv_param_column(index: int, name: str) -> CsvColumn:
    coercers = {
        service: coercer_for(schema.field_spec(service, name))
        for service in SERVICE_NAMES
    }
    return CsvColumn(index, name, tuple(name.split(".")), coercers)


def _overlapping_columns(columns: Iterable[CsvColumn]) -> Iterator[str]:
    """A column that sets a whole object cannot also be filled in part by a dotted one."""
    names = {column.header for column in columns}
    for column in columns:
        for length in range(1, len(column.loc)):
            parent = ".".join(column.loc[:length])
            if parent in names:
                yield f"columns {parent!r} and {column.header!r} both set {parent}: keep one"


def load_csv_plan(path: Path) -> Plan:
    display = str(path)
    layout = read_csv_layout(path, display)
    return Plan(path=path, display=display, batch=path.stem, service="vod", repeat=1, csv=layout)


def csv_tasks(
    layout: CsvLayout,
    default_services: tuple[ServiceName, ...],
    problems: Problems,
    first_place: int = 0,
    start: int = 0,
    shortcut: Callable[[list[str], int], bool] | None = None,
) -> Iterator[RawTask]:
    """One raw task per data row and service, read as a stream; bad cells are reported, their
    rows skipped. A row that names no service goes to each of `default_services`.

    A row's task is placed at `first_place` + its row number; rows placed before `start` are
    passed over unread (a resumed lane starts at its first task to send). A row `shortcut`
    takes (`fastlane`) is done with here: no raw task is made of it."""
    row_number = 1
    skip_to = start - first_place
    reader = _CsvRowReader(layout, default_services)
    try:
        with open_csv_text(layout.path, layout.display) as stream:
            lines = CsvLines(stream)
            rows = csv.reader(lines)
            next(rows, None)  # the header, checked when the manifest was loaded
            lines.new_row()
            for row in rows:
                lines.new_row()
                row_number += 1
                if row_number < skip_to or (shortcut is not None and shortcut(row, row_number)):
                    continue
                origin = f"{layout.display}:row {row_number}"
                for service in reader.services(row, origin, problems):
                    task = reader.task(row, origin, service, problems)
                    if task is not None:
                        task.place = first_place + row_number
                        yield task
    except UnicodeDecodeError:
        problems.add(_not_utf8_message(layout.path, layout.display))
    except CsvTextError as error:
        problems.add(f"{layout.display}:row {row_number + 1}: {error}")
    except csv.Error as error:
        problems.add(f"{layout.display}:row {row_number + 1}: malformed CSV: {error}")
    except OSError as error:
        problems.add(f"{layout.display}: cannot read it: {error.strerror}")


def _not_utf8_message(path: Path, display: str) -> str:
    """Where a file stops being UTF-8, by line: text is decoded in blocks, not rows."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    line = 1
    try:
        with path.open("rb") as stream:
            while block := stream.read(1 << 16):
                try:
                    decoder.decode(block)
                except UnicodeDecodeError as error:
                    line += block[: max(error.start, 0)].count(b"\n")
                    break
                line += block.count(b"\n")
    except OSError:
        pass
    return f"{display}:line {line}: not UTF-8 text: save it as UTF-8"


class _CsvRowReader:
    """Turns a CSV row into a raw task, with the work per cell decided once from the header."""

    __slots__ = ("_columns", "_default_services", "_layout")

    def __init__(self, layout: CsvLayout, default_services: tuple[ServiceName, ...]) -> None:
        self._layout = layout
        self._default_services = default_services
        # Per service: (cell index, top-level name if not dotted, dotted path, coercer, header).
        self._columns = {
            service: tuple(
                (
                    column.index,
                    column.loc[0] if len(column.loc) == 1 else None,
                    column.loc,
                    column.coercers[service],
                    column.header,
                )
                for column in layout.params
            )
            for service in SERVICE_NAMES
        }

    def services(
        self, row: list[str], origin: str, problems: Problems
    ) -> tuple[ServiceName, ...]:
        """The services a row's task goes to: none for a blank row or a wrong service cell."""
        layout = self._layout
        if len(row) != layout.width:
            if not _is_blank(row):
                problems.add(
                    f"{origin}: {len(row)} cells but the header names {layout.width} "
                    "columns: quote cells that contain commas"
                )
            return ()
        index = layout.service_index
        cell = row[index].strip() if index is not None else ""
        if not cell:
            if not self._default_services:
                problems.add(
                    f"{origin}: no service: fill the service column with vod or mps, "
                    "or set `service:` in the manifest"
                )
            return self._default_services
        service = service_name(cell)
        if service is None:
            problems.add(f"{origin}: service must be vod or mps, got {cell!r}")
            return ()
        return (service,)

    def task(
        self, row: list[str], origin: str, service: ServiceName, problems: Problems
    ) -> RawTask | None:
        """The row's task for `service`; None after reporting a bad cell, or for a blank row."""
        layout = self._layout
        params: dict[str, Any] = {}
        templates: list[tuple[Loc, Template]] = []
        for index, name, loc, coerce, header in self._columns[service]:
            cell = row[index]
            if not cell:
                continue  # an empty cell leaves the default
            if coerce is None and "{" not in cell and "}" not in cell:
                value: Any = cell  # the common case, kept free of calls
            else:
                try:
                    value = _cell_value(cell, loc, coerce, templates)
                except (ValueError, BadTemplateError) as error:
                    problems.add(f"{origin}: {service} task: column {header}: {error}")
                    return None
            if name is not None:
                params[name] = value
            else:
                _set_new(params, loc, value)
        variables = {name: row[index] for index, name in layout.variables if row[index]}
        if not params and not variables and _is_blank(row):
            return None  # a row of empty cells (a spreadsheet's trailing line) is not a task
        return RawTask(origin, service, params, variables, tuple(templates), NOTHING_WRITTEN)


def _is_blank(row: list[str]) -> bool:
    """A row with nothing in it: a blank line, or only empty cells."""
    return not "".join(row).strip()


def _cell_value(
    cell: str, loc: tuple[str, ...], coerce: Coercer | None, templates: list[tuple[Loc, Template]]
) -> Any:
    """A non-empty cell as its parameter's value; templated strings are noted in `templates`."""
    if coerce is cell_to_json:
        value = coerce(cell)
        templates.extend(parse_templates_in(value, loc))
        return value
    if may_be_template(cell):  # converted to the parameter's type once filled in
        try:
            templates.append((loc, parse_template(cell)))
        except TemplateSyntaxError as error:
            raise BadTemplateError(str(error)) from None
        return cell
    return cell if coerce is None else coerce(cell)


def _set_new(params: dict[str, Any], loc: tuple[str, ...], value: Any) -> None:
    """Set a dotted parameter in a dict built for one row (so nothing shared is changed)."""
    node = params
    for part in loc[:-1]:
        node = node.setdefault(part, {})
    node[loc[-1]] = value
