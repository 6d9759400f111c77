"""Scale: `plan` over a million-row CSV manifest, and `submit`'s resume over its finished ledger.

1. `batcher plan CSV` (validate every row, then count what would be sent): wall time, tasks per
   second, peak RSS of the process.
2. `batcher plan CSV --json` streams every task's key; the benchmark turns them into a ledger in
   which every task is done, a `sending` and a `submitted` line each in batcher's own format (so
   N tasks make 2N lines). Its wall time and RSS are shown for information.
3. The resume scan alone: `batcher.state.ledger.replay` over that ledger in its own process
   (`bench/probe_replay.py`), timed inside, peak RSS from outside.
4. `batcher submit CSV` with that ledger against an emulator: it must send nothing and exit 0;
   total wall time (validation, replay, the lanes' scan of the manifest) and peak RSS.
5. `batcher submit CSV` with a ledger in which the first half of the tasks is done and no
   completion record: the time from its start to the emulator's first request (the keyed pass
   over every row, then the lanes starting at the first task to send); then it is interrupted.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from manifests import plan_json_keys, write_csv, write_done_ledger
from procs import BATCHER, Emulator, Measured, batcher_env, run_json, run_measured
from table import Row

PLAN_RATE_TARGET = 50_000.0
PLAN_JSON_RATE_TARGET = 60_000.0
FIRST_REQUEST_TARGET = 8.0
FIRST_REQUEST_TIMEOUT = 120.0
RESUME_SCAN_TARGET = 5.0
RSS_TARGET_MB = 150.0
PROBE_REPLAY = Path(__file__).with_name("probe_replay.py")


def _section(rows: int) -> str:
    return f"scale: {rows:,}-row CSV manifest"


def measure_plan(manifest: Path, workdir: Path) -> tuple[Measured, int]:
    """`batcher plan` against a ledger that does not exist; (measure, total tasks it printed)."""
    output: list[bytes] = []
    measured = run_measured(
        [*BATCHER, "plan", str(manifest), "--ledger", str(workdir / "absent.ledger.jsonl")],
        on_stdout=lambda out: output.append(out.read()),
    )
    text = b"".join(output).decode()
    match = re.search(r"^\s*total\s+([\d,]+)", text, re.MULTILINE)
    if measured.returncode != 0 or match is None:
        raise RuntimeError(f"batcher plan exited {measured.returncode}: {text[:500]!r}")
    return measured, int(match[1].replace(",", ""))


def build_done_ledger(
    manifest: Path, ledger: Path, half_ledger: Path, rows: int, workdir: Path
) -> tuple[Measured, int]:
    """Stream `batcher plan --json` into a ledger where every task is done, and another where
    the first half is; (measure of the plan, lines of the full ledger)."""
    lines: list[int] = []

    def consume(stream: IO[bytes]) -> None:
        lines.append(write_done_ledger(ledger, plan_json_keys(stream), workdir,
                                       first=(half_ledger, rows // 2)))

    measured = run_measured([*BATCHER, "plan", str(manifest), "--json"], on_stdout=consume)
    if measured.returncode != 0:
        raise RuntimeError(f"batcher plan --json exited {measured.returncode}")
    return measured, lines[0]


def measure_replay(ledger: Path) -> tuple[Measured, dict[str, Any]]:
    return run_json([sys.executable, str(PROBE_REPLAY), str(ledger)])


def measure_resume(manifest: Path, ledger: Path, workdir: Path) -> dict[str, Any]:
    with Emulator(workdir, rate=20) as emulator:
        argv = [*BATCHER, "submit", str(manifest), "--endpoint", emulator.url, "--ledger",
                str(ledger), "--quiet", "--json"]
        measured, summary = run_json(argv, env=batcher_env())
        sent = emulator.requests()
    done_before = sum(
        counts["done_before"]
        for job in summary["manifests"]
        for counts in job["services"].values()
    )
    return {"measured": measured, "sent": sent, "done_before": done_before, "summary": summary}


def measure_first_request(manifest: Path, ledger: Path, workdir: Path) -> dict[str, Any]:
    """Seconds from the start of `batcher submit` to the emulator's first request."""
    with Emulator(workdir, rate=20) as emulator:
        argv = [*BATCHER, "submit", str(manifest), "--endpoint", emulator.url, "--ledger",
                str(ledger), "--quiet"]
        started = time.perf_counter()
        process = subprocess.Popen(argv, env=batcher_env(), stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        first: float | None = None
        try:
            while process.poll() is None:
                elapsed = time.perf_counter() - started
                if elapsed > FIRST_REQUEST_TIMEOUT:
                    break
                if emulator.requests():
                    first = elapsed
                    break
                time.sleep(0.05)
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    return {"first_request_s": first, "returncode": process.returncode}


def _rss_row(section: str, what: str, measured: Measured) -> Row:
    return Row(section, f"{what}: peak RSS", measured.max_rss_mb, "MB",
               f"<= {RSS_TARGET_MB:.0f}", measured.max_rss_mb <= RSS_TARGET_MB)


def scale_rows(rows: int, results: dict[str, Any]) -> list[Row]:
    section = _section(rows)
    plan: Measured = results["plan"]
    plan_rate = rows / plan.wall
    plan_json: Measured = results["plan_json"]
    replay_measured: Measured = results["replay"]
    replay_report = results["replay_report"]
    resume = results["resume"]
    resume_measured: Measured = resume["measured"]
    again = results["again"]
    again_measured: Measured = again["measured"]
    lines = results["ledger_lines"]
    first_request = results["half_done"]["first_request_s"]
    done = replay_report["states"]["submitted"]
    return [
        Row(section, "plan: tasks planned", results["planned"], "", f"{rows:,}",
            results["planned"] == rows),
        Row(section, "plan: wall time", plan.wall, "s"),
        Row(section, "plan: tasks per second", plan_rate, "/s", f">= {PLAN_RATE_TARGET:,.0f}",
            plan_rate >= PLAN_RATE_TARGET),
        _rss_row(section, "plan", plan),
        Row(section, "plan --json (keys for the ledger): tasks per second",
            rows / plan_json.wall, "/s", f">= {PLAN_JSON_RATE_TARGET:,.0f}",
            rows / plan_json.wall >= PLAN_JSON_RATE_TARGET),
        Row(section, f"resume scan: replay of the {lines:,}-line ledger (all done)",
            replay_report["replay_wall_s"], "s", f"<= {RESUME_SCAN_TARGET:.0f}",
            replay_report["replay_wall_s"] <= RESUME_SCAN_TARGET),
        Row(section, "resume scan: keys found done", done, "", f"{rows:,}", done == rows),
        _rss_row(section, "resume scan", replay_measured),
        Row(section, "submit resume (all done, full pass): wall time", resume_measured.wall,
            "s"),
        Row(section, "submit resume: requests sent (exit code)", resume["sent"],
            f"(exit {resume_measured.returncode})", "0 (exit 0)",
            resume["sent"] == 0 and resume_measured.returncode == 0
            and resume["done_before"] == rows),
        _rss_row(section, "submit resume", resume_measured),
        Row(section, "submit again, finished batch (completion record): wall time",
            again_measured.wall, "s", f"<= {RESUME_SCAN_TARGET:.0f}",
            again_measured.wall <= RESUME_SCAN_TARGET and again["sent"] == 0
            and again_measured.returncode == 0 and again["done_before"] == rows),
        _rss_row(section, "submit again", again_measured),
        Row(section, "submit, first half done, no completion record: first request after",
            first_request, "s", f"<= {FIRST_REQUEST_TARGET:.0f}",
            first_request is not None and first_request <= FIRST_REQUEST_TARGET),
    ]


def run_scale(workdir: Path, rows: int, log: Callable[[str], None]) -> tuple[list[Row], dict]:
    scale_dir = workdir / "scale"
    scale_dir.mkdir()
    manifest = write_csv(scale_dir / "scale.csv", rows)
    ledger = scale_dir / "scale.ledger.jsonl"
    half_ledger = scale_dir / "half.ledger.jsonl"
    log(f"  plan over {rows:,} rows")
    plan, planned = measure_plan(manifest, scale_dir)
    log("  plan --json, writing the finished ledger and a half-done one")
    plan_json, lines = build_done_ledger(manifest, ledger, half_ledger, rows, scale_dir)
    log(f"  replay of {lines:,} ledger lines")
    replay_measured, replay_report = measure_replay(ledger)
    log("  submit over the finished ledger")
    resume = measure_resume(manifest, ledger, scale_dir)
    log("  submit over the finished batch again (its completion record now written)")
    again = measure_resume(manifest, ledger, scale_dir)
    log("  submit over the half-done ledger, until its first request")
    half_done = measure_first_request(manifest, half_ledger, scale_dir)
    results = {"plan": plan, "planned": planned, "plan_json": plan_json, "ledger_lines": lines,
               "replay": replay_measured, "replay_report": replay_report, "resume": resume,
               "again": again, "half_done": half_done}
    details = {
        "rows": rows,
        "manifest_bytes": manifest.stat().st_size,
        "ledger_bytes": ledger.stat().st_size,
        "ledger_lines": lines,
        "plan": plan.as_dict(),
        "plan_json": plan_json.as_dict(),
        "replay": {"process": replay_measured.as_dict(), "report": replay_report},
        "submit_resume": {"process": resume["measured"].as_dict(), "sent": resume["sent"],
                          "summary": resume["summary"]},
        "submit_again": {"process": again["measured"].as_dict(), "sent": again["sent"],
                         "summary": again["summary"]},
        "submit_half_done": half_done,
    }
    return scale_rows(rows, results), details

