"""One account, many processes (docs/operating.md#several-hosts) and the cap at high latency
(docs/architecture.md#submitting).

Shared stores: three `batcher submit` processes side by side, each with its own manifest of N vod
+ N mps tasks, all naming one rate store, against one emulator enforcing 20 per rolling second
per service and logging every arrival. Per store (`file:`, `redis://` on a `redis-server` of the
bench's own, and `memory` for contrast: three private caps), per service: the combined request
rate as a share of the cap (requests / (last − first + 1/cap), target ≥ 98%), the most requests
in any rolling second (target ≤ 20), refusals; and the store's cost per request: the batcher
processes' CPU per request, and one reservation's round trip measured in-process (2,000 of them).

Latency: one process, N vod + N mps tasks, the emulator answering after 2 s, then 5 s: the
request rate as a share of the cap (target ≥ 98%), which needs rate × latency requests in flight
(Little's law: 100 at 5 s).
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from procs import BATCHER, Emulator, _reap, batcher_env
from rate import SERVICES, figures, read_log
from table import Row

from batcher.run.rate_stores import open_store

SHARE_TARGET = 0.98
PROCESSES = 3

CAMPAIGN_YAML = """\
batch: bench-shared-{c}
defaults:
  vod: {{SubAppId: 251007502, ModelName: GEM, ModelVersion: "2.5"}}
  mps: {{ModelName: Hunyuan}}
matrix:
  n: [{values}]
tasks:
  - {{service: vod, Prompt: "campaign {c}: a lighthouse number {{n}}"}}
  - {{service: mps, Prompt: "campaign {c}: a paper boat number {{n}}"}}
"""


def campaign(directory: Path, number: int, per_service: int) -> Path:
    path = directory / f"campaign{number}.yaml"
    values = ", ".join(str(n) for n in range(per_service))
    path.write_text(CAMPAIGN_YAML.format(c=number, values=values), encoding="utf-8")
    return path


class RedisServer:
    """A `redis-server` of the bench's own on a free loopback port."""

    def __init__(self, directory: Path) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(directory)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        for _ in range(500):
            with socket.socket() as client:
                if client.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.02)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        self._process.terminate()
        self._process.wait()


def reservation_cost(url: str, count: int = 2000) -> float:
    """Microseconds per reservation, one after another, in this process."""

    async def measure() -> float:
        store = open_store(url)
        try:
            started = time.perf_counter()
            for _ in range(count):
                await store.reserve("batcher:rate:bench:vod:CreateAigcImageTask", 1e-9)
            return (time.perf_counter() - started) / count * 1e6
        finally:
            await store.close()

    return asyncio.run(measure())


def run_store(workdir: Path, label: str, url: str, per_service: int) -> dict[str, Any]:
    phase_dir = workdir / f"shared-{label}"
    phase_dir.mkdir()
    log_path = phase_dir / "emulator.jsonl"
    manifests = [campaign(phase_dir, n, per_service) for n in range(PROCESSES)]
    with Emulator(phase_dir, rate=20, log=log_path) as emulator:
        started = time.perf_counter()
        children = []
        for manifest in manifests:
            argv = [*BATCHER, "submit", str(manifest), "--endpoint", emulator.url,
                    "--rate-store", url, "--quiet"]
            children.append((subprocess.Popen(argv, env=batcher_env(),
                                              stdout=subprocess.DEVNULL), argv))
        measured = [_reap(child, argv, started) for child, argv in children]
        stats = emulator.stats()
    logs = read_log(log_path)
    services = [figures(service, logs[service], 20, stats) for service in SERVICES]
    requests = sum(figure.requests for figure in services)
    return {
        "store": label,
        "exit_codes": [m.returncode for m in measured],
        "wall_s": max(m.wall for m in measured),
        "cpu_us_per_request": sum(m.cpu for m in measured) / requests * 1e6 if requests else 0,
        "reservation_us": reservation_cost(url) if label != "memory" else 0.0,
        "services": {f.service: {"share": f.request_rate / 20, "max": max(
            f.max_per_second, f.emulator_max_per_second), "refused": f.codes.get(
            "RequestLimitExceeded", 0), "requests": f.requests} for f in services},
    }


def run_latency(workdir: Path, latency: float, per_service: int) -> dict[str, Any]:
    phase_dir = workdir / f"latency-{latency:g}s"
    phase_dir.mkdir()
    log_path = phase_dir / "emulator.jsonl"
    manifest = campaign(phase_dir, 0, per_service)
    with Emulator(phase_dir, rate=20, log=log_path, latency_ms=latency * 1000) as emulator:
        argv = [*BATCHER, "submit", str(manifest), "--endpoint", emulator.url,
                "--rate-store", "memory", "--quiet"]
        started = time.perf_counter()
        measured = _reap(subprocess.Popen(argv, env=batcher_env(), stdout=subprocess.DEVNULL),
                         argv, started)
        stats = emulator.stats()
    logs = read_log(log_path)
    services = [figures(service, logs[service], 20, stats) for service in SERVICES]
    return {"latency_s": latency, "exit_code": measured.returncode, "wall_s": measured.wall,
            "services": {f.service: {"share": f.request_rate / 20,
                                     "max": max(f.max_per_second, f.emulator_max_per_second)}
                         for f in services}}


def run_shared(workdir: Path, per_service: int) -> tuple[list[Row], dict[str, Any]]:
    stores: dict[str, str] = {"file": f"file:{workdir / 'rate-slots.json'}"}
    redis = RedisServer(workdir) if shutil.which("redis-server") else None
    if redis is not None:
        stores["redis"] = redis.url
    stores["memory"] = "memory"
    details: dict[str, Any] = {}
    rows: list[Row] = []
    try:
        for label, url in stores.items():
            result = run_store(workdir, label, url, per_service)
            details[label] = result
            section = (f"shared: {PROCESSES} processes x ({per_service} vod + {per_service} mps)"
                       f" on {label}{' (no sharing, for contrast)' if label == 'memory' else ''}")
            judged = label != "memory"
            for service, figure in result["services"].items():
                share = figure["share"]
                rows.append(Row(section, f"{service} combined rate, share of the cap",
                                share * 100, "%", f">= {SHARE_TARGET:.0%}",
                                share >= SHARE_TARGET if judged else None))
                within = figure["max"] <= 20 if judged else None
                rows.append(Row(section, f"{service} most requests in any rolling second",
                                figure["max"], "", "<= 20", within))
            rows.append(Row(section, "batcher CPU per request", result["cpu_us_per_request"],
                            "us"))
            if label != "memory":
                rows.append(Row(section, "one reservation, round trip", result["reservation_us"],
                                "us"))
    finally:
        if redis is not None:
            redis.stop()
    for latency in (2.0, 5.0):
        result = run_latency(workdir, latency, per_service)
        details[f"latency-{latency:g}s"] = result
        section = f"latency: {per_service} vod + {per_service} mps, answers after {latency:g} s"
        for service, figure in result["services"].items():
            rows.append(Row(section, f"{service} request rate, share of the cap",
                            figure["share"] * 100, "%", f">= {SHARE_TARGET:.0%}",
                            figure["share"] >= SHARE_TARGET))
            rows.append(Row(section, f"{service} most requests in any rolling second",
                            figure["max"], "", "<= 20", figure["max"] <= 20))
    return rows, details
