"""The `batcher status` command: tasks per state, failures grouped by error code; with `--tasks`,
one row per task (`batcher.cli.task_list`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from batcher.cli.options import add_json, add_ledger, add_manifests
from batcher.exceptions import ExitCode, UsageError

if TYPE_CHECKING:
    from batcher.manifest import Manifest



def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    status = commands.add_parser("status", help="tasks per state, failures by error code")
    add_manifests(status, required=False)
    add_ledger(status, "ledger to read (default: beside the manifest)")
    add_json(status, "the report as one JSON object")
    status.add_argument("--tasks", action="store_true",
                        help="one row per task: key, service, state, task id, source, prompt, "
                        "error")
    status.add_argument("--state", action="append", metavar="STATE",
                        help="with --tasks: only tasks in this state: not_sent, submitted, "
                        "duplicate, in_doubt, failed_retryable, failed_permanent, failed, done "
                        "(repeatable)")
    status.add_argument("--csv", action="store_true", help="with --tasks: CSV on stdout")
    status.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from batcher.cli.logs import configure_logging
    from batcher.manifest import load_manifest
    from batcher.manifest.discover import expand_manifest_paths
    from batcher.run.account import default_ledger_path

    configure_logging()
    if (args.state or args.csv) and not args.tasks:
        raise UsageError("--state and --csv go with --tasks: add --tasks")
    if not args.manifests and args.ledger is None:
        raise UsageError("status needs a MANIFEST (or a directory of them) or --ledger PATH")
    if not args.manifests:
        if not args.ledger.exists():
            raise UsageError(f"{args.ledger}: no such ledger")
        _show(args, args.ledger, None)
        return ExitCode.OK
    paths = expand_manifest_paths(args.manifests)
    if args.ledger is not None and len(paths) > 1:
        raise UsageError("--ledger names one ledger, but several manifests were given: leave "
                         "it out (each manifest's ledger is <stem>.ledger.jsonl beside it)")
    for path in paths:
        manifest = load_manifest(path)
        manifest.validate()
        _show(args, args.ledger or default_ledger_path(path), manifest)
    return ExitCode.OK


def _show(args: argparse.Namespace, ledger: Path, manifest: Manifest | None) -> None:
    """Print one manifest's (or one ledger's) status as the options ask."""
    from batcher.cli.report import dumps
    from batcher.cli.status_report import render_status
    from batcher.cli.task_list import print_task_list
    from batcher.results.status import status_report

    if args.tasks:
        print_task_list(ledger, manifest, args.state, as_csv=args.csv)
        return
    report = status_report(ledger, manifest)
    print(dumps(report.as_dict()) if args.json else render_status(report))
