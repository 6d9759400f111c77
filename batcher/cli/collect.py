"""The `batcher collect` command: its options, and the run it hands to `batcher.results`.

Exit codes (SPEC §9): 0 every done task has its files on disk; 1 finished, and some failed to
generate, expired or were lost; 75 some are still generating, or the run was stopped early
(`--max-runtime`, `--timeout`, the endpoint or the rate store unreachable): run again; 2 bad
usage, a bad manifest, credentials refused; 3 another collect holds the results ledger;
130/143 SIGINT/SIGTERM. results.csv and index.html are rewritten whatever the exit code.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

from batcher.cli.options import ENDPOINT_ENV, add_json, add_ledger, parse_duration
from batcher.exceptions import UsageError

if TYPE_CHECKING:
    from batcher.cli.collect_run import CollectRunOptions
    from batcher.results.collector import CollectJob

DEFAULT_TIMEOUT_TEXT = "1h"
RATE_STORE_ENV = "BATCHER_RATE_STORE"


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    collect = commands.add_parser(
        "collect", help="poll the submitted tasks, download their images, write the gallery")
    collect.add_argument("manifests", nargs="+", type=Path, metavar="MANIFEST",
                         help="YAML or CSV manifest(s), or a directory of them")
    add_ledger(collect, "submit ledger (default: <manifest stem>.ledger.jsonl beside it)")
    collect.add_argument("--out", type=Path, metavar="DIR",
                         help="where images, results.csv and index.html go "
                         "(default: <manifest stem>.results/ beside the manifest)")
    collect.add_argument("--wait", action="store_true",
                         help="poll until every task is final or --timeout passes")
    collect.add_argument("--timeout", type=parse_duration, default=DEFAULT_TIMEOUT_TEXT,
                         metavar="DURATION", help="give up waiting after this long "
                         "(default %(default)s); exit 75")
    collect.add_argument("--poll-rate", type=float, metavar="R",
                         help="lower every poll action's cap to R requests per second "
                         "(caps: vod 100/s, mps 20/s; 0 lifts them, for the emulator only)")
    collect.add_argument("--max-runtime", type=parse_duration, metavar="DURATION",
                         help="stop after this long (e.g. 50m); exit 75")
    collect.add_argument("--endpoint", help=f"send requests to this URL (env {ENDPOINT_ENV})")
    collect.add_argument("--region", help="X-TC-Region header (the API does not require one)")
    collect.add_argument("--rate-store", metavar="URL",
                         help=f"share the caps through this store (env {RATE_STORE_ENV}): "
                         "redis://HOST:PORT/DB, file:PATH or memory")
    collect.add_argument("--quiet", action="store_true", help="no progress and no summary")
    add_json(collect, "the summary as one JSON object")
    collect.add_argument("--progress", choices=("auto", "bar", "lines", "none"), default="auto",
                         help="progress display (default: a bar on a terminal, lines otherwise)")
    collect.add_argument("--log-format", choices=("text", "json"), default="text")
    collect.add_argument("--log-file", type=Path, help="write log lines here instead of stderr")
    collect.add_argument("--metrics-file", type=Path, metavar="PATH",
                         help="write Prometheus text-format metrics here (atomically, at the "
                         "end), with the tasks per result state")
    collect.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import logging

    from batcher.cli.collect_run import run_collect
    from batcher.cli.logs import configure_logging
    from batcher.exceptions import BatcherError, ExitCode

    configure_logging(log_format=args.log_format, log_file=args.log_file, quiet=args.quiet)
    log = logging.getLogger("batcher")
    try:
        options = _options(args)
        return run_collect(options)
    except BatcherError as error:
        # Every run leaves its error in the log file and its exit code in the metrics (SPEC §2).
        if args.log_file is not None:
            log.error("%s", error)
        if args.metrics_file is not None:
            from batcher.cli.collect_report import write_failed_metrics

            write_failed_metrics(args.metrics_file, error.exit_code)
        raise
    except KeyboardInterrupt:
        return ExitCode.SIGINT


def _options(args: argparse.Namespace) -> CollectRunOptions:
    from batcher.cli.collect_run import CollectRunOptions
    from batcher.results.collector import CollectSettings
    from batcher.run.rate_stores import default_store_url
    from batcher.wire.client import ClientSettings, check_endpoint
    from batcher.wire.credentials import load_credentials

    if args.poll_rate is not None and args.poll_rate < 0:
        raise UsageError("--poll-rate must be positive (it can only lower the API's caps)")
    credentials = load_credentials(os.environ, Path.home())
    jobs = load_jobs(args.manifests, args.ledger, args.out)
    endpoint = args.endpoint or os.environ.get(ENDPOINT_ENV) or None
    store = args.rate_store or os.environ.get(RATE_STORE_ENV) or default_store_url(
        os.environ, Path.home())
    return CollectRunOptions(
        jobs=jobs,
        credentials=credentials,
        client=ClientSettings(endpoint=check_endpoint(endpoint) if endpoint else None,
                              region=args.region),
        settings=CollectSettings(wait=args.wait, timeout=args.timeout,
                                 max_runtime=args.max_runtime, poll_rate=args.poll_rate),
        rate_store=store,
        progress="none" if args.quiet else args.progress,
        metrics_file=args.metrics_file,
        json=args.json,
        quiet=args.quiet,
        log_summary=args.log_file is not None,
    )


def load_jobs(paths: list[Path], ledger: Path | None, out: Path | None) -> list[CollectJob]:
    """Each manifest's structure read, with its submit ledger and its output directory."""
    from batcher.cli.options import default_ledger_path
    from batcher.manifest import load_manifest
    from batcher.manifest.discover import expand_manifest_paths
    from batcher.results.collector import CollectJob

    files = expand_manifest_paths(paths)
    if len(files) > 1 and (ledger is not None or out is not None):
        raise UsageError("--ledger and --out name one manifest's, but several manifests were "
                         "given: leave them out (each gets its own beside it)")
    return [
        CollectJob(load_manifest(path), ledger or default_ledger_path(path),
                   out or default_out_dir(path))
        for path in files
    ]


def default_out_dir(manifest: Path) -> Path:
    """`<manifest stem>.results/` beside the manifest (SPEC §9)."""
    return manifest.with_name(f"{manifest.stem}.results")
