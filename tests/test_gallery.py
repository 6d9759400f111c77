"""What the user gets (docs/results.md): `results.csv` and the gallery page, this in a real browser
too."""

from __future__ import annotations

import csv
import subprocess
import sys
import tracemalloc
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote, unquote

import pytest

from batcher.results.gallery import NO_IMAGE_TEXT, write_gallery
from batcher.results.rows import ResultRow, ResultState
from batcher.results.table import RESULTS_CSV_HEADER, write_results_csv
from tests.browser import Element, dump_dom, parse_html, png_bytes

HOSTILE_PROMPT = """<script>document.body.dataset.pwned = "1"</script> a 'cat' & "dog" </p>"""
HOSTILE_ERROR = '<img src=x onerror="document.body.dataset.pwned=2">'


def row(key: str, state: ResultState, *files: str, **fields: object) -> ResultRow:
    values: dict[str, object] = {
        "service": "vod",
        "source": f"jobs/cats.yaml:{len(key) + 2}",
        "prompt": f"a cat called {key}",
        "params": {"Prompt": f"a cat called {key}", "ModelName": "GEM"},
        "task_id": f"1500-AigcImage-{key}" if state is not ResultState.NOT_SUBMITTED else "",
    }
    values.update(fields)
    return ResultRow(key=key, state=state, files=files, **values)  # type: ignore[arg-type]


def mixed_rows() -> list[ResultRow]:
    """Every state once or more, a hostile prompt, two images on one task, a missing file."""
    return [
        row("k-two", ResultState.DOWNLOADED, "img/k-two-1.png", "img/k two #2.png",
            params={"Prompt": "x", "ModelName": "GEM", "OutputConfig": {"AspectRatio": "16:9"},
                    "SubAppId": 251007502, "Seed": None}),
        row("k-hostile", ResultState.DOWNLOADED, "img/k-hostile.png", prompt=HOSTILE_PROMPT,
            params={"NegativePrompt": "<b>bold</b>"}),
        row("k-missing", ResultState.DOWNLOADED, "img/not-there.png"),
        row("k-failed", ResultState.GENERATION_FAILED, error_code="ContentModerationFailed",
            error_message=HOSTILE_ERROR),
        row("k-mps", ResultState.GENERATION_FAILED, service="mps", error_code="FAIL",
            error_message="model busy"),
        row("k-pending", ResultState.PENDING),
        row("k-generated", ResultState.GENERATED),
        row("k-expired", ResultState.EXPIRED),
        row("k-lost", ResultState.LOST, task_id="", error_code="lost",
            error_message="SessionId batcher-abc not found by DescribeTasks"),
        row("k-not-sent", ResultState.NOT_SUBMITTED),
        row("k-submit-failed", ResultState.FAILED, task_id="", error_code="InvalidParameter"),
        row("k-doubt", ResultState.IN_DOUBT, service="mps", task_id=""),
    ]


IMAGE_SIZES = {"img/k-two-1.png": (64, 48), "img/k two #2.png": (40, 40),
               "img/k-hostile.png": (30, 20)}


def write_images(out: Path) -> None:
    for relative, (width, height) in IMAGE_SIZES.items():
        (out / relative).parent.mkdir(parents=True, exist_ok=True)
        (out / relative).write_bytes(png_bytes(width, height, (40 + width, 90, 160)))


def cards_of(document: Element) -> dict[str, Element]:
    cards = document.find_all("article", "card")
    by_key = {card.attrs["id"].removeprefix("task-"): card for card in cards}
    assert len(by_key) == len(cards), "card ids are unique"
    return by_key


def shown_counts(document: Element) -> dict[str, int]:
    counts = {}
    for link in document.find_all("a", "count"):
        number = link.find("b")
        assert number is not None
        counts[link.attrs["data-filter"]] = int(number.text)
    return counts


# --- results.csv ---------------------------------------------------------------------------


