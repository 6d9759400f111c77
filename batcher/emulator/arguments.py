"""The `batcher emulator` options and the `EmulatorConfig` they describe.

Light on purpose: the CLI adds these options on every start, so this module imports only the
emulator's config, never its server.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from batcher.emulator.config import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    DEFAULT_SECRET_ID,
    DEFAULT_SECRET_KEY,
    EmulatorConfig,
    FaultConfig,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The emulator's options, added to `parser`."""
    parser.add_argument("--host", default=DEFAULT_HOST, help="address to listen on (%(default)s)")
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help="port, 0 = a free one (%(default)s)"
    )
    parser.add_argument(
        "--allow-remote", action="store_true", help="allow a --host that is not a loopback address"
    )
    # Defaults resolved in `run`, not here: `--help` must never show a key from the environment.
    parser.add_argument(
        "--secret-id",
        help="accepted SecretId (default: $TENCENTCLOUD_SECRET_ID, else the emulator's test id)",
    )
    parser.add_argument(
        "--secret-key",
        help="its SecretKey (default: $TENCENTCLOUD_SECRET_KEY, else the emulator's test key)",
    )
    parser.add_argument(
        "--token",
        help="make --secret-id/--secret-key temporary credentials, accepted only with this "
        "X-TC-Token (default: $TENCENTCLOUD_TOKEN; none = permanent, a token is refused)",
    )
    parser.add_argument(
        "--rate",
        type=_non_negative_int,
        default=None,
        help="requests per rolling second per service, 0 = unlimited (default: the API's 20)",
    )
    parser.add_argument(
        "--sub-app-id",
        type=_positive_int,
        action="append",
        default=[],
        metavar="ID",
        help="a VOD SubAppId that exists (repeatable; default: any positive integer)",
    )
    parser.add_argument("--log", type=Path, metavar="PATH", help="append one JSON line per request")

    faults = parser.add_argument_group("fault injection (all off by default)")
    faults.add_argument("--seed", type=int, help="seed of the fault draws, for reproducible runs")
    faults.add_argument(
        "--internal-error-rate",
        type=_share,
        default=0.0,
        metavar="P",
        help="share of InternalError answers",
    )
    faults.add_argument(
        "--throttle-rate",
        type=_share,
        default=0.0,
        metavar="P",
        help="share of extra RequestLimitExceeded answers",
    )
    faults.add_argument(
        "--http-502-rate",
        type=_share,
        default=0.0,
        metavar="P",
        help="share of HTTP 502 HTML answers, as a proxy gives (no task created)",
    )
    faults.add_argument(
        "--drop-after-create-rate",
        type=_share,
        default=0.0,
        metavar="P",
        help="share of requests whose task is created, then the connection dropped unanswered",
    )
    faults.add_argument(
        "--latency-ms",
        type=_latency,
        default=(0.0, 0.0),
        metavar="A[-B]",
        help="delay before each answer, uniform in [A, B] milliseconds",
    )
    faults.add_argument(
        "--clock-skew",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="offset of the emulator's clock (timestamp check and Date header)",
    )
    faults.add_argument(
        "--fail-code",
        type=_fail_code,
        action="append",
        default=[],
        metavar="CODE[:P]",
        help="answer error CODE to a share P of requests (default 1; repeatable)",
    )


def config_from_args(args: argparse.Namespace) -> EmulatorConfig:
    """The `EmulatorConfig` the parsed options describe (ValueError when inconsistent)."""
    secret_id = args.secret_id or os.environ.get("TENCENTCLOUD_SECRET_ID") or DEFAULT_SECRET_ID
    secret_key = args.secret_key or os.environ.get("TENCENTCLOUD_SECRET_KEY") or DEFAULT_SECRET_KEY
    faults = FaultConfig(
        seed=args.seed,
        internal_error_rate=args.internal_error_rate,
        throttle_rate=args.throttle_rate,
        http_502_rate=args.http_502_rate,
        drop_after_create_rate=args.drop_after_create_rate,
        latency_ms=args.latency_ms,
        fail_codes=tuple(args.fail_code),
    )
    token = args.token or os.environ.get("TENCENTCLOUD_TOKEN") or None
    return EmulatorConfig(
        secret_id=secret_id,
        secret_key=secret_key,
        token=token,
        rate=args.rate,
        sub_app_ids=frozenset(args.sub_app_id),
        clock_skew=args.clock_skew,
        faults=faults,
        log_path=args.log,
        host=args.host,
        port=args.port,
    )


# --- option types ---------------------------------------------------------------------------


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"a share must be between 0 and 1, got {text}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _positive_int(text: str) -> int:
    value = _non_negative_int(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be a positive integer")
    return value


def _latency(text: str) -> tuple[float, float]:
    low_text, _, high_text = text.partition("-")
    try:
        low = float(low_text)
        high = float(high_text) if high_text else low
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected A or A-B milliseconds, got {text!r}") from None
    if not 0.0 <= low <= high:
        raise argparse.ArgumentTypeError(f"expected 0 <= A <= B, got {text!r}")
    return (low, high)


def _fail_code(text: str) -> tuple[str, float]:
    code, colon, share_text = text.partition(":")
    if not code:
        raise argparse.ArgumentTypeError(f"expected CODE[:P], got {text!r}")
    return (code, _share(share_text) if colon else 1.0)
