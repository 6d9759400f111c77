"""Which manifest files a command line names: files as given, a directory's manifests.

A directory gives its YAML manifests and the CSV files that none of them includes (a CSV named by
a YAML's `csv:` is that manifest's rows, not a manifest of its own).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from batcher.exceptions import UsageError
from batcher.manifest.loader import load_manifest

MANIFEST_SUFFIXES = (".yaml", ".yml")


def expand_manifest_paths(paths: Sequence[Path]) -> list[Path]:
    """Files as given; a directory gives its YAML manifests and the CSVs they do not include."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(_manifests_in(path))
        elif path.exists():
            files.append(path)
        else:
            raise UsageError(f"{path}: no such manifest file or directory")
    if not files:
        raise UsageError(f"no manifests (*.yaml, *.yml, *.csv) in {', '.join(map(str, paths))}")
    return files


def _manifests_in(directory: Path) -> list[Path]:
    yamls = sorted(p for p in directory.iterdir() if p.suffix in MANIFEST_SUFFIXES and p.is_file())
    included = {c.resolve() for c in (load_manifest(p).csv_path for p in yamls) if c is not None}
    csvs = sorted(p for p in directory.glob("*.csv") if p.is_file() and p.resolve() not in included)
    return [*yamls, *csvs]
