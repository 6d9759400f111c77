"""`submit`'s spend options (--confirm-above, --yes, --prices) and the terminal's question.

A run that would send more than `--confirm-above` images asks first, but only on a terminal
(stdin and stderr both one): a cron line never waits for an answer (docs/spend.md).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from batcher.cli.report import render_table

if TYPE_CHECKING:
    from batcher.run.prices import PriceTable
    from batcher.run.spend import Confirm, Sending, SpendRules
    from batcher.wire.credentials import Credentials


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


# --- plan: the quota, when credentials are at hand ------------------------------------------


def add_quota_options(parser: argparse.ArgumentParser) -> None:
    """Where `plan` reads the vod quota when credentials are found: --endpoint, --site,
    --profile, as `submit` takes them."""
    from batcher.api.services import DEFAULT_SITE, SITES
    from batcher.cli.options import ENDPOINT_ENV, PROFILE_ENV

    parser.add_argument("--endpoint", action="append", default=[], metavar="[SERVICE=]URL",
                        help="with credentials, read the vod AIGC quota there (as submit "
                        f"sends; env {ENDPOINT_ENV})")
    parser.add_argument("--site", choices=SITES, default=DEFAULT_SITE,
                        help="public hosts when no --endpoint is given (as submit)")
    parser.add_argument("--profile", help=f"section of the credentials file (env {PROFILE_ENV})")


PLAN_QUOTA_TIMEOUT = 5.0
"""Seconds `plan` waits for a quota read: a plan stays quick when the API is far or down."""


def plan_quota_lines(args: argparse.Namespace, apps: Mapping[int, int]) -> list[str]:
    """What each vod application's quota has left against what the plan sends, when
    credentials are found (none: nothing read, nothing shown, as without this feature)."""
    import os

    from batcher.exceptions import BatcherError
    from batcher.wire.credentials import load_credentials

    if not apps:
        return []
    try:  # environment or profile file only: a plan never waits for a CVM metadata service
        credentials = load_credentials(os.environ, Path.home(), args.profile)
    except BatcherError:
        return []
    left = _read_quotas(args, credentials, sorted(apps))
    lines = []
    for app, images in sorted(apps.items()):
        if app not in left:
            continue
        line = f"  vod application {app}: {left[app]} image(s) left of its AIGC quota"
        if images > left[app]:
            line += (f"; this plan sends {images}: submit refuses it ({QUOTA_HINT})")
        lines.append(line)
    return lines


QUOTA_HINT = "raise the quota in the VOD console, or send fewer images"


def _read_quotas(args: argparse.Namespace, credentials: Credentials,
                 apps: list[int]) -> dict[int, int]:
    import asyncio
    import os

    from batcher.cli.options import ENDPOINT_ENV
    from batcher.run.account import parse_endpoints, split_endpoints
    from batcher.run.spend import read_images_left
    from batcher.wire.client import AigcClient, ClientSettings

    shared, own = parse_endpoints(args.endpoint or split_endpoints(os.environ.get(ENDPOINT_ENV)))
    settings = ClientSettings(endpoint=shared, endpoints=own, site=args.site,
                              connect_timeout=PLAN_QUOTA_TIMEOUT,
                              request_timeout=PLAN_QUOTA_TIMEOUT)

    async def read() -> dict[int, int]:
        found = {}
        async with AigcClient(credentials, settings) as client:
            for app in apps:
                left = await read_images_left(client, app)
                if left is not None:
                    found[app] = left
        return found

    return asyncio.run(read())
