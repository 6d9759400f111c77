"""The `file:` rate store does not depend on processes agreeing on the wall clock.

Two `batcher submit` processes share one file store, each under Debian's `faketime` (an
`LD_PRELOAD` shifter of every libc clock, the monotonic ones too), one 5 s ahead and one 90 s
ahead (a VM after an NTP step); the emulator runs unshifted in its own process and counts the
requests in every rolling second: never more than the cap, and neither process starved — while
both run, each has a fair share of the sends (read from the emulator's log, by SessionId).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys

import pytest

from tests.helpers import (
    cli_env,
    emulator_process,
    emulator_stats,
    read_ledger,
    write_manifest,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.serial,
    pytest.mark.skipif(shutil.which("faketime") is None and os.environ.get("CI") != "true",
                       reason="faketime missing: apt-get install faketime (.ci/run does)"),
]

TASKS = 40


async def test_two_processes_with_shifted_clocks_share_the_cap_fairly(tmp_path):
    store = f"file:{tmp_path / 'rate.json'}"
    log = tmp_path / "emulator.jsonl"
    manifests = [write_manifest(tmp_path, vod=TASKS, mps=0, name=f"ahead{shift}")
                 for shift in (5, 90)]
    async with emulator_process("--rate", "20", "--log", str(log)) as url:
        runs = [
            await asyncio.create_subprocess_exec(
                "faketime", "-f", f"+{shift}s", sys.executable, "-m", "batcher", "submit",
                str(manifest), "--endpoint", url, "--rate-store", store, "--progress", "none",
                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, env=cli_env(),
            )
            for shift, manifest in zip((5, 90), manifests, strict=True)
        ]
        try:
            outputs = await asyncio.wait_for(
                asyncio.gather(*(run.communicate() for run in runs)), 120)
        finally:
            for run in runs:
                if run.returncode is None:
                    run.kill()
                    await run.wait()
        vod = (await emulator_stats(url))["services"]["vod"]
    for run, (_, stderr) in zip(runs, outputs, strict=True):
        assert run.returncode == 0, stderr.decode()
    assert vod["created"] == 2 * TASKS
    assert vod["errors"] == {}, "no request was refused as over the limit"
    assert vod["max_requests_in_rolling_second"] <= 20
    # Fair: while both processes send, neither gets less than a third of the sends.
    owner = {}
    for index, manifest in enumerate(manifests):
        for record in read_ledger(manifest.with_suffix(".ledger.jsonl")):
            if record.get("session_id"):
                owner[record["session_id"]] = index
    arrivals = [json.loads(line) for line in log.read_text().splitlines()]
    order = [owner[record["session_id"]] for record in sorted(arrivals, key=lambda r: r["mono"])
             if record.get("session_id") in owner]
    first_done = min(max(i for i, who in enumerate(order) if who == w) for w in (0, 1))
    first_start = max(order.index(0), order.index(1))
    both = order[first_start:first_done + 1]
    assert len(both) >= TASKS // 2, order
    assert min(both.count(0), both.count(1)) >= len(both) / 3, order
