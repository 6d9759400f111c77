"""The `batcher` command line: argument parsing, user errors as one line, exit codes.

`main()` is the console script and `python -m batcher`. It is the only place (with
`credentials.py`) that reads the environment or `sys.argv`; everything below it gets typed
settings objects. A user's mistake (bad manifest, missing credentials, a held ledger) prints one
line naming the file and the fix, and exits with the SPEC's code, never with a traceback.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from batcher import __version__
from batcher.client import ClientSettings, EndpointError, check_endpoint
from batcher.credentials import CredentialsError, load_credentials
from batcher.emulator import serve as emulator_serve
from batcher.eventloop import run as run_event_loop
from batcher.exit_codes import ExitCode
from batcher.ledger import LedgerLocked, replay
from batcher.logs import configure_logging
from batcher.manifest import ManifestError, load_manifest
from batcher.pipeline import RunSettings
from batcher.report import PlanReport, dumps, render_plan, render_summary
from batcher.resume import ResumeRules, plan_manifest
from batcher.retry import RetryPolicy
from batcher.status import render_status, status_report
from batcher.submit import ManifestRun, SubmitOptions, run_submit

ENDPOINT_ENV = "BATCHER_ENDPOINT"


class UsageError(Exception):
    """A mistake in the command line: one line, exit 2."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args))
    except (UsageError, ManifestError, CredentialsError, EndpointError) as error:
        print(f"batcher: {error}", file=sys.stderr)
        return ExitCode.USAGE
    except LedgerLocked as error:
        print(f"batcher: {error}", file=sys.stderr)
        return ExitCode.LEDGER_LOCKED
    except KeyboardInterrupt:
        print("batcher: interrupted", file=sys.stderr)
        return ExitCode.SIGINT
    except BrokenPipeError:
        # `batcher plan --json | head`: the reader left; that is not an error of ours.
        sys.stderr.close()
        return ExitCode.OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="batcher",
        description="Submit Tencent Cloud AIGC image tasks in bulk: rate-capped, idempotent, "
        "resumable.",
    )
    parser.add_argument("--version", action="version", version=f"batcher {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_submit(commands)
    _add_plan(commands)
    _add_status(commands)
    emulator = commands.add_parser(
        "emulator", help="run a local stand-in for the VOD and MPS endpoints"
    )
    emulator_serve.add_arguments(emulator)
    emulator.set_defaults(handler=emulator_serve.run)
    return parser


# --- submit ------------------------------------------------------------------------------


def _add_submit(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    submit = commands.add_parser("submit", help="submit every task that is not done yet")
    submit.add_argument("manifests", nargs="+", type=Path, metavar="MANIFEST",
                        help="YAML or CSV manifest(s), or a directory of them")
    submit.add_argument("--ledger", type=Path,
                        help="ledger file (default: <manifest stem>.ledger.jsonl beside it)")
    submit.add_argument("--endpoint", help=f"send requests to this URL (env {ENDPOINT_ENV})")
    submit.add_argument("--region", help="X-TC-Region header (the API does not require one)")
    submit.add_argument("--rate", type=float, default=20.0,
                        help="requests per second per service (default 20, the API's cap)")
    submit.add_argument("--max-attempts", type=int, default=RetryPolicy().max_attempts,
                        help="attempts per task for retryable errors (default %(default)s)")
    submit.add_argument("--retry-failed", action="store_true",
                        help="send permanently failed tasks again")
    submit.add_argument("--resend-in-doubt", action="store_true",
                        help="send mps tasks that may have been created already")
    submit.add_argument("--max-runtime", type=parse_duration, metavar="DURATION",
                        help="stop taking new tasks after this long (e.g. 50m, 2h, 90s); exit 75")
    submit.add_argument("--quiet", action="store_true", help="no progress and no summary")
    submit.add_argument("--json", action="store_true", help="the summary as one JSON object")
    submit.add_argument("--progress", choices=("auto", "bar", "lines", "none"), default="auto",
                        help="progress display (default: a bar on a terminal, lines otherwise)")
    submit.add_argument("--log-format", choices=("text", "json"), default="text")
    submit.add_argument("--log-file", type=Path, help="write log lines here instead of stderr")
    submit.add_argument("--metrics-file", type=Path, metavar="PATH",
                        help="write Prometheus text-format metrics here (atomically, every 15 s "
                        "and at the end), e.g. for node_exporter's textfile collector")
    submit.set_defaults(handler=_submit)


def _submit(args: argparse.Namespace) -> int:
    configure_logging(log_format=args.log_format, log_file=args.log_file, quiet=args.quiet)
    if args.rate < 0:
        raise UsageError("--rate must be positive (20 is the API's cap)")
    if args.max_attempts < 1:
        raise UsageError("--max-attempts must be at least 1")
    credentials = load_credentials(os.environ, Path.home())
    manifests = _load(args.manifests, args.ledger)  # validated by run_submit, under the locks
    endpoint = args.endpoint or os.environ.get(ENDPOINT_ENV) or None
    if endpoint:
        endpoint = check_endpoint(endpoint)
    options = SubmitOptions(
        manifests=manifests,
        client=ClientSettings(endpoint=endpoint, region=args.region),
        run=RunSettings(
            rate=args.rate,
            retry=RetryPolicy(max_attempts=args.max_attempts),
            rules=ResumeRules(retry_failed=args.retry_failed,
                              resend_in_doubt=args.resend_in_doubt),
            max_runtime=args.max_runtime,
        ),
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


def _load(paths: Sequence[Path], ledger: Path | None) -> list[ManifestRun]:
    """Every manifest's structure read (its tasks are validated later, in one pass)."""
    files = expand_manifest_paths(paths)
    if ledger is not None and len(files) > 1:
        raise UsageError("--ledger names one ledger, but several manifests were given: "
                         "leave it out (each manifest gets <stem>.ledger.jsonl beside it)")
    return [ManifestRun(load_manifest(path), ledger or default_ledger_path(path))
            for path in files]


def _load_validated(path: Path, ledger: Path | None) -> ManifestRun:
    """One manifest loaded and fully validated."""
    [run] = _load([path], ledger)
    run.manifest.validate()
    return run


def expand_manifest_paths(paths: Sequence[Path]) -> list[Path]:
    """Files as given; a directory gives its YAML manifests and the CSVs they do not include."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(_manifests_in(path))
        elif path.exists():
            files.append(path)
        else:
            raise UsageError(f"{path}: no such manifest file or directory")
    if not files:
        raise UsageError(f"no manifests (*.yaml, *.yml, *.csv) in {', '.join(map(str, paths))}")
    return files


def _manifests_in(directory: Path) -> list[Path]:
    yamls = sorted(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
    included = {load_manifest(p).csv_path for p in yamls}
    csvs = sorted(p for p in directory.glob("*.csv") if p.is_file() and p.resolve() not in {
        c.resolve() for c in included if c is not None
    })
    return [*yamls, *csvs]


def default_ledger_path(manifest: Path) -> Path:
    return manifest.with_name(f"{manifest.stem}.ledger.jsonl")


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """`90`, `90s`, `50m`, `2h`, `1d` → seconds."""
    match = _DURATION.match(text)
    if match is None or float(match[1]) <= 0:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration: use a number with s, m, h or d (e.g. 50m)"
        )
    return float(match[1]) * _UNIT_SECONDS[match[2] or "s"]


# --- plan --------------------------------------------------------------------------------


def _add_plan(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    plan = commands.add_parser("plan", help="expand and validate a manifest; send nothing")
    plan.add_argument("manifest", type=Path, metavar="MANIFEST")
    plan.add_argument("--ledger", type=Path, help="ledger to compare with (default beside it)")
    plan.add_argument("--rate", type=float, default=20.0, help="rate used for the time estimate")
    plan.add_argument("--retry-failed", action="store_true")
    plan.add_argument("--resend-in-doubt", action="store_true")
    plan.add_argument("--json", action="store_true",
                      help='one line per task: {"key", "service", "session_id", "params"}')
    plan.set_defaults(handler=_plan)


def _plan(args: argparse.Namespace) -> int:
    configure_logging()
    if args.json:
        run = _load_validated(args.manifest, args.ledger)
        write = sys.stdout.write
        for task in run.manifest.tasks():
            write(dumps({"key": task.key, "service": task.service,
                         "session_id": task.session_id, "params": task.params}) + "\n")
        return ExitCode.OK
    [path] = expand_manifest_paths([args.manifest])
    manifest = load_manifest(path)
    ledger_path = args.ledger or default_ledger_path(path)
    rules = ResumeRules(retry_failed=args.retry_failed, resend_in_doubt=args.resend_in_doubt)
    # One pass: validation and the ledger comparison together (plan takes no lock: it only
    # reads, and a ledger is append-only).
    plans = plan_manifest(manifest, replay(ledger_path), rules)
    report = PlanReport(str(manifest.path), manifest.batch, str(ledger_path), args.rate, plans)
    print(render_plan(report))
    return ExitCode.OK


# --- status ------------------------------------------------------------------------------


def _add_status(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    status = commands.add_parser("status", help="tasks per state, failures by error code")
    status.add_argument("manifest", nargs="?", type=Path, metavar="MANIFEST")
    status.add_argument("--ledger", type=Path)
    status.add_argument("--json", action="store_true")
    status.set_defaults(handler=_status)


def _status(args: argparse.Namespace) -> int:
    configure_logging()
    if args.manifest is None and args.ledger is None:
        raise UsageError("status needs a MANIFEST or --ledger PATH")
    manifest = None
    ledger_path = args.ledger
    if args.manifest is not None:
        run = _load_validated(args.manifest, args.ledger)
        manifest, ledger_path = run.manifest, run.ledger
    if not ledger_path.exists() and manifest is None:
        raise UsageError(f"{ledger_path}: no such ledger")
    report = status_report(ledger_path, manifest)
    print(dumps(report.as_dict()) if args.json else render_status(report))
    return ExitCode.OK
