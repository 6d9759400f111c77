"""Options and argument types that several commands share, declared once.

Light on purpose: the parser is built on every start, so nothing here imports the layers below
(a command imports what it needs when it runs).
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from batcher.api.services import DEFAULT_RATE, DEFAULT_SITE, SITES

ENDPOINT_ENV = "BATCHER_ENDPOINT"
RATE_STORE_ENV = "BATCHER_RATE_STORE"
"""Also `batcher.run.rate_stores.RATE_STORE_ENV`; written here so the parser stays light, and
`tests/test_limiter.py` checks that the two agree."""
PROFILE_ENV = "TENCENTCLOUD_PROFILE"
"""Also `batcher.wire.credentials.ENV_PROFILE` (checked by the same test)."""

DEFAULT_STORE_TIMEOUT = 30.0
"""`--store-timeout`: seconds without an answer from the rate store before a run stops
(docs/operating.md#several-hosts). Written here, not imported from `batcher.run.limiter`, so the
parser stays light;
`tests/test_limiter.py` checks that the two agree."""

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """`90`, `90s`, `50m`, `2h`, `1d` → seconds.

    >>> parse_duration("50m")
    3000.0
    """
    match = _DURATION.match(text)
    if match is None or float(match[1]) <= 0:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration: use a number with s, m, h or d (e.g. 50m)"
        )
    return float(match[1]) * _UNIT_SECONDS[match[2] or "s"]


def add_manifests(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    """The MANIFEST positional argument (`args.manifests`): one or more (none, if not
    `required`: `status --ledger PATH`)."""
    parser.add_argument("manifests", nargs="+" if required else "*", type=Path,
                        metavar="MANIFEST", help="YAML or CSV manifest(s), or a directory of them")


def add_ledger(parser: argparse.ArgumentParser, help_text: str) -> None:
    parser.add_argument("--ledger", type=Path, help=help_text)


def add_rate(parser: argparse.ArgumentParser, help_text: str) -> None:
    parser.add_argument("--rate", type=float, default=DEFAULT_RATE, help=help_text)


def add_resume_rules(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--retry-failed", action="store_true",
                        help="send permanently failed tasks again")
    parser.add_argument("--resend-in-doubt", action="store_true",
                        help="send mps tasks that may have been created already")


def add_json(parser: argparse.ArgumentParser, help_text: str) -> None:
    parser.add_argument("--json", action="store_true", help=help_text)


def add_account_options(parser: argparse.ArgumentParser) -> None:
    """Where requests go and whose they are: --endpoint, --site, --profile, --region, and the
    rate store that shares the account's caps (--rate-store, --store-timeout)."""
    parser.add_argument(
        "--endpoint", action="append", default=[], metavar="[SERVICE=]URL",
        help=f"send every service's requests to URL (e.g. the emulator), or one service's with "
        f"vod=URL / mps=URL (repeatable; env {ENDPOINT_ENV})")
    parser.add_argument(
        "--site", choices=SITES, default=DEFAULT_SITE,
        help="public hosts: intl = vod.intl.tencentcloudapi.com (default), mainland = "
        "vod.tencentcloudapi.com (and mps likewise)")
    parser.add_argument(
        "--profile", help=f"section of the credentials file to use (env {PROFILE_ENV}; "
        "default [default])")
    parser.add_argument("--region", help="X-TC-Region header (the API does not require one)")
    parser.add_argument("--rate-store", metavar="URL",
                        help="where send slots are reserved, shared by every process naming it: "
                        f"redis://HOST:PORT/DB, file:PATH or memory (env {RATE_STORE_ENV}; "
                        "default: a file in $XDG_STATE_HOME/batcher/, else "
                        "~/.local/state/batcher/)")
    parser.add_argument("--store-timeout", type=parse_duration, metavar="DURATION",
                        default=DEFAULT_STORE_TIMEOUT,
                        help="stop (exit 75) when the rate store does not answer for this long "
                        "(default %(default)gs)")


def add_output_options(parser: argparse.ArgumentParser, metrics_help: str) -> None:
    """What a run shows and leaves for cron: --quiet, --json, --progress, --log-format,
    --log-file, --metrics-file."""
    parser.add_argument("--quiet", action="store_true", help="no progress and no summary")
    add_json(parser, "the summary as one JSON object")
    parser.add_argument("--progress", choices=("auto", "bar", "lines", "none"), default="auto",
                        help="progress display (default: a bar on a terminal, lines otherwise)")
    parser.add_argument("--log-format", choices=("text", "json"), default="text")
    parser.add_argument("--log-file", type=Path, help="write log lines here instead of stderr")
    parser.add_argument("--metrics-file", type=Path, metavar="PATH", help=metrics_help)
