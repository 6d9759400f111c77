"""The `batcher status` command: tasks per state, failures grouped by error code."""

from __future__ import annotations

import argparse
from pathlib import Path

from batcher.cli.options import add_json, add_ledger
from batcher.exceptions import ExitCode, UsageError


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    status = commands.add_parser("status", help="tasks per state, failures by error code")
    status.add_argument("manifest", nargs="?", type=Path, metavar="MANIFEST")
    add_ledger(status, "ledger to read (default: beside the manifest)")
    add_json(status, "the report as one JSON object")
    status.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from batcher.cli.logs import configure_logging
    from batcher.cli.options import default_ledger_path
    from batcher.cli.report import dumps
    from batcher.cli.status_report import render_status, status_report
    from batcher.manifest import Manifest, load_manifest
    from batcher.manifest.discover import expand_manifest_paths

    configure_logging()
    if args.manifest is None and args.ledger is None:
        raise UsageError("status needs a MANIFEST or --ledger PATH")
    manifest: Manifest | None = None
    ledger_path: Path = args.ledger
    if args.manifest is not None:
        [path] = expand_manifest_paths([args.manifest])
        manifest = load_manifest(path)
        manifest.validate()
        ledger_path = args.ledger or default_ledger_path(path)
    if not ledger_path.exists() and manifest is None:
        raise UsageError(f"{ledger_path}: no such ledger")
    report = status_report(ledger_path, manifest)
    print(dumps(report.as_dict()) if args.json else render_status(report))
    return ExitCode.OK
