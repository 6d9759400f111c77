"""Child processes for the benchmarks: batcher commands and the emulator, measured from outside.

Every figure the benchmarks print comes from a real process: `run_measured` starts a command,
reaps it with `os.wait4` and returns its wall time, its CPU time (user + system, its own only:
the emulator is a different process and is never counted) and its peak resident set size.
`Emulator` starts `batcher emulator --port 0`, reads the URL it prints first, answers
`GET /_emulator/stats`, and stops it with SIGTERM (its own CPU time is measured the same way,
for information).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

SECRET_ID = "AKIDbatcherBench000000000000000000"
SECRET_KEY = "batcher-bench-secret-key"
"""The emulator's credentials for the benchmarks: they open nothing but the local emulator."""

BATCHER = (sys.executable, "-m", "batcher")
"""`python -m batcher` of the interpreter running the benchmarks (the project's .venv)."""

START_TIMEOUT = 30.0

_OWN_PEAK = """
import atexit, os, runpy, sys
def _peak():
    with open("/proc/self/status") as status, open(os.environ["BENCH_PEAK_FILE"], "w") as out:
        out.write(next(line for line in status if line.startswith("VmHWM:")).split()[1])
atexit.register(_peak)
sys.argv = ["batcher", *sys.argv[1:]]
runpy.run_module("batcher", run_name="__main__", alter_sys=True)
"""
"""`python -m batcher` that writes its own peak (VmHWM, KiB) to $BENCH_PEAK_FILE as it exits.
`ru_maxrss` is no measure of a child of this process: Linux starts a child's at the size of the
parent it forked from, and this parent may hold an in-process emulator of a million tasks; the
high-water mark of the child's own address space starts again at exec."""


@dataclass(frozen=True, slots=True)
class Measured:
    """What one finished child process cost."""

    argv: tuple[str, ...]
    returncode: int
    wall: float
    """Seconds from start to exit."""
    user: float
    system: float
    max_rss_mb: float
    """Peak resident set size, MiB: a batcher command's own (VmHWM, `_OWN_PEAK`), another
    command's ru_maxrss (an upper bound: it starts at this process's size)."""

    @property
    def cpu(self) -> float:
        """User + system CPU seconds of the child itself."""
        return self.user + self.system

    def as_dict(self) -> dict[str, Any]:
        return {
            "argv": list(self.argv),
            "returncode": self.returncode,
            "wall_s": round(self.wall, 4),
            "user_s": round(self.user, 4),
            "system_s": round(self.system, 4),
            "max_rss_mb": round(self.max_rss_mb, 1),
        }


def batcher_env(**extra: str) -> dict[str, str]:
    """The environment of a batcher child: the emulator's credentials, no endpoint override."""
    env = dict(os.environ)
    env.pop("BATCHER_ENDPOINT", None)
    env["TENCENTCLOUD_SECRET_ID"] = SECRET_ID
    env["TENCENTCLOUD_SECRET_KEY"] = SECRET_KEY
    env.update(extra)
    return env


def _reap(process: subprocess.Popen[Any], argv: Sequence[str], started: float,
          peak_file: Path | None = None) -> Measured:
    """Wait for `process` with wait4: its exit status and its own resource usage."""
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    peak_kib = usage.ru_maxrss  # KiB on Linux
    if peak_file is not None:
        with contextlib.suppress(OSError, ValueError):
            peak_kib = int(peak_file.read_text())
        peak_file.unlink(missing_ok=True)
    return Measured(
        argv=tuple(argv),
        returncode=process.returncode,
        wall=wall,
        user=usage.ru_utime,
        system=usage.ru_stime,
        max_rss_mb=peak_kib / 1024,
    )


def run_measured(
    argv: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    stdout: IO[Any] | int | None = subprocess.DEVNULL,
    stderr: IO[Any] | int | None = None,
    on_stdout: Callable[[IO[bytes]], None] | None = None,
) -> Measured:
    """Run `argv` to its end and measure it. With `on_stdout`, stdout is a pipe handed to it
    (to stream a large output without holding it); otherwise it goes to `stdout`."""
    command, peak_file = list(argv), None
    if tuple(argv[:len(BATCHER)]) == BATCHER and Path("/proc/self/status").exists():
        fd, name = tempfile.mkstemp(prefix="bench-peak-")
        os.close(fd)
        peak_file = Path(name)
        command = [sys.executable, "-c", _OWN_PEAK, *argv[len(BATCHER):]]
        env = {**(os.environ if env is None else env), "BENCH_PEAK_FILE": name}
    started = time.perf_counter()
    process = subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.PIPE if on_stdout is not None else stdout,
        stderr=stderr,
    )
    try:
        if on_stdout is not None:
            assert process.stdout is not None
            with process.stdout:
                on_stdout(process.stdout)
    except BaseException:
        process.kill()
        _reap(process, argv, started, peak_file)
        raise
    return _reap(process, argv, started, peak_file)