def test_csv_round_trips_through_the_stdlib_reader(tmp_path):
    rows = [
        *mixed_rows(),
        row("k-tricky", ResultState.DOWNLOADED, "a.png", "b.png",
            prompt='line one\nline "two", with commas; and ü, 猫',
            error_message="said: \"no\"\r\nthen more"),
        row("k-formula", ResultState.PENDING, prompt="=HYPERLINK(\"http://x\")"),
        row("k-dash", ResultState.PENDING, prompt="- a cat, watercolor"),
    ]

    path = write_results_csv(tmp_path, rows)

    assert path == tmp_path / "results.csv"
    with path.open(newline="", encoding="utf-8") as stream:
        reader = csv.reader(stream)
        assert tuple(next(reader)) == RESULTS_CSV_HEADER
        read = list(reader)
    assert read == [
        [r.key, r.service, r.source, r.prompt, r.state.value, r.task_id, ";".join(r.files),
         r.error_code, r.error_message]
        for r in rows
    ]
    # Verbatim on purpose (see batcher.results.table): the prompt is the one sent.
    assert read[-2][3] == '=HYPERLINK("http://x")' and read[-1][3] == "- a cat, watercolor"


@pytest.mark.parametrize("rows", [[], iter(())], ids=["empty list", "empty iterator"])
def test_csv_of_no_tasks_is_its_header_alone(tmp_path, rows):
    path = write_results_csv(tmp_path / "new" / "out", rows)

    assert path.read_bytes() == (",".join(RESULTS_CSV_HEADER) + "\r\n").encode()


def many_rows(count: int, prompt_repeat: int = 1) -> Iterator[ResultRow]:
    for n in range(count):
        yield row(f"{n:08x}", ResultState.DOWNLOADED, f"img/{n:06d}-a-cat.png",
                  prompt=f"a cat number {n}, watercolor " * prompt_repeat)


def test_csv_is_streamed_not_held(tmp_path):
    tracemalloc.start()
    try:
        path = write_results_csv(tmp_path, many_rows(20_000, prompt_repeat=10))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    size = path.stat().st_size
    assert size > 5_000_000
    assert peak < size / 10, f"peak {peak} bytes of Python memory for a {size}-byte table"


def failing_rows() -> Iterator[ResultRow]:
    yield row("k-1", ResultState.PENDING)
    raise OSError("disk full")


def test_a_failed_rewrite_keeps_the_previous_files(tmp_path):
    csv_path = write_results_csv(tmp_path, [row("k-old", ResultState.PENDING)])
    page_path = write_gallery(tmp_path, [row("k-old", ResultState.PENDING)], title="old")
    before = {path: path.read_bytes() for path in (csv_path, page_path)}

    with pytest.raises(OSError, match="disk full"):
        write_results_csv(tmp_path, failing_rows())
    with pytest.raises(OSError, match="disk full"):
        write_gallery(tmp_path, failing_rows(), title="new")

    assert {path: path.read_bytes() for path in before} == before
    assert sorted(path.name for path in tmp_path.iterdir()) == ["index.html", "pages",
                                                                "results.csv"]
    assert sorted(path.name for path in (tmp_path / "pages").iterdir()) == [
        "all-0001.html", "all-pages.html", "pending-0001.html", "pending-pages.html"]


# --- the page, as written ------------------------------------------------------------------


def test_the_page_has_a_card_per_task_in_order_with_counts(tmp_path):
    rows = mixed_rows()

    document = parse_html(write_gallery(tmp_path, iter(rows), title="cats").read_text())

    cards = cards_of(document)
    assert list(cards) == [r.key for r in rows]
    assert {key: card.attrs["data-state"] for key, card in cards.items()} == {
        r.key: r.state.value for r in rows
    }
    expected = Counter(r.state.value for r in rows)
    assert shown_counts(document) == {"": len(rows), **expected}
    order = [link.attrs["data-filter"] for link in document.find_all("a", "count")][1:]
    assert order == [state.value for state in ResultState if state.value in expected]
    assert "12 tasks" in " ".join(document.find("p", "summary").text.split())


