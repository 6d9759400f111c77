"""What the shared options name, found: the account a run uses, and the manifests it reads.

`resolve_account` turns `add_account_options`' options and the environment into credentials,
client settings and the rate store's URL; `load_manifests` expands MANIFEST arguments and pairs
each manifest with its ledger (and, for collect, its output directory). `submit` and `collect`
both use them, so the two commands find the same account and the same files the same way.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from batcher.cli.options import (
    ENDPOINT_ENV,
    RATE_STORE_ENV,
    default_ledger_path,
    parse_endpoints,
    split_endpoints,
)
from batcher.exceptions import UsageError

if TYPE_CHECKING:
    from batcher.manifest import Manifest
    from batcher.wire.client import ClientSettings
    from batcher.wire.credentials import Credentials, CredentialsProvider


@dataclass(frozen=True, slots=True)
class Account:
    """Whose requests, sent where, sharing caps through which rate store."""

    credentials: Credentials | CredentialsProvider
    client: ClientSettings
    rate_store: str
    """The `--rate-store` URL (`batcher.run.rate_stores.open_store`)."""


def resolve_account(args: argparse.Namespace) -> Account:
    """Credentials first (a user without them learns at once), then --endpoint (or
    BATCHER_ENDPOINT), --site, --region and --rate-store (or BATCHER_RATE_STORE, or the
    default file store)."""
    from batcher.run.rate_stores import default_store_url
    from batcher.wire.client import ClientSettings
    from batcher.wire.credentials import CredentialSources, find_credentials

    credentials = find_credentials(
        CredentialSources.standard(os.environ, Path.home(), args.profile))
    endpoint, endpoints = parse_endpoints(
        args.endpoint or split_endpoints(os.environ.get(ENDPOINT_ENV)))
    rate_store = (args.rate_store or os.environ.get(RATE_STORE_ENV)
                  or default_store_url(os.environ, Path.home()))
    client = ClientSettings(endpoint=endpoint, endpoints=endpoints, site=args.site,
                            region=args.region)
    return Account(credentials, client, rate_store)


@dataclass(frozen=True, slots=True)
class LoadedManifest:
    """A manifest's structure read (its tasks are validated later, in one pass), with its
    ledger and its results directory."""

    manifest: Manifest
    ledger: Path
    out: Path


def load_manifests(paths: Sequence[Path], ledger: Path | None, out: Path | None = None, *,
                   too_many: str) -> list[LoadedManifest]:
    """Every manifest the MANIFEST arguments name; `ledger` / `out` (one manifest's own) or
    the defaults beside each manifest. `too_many`: the usage error when `ledger` or `out` is
    given with several manifests."""
    from batcher.manifest import load_manifest
    from batcher.manifest.discover import expand_manifest_paths

    files = expand_manifest_paths(paths)
    if len(files) > 1 and (ledger is not None or out is not None):
        raise UsageError(too_many)
    return [LoadedManifest(load_manifest(path), ledger or default_ledger_path(path),
                           out or default_out_dir(path))
            for path in files]


def default_out_dir(manifest: Path) -> Path:
    """`<manifest stem>.results/` beside the manifest (docs/results.md)."""
    return manifest.with_name(f"{manifest.stem}.results")
