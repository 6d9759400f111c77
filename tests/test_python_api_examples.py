"""docs/python-api.md's examples, run as written against the emulator.

Every ```python block of the page runs, in order and in one namespace, in a directory holding
the `spring.yaml` it names, with the environment `batcher.testing.Emulator.env` gives (as a
user's credentials and endpoint would be); top-level `await` runs as in a notebook cell. A block
after a `<!-- not run: why -->` line is skipped. The Prefect flow of docs/examples runs in a
process of its own, as a user would start it.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from batcher.testing import Emulator

DOCS = Path(__file__).resolve().parent.parent / "docs"
PAGE = DOCS / "python-api.md"
README = DOCS.parent / "README.md"
BLOCK = re.compile(r"(<!-- not run: [^>]*-->\n)?```python\n(.*?)```", re.DOTALL)
MANIFEST = Path(__file__).resolve().parent.parent / "jobs" / "example.yaml"


def _blocks(page: Path = PAGE) -> list[str]:
    return [code for skipped, code in BLOCK.findall(page.read_text()) if not skipped]


@pytest.fixture
def user_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    shutil.copy(MANIFEST, tmp_path / "spring.yaml")
    shutil.copy(MANIFEST, tmp_path / "spring-cats.yaml")  # the README's walk names it so
    monkeypatch.chdir(tmp_path)
    with Emulator(generation_seconds=0.2) as emulator:
        for name, value in emulator.env.items():
            monkeypatch.setenv(name, value)
        yield emulator


def test_the_page_has_examples_to_run() -> None:
    assert len(_blocks()) >= 4


def test_every_python_example_of_the_page_runs(user_directory: Emulator) -> None:
    namespace: dict[str, object] = {"__name__": "docs_example"}
    for number, code in enumerate(_blocks(), 1):
        compiled = compile(code, f"{PAGE.name} block {number}", "exec",
                           flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        if compiled.co_flags & inspect.CO_COROUTINE:
            asyncio.run(eval(compiled, namespace))  # a notebook cell: top-level await
        else:
            exec(compiled, namespace)
        page_test = namespace.pop("test_my_flow", None)
        if callable(page_test):  # the page's own pytest test, with a fixture of its own
            _run_page_test(page_test)
    assert user_directory.created("vod") == 7 and user_directory.created("mps") == 5


def _run_page_test(test: object) -> None:
    """`test(batcher_emulator, tmp_path)` as pytest would call it: a fresh emulator, its env."""
    import tempfile

    with (Emulator() as emulator, tempfile.TemporaryDirectory() as directory,
          pytest.MonkeyPatch.context() as patch):
        for name, value in emulator.env.items():
            patch.setenv(name, value)
        test(emulator, Path(directory))  # type: ignore[operator]


def test_the_readme_python_example_runs(user_directory: Emulator) -> None:
    namespace: dict[str, object] = {"__name__": "readme_example"}
    (code,) = _blocks(README)
    exec(compile(code, "README.md", "exec"), namespace)
    results = namespace["results"]
    assert results.exit_code == 0  # type: ignore[attr-defined]
    assert user_directory.created("vod") + user_directory.created("mps") == 12


@pytest.mark.slow
def test_the_prefect_flow_submits_collects_and_returns_the_gallery(
        user_directory: Emulator, tmp_path: Path) -> None:
    pytest.importorskip("prefect")
    flow = DOCS / "examples" / "prefect_flow.py"
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"),
           "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120"}
    done = subprocess.run([sys.executable, str(flow), "spring.yaml"], env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    gallery = Path(done.stdout.strip().splitlines()[-1])
    assert gallery == tmp_path / "spring.results" / "index.html"
    assert gallery.is_file()
    assert (user_directory.created("vod"), user_directory.created("mps")) == (7, 5)
