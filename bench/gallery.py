"""Gallery: `write_gallery` over N synthetic rows (200,000 by default), a rerun, and how fast
`index.html` opens in headless Chromium.

1. `bench/probe_gallery.py` in its own process: the first write into an empty directory (wall
   and CPU seconds, rows per second), a rerun over the same rows (every page rendered again and
   compared with the file on disk; the target is that none is rewritten) and a rerun in which
   one task changed state (only that task's pages and the lists and index are rewritten); the
   size of `index.html` (target ≤ 2 MB whatever N), of all pages and of the largest page; the
   peak RSS of the process (flat: one open page per series, never the batch).
2. `index.html` of a 20,000-task gallery opened by headless Chromium from `file://`
   (`--dump-dom`, which returns once the page has loaded): the median wall time of 3 loads,
   beside the same for `about:blank` (Chromium's own start-up, for contrast). Skipped, and said
   so, without `chromium` on the PATH.

    .venv/bin/python bench/run.py --only gallery --gallery-rows 1000000   # the million, by hand
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from procs import run_json
from table import Row

INDEX_TARGET_BYTES = 2 * 1024 * 1024
BROWSER_ROWS = 20_000
PROBE = Path(__file__).with_name("probe_gallery.py")
LOADS = 3


def _chromium_load_seconds(url: str, profile: Path) -> float:
    chromium = shutil.which("chromium")
    assert chromium is not None
    command = [chromium, "--headless", "--no-sandbox", "--disable-gpu",
               f"--user-data-dir={profile}", "--window-size=1200,900", "--dump-dom", url]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, timeout=300, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0 or b"</html>" not in done.stdout:
        raise RuntimeError(f"chromium could not load {url}: {done.stderr[-500:]!r}")
    return elapsed


def measure_browser(workdir: Path) -> dict[str, Any]:
    """Median load time of a 20,000-task index.html, and of about:blank, in headless Chromium."""
    if shutil.which("chromium") is None:
        return {"skipped": "chromium is not installed"}
    out = workdir / "gallery-browser"
    run_json([sys.executable, str(PROBE), str(out), str(BROWSER_ROWS)])
    index = (out / "index.html").as_uri()
    blank = [_chromium_load_seconds("about:blank", workdir / f"profile-b{n}") for n in range(LOADS)]
    loads = [_chromium_load_seconds(index, workdir / f"profile-i{n}") for n in range(LOADS)]
    return {"rows": BROWSER_ROWS, "index_s": loads, "blank_s": blank,
            "index_median_s": statistics.median(loads), "blank_median_s": statistics.median(blank)}


def run_gallery(workdir: Path, rows: int) -> tuple[list[Row], dict[str, Any]]:
    out = workdir / "gallery"
    measured, probe = run_json([sys.executable, str(PROBE), str(out), str(rows)])
    shutil.rmtree(out, ignore_errors=True)
    browser = measure_browser(workdir)
    section = f"gallery: {rows:,} rows"
    first, rerun, changed = probe["first"], probe["rerun"], probe["rerun_one_changed"]
    table = [
        Row(section, "first write", round(first["wall_s"], 1), "s"),
        Row(section, "first write, rows per second", round(rows / first["wall_s"]), "rows/s"),
        Row(section, "rerun, nothing changed", round(rerun["wall_s"], 1), "s"),
        Row(section, "rerun, nothing changed: files rewritten", rerun["files_rewritten"], "",
            "0", rerun["files_rewritten"] == 0),
        Row(section, "rerun, one task changed", round(changed["wall_s"], 1), "s"),
        Row(section, "rerun, one task changed: files rewritten", changed["files_rewritten"], ""),
        Row(section, "index.html", round(probe["index_bytes"] / 1024), "KiB", "≤ 2,048 KiB",
            probe["index_bytes"] <= INDEX_TARGET_BYTES),
        Row(section, "pages", probe["pages"], "files"),
        Row(section, "pages, total", round(probe["pages_bytes"] / 1024**2), "MiB"),
        Row(section, "largest page", round(probe["largest_page_bytes"] / 1024), "KiB"),
        Row(section, "peak RSS of the writer", round(measured.max_rss_mb, 1), "MiB"),
    ]
    if "index_median_s" in browser:
        table += [
            Row("gallery: in Chromium", f"index.html of {BROWSER_ROWS:,} tasks, load",
                round(browser["index_median_s"], 2), "s"),
            Row("gallery: in Chromium", "about:blank, load (Chromium's start-up)",
                round(browser["blank_median_s"], 2), "s"),
        ]
    return table, {"probe": probe, "writer": measured.as_dict(), "browser": browser}
