"""The docs' examples hold: docs/*.md and README.md checked against the code as it is.

- Every fenced `yaml` block is a manifest that `batcher plan` accepts (exit 0), unless the block
  starts with `# docs-test: invalid` (then `plan` must refuse it: exit 2, one line naming the
  file) or `# docs-test: not-a-manifest` (skipped). Other blocks of the same page written after
  a `<!-- file: NAME -->` line are put beside the manifest under that name (a CSV it includes).
- Every `batcher <command>` invocation in a fenced `sh`/`console`/`crontab` block uses only
  options that `batcher <command> --help` lists.
- Every relative link points to a file that exists and, with `#anchor`, to one of its headings.
- README.md is at most 250 lines and its first two commands are `make demo` and `make test`.

Each checker is a plain function returning the problems it found, and the last tests feed them
broken samples, so the checks are seen to fail.
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

from batcher.cli.main import main

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PAGES = [*sorted((ROOT / "docs").glob("*.md")), README]
COMMANDS = ("submit", "collect", "plan", "status", "emulator")
SHELL_LANGUAGES = frozenset({"sh", "console", "crontab", "bash", "shell"})
INVALID = "# docs-test: invalid"
NOT_A_MANIFEST = "# docs-test: not-a-manifest"
FENCE = re.compile(r"^```([\w-]*)\n(.*?)^```", re.DOTALL | re.MULTILINE)
FILE_NAME = re.compile(r"<!-- file: ([\w.-]+) -->\s*$")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
OPTION = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*)")


@dataclass(frozen=True)
class Block:
    page: Path
    line: int
    language: str
    text: str
    file_name: str | None

    @property
    def where(self) -> str:
        page = self.page.relative_to(ROOT) if self.page.is_relative_to(ROOT) else self.page.name
        return f"{page}:{self.line}"


def blocks_of(page: Path, text: str | None = None) -> list[Block]:
    """The fenced blocks of a page, each with the `<!-- file: NAME -->` line just before it."""
    source = page.read_text(encoding="utf-8") if text is None else text
    found = []
    for match in FENCE.finditer(source):
        before = source[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        named = FILE_NAME.search(before)
        line = source.count("\n", 0, match.start()) + 1
        found.append(Block(page, line, match.group(1), match.group(2),
                           named.group(1) if named else None))
    return found


def all_blocks() -> Iterator[Block]:
    for page in PAGES:
        yield from blocks_of(page)


# --- manifests ------------------------------------------------------------------------------


def run_batcher(argv: list[str]) -> tuple[int, str]:
    """`batcher ARGV` in this process: its exit code and what it wrote on stderr."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(argv)
        except SystemExit as exit_:  # argparse
            code = int(exit_.code or 0)
    return code, err.getvalue()


def plan_problems(block: Block, siblings: list[Block], directory: Path) -> list[str]:
    """What is wrong with a yaml block as a manifest: `plan` must accept it (or refuse it)."""
    for sibling in siblings:
        if sibling.file_name is not None:
            (directory / sibling.file_name).write_text(sibling.text, encoding="utf-8")
    manifest = directory / "example.yaml"
    manifest.write_text(block.text, encoding="utf-8")
    code, stderr = run_batcher(["plan", str(manifest), "--ledger", str(directory / "l.jsonl")])
    if block.text.startswith(INVALID):
        if code != 2 or "example.yaml:" not in stderr:
            return [f"{block.where}: marked invalid, but plan exited {code}: {stderr.strip()}"]
        return []
    if code != 0:
        return [f"{block.where}: plan exited {code}: {stderr.strip()}"]
    return []


def manifest_blocks() -> list[Block]:
    return [b for b in all_blocks()
            if b.language in ("yaml", "yml") and not b.text.startswith(NOT_A_MANIFEST)]


@pytest.mark.parametrize("block", manifest_blocks(), ids=lambda b: b.where)
def test_every_yaml_example_is_a_manifest_plan_accepts(block: Block, tmp_path: Path) -> None:
    assert plan_problems(block, blocks_of(block.page), tmp_path) == []


def test_the_docs_show_manifests_and_a_refused_one() -> None:
    examples = manifest_blocks()
    assert len(examples) >= 3
    assert any(b.text.startswith(INVALID) for b in examples)


# --- command lines --------------------------------------------------------------------------


