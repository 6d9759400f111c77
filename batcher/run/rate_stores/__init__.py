"""Rate stores: where the send slots of a cap are reserved (docs/operating.md#several-hosts).
`open_store(url)` picks one.

    store = open_store("redis://127.0.0.1:6379/0")     # or "memory", "file:/var/lib/x/rate"
    ...
    await store.close()
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from batcher.exceptions import UsageError
from batcher.run.rate_stores.base import (
    RateStore,
    Reservation,
    StoreUnavailable,
    cap_key,
)
from batcher.run.rate_stores.file import FileStore
from batcher.run.rate_stores.memory import MemoryStore

__all__ = [
    "RATE_STORE_ENV",
    "FileStore",
    "MemoryStore",
    "RateStore",
    "Reservation",
    "StoreUnavailable",
    "cap_key",
    "default_store_url",
    "open_store",
]

RATE_STORE_ENV = "BATCHER_RATE_STORE"
DEFAULT_STORE_FILE = "rate-slots.json"


def default_store_url(environ: Mapping[str, str], home: Path) -> str:
    """`file:` a file in the user's state directory: `$XDG_STATE_HOME/batcher/`, else
    `~/.local/state/batcher/` (docs/operating.md#several-hosts), so runs on one host share the cap
    out of the box."""
    state_home = environ.get("XDG_STATE_HOME") or str(home / ".local" / "state")
    return f"file:{Path(state_home) / 'batcher' / DEFAULT_STORE_FILE}"


def open_store(url: str) -> RateStore:
    """The store a `--rate-store` URL names; `UsageError` (exit 2) for one it cannot be."""
    if url == "memory":
        return MemoryStore()
    if url.startswith("file:"):
        path = url.removeprefix("file:").removeprefix("//")
        if not path:
            raise UsageError("--rate-store file: needs a path, e.g. file:/var/tmp/batcher-rate")
        return FileStore(Path(path).expanduser())
    if url.startswith(("redis://", "rediss://", "unix://")):
        from batcher.run.rate_stores.redis import RedisStore

        try:
            return RedisStore(url)
        except ValueError as error:
            raise UsageError(f"--rate-store {url!r}: {error}") from None
    raise UsageError(
        f"--rate-store {url!r} is not a rate store: use memory, file:PATH or "
        "redis://HOST:PORT/DB"
    )
