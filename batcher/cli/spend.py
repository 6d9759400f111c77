"""`submit`'s spend options (--confirm-above, --yes, --prices) and the terminal's question.

A run that would send more than `--confirm-above` images asks first, but only on a terminal
(stdin and stderr both one): a cron line never waits for an answer (docs/spend.md).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from batcher.cli.report import render_table

if TYPE_CHECKING:
    from batcher.run.prices import PriceTable
    from batcher.run.spend import Confirm, Sending, SpendRules


def add_spend_options(parser: argparse.ArgumentParser) -> None:
    from batcher.run.spend import DEFAULT_CONFIRM_ABOVE  # no heavy import: spend is small

    parser.add_argument(
        "--confirm-above", type=_count, default=DEFAULT_CONFIRM_ABOVE, metavar="N",
        help="on a terminal, show what is about to be sent and ask first when the run sends "
        "more than N images (default %(default)s; never asks without a terminal)")
    parser.add_argument("--yes", action="store_true",
                        help="answer yes to that question (send without asking)")
    add_prices_option(parser)


def add_prices_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--prices", type=Path, metavar="FILE",
                        help="price table (YAML/JSON: per service, `ModelName ModelVersion: "
                        "price per image`) for an estimated cost (env BATCHER_PRICES; "
                        "without one no cost is shown)")


def price_table(args: argparse.Namespace) -> PriceTable | None:
    """The table --prices / BATCHER_PRICES names, loaded (exit 2 on a mistake), or None."""
    from batcher.run.prices import load_prices, prices_path

    path = prices_path(args.prices)
    return None if path is None else load_prices(path)


def spend_rules(args: argparse.Namespace, prices: PriceTable | None) -> SpendRules:
    from batcher.run.spend import SpendRules

    asks = not args.yes and sys.stdin.isatty() and sys.stderr.isatty()
    return SpendRules(confirm=terminal_question(prices) if asks else None,
                      confirm_above=args.confirm_above)


def terminal_question(prices: PriceTable | None) -> Confirm:
    def confirm(summary: Sending) -> bool:
        print(render_sending(summary, prices), file=sys.stderr)
        print(f"Send {summary.images} images? [y/N] ", end="", file=sys.stderr, flush=True)
        try:
            answer = sys.stdin.readline()
        except (OSError, ValueError):
            return False
        return answer.strip().lower() in ("y", "yes")

    return confirm


def render_sending(summary: Sending, prices: PriceTable | None) -> str:
    """What the run is about to send: tasks and images per service and model, a cost when a
    price table is given, what each vod application's quota has left."""
    rows = {f"{service} {model}": {"tasks": counts["tasks"], "images": counts["images"]}
            for (service, model), counts in sorted(summary.models.items())}
    totals = ", ".join(f"{service} {counts['images']}"
                       for service, counts in sorted(summary.services.items()))
    lines = ["About to send:", *render_table(["model", "tasks", "images"], rows),
             f"  images: {summary.images} ({totals})"]
    lines.extend(f"  vod application {app}: {left} image(s) left of its AIGC quota"
                 for app, left in sorted(summary.quotas_left.items()))
    if prices is not None:
        lines.append(f"  {cost_line(summary, prices)}")
    return "\n".join(lines)


def cost_line(summary: Sending, prices: PriceTable) -> str:
    cost, unpriced = summary.cost(prices)
    line = f"estimated cost: {prices.format(cost)} (prices from {prices.source})"
    if unpriced:
        line += f"; not priced there, so not counted: {', '.join(unpriced)}"
    return line


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value
