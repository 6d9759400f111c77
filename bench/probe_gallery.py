"""The gallery alone: `write_gallery` over N synthetic rows, then twice more, timed inside its
own process.

    python bench/probe_gallery.py OUT_DIR ROWS

Run as a child by the gallery benchmark (which reads the process's peak RSS from os.wait4).
The rows are made on the fly (a stream, as the collector gives them): mostly downloaded, some
of every other state, prompts of about 100 characters, a few parameters each. Three writes:
the first into an empty directory, a rerun of the same rows (nothing should be rewritten), and
a rerun in which one task in the middle changed state (only its pages should be). Prints one
JSON object: each write's wall and CPU seconds, the files each rewrote, and the sizes.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from batcher.results.gallery import GALLERY_HTML, PAGES_DIR, write_gallery
from batcher.results.rows import ResultRow, ResultState

_STATES = (
    [ResultState.DOWNLOADED] * 90
    + [ResultState.GENERATION_FAILED] * 4
    + [ResultState.PENDING] * 3
    + [ResultState.EXPIRED, ResultState.LOST, ResultState.FAILED]
)
"""One task in a hundred of each rarer state, as a large batch ends up."""


def synthetic_rows(count: int, changed: int | None = None) -> Iterator[ResultRow]:
    """`count` rows; with `changed`, that row is downloaded instead of what it was."""
    for n in range(count):
        state = ResultState.DOWNLOADED if n == changed else _STATES[(n * 37) % len(_STATES)]
        key = f"{n * 2654435761 % 2**32:08x}{n:08x}"
        prompt = f"a watercolour cat number {n} asleep on a windowsill in the late afternoon sun"
        yield ResultRow(
            key=key,
            service="vod" if n % 2 else "mps",
            source=f"jobs/million.csv:{n + 2}",
            prompt=prompt,
            params={"Prompt": prompt, "ModelName": "GEM", "ModelVersion": "2.5",
                    "OutputConfig": {"AspectRatio": "16:9", "Resolution": "1080P"}},
            state=state,
            task_id=f"1500{n:09d}-AigcImage-{key[:12]}" if state is not ResultState.FAILED else "",
            files=(f"{n + 2:07d}-a-watercolour-cat-{key[:8]}.png",)
            if state is ResultState.DOWNLOADED else (),
            error_code="ContentModerationFailed" if state is ResultState.GENERATION_FAILED else "",
            error_message="the prompt was refused" if state is ResultState.GENERATION_FAILED
            else "",
        )


def _identities(out: Path) -> dict[str, tuple[int, int]]:
    files = [out / GALLERY_HTML, *(out / PAGES_DIR).iterdir()]
    return {path.name: (path.stat().st_ino, path.stat().st_mtime_ns) for path in files}


def _timed_write(out: Path, rows: Iterator[ResultRow]) -> dict[str, float | int]:
    before = _identities(out) if (out / PAGES_DIR).is_dir() else {}
    wall, cpu = time.perf_counter(), time.process_time()
    write_gallery(out, rows, title="million")
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    after = _identities(out)
    rewritten = sum(1 for name, identity in after.items() if before.get(name) != identity)
    return {"wall_s": wall, "cpu_s": cpu, "files_rewritten": rewritten,
            "files_removed": len(set(before) - set(after))}


def main(argv: list[str]) -> int:
    out, count = Path(argv[1]), int(argv[2])
    first = _timed_write(out, synthetic_rows(count))
    rerun = _timed_write(out, synthetic_rows(count))
    middle = next((n for n in range(count // 2, count)
                   if _STATES[(n * 37) % len(_STATES)] is not ResultState.DOWNLOADED), None)
    changed = _timed_write(out, synthetic_rows(count, changed=middle))
    pages = list((out / PAGES_DIR).iterdir())
    print(json.dumps({
        "rows": count,
        "first": first,
        "rerun": rerun,
        "rerun_one_changed": changed,
        "index_bytes": (out / GALLERY_HTML).stat().st_size,
        "pages": len(pages),
        "pages_bytes": sum(page.stat().st_size for page in pages),
        "largest_page_bytes": max(page.stat().st_size for page in pages),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
