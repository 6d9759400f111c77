"""What the shared options name, found: the account a run uses, and the manifests it reads.

The CLI's half of `batcher.run.account`: it hands `add_account_options`' options and the real
environment to `resolve_account`, and the MANIFEST arguments to `locate_manifests`, so `submit`
and `collect` (and the Python API, which calls the same functions) find the same account and the
same files the same way.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from batcher.run.account import Account, LocatedManifest


def resolve_account(args: argparse.Namespace) -> Account:
    """Credentials, then --endpoint (or BATCHER_ENDPOINT), --site, --region and --rate-store."""
    from batcher.run.account import resolve_account as resolve

    return resolve(os.environ, Path.home(), profile=args.profile, endpoints=args.endpoint or (),
                   site=args.site, region=args.region, rate_store=args.rate_store)


def load_manifests(paths: Sequence[Path], ledger: Path | None, out: Path | None = None, *,
                   too_many: str) -> list[LocatedManifest]:
    """Every manifest the MANIFEST arguments name, with its ledger and results directory."""
    from batcher.run.account import locate_manifests

    return locate_manifests(paths, ledger, out, too_many=too_many)