@cache
def options_of(command: str) -> frozenset[str]:
    """The options `batcher COMMAND --help` lists."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        main([command, "--help"])
    return frozenset(OPTION.findall(out.getvalue()))


def invocations(text: str) -> Iterator[tuple[str, list[str]]]:
    """Each `batcher COMMAND ...` of a shell block: the command and its words up to `|;&>`."""
    joined = re.sub(r"\\\n", " ", text)
    for line in joined.splitlines():
        line = line.split(" #", 1)[0].strip()
        if line.startswith("$ "):
            line = line[2:]
        try:
            words = shlex.split(line, comments=True)
        except ValueError:
            words = line.split()
        for at, word in enumerate(words):
            if (word == "batcher" or word.endswith("bin/batcher")) and at + 1 < len(words):
                rest = []
                for w in words[at + 2:]:
                    if w in ("|", "&&", "||", ";", "&") or w.startswith((">", "2>")):
                        break
                    rest.append(w)
                yield words[at + 1], rest


def option_problems(block: Block) -> list[str]:
    problems = []
    for command, words in invocations(block.text):
        if command not in COMMANDS:
            if command.startswith("-"):
                continue  # `batcher --help`, `batcher --version`
            problems.append(f"{block.where}: no command `batcher {command}`")
            continue
        for word in words:
            option = word.split("=", 1)[0]
            if option.startswith("--") and option not in options_of(command):
                problems.append(f"{block.where}: `batcher {command}` has no option {option}")
    return problems


def shell_blocks() -> list[Block]:
    return [b for b in all_blocks() if b.language in SHELL_LANGUAGES]


@pytest.mark.parametrize("block", shell_blocks(), ids=lambda b: b.where)
def test_every_command_line_uses_options_its_command_has(block: Block) -> None:
    assert option_problems(block) == []


def test_the_docs_show_every_command() -> None:
    shown = {command for b in shell_blocks() for command, _ in invocations(b.text)}
    assert {"plan", "submit", "status", "collect", "emulator"} <= shown


# --- links ----------------------------------------------------------------------------------


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors_of(text: str) -> set[str]:
    outside_fences = FENCE.sub("", text)
    return {slug(m.group(1)) for m in re.finditer(r"^#{1,6} (.+)$", outside_fences, re.M)}


def link_problems(page: Path, text: str | None = None) -> list[str]:
    source = page.read_text(encoding="utf-8") if text is None else text
    problems = []
    for match in LINK.finditer(FENCE.sub("", source)):
        target = match.group(1)
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):
            continue  # http:, https:, mailto:, file:
        path_part, _, anchor = target.partition("#")
        linked = (page.parent / path_part).resolve() if path_part else page
        if not linked.exists():
            problems.append(f"{page.name}: link to {target}: no such file")
        elif (anchor and linked.suffix == ".md"
              and anchor not in anchors_of(linked.read_text(encoding="utf-8"))):
            problems.append(f"{page.name}: link to {target}: no such heading")
    return problems


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_points_to_a_file_and_heading(page: Path) -> None:
    assert link_problems(page) == []


def test_the_pages_other_pages_link_to_exist() -> None:
    names = {"index", "manifests", "ledgers", "results", "exit-codes", "operating", "spend",
             "emulator", "architecture", "python-api"}
    assert {p.stem for p in PAGES if p.parent.name == "docs"} >= names


# --- the README -----------------------------------------------------------------------------


def readme_problems(text: str) -> list[str]:
    problems = []
    if len(text.splitlines()) > 250:
        problems.append(f"README has {len(text.splitlines())} lines (at most 250)")
    commands = []
    for block in blocks_of(README, text):
        if block.language in SHELL_LANGUAGES:
            for line in block.text.splitlines():
                line = line.split("#", 1)[0].strip().removeprefix("$ ")
                if line:
                    commands.append(line)
    if commands[:2] != ["make demo", "make test"]:
        problems.append(f"README's first two commands are {commands[:2]}")
    return problems


def test_readme_is_short_and_starts_with_make_demo_and_make_test() -> None:
    assert readme_problems(README.read_text(encoding="utf-8")) == []


def test_exit_codes_are_tabled_on_one_page_only() -> None:
    tabled = [p.name for p in PAGES
              if re.search(r"^\| `143` \|", p.read_text(encoding="utf-8"), re.M)]
    assert tabled == ["exit-codes.md"]


# --- the checks can fail --------------------------------------------------------------------


def test_the_checks_catch_broken_examples(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("x", encoding="utf-8")
    bad_manifest = Block(page, 1, "yaml", "service: vod\ntasks:\n  - Promt: a cat\n", None)
    assert plan_problems(bad_manifest, [], tmp_path)
    valid_but_marked = Block(page, 1, "yaml", INVALID + "\n" + (
        "service: mps\ndefaults: {mps: {ModelName: Hunyuan}}\ntasks:\n  - Prompt: a cat\n"), None)
    assert plan_problems(valid_but_marked, [], tmp_path)
    assert option_problems(Block(page, 1, "sh", "batcher submit a.yaml --no-such-flag\n", None))
    assert option_problems(Block(page, 1, "sh", ".venv/bin/batcher collect a.yaml \\\n"
                                 "    --max-images 5\n", None))
    assert option_problems(Block(page, 1, "sh", "batcher frobnicate\n", None))
    assert link_problems(page, "[a](missing.md) [b](page.md#nowhere)") == [
        "page.md: link to missing.md: no such file",
        "page.md: link to page.md#nowhere: no such heading",
    ]
    long_readme = "```sh\nmake test\nmake demo\n```\n" + "line\n" * 250
    assert len(readme_problems(long_readme)) == 2
