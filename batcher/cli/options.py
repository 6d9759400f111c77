"""Options and argument types that several commands share, declared once.

Light on purpose: the parser is built on every start, so nothing here imports the layers below
(a command imports what it needs when it runs).
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from batcher.api.services import DEFAULT_RATE

ENDPOINT_ENV = "BATCHER_ENDPOINT"

DEFAULT_STORE_TIMEOUT = 30.0
"""`--store-timeout`: seconds without an answer from the rate store before a run stops (SPEC
§10). Written here, not imported from `batcher.run.limiter`, so the parser stays light;
`tests/test_rate_store.py` checks that the two agree."""

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


def default_ledger_path(manifest: Path) -> Path:
    """`<manifest stem>.ledger.jsonl` beside the manifest (SPEC §2)."""
    return manifest.with_name(f"{manifest.stem}.ledger.jsonl")
