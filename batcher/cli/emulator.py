"""The `batcher emulator` command: the emulator's own options and server (`batcher.emulator`)."""

from __future__ import annotations

import argparse

from batcher.emulator import arguments


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    emulator = commands.add_parser(
        "emulator", help="run a local stand-in for the VOD and MPS endpoints"
    )
    arguments.add_arguments(emulator)
    emulator.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from batcher.emulator.serve import run as serve

    return serve(args)
