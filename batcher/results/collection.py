"""A collect run from credentials to result: the rate store, the client, the limiters, the run.

`collect(jobs, settings, account, store_timeout, observer)` is the whole of `batcher collect`
below the face, the same for the CLI and the Python API: it finds whose caps the run counts
against (`batcher.run.rate_scope`), opens the rate store and the client, gives the collector one
limiter per (service, action) and runs it (`batcher.results.collector`); the store is closed
however the run ends. Reports (results.csv, the gallery) are the collector's; what the face
shows (progress, a summary, a metrics file) is the face's.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

from batcher.results.collector import (
    CollectJob,
    CollectObserver,
    Collector,
    CollectResult,
    CollectSettings,
)
from batcher.run.account import Account
from batcher.run.limiter import RateLimiter
from batcher.run.rate_scope import rate_scope
from batcher.run.rate_stores import open_store
from batcher.wire.client import AigcClient
from batcher.wire.credentials import Credentials, StaticCredentials

__all__ = ["collect"]


async def collect(jobs: Sequence[CollectJob], settings: CollectSettings, account: Account,
                  store_timeout: float, observer: CollectObserver) -> CollectResult:
    """Run one collect over `jobs`; BatcherError for what stops it (exit 2 or 3)."""
    credentials = account.credentials
    if isinstance(credentials, Credentials):
        credentials = StaticCredentials(credentials)
    scope = rate_scope(await credentials.current())  # a CVM role's first fetch: none, no run
    store = open_store(account.rate_store)
    try:
        async with AigcClient(credentials, account.client) as client:

            def limiter_for(service: str, action: str, rate: float) -> RateLimiter:
                return RateLimiter(store, scope=scope, service=service, action=action,
                                   rate=rate, store_timeout=store_timeout)

            return await Collector(jobs, settings, client, limiter_for, observer).run()
    finally:
        with contextlib.suppress(Exception):
            await store.close()
