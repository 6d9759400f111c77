"""A local stand-in for the two Tencent Cloud endpoints of `CreateAigcImageTask` (VOD and MPS).

It verifies TC3 signatures, enforces each action's rolling per-second cap, validates parameters
with the shared models and the real error codes, deduplicates VOD SessionIds for three days, and
injects faults on demand. It also plays the result side (docs/emulator.md#the-result-side): tasks
wait, run and finish
(or fail on a prompt marker), the poll actions report them, and the generated images are real
PNG files served from its own port until their URLs expire. It imports only `batcher.api`
(models, results, services), `batcher.wire.signing` and `batcher.wire.addresses`.

    async with running_emulator(EmulatorConfig()) as emulator:
        print(emulator.url)

Modules: `config` (settings), `errors` (codes and messages), `auth` (signature checks),
`ratelimit` (rolling windows), `validation` (pydantic errors to API codes), `faults`
(injection), `tasks` (each task's life), `polls` (the poll actions' answers), `png` (images of
an exact size), `files` (the file server), `state` (dedup, tasks, counters, records), `app`
(handlers), `runner` (in-process start/stop), `arguments` (its options), `serve` (the
`batcher emulator` command).
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from batcher.emulator.app import STATE_KEY, make_app
    from batcher.emulator.config import (
        DEFAULT_SECRET_ID,
        DEFAULT_SECRET_KEY,
        EmulatorConfig,
        FaultConfig,
        GenerationConfig,
    )
    from batcher.emulator.runner import RunningEmulator, running_emulator, start_emulator
    from batcher.emulator.state import EmulatorState, RequestRecord, max_in_rolling_second

_HOMES = {
    "STATE_KEY": "app", "make_app": "app",
    "DEFAULT_SECRET_ID": "config", "DEFAULT_SECRET_KEY": "config",
    "EmulatorConfig": "config", "FaultConfig": "config", "GenerationConfig": "config",
    "RunningEmulator": "runner", "running_emulator": "runner", "start_emulator": "runner",
    "EmulatorState": "state", "RequestRecord": "state", "max_in_rolling_second": "state",
}


def __getattr__(name: str) -> Any:
    # Imported on first use (PEP 562): `batcher --help` reaches this package for the emulator's
    # options and must not import aiohttp with it.
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)


__all__ = [
    "DEFAULT_SECRET_ID",
    "DEFAULT_SECRET_KEY",
    "STATE_KEY",
    "EmulatorConfig",
    "EmulatorState",
    "FaultConfig",
    "GenerationConfig",
    "RequestRecord",
    "RunningEmulator",
    "make_app",
    "max_in_rolling_second",
    "running_emulator",
    "start_emulator",
]
