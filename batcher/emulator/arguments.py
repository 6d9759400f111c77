"""The `batcher emulator` options and the `EmulatorConfig` they describe.

Light on purpose: the CLI adds these options on every start, so this module imports only the
emulator's config, never its server.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from batcher.emulator.config import (
    DEFAULT_FAIL_GENERATION_MARKER,
    DEFAULT_GENERATION_JITTER,
    DEFAULT_GENERATION_SECONDS,
    DEFAULT_HOST,
    DEFAULT_IMAGE_BYTES,
    DEFAULT_PORT,
    DEFAULT_SECRET_ID,
    DEFAULT_SECRET_KEY,
    DEFAULT_URL_TTL_SECONDS,
    MIN_IMAGE_BYTES,
    EmulatorConfig,
    FaultConfig,
    GenerationConfig,
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
        help="creations per rolling second per service (default: the API's 20); "
        "0 lifts every cap, the poll actions' too",
    )
    parser.add_argument(
        "--poll-rate",
        type=_non_negative_int,
        default=None,
        help="requests per rolling second of each poll action, 0 = unlimited (default: the "
        "API's: DescribeTaskDetail and DescribeTasks 100, DescribeAigcImageTask 20)",
    )
    parser.add_argument(
        "--max-running",
        type=_positive_int,
        default=None,
        metavar="N",
        help="mps: at most N of the account's tasks waiting or running at once; a create past "
        "it is refused with LimitExceeded.CreateTask (default: no limit)",
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

    results = parser.add_argument_group("the result side: generation and files")
    results.add_argument(
        "--generation-seconds",
        type=_non_negative_float,
        default=DEFAULT_GENERATION_SECONDS,
        metavar="S",
        help="time a task takes from creation to its files: it waits the first fifth, then "
        "runs (%(default)s)",
    )
    results.add_argument(
        "--generation-jitter",
        type=_share,
        default=DEFAULT_GENERATION_JITTER,
        metavar="J",
        help="spread of the generation time, 0.5 = +-50%% (%(default)s)",
    )
    results.add_argument(
        "--fail-generation-marker",
        default=DEFAULT_FAIL_GENERATION_MARKER,
        metavar="TEXT",
        help="a prompt containing TEXT fails at generation, as content moderation refuses it "
        "(%(default)s)",
    )
    results.add_argument(
        "--image-bytes",
        type=_image_bytes,
        default=DEFAULT_IMAGE_BYTES,
        metavar="N",
        help=f"exact size of every PNG served, at least {MIN_IMAGE_BYTES} (%(default)s)",
    )
    results.add_argument(
        "--url-ttl",
        type=_positive_float,
        default=DEFAULT_URL_TTL_SECONDS,
        metavar="SECONDS",
        help="MPS image URLs answer 403 this long after their task finished (%(default)s = "
        "12 h); VOD Temporary files end 7 days after",
    )

    faults = parser.add_argument_group("fault injection (all off by default)")
    faults.add_argument(
        "--seed",
        type=int,
        help="seed of the fault draws and of the generation-time spread, for reproducible runs",
    )
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
    faults.add_argument(
        "--aigc-quota",
        type=_aigc_quota,
        action="append",
        default=[],
        metavar="SUBAPPID=N",
        help="give vod application SUBAPPID an AIGC image quota of N images: "
        "DescribeAigcQuotas reports it, creates past it get LimitExceeded.Quota (repeatable)",
    )
    faults.add_argument(
        "--download-drop-rate",
        type=_share,
        default=0.0,
        metavar="P",
        help="share of image downloads whose connection drops halfway through the body",
    )
    faults.add_argument(
        "--download-error-rate",
        type=_share,
        default=0.0,
        metavar="P",
        help="share of image downloads answered HTTP 503",
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
        download_drop_rate=args.download_drop_rate,
        download_error_rate=args.download_error_rate,
    )
    generation = GenerationConfig(
        seconds=args.generation_seconds,
        jitter=args.generation_jitter,
        fail_marker=args.fail_generation_marker,
        image_bytes=args.image_bytes,
        url_ttl=args.url_ttl,
    )
    token = args.token or os.environ.get("TENCENTCLOUD_TOKEN") or None
    return EmulatorConfig(
        secret_id=secret_id,
        secret_key=secret_key,
        token=token,
        rate=args.rate,
        poll_rate=args.poll_rate,
        max_running=args.max_running,
        generation=generation,
        sub_app_ids=frozenset(args.sub_app_id),
        clock_skew=args.clock_skew,
        faults=faults,
        log_path=args.log,
        host=args.host,
        port=args.port,
        aigc_quotas=tuple(args.aigc_quota),
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


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value >= 0.0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = _non_negative_float(text)
    if value == 0.0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text}")
    return value


def _image_bytes(text: str) -> int:
    value = _non_negative_int(text)
    if value < MIN_IMAGE_BYTES:
        raise argparse.ArgumentTypeError(f"must be at least {MIN_IMAGE_BYTES} bytes, got {text}")
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


def _aigc_quota(text: str) -> tuple[int, int]:
    app, equals, images = text.partition("=")
    try:
        pair = (int(app), int(images))
    except ValueError:
        pair = (0, -1)
    if not equals or pair[0] <= 0 or pair[1] < 0:
        raise argparse.ArgumentTypeError(f"expected SUBAPPID=N (N images, >= 0), got {text!r}")
    return pair


def _fail_code(text: str) -> tuple[str, float]:
    code, colon, share_text = text.partition(":")
    if not code:
        raise argparse.ArgumentTypeError(f"expected CODE[:P], got {text!r}")
    return (code, _share(share_text) if colon else 1.0)
