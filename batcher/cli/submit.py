"""The `batcher submit` command: its options, the settings it hands to `batcher.run.submission`,
and the summary it prints of the result."""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from batcher.api.services import DEFAULT_RATE
from batcher.cli.options import (
    add_account_options,
    add_ledger,
    add_manifests,
    add_output_options,
    add_rate,
    add_resume_rules,
    parse_duration,
)
from batcher.cli.spend import add_spend_options
from batcher.exceptions import BatcherError, UsageError
from batcher.run.retry import RetryPolicy

TOO_MANY_MANIFESTS = ("--ledger names one ledger, but several manifests were given: leave it out "
                      "(each manifest gets <stem>.ledger.jsonl beside it)")

def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    submit = commands.add_parser("submit", help="submit every task that is not done yet")
    add_manifests(submit)
    add_ledger(submit, "ledger file (default: <manifest stem>.ledger.jsonl beside it)")
    add_account_options(submit)
    add_rate(submit, "requests per second per service (default %(default)s, the API's cap; the "
             "API refuses more; 0 lifts the cap: for the emulator only)")
    submit.add_argument("--max-attempts", type=int, default=RetryPolicy().max_attempts,
                        help="attempts per task for retryable errors (default %(default)s)")
    add_resume_rules(submit)
    submit.add_argument("--regenerate", action="store_true",
                        help="send again the tasks whose generation failed with a retryable "
                        "error (see `batcher collect`), each with a new SessionId")
    submit.add_argument("--regenerate-all", action="store_true",
                        help="send again every task whose generation failed (mps FAIL, "
                        "content refusals too)")
    submit.add_argument("--max-runtime", type=parse_duration, metavar="DURATION",
                        help="stop taking new tasks after this long (e.g. 50m, 2h, 90s); exit 75")
    add_spend_options(submit)
    submit.add_argument("--max-images", type=int, metavar="N",
                        help="send at most N images in this run (a task's images: its "
                        "OutputImageCount, 1 by default); reached: exit 75, run again for the rest")
    submit.add_argument("--daily-images", type=int, metavar="N",
                        help="at most N images per UTC day for the account, across every "
                        "process and host sharing the --rate-store (default: "
                        f"${DAILY_IMAGES_ENV}, else no limit); reached: exit 75")
    add_output_options(submit, "write Prometheus text-format metrics here (atomically, "
                       "every 15 s and at the end), e.g. for node_exporter's textfile collector")
    submit.set_defaults(handler=run, on_error=record_failure)


def run(args: argparse.Namespace) -> int:
    from batcher.cli.logs import LOGGER_NAME, configure_logging
    from batcher.cli.report import account_fix, dumps, render_summary, render_summary_line
    from batcher.cli.resolve import resolve_account
    from batcher.cli.spend import price_table, spend_rules
    from batcher.cli.submit_watch import CliWatcher
    from batcher.run.account import locate_manifests
    from batcher.run.eventloop import run as run_event_loop
    from batcher.run.pipeline import RunSettings
    from batcher.run.resume import ResumeRules
    from batcher.run.submission import ManifestRun, SubmitOptions, run_submit
    from batcher.state.regeneration import RegenerationRules

    configure_logging(log_format=args.log_format, log_file=args.log_file, quiet=args.quiet)
    if args.rate < 0:
        raise UsageError("--rate must be positive (20 is the API's cap)")
    warn_about_rate(args.rate)
    if args.max_attempts < 1:
        raise UsageError("--max-attempts must be at least 1")
    spend = spend_rules(args, price_table(args))  # a bad price table: exit 2 before anything
    account = resolve_account(args)
    # Validated by run_submit, under the ledgers' locks.
    manifests = [ManifestRun(loaded.manifest, loaded.ledger) for loaded in
                 locate_manifests(args.manifests, args.ledger, too_many=TOO_MANY_MANIFESTS)]
    options = SubmitOptions(
        manifests=manifests,
        client=account.client,
        run=RunSettings(
            rate=args.rate,
            retry=RetryPolicy(max_attempts=args.max_attempts),
            rules=ResumeRules(retry_failed=args.retry_failed,
                              resend_in_doubt=args.resend_in_doubt),
            max_runtime=args.max_runtime,
            store_timeout=args.store_timeout,
            max_images=_image_limit("--max-images", args.max_images),
            daily_images=_image_limit("--daily-images", _daily_images(args.daily_images)),
        ),
        rate_store=account.rate_store,
        regeneration=RegenerationRules(retryable=args.regenerate,
                                       everything=args.regenerate_all),
        spend=spend,
    )
    watcher = CliWatcher("none" if args.quiet else args.progress, metrics_file=args.metrics_file)
    result = run_event_loop(run_submit(options, account.credentials, watcher))
    summary = (result.summaries, result.exit_code, result.stop_detail, result.account_error)
    if args.log_file is not None:  # cron reads the log: the summary goes there, --quiet or not
        logging.getLogger(LOGGER_NAME).info("%s", render_summary_line(*summary))
    if args.json:
        print(dumps({
            "exit_code": int(result.exit_code),
            "stopped": result.stop_detail or None,
            "to_fix": account_fix(result.stop_detail) if result.account_error else None,
            "manifests": [summary.as_dict() for summary in result.summaries],
        }))
    elif not args.quiet:
        print(render_summary(*summary))
    return result.exit_code


DAILY_IMAGES_ENV = "BATCHER_DAILY_IMAGES"


def _daily_images(given: int | None) -> int | None:
    """--daily-images, else $BATCHER_DAILY_IMAGES (a cron line's environment), else none."""
    text = os.environ.get(DAILY_IMAGES_ENV, "").strip()
    if given is not None or not text:
        return given
    try:
        return int(text)
    except ValueError:
        raise UsageError(f"${DAILY_IMAGES_ENV}={text!r} is not a number of images: set it to a "
                         "whole number, e.g. 5000, or unset it") from None


def _image_limit(option: str, value: int | None) -> int | None:
    if value is not None and value < 1:
        raise UsageError(f"{option} must be at least 1 (omit it for no limit)")
    return value


def warn_about_rate(rate: float) -> None:
    """A rate the real API would refuse is allowed (the emulator takes it), with a warning."""
    log = logging.getLogger("batcher")
    if rate > DEFAULT_RATE:
        log.warning("--rate %g is above the API's cap of %g requests/s per service: the API "
                    "refuses the excess (RequestLimitExceeded), so only the emulator goes "
                    "faster", rate, DEFAULT_RATE)
    elif rate == 0:
        log.warning("--rate 0 lifts the cap: for the emulator only, the API refuses more than "
                    "%g requests/s per service", DEFAULT_RATE)


def record_failure(args: argparse.Namespace, error: BatcherError) -> None:
    """A run stopped by an error still tells cron: the error goes to --log-file and its exit
    code to --metrics-file (`batcher.cli.main` calls this once, where it catches the error)."""
    from batcher.cli.logs import log_failure
    from batcher.cli.metrics import write_failed_run

    log_failure(args, error, "run")
    if args.metrics_file is not None:
        write_failed_run(args.metrics_file, _manifest_names(args.manifests), error.exit_code)


def _manifest_names(paths: Sequence[Path]) -> list[str]:
    """The manifests' names as a run labels its metrics, or the paths as given when even
    finding them failed (a missing file, a broken manifest in a directory)."""
    from batcher.manifest.discover import expand_manifest_paths

    try:
        return [str(path) for path in expand_manifest_paths(paths)]
    except (BatcherError, OSError):
        return [str(path) for path in paths]
