"""The `batcher` command line: the parser, one user error as one line, exit codes.

`main()` is the console script and `python -m batcher`. It is the only place (with
`batcher.wire.credentials`) that reads the environment or `sys.argv`; everything below it gets
typed settings objects. Each command lives in a module of its own (`submit`, `collect`, `plan`,
`status`, `emulator`) that declares its options and imports the layers it needs only when it
runs, so `batcher --help` imports neither aiohttp nor pydantic; a command given by name imports
only its own module's options (`build_parser(only=...)`). Every user mistake is a
`batcher.exceptions.BatcherError`: caught here once, printed as one line, exit with its code;
a command that writes a log or metrics file (`submit`, `collect`) records the error there too,
through the `on_error` it sets, so cron sees a bad manifest, missing credentials or a held lock.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from batcher import __version__
from batcher.exceptions import BatcherError, ExitCode

COMMANDS = ("submit", "collect", "plan", "status", "emulator")
"""The command modules of `batcher.cli`, in the order `batcher --help` lists them."""


def main(argv: Sequence[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(only=_command_named(arguments))
    args = parser.parse_args(arguments)
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


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole parser; with `only`, that command's options alone (the others are names).

    A command module's options import what they need for their defaults and choices (the
    emulator's, submit's credentials): `batcher plan` need not pay for them. argparse parses one
    command's options, so the others only have to exist as names.
    """
    parser = argparse.ArgumentParser(
        prog="batcher",
        description="Submit Tencent Cloud AIGC image tasks in bulk: rate-capped, idempotent, "
        "resumable.",
    )
    parser.add_argument("--version", action="version", version=f"batcher {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        if only is None or name == only:
            importlib.import_module(f"batcher.cli.{name}").add_parser(commands)
        else:
            commands.add_parser(name)
    return parser


def _command_named(arguments: Sequence[str]) -> str | None:
    """The command the arguments run, when it is plain: the first argument is its name.

    Anything else (`--help`, `--version`, a typo) gets the whole parser, which explains it.
    """
    return arguments[0] if arguments and arguments[0] in COMMANDS else None
