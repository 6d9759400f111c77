"""A local stand-in for the two Tencent Cloud endpoints of `CreateAigcImageTask` (VOD and MPS).

It verifies TC3 signatures, enforces the rolling per-second cap, validates parameters with the
shared models and the real error codes, deduplicates VOD SessionIds for three days, and injects
faults on demand. It imports only `batcher.services`, `batcher.models` and `batcher.signing`.

    async with running_emulator(EmulatorConfig()) as emulator:
        print(emulator.url)

Modules: `config` (settings), `errors` (codes and messages), `auth` (signature checks),
`ratelimit` (rolling windows), `validation` (pydantic errors to API codes), `faults`
(injection), `state` (dedup, counters, records), `app` (handlers), `runner` (in-process
start/stop), `serve` (the `batcher emulator` command).
"""

from batcher.emulator.app import STATE_KEY, make_app
from batcher.emulator.config import (
    DEFAULT_SECRET_ID,
    DEFAULT_SECRET_KEY,
    EmulatorConfig,
    FaultConfig,
)
from batcher.emulator.runner import RunningEmulator, running_emulator, start_emulator
from batcher.emulator.state import EmulatorState, RequestRecord, max_in_rolling_second

__all__ = [
    "DEFAULT_SECRET_ID",
    "DEFAULT_SECRET_KEY",
    "STATE_KEY",
    "EmulatorConfig",
    "EmulatorState",
    "FaultConfig",
    "RequestRecord",
    "RunningEmulator",
    "make_app",
    "max_in_rolling_second",
    "running_emulator",
    "start_emulator",
]
