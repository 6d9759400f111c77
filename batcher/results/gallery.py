"""`<out>/index.html`: the gallery, one self-contained page for a batch's results (SPEC §9).

The page needs no server and no network: inline CSS and script, the images referenced by their
paths relative to the output directory, so it works from `file://` and from any static host. A
Content-Security-Policy built from the hashes of that CSS and script lets the page load nothing
but images beside it and run nothing but its own script, so even an escaping mistake could not
run a prompt. Jinja2 escapes every value (prompts, parameters and errors are user or server
text) and is imported only here, when a page is written, so the CLI starts without it::

    path = write_gallery(Path("spring-cats.results"), rows, title="spring-cats")

The cards are rendered as the rows arrive into a spool (memory, then a temporary file beside the
page) while the states are counted, since the counts head the page; then the page is written
around them and replaces the old one atomically.
"""

from __future__ import annotations

import base64
import hashlib
import json
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import IO, TYPE_CHECKING, Any

from batcher.results.rows import ResultRow, ResultState
from batcher.state.atomic import replaced_text_file

if TYPE_CHECKING:
    from jinja2 import Environment

__all__ = ["GALLERY_HTML", "NO_IMAGE_TEXT", "write_gallery"]

GALLERY_HTML = "index.html"

NO_IMAGE_TEXT: Mapping[ResultState, str] = {
    ResultState.NOT_SUBMITTED: "not submitted yet",
    ResultState.FAILED: "submission failed",
    ResultState.IN_DOUBT: "submission in doubt",
    ResultState.PENDING: "generating…",
    ResultState.GENERATED: "generated, not downloaded yet",
    ResultState.DOWNLOADED: "no image in the output",
    ResultState.GENERATION_FAILED: "generation failed",
    ResultState.EXPIRED: "URL expired before download",
    ResultState.LOST: "lost: TaskId not found",
}
"""What a card shows in place of an image, by the task's state."""

_IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".gif", ".avif", ".bmp"})
_PROMPT_PARAMETER = "Prompt"
"""Shown as the card's prompt, so not again among its parameters."""
_SPOOL_IN_MEMORY = 1024 * 1024
"""The cards stay in memory up to this many characters, then spill to a temporary file."""
_CHUNK = 64 * 1024
_TEMPLATES = "templates"


@dataclass(frozen=True, slots=True)
class _File:
    href: str
    name: str
    is_image: bool


@dataclass(frozen=True, slots=True)
class _Card:
    """A row as its card shows it: everything the template needs, nothing to compute there."""

    row: ResultRow
    label: str
    files: tuple[_File, ...]
    no_image_text: str
    parameters: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class _Count:
    state: str
    label: str
    count: int


def write_gallery(
    out_dir: Path, rows: Iterable[ResultRow], title: str, *, updated: datetime | None = None
) -> Path:
    """Replace `<out_dir>/index.html` with a card per row; return its path.

    `updated`, if given, is shown under the title (when the collector last looked).
    """
    environment = _environment()
    counts: Counter[ResultState] = Counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.SpooledTemporaryFile(
        max_size=_SPOOL_IN_MEMORY, mode="w+", encoding="utf-8", dir=str(out_dir)
    ) as spool:
        _render_cards(environment, _counted(rows, counts), spool)
        spool.seek(0)
        path = out_dir / GALLERY_HTML
        with replaced_text_file(path) as out:
            out.writelines(_render_page(environment, title, updated, counts, spool))
    return path


def _render_cards(environment: Environment, rows: Iterable[ResultRow], spool: IO[str]) -> None:
    cards = (_card(row) for row in rows)
    # One write per piece: SpooledTemporaryFile checks its size after each write(), but after
    # a whole writelines() only, so writelines() would hold every card in memory.
    for piece in environment.get_template("cards.html.j2").generate(cards=cards):
        spool.write(piece)


def _render_page(
    environment: Environment,
    title: str,
    updated: datetime | None,
    counts: Counter[ResultState],
    cards: IO[str],
) -> Iterator[str]:
    from markupsafe import Markup  # Jinja2's own dependency: imported with it, late

    style, script = _asset("gallery.css"), _asset("gallery.js")
    return environment.get_template("index.html.j2").generate(
        title=title,
        updated=updated,
        total=sum(counts.values()),
        counts=_counts(counts),
        cards=(Markup(chunk) for chunk in _chunks(cards)),
        style=Markup(style),
        script=Markup(script),
        policy=_content_security_policy(style, script),
    )


def _environment() -> Environment:
    from jinja2 import Environment, PackageLoader, StrictUndefined

    return Environment(
        loader=PackageLoader("batcher.results", _TEMPLATES),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def _counted(rows: Iterable[ResultRow], counts: Counter[ResultState]) -> Iterator[ResultRow]:
    for row in rows:
        counts[row.state] += 1
        yield row


def _card(row: ResultRow) -> _Card:
    return _Card(
        row=row,
        label=_label(row.state),
        files=tuple(_file(path) for path in row.files),
        no_image_text=NO_IMAGE_TEXT[row.state],
        parameters=tuple(
            (name, value)
            for name, value in _flattened(row.params)
            if name != _PROMPT_PARAMETER
        ),
    )


def _file(relative_path: str) -> _File:
    path = PurePosixPath(relative_path)
    return _File(
        href=relative_path, name=path.name, is_image=path.suffix.lower() in _IMAGE_SUFFIXES
    )


def _flattened(params: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, str]]:
    """Nested objects as dotted names (`OutputConfig.AspectRatio`), as manifests write them."""
    for name, value in params.items():
        dotted = f"{prefix}{name}"
        if isinstance(value, Mapping):
            yield from _flattened(value, f"{dotted}.")
        elif isinstance(value, str):
            yield dotted, value
        else:
            yield dotted, json.dumps(value, ensure_ascii=False)


def _counts(counts: Counter[ResultState]) -> list[_Count]:
    """The states present, in the order of `ResultState` (the life of a task)."""
    return [
        _Count(state.value, _label(state), counts[state]) for state in ResultState if counts[state]
    ]


def _label(state: ResultState) -> str:
    return state.value.replace("_", " ")


def _chunks(stream: IO[str]) -> Iterator[str]:
    while chunk := stream.read(_CHUNK):
        yield chunk


def _asset(name: str) -> str:
    return resources.files("batcher.results").joinpath(_TEMPLATES, name).read_text("utf-8")


def _content_security_policy(style: str, script: str) -> str:
    """Nothing from the network; only the page's own style and script; images beside it."""
    return "; ".join(
        (
            "default-src 'none'",
            "img-src 'self' file:",
            f"style-src {_hash_source(style)}",
            f"script-src {_hash_source(script)}",
            "base-uri 'none'",
            "form-action 'none'",
        )
    )


def _hash_source(text: str) -> str:
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return f"'sha256-{base64.b64encode(digest).decode('ascii')}'"
