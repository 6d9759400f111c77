"""Pace (docs/results.md): does `collect --wait` keep up with a `submit` at the real caps, and does
`collect` stay flat in memory and linear in CPU over a large batch?

1. N vod + N mps tasks of 15 s ± 50%, the emulator at the real caps (mps 20 polls a second),
   `submit` and `collect --wait` side by side: status requests per task per service (target
   ≤ 1.15) and how long after the last task finished collect ends (≤ 5 s), against the bound (the
   last finish, measured from the submit's start);
2. `collect` over M finished tasks, emulator caps lifted: wall time, CPU per task, peak RSS
   (≤ 100 MiB at 20,000, ≤ 150 MiB at 1,000,000), gallery size, and the rerun over the finished
   batch (the time to rewrite the reports).

    .venv/bin/python bench/run.py --only pace --pace-tasks 1000 --pace-scale 200000
    .venv/bin/python bench/run.py --only pace --pace-tasks 0 --pace-scale 20000   # 2. alone
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from collect import POLL_ACTIONS, _collect, _collect_beside_submit, _config, _last_finish, _submit
from manifests import write_csv, write_matrix_yaml
from table import Row

from batcher.emulator.config import GenerationConfig
from batcher.emulator.runner import RunningEmulator, running_emulator


def _polls_per_service(emulator: RunningEmulator) -> dict[str, int]:
    stats = emulator.stats(include_sessions=False)["services"]
    return {name: sum(service.get("requests_per_action", {}).get(action, 0)
                      for action in POLL_ACTIONS) for name, service in stats.items()}


async def side_by_side(workdir: Path, per_service: int) -> tuple[list[Row], dict[str, Any]]:
    manifest = write_matrix_yaml(workdir / "pace.yaml", per_service)
    fifteen = GenerationConfig(seconds=15.0, jitter=0.5, image_bytes=4096)
    async with running_emulator(_config(rate=None, generation=fifteen)) as emulator:
        started = time.time()
        measured, ended = await _collect_beside_submit(manifest, emulator.url)
        polls, last = _polls_per_service(emulator), _last_finish(emulator)
    lag = ended - last
    rows = [Row("pace", f"{per_service:,} {name} tasks of 15 s ± 50% beside submit: status "
                "requests per task", round(polls.get(name, 0) / per_service, 3), "", "<= 1.15",
                polls.get(name, 0) / per_service <= 1.15) for name in ("mps", "vod")]
    rows.append(Row("pace", f"collect ends after the last finish (bound {last - started:.0f} s, "
                    f"took {ended - started:.0f} s)", round(lag, 2), "s", "<= 5", lag <= 5))
    return rows, {"per_service": per_service, "polls": polls, "lag_s": round(lag, 3),
                  "bound_s": round(last - started, 3), "wall_s": round(ended - started, 3),
                  "exit": measured.returncode, "collect": measured.as_dict()}


async def large(workdir: Path, tasks: int) -> tuple[list[Row], dict[str, Any]]:
    # A CSV, as a million prompts come: a YAML `matrix:` of half a million values costs the
    # manifest layer itself some 400 MB, before collect holds anything.
    manifest = write_csv(workdir / "pace-large.csv", tasks)
    instant = GenerationConfig(seconds=0.0, image_bytes=2048)
    async with running_emulator(_config(rate=0, generation=instant)) as emulator:
        await _submit(manifest, emulator.url)
        first = await _collect(manifest, emulator.url, "--poll-rate", "0")
        rerun = await _collect(manifest, emulator.url, "--poll-rate", "0")
    out = manifest.with_name(f"{manifest.stem}.results")
    gallery = sum(path.stat().st_size for path in out.rglob("*.html"))
    index = (out / "index.html").stat().st_size if (out / "index.html").exists() else 0
    limit = 100 if tasks <= 20_000 else 150
    rows = [
        Row("pace", f"collect over {tasks:,} finished tasks: wall", round(first.wall, 1), "s"),
        Row("pace", "  CPU per task", round(1e6 * first.cpu / tasks, 1), "µs"),
        Row("pace", "  peak RSS", round(first.max_rss_mb, 1), "MiB", f"<= {limit}",
            first.max_rss_mb <= limit),
        Row("pace", "  gallery (all pages) / index.html", f"{gallery / 1e6:.1f} / "
            f"{index / 1e6:.2f}", "MB"),
        Row("pace", "  rerun over the finished batch: wall", round(rerun.wall, 1), "s"),
    ]
    return rows, {"tasks": tasks, "first": first.as_dict(), "rerun": rerun.as_dict(),
                  "gallery_bytes": gallery, "index_bytes": index,
                  "exit": [first.returncode, rerun.returncode]}


def run_pace(workdir: Path, per_service: int, scale: int) -> tuple[list[Row], dict[str, Any]]:
    async def measure() -> tuple[list[Row], dict[str, Any]]:
        rows, details = [], {}
        steps = {"side_by_side": (side_by_side, per_service), "large": (large, scale)}
        for name, (step, count) in steps.items():
            if count <= 0:  # --pace-tasks 0 / --pace-scale 0: that part is not run
                continue
            section, details[name] = await step(workdir, count)
            rows += section
            print("\n".join(str(row) for row in section), details[name], flush=True)
        return rows, details

    return asyncio.run(measure())


if __name__ == "__main__":  # python bench/pace.py [per_service] [scale]
    import sys
    import tempfile

    with tempfile.TemporaryDirectory() as directory:
        found, info = run_pace(Path(directory), int(sys.argv[1]) if len(sys.argv) > 1 else 200,
                               int(sys.argv[2]) if len(sys.argv) > 2 else 2000)
    print(len(found), "figures")
