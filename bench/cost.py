"""Client cost: CPU time per request and requests per second with the rate cap lifted.

N tasks (vod and mps alternating, from a bare CSV) go to an emulator started with `--rate 0`:

1. `batcher submit --rate 0`: the CPU time of the batcher process (user + system from os.wait4:
   start-up, manifest validation, signing, JSON, the ledger with its fdatasync'ed group commits,
   everything) divided by the requests the emulator answered; requests per second = those
   requests / the submit's wall time. The emulator's CPU is its own process and never counted.
2. The same `submit` again on the finished ledger sends nothing: its cost is the fixed part
   (interpreter, imports, validation, ledger replay). The difference gives the marginal cost per
   request, shown for information.
3. The same requests (`batcher plan --json`: SessionIds included) through the official SDK's
   async client in a plain asyncio.gather loop under a semaphore of 64 (`bench/sdk_loop.py`, its
   own process, a fresh emulator), measured the same way. The ratio SDK / batcher is the figure.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from manifests import write_csv
from procs import BATCHER, Emulator, Measured, batcher_env, run_json, run_measured
from table import Row

SECTION = "client cost: cap lifted (--rate 0 on both sides)"
CPU_TARGET_MS = 0.5
RATIO_TARGET = 6.0
RATE_TARGET = 2000.0
SDK_LOOP = Path(__file__).with_name("sdk_loop.py")


def _submit(manifest: Path, ledger: Path, emulator: Emulator) -> tuple[Measured, dict[str, Any]]:
    argv = [*BATCHER, "submit", str(manifest), "--endpoint", emulator.url, "--ledger",
            str(ledger), "--rate", "0", "--quiet", "--json"]
    return run_json(argv, env=batcher_env())


def _plan_json(manifest: Path, out: Path) -> None:
    with out.open("wb") as stdout:
        measured = run_measured([*BATCHER, "plan", str(manifest), "--json"], stdout=stdout)
    if measured.returncode != 0:
        raise RuntimeError(f"batcher plan --json exited {measured.returncode}")


def measure_batcher(workdir: Path, manifest: Path) -> dict[str, Any]:
    """A full submit, then a no-op one on its ledger; requests counted by the emulator."""
    ledger = workdir / "cost.ledger.jsonl"
    with Emulator(workdir, rate=0) as emulator:
        full, summary = _submit(manifest, ledger, emulator)
        requests = emulator.requests()
        noop, _ = _submit(manifest, ledger, emulator)
        resent = emulator.requests() - requests
    emulator_cpu = emulator.measured.cpu if emulator.measured else 0.0
    with ledger.open("rb") as lines:
        ledger_lines = sum(1 for _ in lines)
    return {"full": full, "noop": noop, "requests": requests, "resent_by_noop": resent,
            "summary": summary, "ledger_lines": ledger_lines, "emulator_cpu_s": emulator_cpu}


def measure_sdk(workdir: Path, tasks: Path) -> dict[str, Any]:
    """The SDK loop as its own process against a fresh emulator."""
    with Emulator(workdir, rate=0) as emulator:
        measured, report = run_json(
            [sys.executable, str(SDK_LOOP), str(tasks), emulator.endpoint], env=batcher_env()
        )
        requests = emulator.requests()
    return {"measured": measured, "report": report, "requests": requests}


def _ms_per(seconds: float, count: int) -> float | None:
    return seconds * 1000 / count if count else None


def cost_rows(batcher: dict[str, Any], sdk: dict[str, Any], tasks: int) -> list[Row]:
    full: Measured = batcher["full"]
    noop: Measured = batcher["noop"]
    requests = batcher["requests"]
    cpu_ms = _ms_per(full.cpu, requests)
    rate = requests / full.wall if full.wall else 0.0
    marginal_ms = _ms_per(full.cpu - noop.cpu, requests)
    marginal_rate = requests / (full.wall - noop.wall) if full.wall > noop.wall else None
    sdk_measured: Measured = sdk["measured"]
    sdk_requests = sdk["requests"]
    sdk_ms = _ms_per(sdk_measured.cpu, sdk_requests)
    ratio = sdk_ms / cpu_ms if sdk_ms and cpu_ms else None
    client = sdk["report"]["client"]
    sdk_name = "SDK async loop" if client == "async" else "SDK sync client in 64 threads (no httpx)"
    rows = [
        Row(SECTION, f"batcher requests sent / tasks ({tasks:,} tasks)", requests, "",
            f"{tasks:,}", requests == tasks),
        Row(SECTION, "ledger lines: a durable `sending` + an outcome per task",
            batcher["ledger_lines"], "", f"{2 * tasks:,}", batcher["ledger_lines"] == 2 * tasks),
        Row(SECTION, "batcher CPU per request (whole process)", cpu_ms, "ms",
            f"<= {CPU_TARGET_MS}", None if cpu_ms is None else cpu_ms <= CPU_TARGET_MS),
        Row(SECTION, "batcher requests/s (requests / submit wall time)", rate, "/s",
            f">= {RATE_TARGET:,.0f}", rate >= RATE_TARGET),
        Row(SECTION, "batcher CPU per request, marginal (minus a no-op submit)", marginal_ms,
            "ms"),
        Row(SECTION, "batcher requests/s, marginal (minus a no-op submit)", marginal_rate, "/s"),
        Row(SECTION, "batcher fixed cost: no-op submit of the same manifest (CPU)",
            noop.cpu * 1000, "ms"),
        Row(SECTION, "requests sent by that no-op submit", batcher["resent_by_noop"], "", "0",
            batcher["resent_by_noop"] == 0),
        Row(SECTION, f"{sdk_name}: CPU per request (whole process)", sdk_ms, "ms"),
        Row(SECTION, f"{sdk_name}: requests/s", sdk_requests / sdk_measured.wall, "/s"),
        Row(SECTION, "SDK CPU per request / batcher's", ratio, "x", f">= {RATIO_TARGET:.0f}",
            None if ratio is None else ratio >= RATIO_TARGET),
    ]
    emulator_ms = _ms_per(batcher["emulator_cpu_s"], requests)
    rows.append(Row(SECTION, "emulator CPU per request (its own process, not counted)",
                    emulator_ms, "ms"))
    return rows


def run_cost(workdir: Path, tasks: int) -> tuple[list[Row], dict[str, Any]]:
    cost_dir = workdir / "cost"
    cost_dir.mkdir()
    manifest = write_csv(cost_dir / "cost.csv", tasks)
    tasks_json = cost_dir / "cost.tasks.jsonl"
    _plan_json(manifest, tasks_json)
    batcher = measure_batcher(cost_dir, manifest)
    sdk = measure_sdk(cost_dir, tasks_json)
    rows = cost_rows(batcher, sdk, tasks)
    details = {
        "tasks": tasks,
        "batcher": {
            "submit": batcher["full"].as_dict(),
            "noop_submit": batcher["noop"].as_dict(),
            "requests": batcher["requests"],
            "resent_by_noop": batcher["resent_by_noop"],
            "ledger_lines": batcher["ledger_lines"],
            "summary": batcher["summary"],
            "emulator_cpu_s": batcher["emulator_cpu_s"],
        },
        "sdk": {"process": sdk["measured"].as_dict(), "loop": sdk["report"],
                "requests": sdk["requests"]},
    }
    json.dumps(details)  # fail here, not when the results are written, if anything is not JSON
    return rows, details
