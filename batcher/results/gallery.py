"""`<out>/index.html` and `<out>/pages/`: the gallery of a batch's results, paged (docs/results.md).

The gallery needs no server and no network: inline CSS and script, the images referenced by
their paths relative to the output directory (`../` from the pages), so it works from `file://`
and from any static host. A Content-Security-Policy built from the hashes of that CSS and script
lets a page load nothing but images beside it and run nothing but its own script, so even an
escaping mistake could not run a prompt. Jinja2 escapes every value (prompts, parameters and
errors are user or server text) and is imported only here, when pages are written, so the CLI
starts without it::

    path = write_gallery(Path("spring-cats.results"), rows, title="spring-cats")

Layout, so that it opens at once whatever the batch's size:

- `index.html`: the counts per state, the filters (links to each state's first page) and the
  first page of every task's cards, with a window of page links; small at a million tasks.
- `pages/all-0001.html`, `pages/all-0002.html`...: every task, `PAGE_SIZE` cards a page, in
  manifest order; `pages/<state>-0001.html`...: the tasks of one state, in manifest order, a
  quarter to twice `PAGE_SIZE` cards a page (see `_Series`). Each page links to its previous
  and next, a window of its series' pages and its series' list of pages
  (`pages/<series>-pages.html`). A page holds nothing that depends on the rest of the batch (no
  counts, no time), so a rerun over a finished batch finds it identical and leaves it alone,
  and a task that changed state changes three pages: its own in every task's series, the one
  it left and the one it joined.

The rows are one stream, read once: each row's card is rendered as it arrives and added to the
open page of two series (every task's and its state's). A page is finished when its series'
next card arrives (so it knows it has a next) or when the stream ends; a finished page is
written, atomically, only if its bytes differ from the file on disk. `index.html` comes last,
with the final counts, and pages left over from a series that shrank are removed. Memory holds
one open page per series, never the batch. If the rows fail midway, the pages already finished
are the new ones and `index.html` is still the previous one, each file whole.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from batcher.results.rows import ResultRow, ResultState
from batcher.state.atomic import replaced_text_file

if TYPE_CHECKING:
    from jinja2 import Environment, Template

__all__ = ["ALL_SERIES", "GALLERY_HTML", "NO_IMAGE_TEXT", "PAGES_DIR", "PAGE_SIZE",
           "write_gallery"]

GALLERY_HTML = "index.html"
PAGES_DIR = "pages"
PAGE_SIZE = 200
"""Cards per page of every task (a state's pages: 50 to 400, 200 on average): a page of 200
cards is a few hundred KB and opens at once."""
ALL_SERIES = "all"
"""The series of every task (the others are named for their state)."""

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
_WINDOW = 3
"""Page links shown either side of the current page (the first and, when known, the last too)."""
_CHUNK = 64 * 1024
_TEMPLATES = "templates"
_PAGE_FILE = re.compile(r"(?P<series>[a-z_]+)-(?:(?P<number>[0-9]{4,})|pages)\.html")
"""A file of ours in pages/: a page of a series, or its list of pages."""


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
    href: str


@dataclass(frozen=True, slots=True)
class _Link:
    number: int
    href: str
    current: bool
    gap_before: bool


@dataclass(frozen=True, slots=True)
class _Pager:
    previous: str
    next: str
    links: tuple[_Link, ...]
    list: str


@dataclass(frozen=True, slots=True)
class _ListedPage:
    number: int
    href: str
    first: int
    last: int


@dataclass(frozen=True, slots=True)
class _SeriesName:
    name: str
    label: str
    list: str
    """Its list of pages, relative to pages/."""


def write_gallery(
    out_dir: Path,
    rows: Iterable[ResultRow],
    title: str,
    *,
    updated: datetime | None = None,
    page_size: int = PAGE_SIZE,
) -> Path:
    """Write the gallery of `rows` (read once, in manifest order) into `out_dir`; return the
    path of its `index.html`.

    Only pages whose content changed are rewritten; pages of a series that shrank are removed.
    `updated`, if given, is shown on `index.html` (when the collector last looked); `page_size`
    is the number of cards on a page of every task (a state's pages: a quarter to twice that).
    """
    if page_size < 1:
        raise ValueError(f"page_size must be at least 1, not {page_size}")
    gallery = _Gallery(out_dir, title, page_size)
    for row in rows:
        gallery.add(row)
    return gallery.finish(updated)


class _Gallery:
    """One writing of the gallery: the series being paged, the first page kept for the index."""

    def __init__(self, out_dir: Path, title: str, page_size: int) -> None:
        self._out_dir = out_dir
        self._size = page_size
        self._pages = _PageFiles(out_dir / PAGES_DIR, title)
        self._card = self._pages.template("card.html.j2")
        self._every = _Series(_series_name(ALL_SERIES), self._pages, page_size)
        self._by_state: dict[ResultState, _Series] = {}
        self._first: list[str] = []
        """The first page's cards as index.html shows them (paths without `../`)."""

    def add(self, row: ResultRow) -> None:
        card = _card(row)
        html = self._card.render(card=card, base="../")
        if len(self._first) < self._size:
            self._first.append(self._card.render(card=card, base=""))
        self._every.add(html, row.key)
        series = self._by_state.get(row.state)
        if series is None:
            series = _Series(_series_name(row.state), self._pages, self._size)
            self._by_state[row.state] = series
        series.add(html, row.key)

    def finish(self, updated: datetime | None) -> Path:
        every = [self._every, *self._by_state.values()]
        for series in every:
            series.close()
            if series.pages:
                self._pages.write_list(series)
        self._pages.remove_stale({series.name.name: series.pages for series in every})
        path = self._out_dir / GALLERY_HTML
        self._pages.write_if_changed(path, self._index(updated))
        return path

    def _index(self, updated: datetime | None) -> str:
        from markupsafe import Markup  # Jinja2's own dependency: imported with it, late

        pages = self._every.pages
        return self._pages.render(
            "index.html.j2",
            updated=updated,
            total=self._every.count,
            counts=[
                _Count(state.value, _label(state), self._by_state[state].count,
                       f"{PAGES_DIR}/{_page_name(state.value, 1)}")
                for state in ResultState if state in self._by_state
            ],
            cards=[Markup(card) for card in self._first],
            pager=_pager(1, pages, pages > 1, _index_page_href,
                         f"{PAGES_DIR}/{_list_name(ALL_SERIES)}"),
        )


class _Series:
    """The pages of one series as they are written: the open page's cards, the sizes so far.

    Every task's series is cut every `page_size` cards: no task ever leaves it, so its pages
    never shift. A state's series changes as tasks come and go, and a cut every `page_size`
    would shift every later page by one card; so its pages end after a card whose key's hash is
    a multiple of `page_size` (a quarter to twice `page_size` cards a page, `page_size` on
    average): a task joining or leaving a state changes the one page it is on.
    """

    def __init__(self, name: _SeriesName, pages: _PageFiles, page_size: int) -> None:
        self.name = name
        self.count = 0
        self.sizes: list[int] = []
        """Cards on each page written so far (one small int a page, never a card)."""
        self._files = pages
        self._size = page_size
        self._fixed = name.name == ALL_SERIES
        self._open: list[str] = []
        self._cut_after_last = False

    @property
    def pages(self) -> int:
        return len(self.sizes)

    def add(self, card: str, key: str) -> None:
        if self._open and self._page_ends():
            self._write_open(has_next=True)
        self._open.append(card)
        self._cut_after_last = _is_cut(key, self._size)
        self.count += 1

    def close(self) -> None:
        """Write the last page (the stream has ended)."""
        if self._open:
            self._write_open(has_next=False)

    def _page_ends(self) -> bool:
        cards = len(self._open)
        if self._fixed:
            return cards >= self._size
        return cards >= 2 * self._size or (cards >= max(1, self._size // 4)
                                           and self._cut_after_last)

    def _write_open(self, *, has_next: bool) -> None:
        from markupsafe import Markup

        number, first = self.pages + 1, self.count - len(self._open) + 1
        name = self.name.name
        self._files.write_page(
            _page_name(name, number),
            series=self.name,
            number=number,
            cards_on_page=len(self._open),
            # A state's page shows no ordinals: they shift as tasks come and go.
            first=first if self._fixed else 0,
            last=first + len(self._open) - 1,
            cards=[Markup(card) for card in self._open],
            pager=_pager(number, None, has_next, lambda n: _page_name(name, n),
                         _list_name(name)),
        )
        self.sizes.append(len(self._open))
        self._open = []


def _is_cut(key: str, page_size: int) -> bool:
    """Whether a state's page ends after this task's card (the same answer on every run)."""
    return zlib.crc32(key.encode("utf-8")) % page_size == 0


class _PageFiles:
    """Renders the gallery's pages and writes each only if it changed."""

    def __init__(self, directory: Path, title: str) -> None:
        self._directory = directory
        self._environment = _environment()
        style, script = _asset("gallery.css"), _asset("gallery.js")
        self._common = {"title": title, "style": style, "script": script,
                        "policy": _content_security_policy(style, script)}

    def template(self, name: str) -> Template:
        return self._environment.get_template(name)

    def render(self, template: str, **values: Any) -> str:
        from markupsafe import Markup

        common = {name: Markup(value) if name in ("style", "script") else value
                  for name, value in self._common.items()}
        return self.template(template).render(**common, **values)

    def write_page(self, name: str, **values: Any) -> None:
        self.write_if_changed(self._directory / name, self.render("page.html.j2", **values))

    def write_list(self, series: _Series) -> None:
        name = series.name.name
        self.write_if_changed(
            self._directory / _list_name(name),
            self.render("pages.html.j2", series=series.name, count=series.count,
                        page_count=series.pages, pages=_listed(name, series.sizes)),
        )

    def write_if_changed(self, path: Path, text: str) -> bool:
        """Replace `path` with `text` atomically unless it already holds exactly that."""
        data = text.encode("utf-8")
        if _holds(path, data):
            return False
        with replaced_text_file(path) as stream:
            stream.write(text)
        return True

    def remove_stale(self, pages_by_series: Mapping[str, int]) -> None:
        """Remove our files beyond each series' last page, and those of series now empty."""
        if not self._directory.is_dir():
            return
        ours = {ALL_SERIES, *(state.value for state in ResultState)}
        for path in self._directory.iterdir():
            match = _PAGE_FILE.fullmatch(path.name)
            if match is None or match["series"] not in ours:
                continue
            pages = pages_by_series.get(match["series"], 0)
            number = match["number"]
            if (pages == 0) if number is None else (int(number) > pages):
                path.unlink(missing_ok=True)


def _listed(series: str, sizes: list[int]) -> Iterator[_ListedPage]:
    last = 0
    for number, size in enumerate(sizes, start=1):
        yield _ListedPage(number, _page_name(series, number), last + 1, last + size)
        last += size


def _holds(path: Path, data: bytes) -> bool:
    """Whether the file at `path` has exactly these bytes (size first, then a digest)."""
    try:
        if path.stat().st_size != len(data):
            return False
        digest = hashlib.sha256()
        with path.open("rb") as stream:
            while chunk := stream.read(_CHUNK):
                digest.update(chunk)
    except FileNotFoundError:
        return False
    return digest.digest() == hashlib.sha256(data).digest()


def _pager(
    number: int, last: int | None, has_next: bool, href: Callable[[int], str], list_href: str
) -> _Pager:
    """Page `number`'s links: previous, next, the first page, `_WINDOW` pages either side and
    the last page when it is known (index.html knows it; a page does not, it is written first).
    """
    upper = last if last is not None else number + (1 if has_next else 0)
    shown = {1, *range(max(1, number - _WINDOW), min(upper, number + _WINDOW) + 1)}
    if last is not None:
        shown.add(last)
    links, previous = [], 0
    for n in sorted(shown):
        links.append(_Link(n, href(n), n == number, n - previous > 1))
        previous = n
    return _Pager(
        previous=href(number - 1) if number > 1 else "",
        next=href(number + 1) if has_next else "",
        links=tuple(links),
        list=list_href,
    )


def _index_page_href(number: int) -> str:
    return GALLERY_HTML if number == 1 else f"{PAGES_DIR}/{_page_name(ALL_SERIES, number)}"


def _page_name(series: str, number: int) -> str:
    return f"{series}-{number:04d}.html"


def _list_name(series: str) -> str:
    return f"{series}-pages.html"


def _series_name(series: str) -> _SeriesName:
    label = "every task" if series == ALL_SERIES else _label(ResultState(series))
    return _SeriesName(series, label, _list_name(series))


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


def _label(state: ResultState) -> str:
    return state.value.replace("_", " ")


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