def test_prompts_parameters_and_errors_are_text_never_markup(tmp_path):
    rows = mixed_rows()

    html = write_gallery(tmp_path, rows, title='<i>cats</i> & "dogs"').read_text()
    document = parse_html(html)

    assert len(document.find_all("script")) == 1, "the page's own script only"
    cards = cards_of(document)
    hostile = cards["k-hostile"]
    assert hostile.find("p", "prompt").text == HOSTILE_PROMPT
    assert not hostile.find("p", "prompt").children
    assert hostile.find("dd").text == "<b>bold</b>" and not hostile.find("dd").children
    assert cards["k-failed"].find("p", "error").text == f"ContentModerationFailed {HOSTILE_ERROR}"
    assert document.find("h1").text == '<i>cats</i> & "dogs"'
    assert not [img for img in document.find_all("img") if "onerror" in img.attrs]
    assert "&lt;script&gt;" in html and "<script>document" not in html


def test_a_card_shows_its_parameters_flattened_without_the_prompt(tmp_path):
    document = parse_html(write_gallery(tmp_path, mixed_rows(), title="cats").read_text())

    card = cards_of(document)["k-two"]
    names = [dt.text for dt in card.find("dl").find_all("dt")]
    values = [dd.text for dd in card.find("dl").find_all("dd")]
    assert dict(zip(names, values, strict=True)) == {
        "ModelName": "GEM",
        "OutputConfig.AspectRatio": "16:9",
        "SubAppId": "251007502",
        "Seed": "null",
    }
    assert card.find("dd", "source").text == "jobs/cats.yaml:7"
    assert card.find("dd", "key").text == "k-two"
    assert card.find("dd", "task-id").text == "1500-AigcImage-k-two"
    assert cards_of(document)["k-not-sent"].find("dd", "task-id") is None


def test_images_are_their_relative_paths_lazily_loaded(tmp_path):
    rows = [
        *mixed_rows(),
        row("k-odd", ResultState.DOWNLOADED, "javascript:alert(1).png", "sub/notes.txt"),
    ]

    document = parse_html(write_gallery(tmp_path, rows, title="cats").read_text())

    cards = cards_of(document)
    for r in rows:
        images = [img.attrs for img in cards[r.key].find_all("img")]
        expected = [quote(path) for path in r.files if not path.endswith(".txt")]
        assert [image["src"] for image in images] == expected
        assert all(image["loading"] == "lazy" for image in images)
    assert cards["k-two"].find("img").attrs["src"] == "img/k-two-1.png"
    assert cards["k-two"].find_all("img")[1].attrs["src"] == "img/k%20two%20%232.png"
    odd = cards["k-odd"]
    assert odd.find("img").attrs["src"] == "javascript%3Aalert%281%29.png"  # a path, no scheme
    assert odd.find("figure", "file").find("a").attrs["href"] == "sub/notes.txt"
    for element in document.iter():
        for name in ("src", "href"):
            assert "://" not in element.attrs.get(name, ""), "nothing from the network"


def test_a_task_without_an_image_says_why(tmp_path):
    rows = [row(state.value, state) for state in ResultState]

    document = parse_html(write_gallery(tmp_path, rows, title="cats").read_text())

    for key, card in cards_of(document).items():
        assert not card.find_all("img")
        assert card.find("div", "none").text == NO_IMAGE_TEXT[ResultState(key)]
        assert card.find("span", "badge").text == key.replace("_", " ")


def test_the_page_is_self_contained_under_a_strict_policy(tmp_path):
    document = parse_html(write_gallery(tmp_path, mixed_rows(), title="cats").read_text())

    policy = next(meta.attrs["content"] for meta in document.find_all("meta")
                  if meta.attrs.get("http-equiv") == "Content-Security-Policy")
    assert "default-src 'none'" in policy
    assert "script-src 'sha256-" in policy and "'unsafe-inline'" not in policy
    assert not document.find_all("link")
    assert all("src" not in script.attrs for script in document.find_all("script"))


