"""`batcher.submit(manifest, ...)` and `await batcher.submit_async(...)`: a submit run.

The same sequence as `batcher submit` (`batcher.run.submission.run_submit`): every manifest
locked, replayed, validated and planned before anything is sent, then the pipeline at each
service's cap through the shared rate store, the ledgers written, the run judged. Keyword
arguments are the command's options in Python spelling. A finished run returns its
`SubmitResult` whatever its exit code (1: some tasks failed; 75: stopped early, run again); what
stops a run before it sends (a broken manifest, no credentials, a held ledger, a vod quota too
small for the run: `SpendRefused`) raises.

The library installs no signal handlers: cancelling the call's task stops it (a request in flight
is then left in doubt, as after a crash, and the next run settles it).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from batcher.api.services import DEFAULT_RATE
from batcher.library.plan import Manifests, manifest_paths
from batcher.library.results import SubmitResult
from batcher.library.sync import synchronous
from batcher.run.account import Account, locate_manifests, resolve_account
from batcher.run.limiter import DEFAULT_STORE_TIMEOUT
from batcher.run.resume import ResumeRules
from batcher.run.retry import RetryPolicy
from batcher.run.settings import RunSettings
from batcher.run.spend import SpendRefused, SpendRules
from batcher.run.submission import ManifestRun, SubmitOptions, SubmitWatcher, run_submit
from batcher.state.regeneration import RegenerationRules
from batcher.wire.credentials import Credentials

__all__ = ["SpendRefused", "submit", "submit_async"]

TOO_MANY = ("ledger= names one ledger, but several manifests were given: leave it out (each "
            "manifest gets <stem>.ledger.jsonl beside it)")

PathLike = str | os.PathLike[str]


async def submit_async(
    manifest: Manifests,
    *,
    ledger: PathLike | None = None,
    endpoint: str | Sequence[str] | None = None,
    site: str | None = None,
    profile: str | None = None,
    region: str | None = None,
    rate_store: str | None = None,
    store_timeout: float = DEFAULT_STORE_TIMEOUT,
    rate: float = DEFAULT_RATE,
    max_attempts: int = RetryPolicy().max_attempts,
    retry_failed: bool = False,
    resend_in_doubt: bool = False,
    regenerate: bool = False,
    regenerate_all: bool = False,
    max_runtime: float | None = None,
    max_images: int | None = None,
    daily_images: int | None = None,
    secret_id: str | None = None,
    secret_key: str | None = None,
    token: str | None = None,
    progress: bool = False,
    metrics_file: PathLike | None = None,
) -> SubmitResult:
    """Submit every task of `manifest` (a path, a directory, or several) that is not done yet.

    Credentials: `secret_id` and `secret_key` (and `token`) when given, else the CLI's order
    (environment, profile file, CVM role). `endpoint` is one URL for every service or
    `["vod=URL", "mps=URL"]`; `max_runtime` is in seconds. `max_images` bounds this run's
    images, `daily_images` the account's per UTC day in the rate store (docs/spend.md): reached,
    the result's exit code is 75 and the rest is not sent.
    """
    account = account_for(endpoint, site, profile, region, rate_store, secret_id, secret_key, token)
    from batcher.exceptions import UsageError

    if max_attempts < 1:
        raise UsageError("max_attempts must be at least 1")
    for name, limit in (("max_images", max_images), ("daily_images", daily_images)):
        if limit is not None and limit < 1:
            raise UsageError(f"{name} must be at least 1 (None: no limit)")
    located = locate_manifests(manifest_paths(manifest), _path(ledger), too_many=TOO_MANY)
    options = SubmitOptions(
        manifests=[ManifestRun(item.manifest, item.ledger) for item in located],
        client=account.client,
        run=RunSettings(
            rate=rate,
            retry=RetryPolicy(max_attempts=max_attempts),
            rules=ResumeRules(retry_failed=retry_failed, resend_in_doubt=resend_in_doubt),
            max_runtime=max_runtime,
            store_timeout=store_timeout,
            max_images=max_images,
            daily_images=daily_images,
            handle_signals=False,
        ),
        rate_store=account.rate_store,
        regeneration=RegenerationRules(retryable=regenerate, everything=regenerate_all),
        # The vod quotas are read and a run that needs more than is left is refused; a
        # library call never asks a question (the caller decided to send).
        spend=SpendRules(confirm=None),
    )
    return await run_submit(options, account.credentials, _watcher(progress, metrics_file))


submit = synchronous(submit_async)
"""`submit_async` run to its end (the same arguments); works inside a running event loop too."""


def account_for(endpoint: str | Sequence[str] | None, site: str | None, profile: str | None,
                region: str | None, rate_store: str | None, secret_id: str | None,
                secret_key: str | None, token: str | None) -> Account:
    """The account a library call uses: explicit keys, else the CLI's sources (environment,
    profile file, CVM role); the endpoints and the rate store as the CLI finds them."""
    credentials = None
    if secret_id is not None or secret_key is not None:
        if not secret_id or not secret_key:
            from batcher.exceptions import CredentialsError

            raise CredentialsError("give both secret_id and secret_key (or neither, to use the "
                                   "environment, the profile file or the CVM role)")
        credentials = Credentials(secret_id, secret_key, token, source="arguments")
    endpoints = [endpoint] if isinstance(endpoint, str) else list(endpoint or ())
    return resolve_account(os.environ, Path.home(), profile=profile, endpoints=endpoints,
                           site=site, region=region, rate_store=rate_store,
                           credentials=credentials)


def _watcher(progress: bool, metrics_file: PathLike | None) -> SubmitWatcher | None:
    """The CLI's progress display (`progress=True`) and metrics file, else nothing at all."""
    if not progress and metrics_file is None:
        return None
    from batcher.cli.submit_watch import CliWatcher

    return CliWatcher("auto" if progress else "none",
                      metrics_file=None if metrics_file is None else Path(metrics_file))


def _path(value: PathLike | None) -> Path | None:
    return None if value is None else Path(value)
