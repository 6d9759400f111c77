"""Render a sample gallery of jobs/example.yaml and screenshot it to docs/gallery.png.

    .venv/bin/python docs/gallery_demo.py [OUT_DIR]

The tasks (keys, sources, prompts, parameters) are the manifest's own; their result states and
TaskIds are samples, and the images are drawn here (a gradient and a disc per prompt), because
this page shows what the gallery looks like, not what a model made. `make demo` builds the real
one from a run against the emulator. Needs Debian's `chromium` for the screenshot.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

from batcher.manifest import Task, load_manifest
from batcher.results.gallery import write_gallery
from batcher.results.rows import ResultRow, ResultState
from batcher.results.table import write_results_csv

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = ROOT / "jobs" / "example.yaml"
SCREENSHOT = ROOT / "docs" / "gallery.png"

SAMPLE_OUTCOMES: dict[int, tuple[ResultState, str, str]] = {
    2: (ResultState.GENERATION_FAILED, "ContentModerationFailed",
        "The input content is suspected to be non-compliant."),
    5: (ResultState.PENDING, "", ""),
    8: (ResultState.EXPIRED, "", "the image URL answered 403 (MPS keeps images 12 hours)"),
}
"""Sample states by task index; every other task is downloaded."""

RGB = tuple[int, int, int]
PALETTES: dict[str, tuple[RGB, RGB]] = {
    "watercolor": ((186, 220, 240), (250, 226, 212)),
    "photo": ((92, 140, 196), (226, 200, 150)),
    "ink": ((236, 234, 228), (150, 150, 146)),
    "pencil": ((246, 244, 238), (196, 192, 184)),
    "oil": ((58, 64, 120), (236, 150, 84)),
}


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    os.chdir(ROOT)  # sources read `jobs/example.yaml:24`, as when run from the checkout
    manifest = load_manifest(MANIFEST.relative_to(ROOT))
    manifest.validate()
    rows = [sample_row(index, task, out) for index, task in enumerate(manifest.tasks())]
    write_results_csv(out, rows)
    page = write_gallery(out, rows, title=MANIFEST.stem)
    print(page)
    if shutil.which("chromium"):
        screenshot(page)
        print(SCREENSHOT, SCREENSHOT.stat().st_size, "bytes")


def sample_row(index: int, task: Task, out: Path) -> ResultRow:
    prompt = str(task.params.get("Prompt", ""))
    state, code, message = SAMPLE_OUTCOMES.get(index, (ResultState.DOWNLOADED, "", ""))
    files: tuple[str, ...] = ()
    if state is ResultState.DOWNLOADED:
        width, height = (240, 240) if "1:1" in str(task.params) else (320, 180)
        relative = f"{index + 1:04d}-{slug(prompt)}-{task.key[:8]}.png"
        (out / relative).write_bytes(picture(prompt, width, height))
        files = (relative,)
    return ResultRow(
        key=task.key, service=task.service, source=task.origin, prompt=prompt,
        params=task.params, state=state, task_id=f"1500012345-AigcImage-{task.key[:12]}",
        files=files, error_code=code, error_message=message,
    )


def slug(text: str) -> str:
    words = "".join(c if c.isalnum() else " " for c in text.lower()).split()
    return "-".join(words)[:40].strip("-")


def picture(prompt: str, width: int, height: int) -> bytes:
    """A gradient in the prompt's style with a disc placed and coloured from its words."""
    top, bottom = next((p for s, p in PALETTES.items() if s in prompt), PALETTES["photo"])
    seed = hashlib.sha256(prompt.encode()).digest()
    disc: RGB = (seed[0] // 2 + 60, seed[1] // 2 + 40, seed[2] // 3 + 30)
    cx, cy, r = width * (0.3 + seed[3] / 640), height * (0.45 + seed[4] / 1280), height * 0.28
    rows = []
    for y in range(height):
        t = y / (height - 1)
        sky = tuple(round(a + (b - a) * t) for a, b in zip(top, bottom, strict=True))
        line = bytearray(b"\x00")
        for x in range(width):
            edge = ((x - cx) ** 2 + (y - cy) ** 2) ** 0.5 - r
            mix = min(1.0, max(0.0, 0.5 - edge / 3))  # a soft, antialiased edge
            line += bytes(round(s + (d - s) * mix) for s, d in zip(sky, disc, strict=True))
        rows.append(bytes(line))
    return png(width, height, b"".join(rows))


def png(width: int, height: int, scanlines: bytes) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(scanlines, 9)) + chunk(b"IEND", b""))


def screenshot(page: Path) -> None:
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             f"--user-data-dir={profile}", "--window-size=1200,900",
             "--virtual-time-budget=5000", f"--screenshot={SCREENSHOT}", page.as_uri()],
            check=True, capture_output=True,
        )


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(suffix=".gallery")))
