"""The benchmark's output: one row per figure (metric / measured / target / pass), as a text table
and as JSON under bench/results/, with the machine the figures were measured on."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

PASS, FAIL, INFO = "yes", "NO", ""


@dataclass(frozen=True, slots=True)
class Row:
    """One figure. `ok` None: reported for information, no target."""

    section: str
    metric: str
    value: float | int | None
    unit: str
    target: str = ""
    ok: bool | None = None

    @property
    def verdict(self) -> str:
        if self.ok is None:
            return INFO
        return PASS if self.ok else FAIL

    def measured(self) -> str:
        if self.value is None:
            return "n/a"
        if isinstance(self.value, str):  # a pair of figures, written out by the section
            text = self.value
        elif isinstance(self.value, int):
            text = f"{self.value:,}"
        elif abs(self.value) >= 100:
            text = f"{self.value:,.0f}"
        elif abs(self.value) >= 10:
            text = f"{self.value:.1f}"
        else:
            text = f"{self.value:.3g}" if abs(self.value) < 1 else f"{self.value:.2f}"
        return f"{text} {self.unit}".strip()

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "measured": self.measured(), "pass": self.verdict}


def render(rows: Sequence[Row]) -> str:
    """The rows as an aligned text table, a blank line between sections."""
    header = ("metric", "measured", "target", "pass")
    cells = [(row.metric, row.measured(), row.target, row.verdict) for row in rows]
    widths = [max(len(line[i]) for line in [header, *cells]) for i in range(4)]

    def line(values: Sequence[str]) -> str:
        return "  ".join(
            value.ljust(width) if i != 1 else value.rjust(width)
            for i, (value, width) in enumerate(zip(values, widths, strict=True))
        ).rstrip()

    out = [line(header), line(["-" * width for width in widths])]
    section = None
    for row, values in zip(rows, cells, strict=True):
        if row.section != section:
            if section is not None:
                out.append("")
            out.append(f"[{row.section}]")
            section = row.section
        out.append(line(values))
    return "\n".join(out)


def render_markdown(rows: Sequence[Row]) -> str:
    """The rows as a Markdown table, for the README: a bold line opens each section."""
    out = ["| metric | measured | target | pass |", "|---|---:|---|---|"]
    section = None
    for row in rows:
        if row.section != section:
            section = row.section
            out.append(f"| **{section}** | | | |")
        out.append(f"| {row.metric} | {row.measured()} | {row.target} | {row.verdict} |")
    return "\n".join(out)


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    return {
        "cpus": _cpus(),
        "cpu_model": _cpu_model(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "git": _git_describe(),
    }


def describe_machine(info: dict[str, Any]) -> str:
    return (
        f"machine: {info['cpus']} CPUs ({info['cpu_model']}), {info['implementation']} "
        f"{info['python']}, {info['platform']}, batcher at {info['git']}"
    )


def _cpus() -> int | None:
    """CPUs this process may run on (`nproc`)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count()


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git_describe() -> str:
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--", "batcher"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head}{' (batcher/ modified)' if dirty else ''}"


def write_results(directory: Path, stamp: str, document: dict[str, Any]) -> tuple[Path, Path]:
    """`bench-<stamp>.json` and `latest.json` in `directory`; their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    dated = directory / f"bench-{stamp}.json"
    latest = directory / "latest.json"
    dated.write_text(text, encoding="utf-8")
    latest.write_text(text, encoding="utf-8")
    return dated, latest
