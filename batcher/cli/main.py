"""The `batcher` command line: the parser, one user error as one line, exit codes.

`main()` is the console script and `python -m batcher`. It is the only place (with
`batcher.wire.credentials`) that reads the environment or `sys.argv`; everything below it gets
typed settings objects. Each command lives in a module of its own (`submit`, `plan`, `status`,
`emulator`) that declares its options and imports the layers it needs only when it runs, so
`batcher --help` imports neither aiohttp nor pydantic. Every user mistake is a
`batcher.exceptions.BatcherError`: caught here once, printed as one line, exit with its code;
a command that writes a log or metrics file (`submit`) records the error there too, through the
`on_error` it sets, so cron sees a bad manifest, missing credentials or a held lock.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from batcher import __version__
from batcher.cli import emulator, plan, status, submit
from batcher.exceptions import BatcherError, ExitCode


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args))
    except BatcherError as error:
        print(f"batcher: {error}", file=sys.stderr)
        record_failure = getattr(args, "on_error", None)
        if record_failure is not None:  # --log-file and --metrics-file see every exit (cron)
            try:
                record_failure(args, error)
            except OSError as problem:
                print(f"batcher: cannot record the failure in the log or metrics file: "
                      f"{problem}", file=sys.stderr)
        return error.exit_code
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
    for command in (submit, plan, status, emulator):
        command.add_parser(commands)
    return parser
