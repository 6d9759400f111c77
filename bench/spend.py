"""A full service and a spend limit (docs/spend.md), measured against the emulator.

Back-pressure: the emulator lets 10 mps tasks execute at once (`--max-running 10`), each for
1.5 s ± 50%; one `batcher submit` of 150 mps tasks. The limit allows 10 / 1.5 s = 6.7 tasks per
second, so 150 tasks need 22.5 s: the run's wall time against that (target ≤ 1.6×, 36 s), the
rate it settled at against the rate tasks finish, and the refused requests per task (target
≤ 1). The daily limit: three processes at once on one `file:` store, 80 mps tasks each,
`--daily-images 100`: the images created at the emulator (target exactly 100), and a fourth
run's exit code (target 75) and images (target 0).
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

from procs import BATCHER, Emulator, batcher_env
from table import Row

RUNNING, SECONDS, TASKS = 10, 1.5, 150

MPS_YAML = """\
batch: bench-spend-{name}
service: mps
defaults:
  mps: {{ModelName: Hunyuan}}
matrix:
  n: [{values}]
tasks:
  - {{Prompt: "{name}: a kite number {{n}}"}}
"""


def mps_manifest(directory: Path, name: str, count: int) -> Path:
    path = directory / f"{name}.yaml"
    path.write_text(MPS_YAML.format(name=name, values=", ".join(map(str, range(count)))))
    return path


def back_pressure(workdir: Path) -> tuple[list[Row], dict[str, Any]]:
    phase = workdir / "spend-full"
    phase.mkdir()
    manifest = mps_manifest(phase, "full", TASKS)
    extra = ("--max-running", str(RUNNING), "--generation-seconds", str(SECONDS),
             "--generation-jitter", "0.5")
    with Emulator(phase, rate=20, extra=extra) as emulator:
        argv = [*BATCHER, "submit", str(manifest), "--endpoint", emulator.url,
                "--rate-store", "memory", "--quiet"]
        started = time.perf_counter()
        code = subprocess.run(argv, env=batcher_env(), stdout=subprocess.DEVNULL,
                              check=False).returncode
        wall = time.perf_counter() - started
        mps = emulator.stats()["services"]["mps"]
    refused = mps["errors"].get("LimitExceeded.CreateTask", 0)
    ideal = TASKS / RUNNING * SECONDS
    finish_rate = RUNNING / SECONDS
    rows = [
        Row("spend", f"full service: {TASKS} mps tasks created, exit code", mps["created"], "",
            f"{TASKS}, exit 0", mps["created"] == TASKS and code == 0),
        Row("spend", "full service: wall time / the limit's 22.5 s", wall / ideal, "x",
            "<= 1.6", wall / ideal <= 1.6),
        Row("spend", "full service: settled rate / rate tasks finish",
            TASKS / wall / finish_rate, "x", "", None),
        Row("spend", "full service: refused requests per task", refused / TASKS, "",
            "<= 1", refused / TASKS <= 1),
    ]
    return rows, {"wall_seconds": round(wall, 2), "exit_code": code, "refused": refused,
                  "created": mps["created"], "ideal_seconds": ideal}


def daily_limit(workdir: Path) -> tuple[list[Row], dict[str, Any]]:
    phase = workdir / "spend-daily"
    phase.mkdir()
    store = f"file:{phase / 'rate.json'}"
    manifests = [mps_manifest(phase, f"campaign{n}", 80) for n in range(3)]
    with Emulator(phase, rate=0) as emulator:
        def argv(manifest: Path) -> list[str]:
            return [*BATCHER, "submit", str(manifest), "--endpoint", emulator.url, "--rate",
                    "0", "--rate-store", store, "--daily-images", "100", "--quiet"]
        children = [subprocess.Popen(argv(m), env=batcher_env(), stdout=subprocess.DEVNULL)
                    for m in manifests]
        codes = [child.wait() for child in children]
        images = emulator.stats()["images_created"].get("mps", 0)
        fourth = subprocess.run(argv(mps_manifest(phase, "fourth", 5)), env=batcher_env(),
                                stdout=subprocess.DEVNULL, check=False).returncode
        after = emulator.stats()["images_created"].get("mps", 0)
    rows = [
        Row("spend", "daily limit 100, 3 processes x 80: images created", images, "",
            "100", images == 100),
        Row("spend", "daily limit reached: a fourth run's exit code, images", fourth, "",
            "75, 0", fourth == 75 and after == images),
    ]
    return rows, {"exit_codes": codes, "images": images, "fourth_exit": fourth,
                  "fourth_images": after - images}


def run_spend(workdir: Path) -> tuple[list[Row], dict[str, Any]]:
    full_rows, full = back_pressure(workdir)
    daily_rows, daily = daily_limit(workdir)
    return full_rows + daily_rows, {"full_service": full, "daily_limit": daily}
