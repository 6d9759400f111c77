"""The house (ARCHITECTURE.md): a package per layer, imports going downward only, small modules.

Every module's imports are read with `ast` (the ones inside functions too: a late import is
still a dependency), and each must point at its own package or a layer below it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "batcher"

LAYERS: dict[str, int] = {
    "api": 0,
    "wire": 1,
    "manifest": 2,
    "state": 2,
    "run": 3,
    "results": 4,
    "cli": 5,
    "library": 5,
    "testing": 5,
    "": 6,
}
"""Each layer may import the layers with a lower number; `manifest` and `state` are siblings that
may not import each other. The faces are `cli` (the command), `library` (the Python API's calls,
re-exported by `batcher/__init__.py`) and `testing` (the emulator for users' tests). "" is the
top: `batcher/__init__.py` and `python -m batcher`."""

ANYWHERE = {"batcher", "batcher.exceptions"}
"""Leaf modules every layer may import: the version and the exception tree."""

EMULATOR_MAY_IMPORT = {"batcher.api", "batcher.wire.signing", "batcher.wire.addresses"}
"""The emulator shares the contract (models, registry, signer) and nothing of the client."""

LIBRARY_MAY_BORROW = {"batcher.cli.submit_watch", "batcher.cli.collect_run"}
"""The CLI's progress displays, which the library shows when asked (`progress=True`)."""

MAX_LINES = 500

COMMANDS = ("submit", "collect", "plan", "status", "emulator")
"""The commands of `batcher.cli`: `cli/<command>.py` and its helpers `cli/<command>_*.py`."""

COMMAND_HELPERS = {"task_list": "status"}
"""Helper modules of one command whose names do not say so (`status --tasks`)."""

TESTS = Path(__file__).resolve().parent


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def _package_of(path: Path) -> str:
    parts = path.relative_to(PACKAGE).parts
    return parts[0] if len(parts) > 1 else ""


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return [(line, name) for line, name in found if name.split(".")[0] == "batcher"]


def _allowed(importer: str, target: str) -> bool:
    """May a module of package `importer` import the dotted name `target`?"""
    if any(target == leaf or (target.startswith(leaf + ".") and leaf != "batcher")
           for leaf in ANYWHERE) or target == "batcher.__version__":
        return True
    parts = target.split(".")
    package = parts[1] if len(parts) > 1 else ""
    if package == importer:
        return True
    if importer == "emulator":
        return any(target == allowed or target.startswith(allowed + ".")
                   for allowed in EMULATOR_MAY_IMPORT)
    if package == "emulator":
        return importer in ("cli", "testing")
    if importer == "library" and package == "cli":
        return any(target.startswith(module) for module in LIBRARY_MAY_BORROW)
    if importer not in LAYERS or package not in LAYERS:
        return False
    return LAYERS[package] < LAYERS[importer]


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_every_import_goes_down_the_layers(path: Path) -> None:
    importer = _package_of(path)
    wrong = [f"{path.name}:{line} imports {target}" for line, target in _imports(path)
             if not _allowed(importer, target)]
    assert not wrong, f"imports against the layer map: {wrong}"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_is_over_about_500_lines(path: Path) -> None:
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{path.name} has {lines} lines: split it by idea"


def test_every_module_and_package_says_what_it_owns() -> None:
    missing = [str(p.relative_to(PACKAGE)) for p in _modules()
               if not ast.get_docstring(ast.parse(p.read_text()))]
    assert not missing, f"modules without a docstring: {missing}"


def _command_of(module: str) -> str | None:
    """The command a module of `batcher.cli` belongs to (`submit_watch` → submit), or None for
    the shared ones (`options`, `resolve`, `report`, `logs`, ...)."""
    head = module.split("_")[0]
    return head if head in COMMANDS else COMMAND_HELPERS.get(module)


def _cli_module_of(target: str) -> str | None:
    """`batcher.cli.submit.run` → `submit`; None when the target is not in `batcher.cli`."""
    parts = target.split(".")
    return parts[2] if len(parts) > 2 and parts[:2] == ["batcher", "cli"] else None


def _command_import_allowed(importer: str, target: str) -> bool:
    """May the `batcher.cli` module `importer` import `target`? Not another command's module:
    what two commands share lives in a shared module (options, resolve, report, logs...), and a
    shared module imports no command."""
    module = _cli_module_of(target)
    if module is None:
        return True
    wanted = _command_of(module)
    return wanted is None or wanted == _command_of(importer)


@pytest.mark.parametrize("path", sorted((PACKAGE / "cli").glob("*.py")), ids=lambda p: p.name)
def test_no_command_imports_another_commands_module(path: Path) -> None:
    wrong = [f"{path.name}:{line} imports {target}" for line, target in _imports(path)
             if not _command_import_allowed(path.stem, target)]
    assert not wrong, f"a command's module imported from elsewhere: {wrong}"


def _test_modules() -> list[Path]:
    return sorted(TESTS.glob("test_*.py"))


@pytest.mark.parametrize("path", _test_modules(), ids=lambda p: p.name)
def test_no_test_module_imports_another(path: Path) -> None:
    # Shared helpers live in tests/helpers.py (and fixtures in conftest.py, which pytest loads
    # itself): a test module that imports another runs its tests' module code twice and hides
    # where a helper lives.
    tree = ast.parse(path.read_text(), filename=str(path))
    wrong = []
    for node in ast.walk(tree):
        names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                 else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
        for name in names:
            leaf = name.split(".")[-1] if name.startswith("tests.") else name
            if leaf.startswith("test_") or leaf == "conftest":
                wrong.append(f"{path.name}:{node.lineno} imports {name}")
    assert not wrong, f"move what they share to tests/helpers.py: {wrong}"


def test_the_command_rule_catches_a_command_importing_another() -> None:
    assert not _command_import_allowed("collect", "batcher.cli.submit.TOO_MANY_MANIFESTS")
    assert not _command_import_allowed("collect_run", "batcher.cli.submit_run.rate_scope")
    assert not _command_import_allowed("report", "batcher.cli.status.run")
    assert _command_import_allowed("collect", "batcher.cli.collect_run.run_collect")
    assert _command_import_allowed("submit", "batcher.cli.options.add_manifests")
    assert _command_import_allowed("plan", "batcher.run.resume.plan_manifest")


def test_the_rule_catches_an_upward_import() -> None:
    # The check itself, on imports the map forbids: a layer reaching up, siblings reaching across,
    # the emulator reaching into the client.
    assert not _allowed("wire", "batcher.run.pipeline")
    assert not _allowed("state", "batcher.manifest.loader")
    assert not _allowed("emulator", "batcher.wire.client")
    assert _allowed("run", "batcher.state.ledger")
    assert _allowed("emulator", "batcher.wire.signing")
