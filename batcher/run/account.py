"""Whose account a run uses and which files it reads: the same for the CLI and the library.

`resolve_account` turns plain values (a profile name, `--endpoint` values, a site, a region, a
rate store URL) and the environment it is handed into credentials, client settings and the rate
store's URL; `locate_manifests` expands manifest paths and pairs each manifest with its ledger
and its results directory. `batcher submit`/`collect` and `batcher.submit`/`collect` both call
them, so a command and a script find the same account and the same files (docs/operating.md).
Nothing here reads `os.environ` itself: the faces pass it in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from batcher.exceptions import UsageError

if TYPE_CHECKING:
    from batcher.manifest import Manifest
    from batcher.wire.client import ClientSettings
    from batcher.wire.credentials import Credentials, CredentialsProvider

__all__ = [
    "ENDPOINT_ENV",
    "Account",
    "LocatedManifest",
    "default_ledger_path",
    "default_out_dir",
    "locate_manifests",
    "parse_endpoints",
    "resolve_account",
    "split_endpoints",
]

ENDPOINT_ENV = "BATCHER_ENDPOINT"
"""One URL for every service, or `vod=URL,mps=URL`."""


@dataclass(frozen=True, slots=True)
class Account:
    """Whose requests, sent where, sharing caps through which rate store."""

    credentials: Credentials | CredentialsProvider
    client: ClientSettings
    rate_store: str
    """The rate store's URL (`batcher.run.rate_stores.open_store`)."""


def resolve_account(
    environ: Mapping[str, str],
    home: Path,
    *,
    profile: str | None = None,
    endpoints: Sequence[str] = (),
    site: str | None = None,
    region: str | None = None,
    rate_store: str | None = None,
    credentials: Credentials | CredentialsProvider | None = None,
) -> Account:
    """Credentials first (a user without them learns at once; `credentials` given wins), then
    the endpoints (or BATCHER_ENDPOINT), and the rate store (or BATCHER_RATE_STORE, or the
    default file store in the user's state directory)."""
    from batcher.api.services import DEFAULT_SITE, SITES
    from batcher.run.rate_stores import RATE_STORE_ENV, default_store_url
    from batcher.wire.client import ClientSettings
    from batcher.wire.credentials import CredentialSources, find_credentials

    if site is not None and site not in SITES:
        raise UsageError(f"site {site!r} is not known: use {' or '.join(SITES)}")
    if credentials is None:
        credentials = find_credentials(CredentialSources.standard(environ, home, profile))
    shared, own = parse_endpoints(endpoints or split_endpoints(environ.get(ENDPOINT_ENV)))
    store = rate_store or environ.get(RATE_STORE_ENV) or default_store_url(environ, home)
    client = ClientSettings(endpoint=shared, endpoints=own,
                            site=DEFAULT_SITE if site is None else site,
                            region=region)
    return Account(credentials, client, store)


def split_endpoints(value: str | None) -> list[str]:
    """`BATCHER_ENDPOINT`: one URL, or `vod=URL,mps=URL`."""
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def parse_endpoints(values: Sequence[str]) -> tuple[str | None, tuple[tuple[str, str], ...]]:
    """`--endpoint` values → (the URL for every service, (service, URL) pairs), each checked.

    >>> parse_endpoints(["http://127.0.0.1:1", "mps=http://127.0.0.1:2"])
    ('http://127.0.0.1:1', (('mps', 'http://127.0.0.1:2'),))
    """
    from batcher.api.services import SERVICES
    from batcher.wire.client import check_endpoint

    shared: str | None = None
    own: dict[str, str] = {}
    for value in values:
        name, separator, url = value.partition("=")
        if not separator or "://" in name:
            if shared is not None:
                raise UsageError("--endpoint URL is given twice: give one URL for every "
                                 "service, or vod=URL and mps=URL")
            shared = check_endpoint(value)
        elif name in SERVICES:
            if name in own:
                raise UsageError(f"--endpoint {name}=URL is given twice: give it once")
            own[name] = check_endpoint(url)
        else:
            raise UsageError(f"--endpoint {name}=...: unknown service {name!r}: use "
                             f"{' or '.join(f'{s}=URL' for s in SERVICES)}, or a URL alone")
    return shared, tuple(sorted(own.items()))


@dataclass(frozen=True, slots=True)
class LocatedManifest:
    """A manifest's structure read (its tasks are validated later, in one pass), with its
    ledger and its results directory."""

    manifest: Manifest
    ledger: Path
    out: Path


def locate_manifests(paths: Sequence[Path], ledger: Path | None, out: Path | None = None, *,
                     too_many: str) -> list[LocatedManifest]:
    """Every manifest the paths name (files, or directories of them); `ledger` / `out` (one
    manifest's own) or the defaults beside each manifest. `too_many`: the usage error when
    `ledger` or `out` is given with several manifests."""
    from batcher.manifest import load_manifest
    from batcher.manifest.discover import expand_manifest_paths

    files = expand_manifest_paths(paths)
    if len(files) > 1 and (ledger is not None or out is not None):
        raise UsageError(too_many)
    return [LocatedManifest(load_manifest(path), ledger or default_ledger_path(path),
                            out or default_out_dir(path))
            for path in files]


def default_ledger_path(manifest: Path) -> Path:
    """`<manifest stem>.ledger.jsonl` beside the manifest (docs/ledgers.md)."""
    return manifest.with_name(f"{manifest.stem}.ledger.jsonl")


def default_out_dir(manifest: Path) -> Path:
    """`<manifest stem>.results/` beside the manifest (docs/results.md)."""
    return manifest.with_name(f"{manifest.stem}.results")
