"""The `batcher collect` command: its options, and the run it hands to `batcher.results`.

Exit codes (docs/results.md): 0 every done task has its files on disk; 1 finished, and some failed
to generate, expired or were lost; 75 some are still generating, or the run was stopped early
(`--max-runtime`, `--timeout`, the endpoint or the rate store unreachable): run again; 2 bad
usage, a bad manifest, credentials refused; 3 another collect holds the results ledger;
130/143 SIGINT/SIGTERM. results.csv and index.html are rewritten whatever the exit code.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from batcher.cli.options import (
    add_account_options,
    add_ledger,
    add_manifests,
    add_output_options,
    parse_duration,
)
from batcher.exceptions import UsageError
from batcher.results.schedule import DEFAULT_PRIOR_GENERATION

if TYPE_CHECKING:
    from batcher.cli.collect_run import CollectRunOptions
    from batcher.exceptions import BatcherError

DEFAULT_TIMEOUT_TEXT = "1h"
_BYTE_UNITS = {"": 1, "b": 1, "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30,
               "k": 1000, "kb": 1000, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9}


def parse_byte_size(text: str) -> int:
    """`64MiB`, `500k`, `1048576` as bytes (at least 1)."""
    number = text.strip().rstrip("bBiIkKmMgG")
    unit = text.strip()[len(number):].lower()
    try:
        value = int(number) * _BYTE_UNITS[unit]
    except (ValueError, KeyError):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a size: give bytes, or a number with KiB, MiB, GiB (or k, M, G)"
        ) from None
    if value < 1:
        raise argparse.ArgumentTypeError("a size must be at least 1 byte")
    return value
TOO_MANY_MANIFESTS = ("--ledger and --out name one manifest's, but several manifests were given: "
                      "leave them out (each gets its own beside it)")


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    collect = commands.add_parser(
        "collect", help="poll the submitted tasks, download their images, write the gallery")
    add_manifests(collect)
    add_ledger(collect, "submit ledger (default: <manifest stem>.ledger.jsonl beside it)")
    collect.add_argument("--out", type=Path, metavar="DIR",
                         help="where images, results.csv and index.html go "
                         "(default: <manifest stem>.results/ beside the manifest)")
    collect.add_argument("--wait", action="store_true",
                         help="poll until every task is final or --timeout passes")
    collect.add_argument("--timeout", type=parse_duration, default=DEFAULT_TIMEOUT_TEXT,
                         metavar="DURATION", help="give up after this long, one pass or "
                         "--wait (default %(default)s); exit 75")
    collect.add_argument("--poll-rate", type=float, metavar="R",
                         help="lower every poll action's cap to R requests per second "
                         "(caps: vod 100/s, mps 20/s; 0 lifts them, for the emulator only)")
    collect.add_argument("--max-runtime", type=parse_duration, metavar="DURATION",
                         help="stop after this long (e.g. 50m); exit 75")
    collect.add_argument("--expected-generation", type=parse_duration, metavar="DURATION",
                         default=DEFAULT_PRIOR_GENERATION,
                         help="how long the model usually takes, assumed until the run has "
                         "learnt it from the answers (default %(default)gs); a task is first "
                         "asked about then (with --wait never before it is 2 s old)")
    collect.add_argument("--max-image-bytes", type=parse_byte_size, default="64MiB",
                         metavar="SIZE", help="refuse an image larger than this (default "
                         "%(default)s; e.g. 200MiB, 1GiB): the task's error for this run")
    add_account_options(collect)
    add_output_options(collect, "write Prometheus text-format metrics here (atomically, at the "
                       "end), with the tasks per result state")
    collect.set_defaults(handler=run, on_error=record_failure)


def run(args: argparse.Namespace) -> int:
    from batcher.cli.collect_run import run_collect
    from batcher.cli.logs import configure_logging

    configure_logging(log_format=args.log_format, log_file=args.log_file, quiet=args.quiet)
    return run_collect(_options(args))


def record_failure(args: argparse.Namespace, error: BatcherError) -> None:
    """A run stopped by an error still tells cron: the error goes to --log-file and its exit
    code to --metrics-file (`batcher.cli.main` calls this once, where it catches the error)."""
    from batcher.cli.collect_report import write_failed_metrics
    from batcher.cli.logs import log_failure

    log_failure(args, error, "collect")
    if args.metrics_file is not None:
        write_failed_metrics(args.metrics_file, error.exit_code)


def _options(args: argparse.Namespace) -> CollectRunOptions:
    from batcher.cli.collect_run import CollectRunOptions
    from batcher.cli.resolve import resolve_account
    from batcher.results.collector import CollectJob, CollectSettings
    from batcher.results.download import DownloadPolicy
    from batcher.results.schedule import PollTiming
    from batcher.run.account import locate_manifests

    if args.poll_rate is not None and args.poll_rate < 0:
        raise UsageError("--poll-rate must be positive (it can only lower the API's caps)")
    account = resolve_account(args)
    jobs = [CollectJob(loaded.manifest, loaded.ledger, loaded.out) for loaded in
            locate_manifests(args.manifests, args.ledger, args.out, too_many=TOO_MANY_MANIFESTS)]
    return CollectRunOptions(
        jobs=jobs,
        account=account,
        settings=CollectSettings(wait=args.wait, timeout=args.timeout,
                                 max_runtime=args.max_runtime, poll_rate=args.poll_rate,
                                 download=DownloadPolicy(max_bytes=args.max_image_bytes),
                                 timing=PollTiming(prior_generation=args.expected_generation)),
        store_timeout=args.store_timeout,
        progress="none" if args.quiet else args.progress,
        metrics_file=args.metrics_file,
        json=args.json,
        quiet=args.quiet,
        log_summary=args.log_file is not None,
    )
