"""Rate fidelity: how close `batcher submit` comes to the API's cap without ever going above it.

One run submits N vod + N mps tasks at the default cap (20 requests per second per service) to
an emulator that enforces the same cap and logs every request it sees (`--log`: monotonic
arrival time, service, answer code). From that log, per service:

- request rate = requests / (last − first + 1/cap): N requests evenly spaced at exactly the cap
  span (N − 1)/cap seconds, so a perfect client scores exactly the cap; shown as a share of it
  (target ≥ 99%);
- the most requests in any rolling second (window (t − 1 s, t], every request counted, as the
  API counts them; target ≤ cap), checked against the emulator's own meter;
- with `--internal-error-rate`: useful (accepted) requests per second over the same span, against
  the physical bound cap × (1 − error share), the share being the one the emulator drew;
- the submit's wall time against the ideal N / cap (or N / (cap × (1 − share)) with errors).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from manifests import write_matrix_yaml
from procs import BATCHER, Emulator, batcher_env, run_json
from table import Row

from batcher.emulator.state import max_in_rolling_second

SERVICES = ("vod", "mps")
RATE_SHARE_TARGET = 0.99


@dataclass(slots=True)
class ServiceLog:
    """What the emulator logged for one service."""

    times: list[float] = field(default_factory=list)
    codes: Counter[str] = field(default_factory=Counter)

    @property
    def requests(self) -> int:
        return len(self.times)

    @property
    def accepted(self) -> int:
        return self.codes["ok"]


def read_log(path: Path) -> dict[str, ServiceLog]:
    """The emulator's `--log` file, per service, arrival times sorted."""
    logs: dict[str, ServiceLog] = defaultdict(ServiceLog)
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            record = json.loads(line)
            service_log = logs[record["service"] or "unrouted"]
            service_log.times.append(record["mono"])
            service_log.codes[record["code"]] += 1
    for service_log in logs.values():
        service_log.times.sort()
    return logs


@dataclass(frozen=True, slots=True)
class ServiceFigures:
    service: str
    requests: int
    accepted: int
    codes: dict[str, int]
    span: float
    """Seconds the requests occupy: last − first + 1/cap."""
    max_per_second: int
    emulator_max_per_second: int

    @property
    def request_rate(self) -> float:
        return self.requests / self.span if self.span else 0.0

    @property
    def useful_rate(self) -> float:
        return self.accepted / self.span if self.span else 0.0

    @property
    def error_share(self) -> float:
        return 1 - self.accepted / self.requests if self.requests else 0.0


def figures(service: str, log: ServiceLog, cap: int, stats: dict[str, Any]) -> ServiceFigures:
    times = log.times
    span = (times[-1] - times[0] + 1 / cap) if times else 0.0
    return ServiceFigures(
        service=service,
        requests=log.requests,
        accepted=log.accepted,
        codes=dict(log.codes),
        span=span,
        max_per_second=max_in_rolling_second(times),
        emulator_max_per_second=stats["services"][service]["max_requests_in_rolling_second"],
    )


@dataclass(frozen=True, slots=True)
class Phase:
    """One submit against one emulator."""

    name: str
    per_service: int
    cap: int
    error_rate: float
    wall: float
    exit_code: int
    services: list[ServiceFigures]
    summary: dict[str, Any]

    @property
    def settled(self) -> int:
        """Tasks submitted (or duplicate) in this run, both services."""
        return sum(
            counts["submitted"] + counts["duplicate"]
            for manifest in self.summary["manifests"]
            for counts in manifest["services"].values()
        )

    @property
    def refused_over_cap(self) -> int:
        return sum(figure.codes.get("RequestLimitExceeded", 0) for figure in self.services)