def run_json(argv: Sequence[str], *, env: dict[str, str] | None = None) -> tuple[Measured, Any]:
    """Run a command that prints one JSON document on stdout; its measure and the document."""
    chunks: list[bytes] = []
    measured = run_measured(argv, env=env, on_stdout=lambda out: chunks.append(out.read()))
    text = b"".join(chunks).decode().strip()
    if measured.returncode not in (0, 1) or not text:
        raise RuntimeError(f"{' '.join(argv)} exited {measured.returncode}: {text[:500]!r}")
    return measured, json.loads(text.splitlines()[-1])


def precompile_batcher() -> None:
    """Write the bytecode of the batcher package the children import, once, before measuring:
    with PYTHONDONTWRITEBYTECODE set, or after an edit, every child would compile it again and
    its start-up would be counted as batcher's CPU."""
    spec = importlib.util.find_spec("batcher")
    if spec is None or not spec.submodule_search_locations:
        return
    for location in spec.submodule_search_locations:
        subprocess.run(  # a missing write permission only costs the children a compile
            [sys.executable, "-m", "compileall", "-q", location],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False,
        )


class Emulator:
    """A `batcher emulator` child on a free loopback port; use as a context manager."""

    def __init__(
        self,
        workdir: Path,
        *,
        rate: int,
        internal_error_rate: float = 0.0,
        log: Path | None = None,
        seed: int = 1,
        latency_ms: float = 0.0,
        extra: Sequence[str] = (),
    ) -> None:
        self.argv = [
            *BATCHER, "emulator", "--port", "0", "--rate", str(rate),
            "--secret-id", SECRET_ID, "--secret-key", SECRET_KEY, "--seed", str(seed),
        ]
        if internal_error_rate:
            self.argv += ["--internal-error-rate", str(internal_error_rate)]
        if log is not None:
            self.argv += ["--log", str(log)]
        if latency_ms:
            self.argv += ["--latency-ms", f"{latency_ms:g}-{latency_ms:g}"]
        self.argv += list(extra)
        self.stderr_path = workdir / f"emulator-{os.getpid()}-{id(self)}.err"
        self.url = ""
        self.measured: Measured | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._started = 0.0

    @property
    def endpoint(self) -> str:
        """`127.0.0.1:PORT`, as the SDK's HttpProfile wants it."""
        return self.url.removeprefix("http://")

    def __enter__(self) -> Emulator:
        self._started = time.perf_counter()
        with self.stderr_path.open("wb") as stderr:
            self._process = subprocess.Popen(
                self.argv, stdout=subprocess.PIPE, stderr=stderr, env=batcher_env()
            )
        assert self._process.stdout is not None
        self.url = _first_line(self._process.stdout, START_TIMEOUT)
        if not self.url.startswith("http://"):
            self.stop()
            raise RuntimeError(f"emulator did not start: {self.stderr_path.read_text()[:500]}")
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stats(self) -> dict[str, Any]:
        """`GET /_emulator/stats?sessions=0`."""
        with urllib.request.urlopen(f"{self.url}/_emulator/stats?sessions=0", timeout=30) as answer:
            stats: dict[str, Any] = json.load(answer)
        return stats

    def requests(self) -> int:
        """Requests the emulator answered so far, both services."""
        return sum(service["requests"] for service in self.stats()["services"].values())

    def stop(self) -> None:
        process = self._process
        if process is None or self.measured is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        if process.stdout is not None:
            process.stdout.close()
        self.measured = _reap(process, self.argv, self._started)


def _first_line(stream: IO[bytes], timeout: float) -> str:
    """The first line of a child's stdout, or "" if none came within `timeout` seconds."""
    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        if not selector.select(timeout):
            return ""
    return stream.readline().decode().strip()
