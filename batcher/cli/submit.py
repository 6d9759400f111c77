"""The `batcher submit` command: its options, and the settings it hands to `submit_run`."""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from batcher.api.services import DEFAULT_RATE
from batcher.cli.options import (
    ENDPOINT_ENV,
    RATE_STORE_ENV,
    add_account_options,
    add_ledger,
    add_output_options,
    add_rate,
    add_resume_rules,
    default_ledger_path,
    parse_duration,
)
from batcher.exceptions import BatcherError, UsageError
from batcher.run.retry import RetryPolicy

if TYPE_CHECKING:
    from batcher.cli.submit_run import ManifestRun

def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    submit = commands.add_parser("submit", help="submit every task that is not done yet")
    submit.add_argument("manifests", nargs="+", type=Path, metavar="MANIFEST",
                        help="YAML or CSV manifest(s), or a directory of them")
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
    add_output_options(submit, "write Prometheus text-format metrics here (atomically, "
                       "every 15 s and at the end), e.g. for node_exporter's textfile collector")
    submit.set_defaults(handler=run, on_error=record_failure)


def run(args: argparse.Namespace) -> int:
    from batcher.cli.logs import LOGGER_NAME, configure_logging
    from batcher.cli.report import account_fix, dumps, render_summary, render_summary_line
    from batcher.cli.submit_run import SubmitOptions, run_submit
    from batcher.run.eventloop import run as run_event_loop
    from batcher.run.pipeline import RunSettings
    from batcher.run.rate_stores import default_store_url
    from batcher.run.resume import ResumeRules
    from batcher.state.regeneration import RegenerationRules
    from batcher.wire.client import ClientSettings
    from batcher.wire.credentials import CredentialSources, find_credentials

    configure_logging(log_format=args.log_format, log_file=args.log_file, quiet=args.quiet)
    if args.rate < 0:
        raise UsageError("--rate must be positive (20 is the API's cap)")
    warn_about_rate(args.rate)
    if args.max_attempts < 1:
        raise UsageError("--max-attempts must be at least 1")
    credentials = find_credentials(
        CredentialSources.standard(os.environ, Path.home(), args.profile))
    manifests = load_runs(args.manifests, args.ledger)  # validated by run_submit, under locks
    endpoint, endpoints = parse_endpoints(
        args.endpoint or split_endpoints(os.environ.get(ENDPOINT_ENV)))
    rate_store = (args.rate_store or os.environ.get(RATE_STORE_ENV)
                  or default_store_url(os.environ, Path.home()))
    options = SubmitOptions(
        manifests=manifests,
        client=ClientSettings(endpoint=endpoint, endpoints=endpoints, site=args.site,
                              region=args.region),
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
        regeneration=RegenerationRules(retryable=args.regenerate,
                                       everything=args.regenerate_all),
    )
    result = run_event_loop(run_submit(options, credentials))
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


def split_endpoints(value: str | None) -> list[str]:
    """`BATCHER_ENDPOINT`: one URL, or `vod=URL,mps=URL`."""
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def parse_endpoints(values: Sequence[str]) -> tuple[str | None, tuple[tuple[str, str], ...]]:
    """`--endpoint` values → (the URL for every service, (service, URL) pairs), each checked.

    >>> parse_endpoints(["http://127.0.0.1:1", "mps=http://127.0.0.1:2"])
    ('http://127.0.0.1:1', (('mps', 'http://127.0.0.1:2'),))
    """
    from batcher.api.services import SERVICES
    from batcher.wire.client import check_endpoint

    shared: str | None = None
    own: dict[str, str] = {}
    for value in values:
        name, separator, url = value.partition("=")
        if not separator or "://" in name:
            if shared is not None:
                raise UsageError("--endpoint URL is given twice: give one URL for every "
                                 "service, or vod=URL and mps=URL")
            shared = check_endpoint(value)
        elif name in SERVICES:
            if name in own:
                raise UsageError(f"--endpoint {name}=URL is given twice: give it once")
            own[name] = check_endpoint(url)
        else:
            raise UsageError(f"--endpoint {name}=...: unknown service {name!r}: use "
                             f"{' or '.join(f'{s}=URL' for s in SERVICES)}, or a URL alone")
    return shared, tuple(sorted(own.items()))


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
