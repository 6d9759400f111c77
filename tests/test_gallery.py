"""What the user gets (SPEC §9): `results.csv` and the gallery page, this in a real browser too."""

from __future__ import annotations

import csv
import subprocess
import sys
import tracemalloc
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

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
    assert sorted(path.name for path in tmp_path.iterdir()) == ["index.html", "results.csv"]


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


def test_the_page_is_streamed_not_held(tmp_path):
    count = 5_000
    write_gallery(tmp_path, many_rows(10), title="warm-up")  # Jinja2's import and compilation
    tracemalloc.start()
    try:
        path = write_gallery(tmp_path, many_rows(count, prompt_repeat=10), title="many")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    size = path.stat().st_size
    assert size > 5_000_000
    assert peak < size / 3, f"peak {peak} bytes of Python memory for a {size}-byte page"
    assert path.read_text().count('<article class="card"') == count
    assert [p.name for p in tmp_path.iterdir()] == ["index.html"], "no spool file left"


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
def test_in_a_browser_the_state_in_the_address_filters_the_cards(tmp_path):
    rows = mixed_rows()
    page = write_gallery(tmp_path, rows, title="cats")

    document = parse_html(dump_dom(f"{page.as_uri()}#state=generation_failed",
                                   tmp_path / "profile"))

    visible = [key for key, card in cards_of(document).items() if "hidden" not in card.attrs]
    assert visible == [r.key for r in rows if r.state is ResultState.GENERATION_FAILED]
    current = [link.attrs["data-filter"] for link in document.find_all("a", "count")
               if link.attrs.get("aria-current") == "true"]
    assert current == ["generation_failed"]
    assert document.find("span", "shown").text == "showing 2 generation failed"
    assert "hidden" in document.find("p", "empty").attrs


@pytest.mark.browser
def test_in_a_browser_a_script_slipped_into_the_page_does_not_run(tmp_path):
    page = write_gallery(tmp_path, mixed_rows(), title="cats")
    html = page.read_text()
    page.write_text(html.replace("</main>", "<script>document.body.dataset.pwned = 1</script>"
                                            "</main>"))

    document = parse_html(dump_dom(page.as_uri(), tmp_path / "profile"))

    assert "data-pwned" not in document.find("body").attrs
    assert document.find("a", "count").attrs.get("aria-current") == "true", "ours still runs"
