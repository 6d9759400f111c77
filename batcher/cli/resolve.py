"""The account the shared options name, found: the CLI's half of `batcher.run.account`.

It hands `add_account_options`' options and the real environment to `resolve_account`, so
`submit` and `collect` (and the Python API, which calls the same function) find the same account
the same way; both locate their manifests with `batcher.run.account.locate_manifests` directly.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from batcher.run.account import Account


def resolve_account(args: argparse.Namespace) -> Account:
    """Credentials, then --endpoint (or BATCHER_ENDPOINT), --site, --region and --rate-store."""
    from batcher.run.account import resolve_account as resolve

    return resolve(os.environ, Path.home(), profile=args.profile, endpoints=args.endpoint or (),
                   site=args.site, region=args.region, rate_store=args.rate_store)

