"""The `batcher submit` command: its options, and the settings it hands to `submit_run`."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from batcher.cli.options import (
    DEFAULT_STORE_TIMEOUT,
    ENDPOINT_ENV,
    add_json,
    add_ledger,
    add_rate,
    add_resume_rules,
    default_ledger_path,
    parse_duration,
)
from batcher.exceptions import UsageError
from batcher.run.retry import RetryPolicy

if TYPE_CHECKING:
    from batcher.cli.submit_run import ManifestRun

def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    submit = commands.add_parser("submit", help="submit every task that is not done yet")
    submit.add_argument("manifests", nargs="+", type=Path, metavar="MANIFEST",
                        help="YAML or CSV manifest(s), or a directory of them")
    add_ledger(submit, "ledger file (default: <manifest stem>.ledger.jsonl beside it)")
    submit.add_argument("--endpoint", help=f"send requests to this URL (env {ENDPOINT_ENV})")
    submit.add_argument("--region", help="X-TC-Region header (the API does not require one)")
    add_rate(submit, "requests per second per service (default %(default)s, the API's cap)")
    submit.add_argument("--max-attempts", type=int, default=RetryPolicy().max_attempts,
                        help="attempts per task for retryable errors (default %(default)s)")
    add_resume_rules(submit)
    submit.add_argument("--max-runtime", type=parse_duration, metavar="DURATION",
                        help="stop taking new tasks after this long (e.g. 50m, 2h, 90s); exit 75")
    submit.add_argument("--rate-store", metavar="URL",
                        help="where send slots are reserved, shared by every process naming it: "
                        "redis://HOST:PORT/DB, file:PATH or memory (env BATCHER_RATE_STORE; "
                        "default: a file in $XDG_STATE_HOME/batcher/, else "
                        "~/.local/state/batcher/)")
    submit.add_argument("--store-timeout", type=parse_duration, metavar="DURATION",
                        default=DEFAULT_STORE_TIMEOUT,
                        help="stop (exit 75) when the rate store does not answer for this long "
                        "(default %(default)gs)")
    submit.add_argument("--quiet", action="store_true", help="no progress and no summary")
    add_json(submit, "the summary as one JSON object")
    submit.add_argument("--progress", choices=("auto", "bar", "lines", "none"), default="auto",
                        help="progress display (default: a bar on a terminal, lines otherwise)")
    submit.add_argument("--log-format", choices=("text", "json"), default="text")
    submit.add_argument("--log-file", type=Path, help="write log lines here instead of stderr")
    submit.add_argument("--metrics-file", type=Path, metavar="PATH",
                        help="write Prometheus text-format metrics here (atomically, every 15 s "
                        "and at the end), e.g. for node_exporter's textfile collector")
    submit.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from batcher.cli.logs import configure_logging
    from batcher.cli.report import dumps, render_summary
    from batcher.cli.submit_run import SubmitOptions, run_submit
    from batcher.run.eventloop import run as run_event_loop
    from batcher.run.pipeline import RunSettings
    from batcher.run.rate_stores import RATE_STORE_ENV, default_store_url
    from batcher.run.resume import ResumeRules
    from batcher.wire.client import ClientSettings, check_endpoint
    from batcher.wire.credentials import load_credentials

    configure_logging(log_format=args.log_format, log_file=args.log_file, quiet=args.quiet)
    if args.rate < 0:
        raise UsageError("--rate must be positive (20 is the API's cap)")
    if args.max_attempts < 1:
        raise UsageError("--max-attempts must be at least 1")
    credentials = load_credentials(os.environ, Path.home())
    manifests = load_runs(args.manifests, args.ledger)  # validated by run_submit, under locks
    endpoint = args.endpoint or os.environ.get(ENDPOINT_ENV) or None
    if endpoint:
        endpoint = check_endpoint(endpoint)
    rate_store = (args.rate_store or os.environ.get(RATE_STORE_ENV)
                  or default_store_url(os.environ, Path.home()))
    options = SubmitOptions(
        manifests=manifests,
        client=ClientSettings(endpoint=endpoint, region=args.region),
        run=RunSettings(
            rate=args.rate,
            retry=RetryPolicy(max_attempts=args.max_attempts),
            rules=ResumeRules(retry_failed=args.retry_failed,
                              resend_in_doubt=args.resend_in_doubt),
            max_runtime=args.max_runtime,
            store_timeout=args.store_timeout,
        ),
        rate_store=rate_store,
        progress="none" if args.quiet else args.progress,
        metrics_file=args.metrics_file,
    )
    result = run_event_loop(run_submit(options, credentials))
    if args.json:
        print(dumps({
            "exit_code": int(result.exit_code),
            "stopped": result.stop_detail or None,
            "manifests": [summary.as_dict() for summary in result.summaries],
        }))
    elif not args.quiet:
        print(render_summary(result.summaries, result.exit_code, result.stop_detail))
    return result.exit_code


def load_runs(paths: Sequence[Path], ledger: Path | None) -> list[ManifestRun]:
    """Every manifest's structure read (its tasks are validated later, in one pass)."""
    from batcher.cli.submit_run import ManifestRun
    from batcher.manifest import load_manifest
    from batcher.manifest.discover import expand_manifest_paths

    files = expand_manifest_paths(paths)
    if ledger is not None and len(files) > 1:
        raise UsageError("--ledger names one ledger, but several manifests were given: "
                         "leave it out (each manifest gets <stem>.ledger.jsonl beside it)")
    return [ManifestRun(load_manifest(path), ledger or default_ledger_path(path))
            for path in files]