@pytest.mark.parametrize("rows", [[], iter(())], ids=["empty list", "empty iterator"])
def test_a_page_of_no_tasks_says_there_is_nothing_yet(tmp_path, rows):
    document = parse_html(write_gallery(tmp_path, rows, title="cats").read_text())

    assert not document.find_all("article")
    assert not document.find_all("nav")
    assert document.find("section", "empty").find("h2").text == "Nothing here yet"
    assert "0 tasks" in " ".join(document.find("p", "summary").text.split())


def test_the_page_says_when_it_was_updated(tmp_path):
    updated = datetime(2026, 12, 1, 21, 40, 5, tzinfo=UTC)

    document = parse_html(write_gallery(tmp_path, [], title="cats", updated=updated).read_text())

    time = document.find("time")
    assert time.attrs["datetime"] == "2026-12-01T21:40:05+00:00"
    assert time.text == "2026-12-01 21:40:05 UTC"


def peak_memory_writing(out: Path, count: int) -> int:
    tracemalloc.start()
    try:
        write_gallery(out, many_rows(count, prompt_repeat=10), title="many", page_size=50)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_the_gallery_is_streamed_not_held(tmp_path):
    count = 5_000
    write_gallery(tmp_path / "warm-up", many_rows(10), title="warm-up")  # Jinja2's compilation
    small = peak_memory_writing(tmp_path / "small", count // 5)
    peak = peak_memory_writing(tmp_path / "many", count)

    out = tmp_path / "many"
    pages = sorted((out / "pages").iterdir())
    size = (out / "index.html").stat().st_size + sum(page.stat().st_size for page in pages)
    assert size > 10_000_000
    assert peak < size / 10, f"peak {peak} bytes of Python memory for a {size}-byte gallery"
    assert peak < small * 1.5, f"peak {peak} bytes for {count} rows, {small} for a fifth"
    every = [page for page in pages if page.name.startswith("all-0")]
    assert len(every) == count // 50
    assert sum(page.read_text().count('<article class="card"') for page in every) == count
    assert sorted(p.name for p in out.iterdir()) == ["index.html", "pages"], "no spool"


def test_jinja2_is_imported_only_to_write_a_page():
    code = ("import sys, batcher.cli.main, batcher.results.gallery, batcher.results.table; "
            "print('jinja2' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)

    assert done.stdout.strip() == "False"


# --- the page, in a real browser -----------------------------------------------------------


@pytest.mark.browser
def test_in_a_browser_every_card_and_image_is_there_and_decoded(tmp_path):
    write_images(tmp_path)
    rows = mixed_rows()
    page = write_gallery(tmp_path, rows, title="cats")

    document = parse_html(dump_dom(page.as_uri(), tmp_path / "profile"))

    assert "data-pwned" not in document.find("body").attrs, "a prompt ran as script"
    cards = cards_of(document)
    assert list(cards) == [r.key for r in rows]
    assert not [key for key, card in cards.items() if "hidden" in card.attrs]
    for r in rows:
        shots = cards[r.key].find_all("figure", "shot")
        assert len(shots) == len(r.files)
        for path, shot in zip(r.files, shots, strict=True):
            if path in IMAGE_SIZES:
                width, height = IMAGE_SIZES[path]
                assert shot.attrs.get("data-size") == f"{width}×{height}", (path, shot.attrs)
                assert "missing" not in shot.classes
            else:
                assert "missing" in shot.classes and "data-size" not in shot.attrs, path
    assert cards["k-hostile"].find("p", "prompt").text == HOSTILE_PROMPT
    assert shown_counts(document)[""] == len(rows)


@pytest.mark.browser
def test_in_a_browser_an_old_bookmark_of_a_state_opens_its_first_page(tmp_path):
    page = write_gallery(tmp_path, mixed_rows(), title="cats")

    document = parse_html(dump_dom(f"{page.as_uri()}#state=generation_failed",
                                   tmp_path / "profile"))

    assert [card.attrs["data-state"] for card in cards_of(document).values()] == [
        "generation_failed", "generation_failed"]
    assert "generation failed · page 1" in document.find("p", "summary").text


@pytest.mark.browser
def test_in_a_browser_a_script_slipped_into_the_page_does_not_run(tmp_path):
    write_images(tmp_path)
    page = write_gallery(tmp_path, mixed_rows(), title="cats")
    html = page.read_text()
    page.write_text(html.replace("</main>", "<script>document.body.dataset.pwned = 1</script>"
                                            "</main>"))

    document = parse_html(dump_dom(page.as_uri(), tmp_path / "profile"))

    assert "data-pwned" not in document.find("body").attrs
    shot = cards_of(document)["k-hostile"].find("figure", "shot")
    assert shot.attrs.get("data-size") == "30×20", "ours still runs"


# --- the pages -----------------------------------------------------------------------------

PAGE = 4
"""Cards a page in these tests: small, so a few dozen rows make several pages per series."""


def paged_rows() -> list[ResultRow]:
    """Three rounds of every state (the hostile prompt and the images among them): 36 tasks,
    9 pages of every task, 3 of downloaded (9 tasks), 1 of each of the others."""
    return [replace(r, key=f"{r.key}-{round_}") for round_ in range(3) for r in mixed_rows()]


def card_keys(document: Element) -> list[str]:
    return list(cards_of(document))


def walk(start: Path, load: Callable[[Path], Element]) -> list[tuple[Path, Element]]:
    """Every page from `start` on, following each page's "next" link, as `load` reads them."""
    pages = [(start, load(start))]
    for _ in range(1000):
        link = pages[-1][1].find("a", "next")
        if link is None:
            return pages
        target = (pages[-1][0].parent / unquote(link.attrs["href"])).resolve()
        assert target.is_file(), f"{pages[-1][0].name} links to a missing {target.name}"
        pages.append((target, load(target)))
    raise AssertionError("the next links go round in a circle")


def read(path: Path) -> Element:
    return parse_html(path.read_text())


def filter_link(document: Element, state: str) -> str:
    return next(link.attrs["href"] for link in document.find_all("a", "count")
                if link.attrs["data-filter"] == state)


def test_following_next_from_the_index_reaches_every_task_in_order(tmp_path):
    rows = paged_rows()

    index = write_gallery(tmp_path, rows, title="cats", page_size=PAGE)

    pages = walk(index, read)
    assert [path.name for path, _ in pages] == ["index.html"] + [
        f"all-{n:04d}.html" for n in range(2, 10)]
    assert [key for _, page in pages for key in card_keys(page)] == [r.key for r in rows]
    assert all(len(card_keys(page)) == PAGE for _, page in pages)
    assert card_keys(read(tmp_path / "pages/all-0001.html")) == card_keys(pages[0][1])
    assert "every task · page 9 · tasks 33–36" in pages[-1][1].find("p", "summary").text


def test_each_state_filter_leads_to_pages_of_that_state_alone(tmp_path):
    rows = paged_rows()

    index = write_gallery(tmp_path, rows, title="cats", page_size=PAGE)

    document = read(index)
    states = {r.state for r in rows}
    assert shown_counts(document) == {"": len(rows), **Counter(r.state.value for r in rows)}
    for state in states:
        first = (tmp_path / filter_link(document, state.value)).resolve()
        assert first == tmp_path / "pages" / f"{state.value}-0001.html"
        pages = walk(first, read)
        cards = [card for _, page in pages for card in cards_of(page).values()]
        assert [card.attrs["data-state"] for card in cards] == [state.value] * len(cards)
        assert [card.attrs["id"] for card in cards] == [
            f"task-{r.key}" for r in rows if r.state is state]
    for path in (tmp_path / "pages").glob("*-0*.html"):
        assert 1 <= len(card_keys(read(path))) <= 2 * PAGE, f"{path.name}: bounded"


def test_every_page_links_back_and_to_its_list_of_pages(tmp_path):
    write_gallery(tmp_path, paged_rows(), title="cats", page_size=PAGE)

    page = read(tmp_path / "pages/all-0005.html")
    pager = page.find("nav", "pager")
    assert pager.find("a", "prev").attrs["href"] == "all-0004.html"
    assert pager.find("a", "next").attrs["href"] == "all-0006.html"
    numbers = [link.text for link in pager.find_all(cls="page")]
    assert numbers == ["1", "2", "3", "4", "5", "6"]
    assert pager.find("b", "page").text == "5"
    assert filter_link(page, "") == "../index.html"
    listing = read(tmp_path / "pages" / pager.find("a", "list").attrs["href"])
    entries = [(a.attrs["href"], a.text) for a in listing.find("ol", "page-list").find_all("a")]
    assert entries == [(f"all-{n:04d}.html", f"page {n}") for n in range(1, 10)]
    assert "tasks 33–36" in listing.find("ol").text
    index_pager = read(tmp_path / "index.html").find("nav", "pager")
    assert [link.attrs.get("href") for link in index_pager.find_all(cls="page")] == [
        None, "pages/all-0002.html", "pages/all-0003.html", "pages/all-0004.html",
        "pages/all-0009.html"], "a window and the last page"
    for image in read(tmp_path / "pages/downloaded-0001.html").find_all("img"):
        assert image.attrs["src"].startswith("../img/"), "from pages/, the images are in ../"


def test_index_stays_the_same_size_however_many_pages_follow(tmp_path):
    small = write_gallery(tmp_path / "small", many_rows(1_000), title="cats")
    large = write_gallery(tmp_path / "large", many_rows(20_000), title="cats")

    assert card_keys(read(large)) == card_keys(read(small))
    assert large.stat().st_size < small.stat().st_size * 1.02
    assert len(list((tmp_path / "large/pages").glob("all-0*.html"))) == 100


def identities(directory: Path) -> dict[str, tuple[int, int]]:
    return {str(path.relative_to(directory)): (path.stat().st_ino, path.stat().st_mtime_ns)
            for path in sorted(directory.rglob("*.html"))}


def on_page(out: Path, series: str, key: str) -> str:
    return next(path.name for path in sorted((out / "pages").glob(f"{series}-0*.html"))
                if key in card_keys(read(path)))


def test_a_rerun_rewrites_only_the_pages_that_changed(tmp_path):
    rows = paged_rows()
    write_gallery(tmp_path, rows, title="cats", page_size=PAGE)
    before = identities(tmp_path)

    write_gallery(tmp_path, iter(rows), title="cats", page_size=PAGE)
    assert identities(tmp_path) == before, "nothing changed, nothing rewritten"

    was_on = on_page(tmp_path, "pending", "k-pending-1")
    changed = rows.index(next(r for r in rows if r.key == "k-pending-1"))  # the 18th: on all-0005
    rows[changed] = replace(rows[changed], state=ResultState.DOWNLOADED, files=("img/new.png",))
    write_gallery(tmp_path, iter(rows), title="cats", page_size=PAGE)

    after = identities(tmp_path)
    rewritten = sorted(name for name in after if after[name] != before.get(name))
    now_on = on_page(tmp_path, "downloaded", "k-pending-1")
    assert rewritten == [
        "index.html",  # its counts
        "pages/all-0005.html",
        f"pages/{now_on}",  # the one page it joined: no later page shifts
        "pages/downloaded-pages.html",
        f"pages/{was_on}",  # the one page it left
        "pages/pending-pages.html",
    ]
    assert set(after) == set(before), "the same files"
    card = cards_of(read(tmp_path / "pages/all-0005.html"))["k-pending-1"]
    assert card.attrs["data-state"] == "downloaded"


def test_a_task_changing_state_in_a_large_batch_rewrites_a_handful_of_files(tmp_path):
    cycle = [ResultState.DOWNLOADED] * 18 + [ResultState.PENDING, ResultState.GENERATION_FAILED]
    rows = [row(f"{n:08x}", cycle[n % 20],
                *((f"img/{n}.png",) if cycle[n % 20] is ResultState.DOWNLOADED else ()))
            for n in range(4_000)]
    write_gallery(tmp_path, rows, title="cats")  # 200 cards a page: 20 pages of every task
    before = identities(tmp_path)

    middle = 2_018
    assert rows[middle].state is ResultState.PENDING
    rows[middle] = replace(rows[middle], state=ResultState.DOWNLOADED, files=("img/new.png",))
    write_gallery(tmp_path, rows, title="cats")

    after = identities(tmp_path)
    rewritten = sorted(name for name in after if after[name] != before.get(name))
    assert len(before) > 40
    assert rewritten == sorted([
        "index.html", "pages/all-0011.html",
        f"pages/{on_page(tmp_path, 'downloaded', rows[middle].key)}",
        "pages/downloaded-pages.html", "pages/pending-0001.html", "pages/pending-pages.html",
    ])


def test_a_rerun_repairs_a_page_altered_on_disk_even_at_the_same_size(tmp_path):
    rows = paged_rows()
    write_gallery(tmp_path, rows, title="cats", page_size=PAGE)
    page = tmp_path / "pages/all-0002.html"
    good = page.read_bytes()
    page.write_bytes(good.replace(b"a cat called", b"a dog called"))

    write_gallery(tmp_path, rows, title="cats", page_size=PAGE)

    assert page.read_bytes() == good


def test_a_rerun_removes_the_pages_of_a_series_that_shrank(tmp_path):
    rows = paged_rows()
    write_gallery(tmp_path, rows, title="cats", page_size=PAGE)
    (tmp_path / "pages/notes.txt").write_text("mine")
    (tmp_path / "pages/cats-0001.html").write_text("mine too")

    kept = [r for r in rows if r.state is not ResultState.LOST][:20]
    write_gallery(tmp_path, kept, title="cats", page_size=PAGE)

    names = {path.name for path in (tmp_path / "pages").iterdir()}
    assert {f"all-{n:04d}.html" for n in range(1, 6)} <= names
    assert not names & {"all-0006.html", "all-0009.html", "downloaded-0003.html"}
    assert not [name for name in names if name.startswith("lost-")], "no lost task any more"
    assert {"notes.txt", "cats-0001.html"} <= names, "files not ours are left alone"
    pages = walk(tmp_path / "index.html", read)
    assert [key for _, page in pages for key in card_keys(page)] == [r.key for r in kept]


def test_a_page_holds_at_least_one_card():
    with pytest.raises(ValueError, match="page_size"):
        write_gallery(Path("unused"), [], title="cats", page_size=0)


@pytest.mark.browser
def test_in_a_browser_each_state_is_paged_to_its_last_card_images_decoded(tmp_path):
    write_images(tmp_path)
    rows = paged_rows()
    index = write_gallery(tmp_path, rows, title="cats", page_size=PAGE)
    profile = tmp_path / "profile"

    def load(path: Path) -> Element:
        document = parse_html(dump_dom(path.as_uri(), profile))
        assert "data-pwned" not in document.find("body").attrs, f"a prompt ran on {path.name}"
        return document

    home = load(index)
    start = (tmp_path / filter_link(home, "downloaded")).resolve()
    pages = walk(start, load)
    cards = [card for _, page in pages for card in cards_of(page).values()]
    downloaded = [r for r in rows if r.state is ResultState.DOWNLOADED]
    assert [card.attrs["id"] for card in cards] == [f"task-{r.key}" for r in downloaded]
    for r, card in zip(downloaded, cards, strict=True):
        for path, shot in zip(r.files, card.find_all("figure", "shot"), strict=True):
            if path in IMAGE_SIZES:
                width, height = IMAGE_SIZES[path]
                assert shot.attrs.get("data-size") == f"{width}×{height}", (r.key, path)
            else:
                assert "missing" in shot.classes, (r.key, path)
    hostile = next(card for card in cards if card.attrs["id"] == "task-k-hostile-2")
    assert hostile.find("p", "prompt").text == HOSTILE_PROMPT

    last_link = home.find("nav", "pager").find_all("a", "page")[-1]
    last = load((tmp_path / unquote(last_link.attrs["href"])).resolve())
    assert card_keys(last)[-1] == rows[-1].key
    assert last.find("a", "next") is None and last.find("span", "next") is not None
