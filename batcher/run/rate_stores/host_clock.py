"""The host's boot clock, read from the kernel itself: one clock for every process on the host.

The `file:` store's slots must not depend on processes agreeing on the wall clock (a VM after an
NTP step, a process under `faketime`): `CLOCK_BOOTTIME` never steps and is the same for every
process on the host. It is read with the raw `clock_gettime` system call, not through libc:
an `LD_PRELOAD` time shifter (libfaketime) intercepts the libc call for every clock, the
monotonic ones included, and would give each process its own. Where the raw call is not known
(another CPU architecture, another OS) `time.clock_gettime(CLOCK_BOOTTIME)` or, failing that,
`time.monotonic` stands in (on Linux both are system-wide too).

    >>> a = host_clock(); b = host_clock(); 0 <= b - a < 1
    True
"""

from __future__ import annotations

import ctypes
import os
import platform
import time
from collections.abc import Callable

_CLOCK_BOOTTIME = 7
_SYS_CLOCK_GETTIME = {"x86_64": 228, "aarch64": 113, "arm64": 113}
"""The `clock_gettime` system call's number on the architectures whose number we know."""


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


def _raw_boot_clock() -> Callable[[], float] | None:
    """A reader of CLOCK_BOOTTIME by the raw system call, or None where it is not available."""
    number = _SYS_CLOCK_GETTIME.get(platform.machine())
    if os.name != "posix" or platform.system() != "Linux" or number is None:
        return None
    try:
        # The process's own symbols: libc's `syscall` among them, without find_library's
        # subprocess (ldconfig) at every start.
        libc = ctypes.CDLL(None, use_errno=True)
        syscall = libc.syscall
    except (OSError, AttributeError):
        return None
    spec = _Timespec()
    pointer = ctypes.byref(spec)

    def read() -> float:
        if syscall(number, _CLOCK_BOOTTIME, pointer) != 0:
            return time.clock_gettime(time.CLOCK_BOOTTIME)
        return float(spec.tv_sec) + float(spec.tv_nsec) / 1e9

    try:
        read()
    except OSError:
        return None
    return read


def _fallback() -> Callable[[], float]:
    if hasattr(time, "CLOCK_BOOTTIME"):
        return lambda: time.clock_gettime(time.CLOCK_BOOTTIME)
    return time.monotonic


host_clock: Callable[[], float] = _raw_boot_clock() or _fallback()
"""Seconds since the host booted, the same for every process on it; never steps."""