def run_phase(workdir: Path, name: str, per_service: int, cap: int, error_rate: float) -> Phase:
    """Submit N vod + N mps tasks at `cap` to a fresh emulator enforcing `cap`; read its log."""
    phase_dir = workdir / name
    phase_dir.mkdir()
    manifest = write_matrix_yaml(phase_dir / "rate.yaml", per_service)
    log_path = phase_dir / "emulator.jsonl"
    with Emulator(phase_dir, rate=cap, internal_error_rate=error_rate, log=log_path) as emulator:
        argv = [*BATCHER, "submit", str(manifest), "--endpoint", emulator.url, "--ledger",
                str(phase_dir / "rate.ledger.jsonl"), "--rate", str(cap), "--quiet", "--json"]
        measured, summary = run_json(argv, env=batcher_env())
        stats = emulator.stats()
    logs = read_log(log_path)
    services = [figures(service, logs[service], cap, stats) for service in SERVICES]
    return Phase(name, per_service, cap, error_rate, measured.wall, measured.returncode,
                 services, summary)


def phase_rows(phase: Phase) -> list[Row]:
    """The table rows of one phase."""
    section = f"rate: {phase.per_service:,} vod + {phase.per_service:,} mps at {phase.cap}/s"
    if phase.error_rate:
        section += f", {phase.error_rate:.0%} InternalError injected"
    cap = phase.cap
    rows = []
    for figure in phase.services:
        share = figure.request_rate / cap
        rows.append(Row(section, f"{figure.service} request rate, share of the cap", share * 100,
                        "%", f">= {RATE_SHARE_TARGET:.0%}", share >= RATE_SHARE_TARGET))
        worst = max(figure.max_per_second, figure.emulator_max_per_second)
        rows.append(Row(section, f"{figure.service} most requests in any rolling second", worst,
                        "", f"<= {cap}", worst <= cap))
        if phase.error_rate:
            bound = cap * (1 - figure.error_share)
            target = f">= 99% of {cap} x (1 - {figure.error_share:.3f}) = {bound:.2f}/s"
            rows.append(Row(section, f"{figure.service} useful (accepted) requests/s",
                            figure.useful_rate, "/s", target,
                            figure.useful_rate >= RATE_SHARE_TARGET * bound))
    refused = phase.refused_over_cap
    rows.append(Row(section, "requests refused as over the cap", refused, "", "0", refused == 0))
    total = 2 * phase.per_service
    rows.append(Row(section, "tasks done (exit code)", phase.settled, f"/ {total:,}"
                    f" (exit {phase.exit_code})", f"{total:,}", phase.settled == total))
    error_share = max(figure.error_share for figure in phase.services) if phase.error_rate else 0
    ideal = phase.per_service / (cap * (1 - error_share))
    rows.append(Row(section, f"submit wall time (ideal N/{cap}"
                    f"{' / (1 - share)' if phase.error_rate else ''} = {ideal:.1f} s)",
                    phase.wall, "s"))
    return rows


def phase_details(phase: Phase) -> dict[str, Any]:
    return {
        "per_service": phase.per_service,
        "cap": phase.cap,
        "internal_error_rate": phase.error_rate,
        "wall_s": phase.wall,
        "exit_code": phase.exit_code,
        "services": [
            {
                "service": figure.service,
                "requests": figure.requests,
                "accepted": figure.accepted,
                "codes": figure.codes,
                "span_s": figure.span,
                "request_rate": figure.request_rate,
                "useful_rate": figure.useful_rate,
                "max_in_rolling_second": figure.max_per_second,
                "emulator_max_in_rolling_second": figure.emulator_max_per_second,
            }
            for figure in phase.services
        ],
    }


def run_rate(
    workdir: Path, per_service: int, cap: int = 20, error_rate: float = 0.1
) -> tuple[list[Row], dict[str, Any]]:
    """Both phases: clean, then with `error_rate` InternalError injected."""
    rows: list[Row] = []
    details: dict[str, Any] = {}
    for name, errors in (("rate-clean", 0.0), ("rate-errors", error_rate)):
        phase = run_phase(workdir, name, per_service, cap, errors)
        rows += phase_rows(phase)
        details[name] = phase_details(phase)
    return rows, details
