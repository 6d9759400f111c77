"""batcher: bulk, rate-capped, idempotent submission of Tencent Cloud AIGC image tasks.

A library as well as a command (docs/python-api.md)::

    import batcher
    plan = batcher.plan("spring.yaml")                  # .tasks, .images, .services
    run = batcher.submit("spring.yaml")                 # .exit_code, .counts()
    results = batcher.collect("spring.yaml", wait=True) # .exit_code, .rows, .gallery

`submit_async` and `collect_async` are the same calls for async code; the plain ones also work
inside a running event loop (a notebook cell). Errors are `BatcherError`s carrying the exit
code the CLI would use. Nothing is printed unless asked (`progress=True`); logs go to the
`batcher` logger.

Packages, one per layer, imports going downward only (docs/architecture.md): the faces `cli`,
`library` (these calls) and `testing` → `results` → `run` → `state` / `manifest` → `wire` →
`api`; `emulator` beside them, importing only `api` and the signer; `exceptions` is a leaf every
layer may raise from. The calls are imported on first use, so `batcher --help` stays fast.
"""

import logging
from typing import TYPE_CHECKING, Any

from batcher.exceptions import (
    BatcherError,
    CredentialsError,
    EndpointError,
    ExitCode,
    LedgerError,
    LedgerLocked,
    ManifestError,
    UsageError,
)

__version__ = "0.1.0"
"""The one place the version is written (pyproject.toml reads it from here)."""

# A library's logger has a NullHandler (the logging HOWTO's advice): with none configured by the
# application, Python's last-resort handler would print warnings to stderr.
logging.getLogger("batcher").addHandler(logging.NullHandler())

if TYPE_CHECKING:
    from batcher.library.collect import collect, collect_async
    from batcher.library.plan import plan
    from batcher.library.results import (
        CollectResult,
        ManifestPlan,
        PlanResult,
        ResultRow,
        Rows,
        ServicePlan,
        SubmitResult,
    )
    from batcher.library.submit import SpendRefused, submit, submit_async

_HOMES = {
    "plan": "plan",
    "submit": "submit",
    "SpendRefused": "submit",
    "submit_async": "submit",
    "collect": "collect",
    "collect_async": "collect",
    "CollectResult": "results",
    "ManifestPlan": "results",
    "PlanResult": "results",
    "ResultRow": "results",
    "Rows": "results",
    "ServicePlan": "results",
    "SubmitResult": "results",
}


def __getattr__(name: str) -> Any:
    # PEP 562: the calls bring asyncio, aiohttp and pydantic, which `batcher --help` and a
    # valid `batcher plan` never import.
    if name not in _HOMES:
        raise AttributeError(f"module 'batcher' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"batcher.library.{_HOMES[name]}"), name)


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "BatcherError",
    "CollectResult",
    "CredentialsError",
    "EndpointError",
    "ExitCode",
    "LedgerError",
    "LedgerLocked",
    "ManifestError",
    "ManifestPlan",
    "PlanResult",
    "ResultRow",
    "Rows",
    "ServicePlan",
    "SpendRefused",
    "SubmitResult",
    "UsageError",
    "__version__",
    "collect",
    "collect_async",
    "plan",
    "submit",
    "submit_async",
]
