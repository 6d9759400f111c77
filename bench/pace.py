"""Pace (docs/results.md): does `collect --wait` keep up with a `submit` at the real caps, and does
`collect` stay flat in memory and linear in CPU over a large batch?

1. N vod + N mps tasks of 15 s ± 50%, the emulator at the real caps (mps 20 polls a second),
   `submit` and `collect --wait` side by side: status requests per task per service (target
   ≤ 1.15) and how long after the last task finished collect ends (≤ 5 s), against the bound (the
   last finish, measured from the submit's start);
2. `collect` over M finished tasks, emulator caps lifted: wall time, CPU per task, peak RSS
   (≤ 100 MiB at 20,000, ≤ 150 MiB at 1,000,000), gallery size, and the rerun over the finished
   batch (the time to rewrite the reports);
3. `collect --wait` started beside a running `submit` of F tasks, caps lifted: it follows the
   submit's ledger as it grows; its peak RSS (≤ 150 MiB: the batch is not held), wall time, CPU
   per task, and how long after the submit it ends.

    .venv/bin/python bench/run.py --only pace --pace-tasks 1000 --pace-scale 200000
    .venv/bin/python bench/run.py --only pace --pace-tasks 0 --pace-scale 20000   # 2. alone
    .venv/bin/python bench/run.py --only pace --pace-tasks 0 --pace-scale 0 --pace-follow 200000
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
        measured, ended, _, _ = await _collect_beside_submit(manifest, emulator.url)
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


async def follow(workdir: Path, tasks: int) -> tuple[list[Row], dict[str, Any]]:
    manifest = write_csv(workdir / "pace-follow.csv", tasks)
    instant = GenerationConfig(seconds=0.0, image_bytes=2048)
    async with running_emulator(_config(rate=0, generation=instant)) as emulator:
        collected, ended, submitted, submit_ended = await _collect_beside_submit(
            manifest, emulator.url, "--poll-rate", "0", "--expected-generation", "1s", rate="0")
    lag = ended - submit_ended  # below 0: collect ended first, and did not follow it
    rows = [
        Row("pace", f"collect --wait beside a submit of {tasks:,} tasks: peak RSS",
            round(collected.max_rss_mb, 1), "MiB", "<= 150", collected.max_rss_mb <= 150),
        Row("pace", "  its wall / the submit's", f"{collected.wall:.1f} / {submitted.wall:.1f}",
            "s"),
        Row("pace", "  CPU per task", round(1e6 * collected.cpu / tasks, 1), "µs"),
        Row("pace", "  ended after the submit", round(lag, 1), "s"),
    ]
    return rows, {"tasks": tasks, "collect": collected.as_dict(), "submit": submitted.as_dict(),
                  "lag_s": round(lag, 3), "exit": [collected.returncode, submitted.returncode]}


def run_pace(workdir: Path, per_service: int, scale: int,
             follow_tasks: int = 0) -> tuple[list[Row], dict[str, Any]]:
    async def measure() -> tuple[list[Row], dict[str, Any]]:
        rows, details = [], {}
        steps = {"side_by_side": (side_by_side, per_service), "large": (large, scale),
                 "follow": (follow, follow_tasks)}
        for name, (step, count) in steps.items():
            if count <= 0:  # --pace-tasks 0 / --pace-scale 0 / --pace-follow 0: not run
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
