"""The `batcher emulator` command: options, then serve until SIGINT/SIGTERM.

The CLI wires `arguments.add_arguments` and `run`; `python -m batcher.emulator` calls `main`. Once
listening, the command prints its URL (`http://127.0.0.1:PORT`) as the first line of stdout, so a
script can start it with `--port 0` and read where it went; after that stdout stays silent (a
one-line summary of the settings goes to stderr, never the secret key). It refuses a non-loopback
`--host` unless `--allow-remote`: it is a test server with a well-known default key.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import signal
import sys
from collections.abc import Sequence

from batcher.api.services import SERVICES
from batcher.emulator.arguments import add_arguments, config_from_args
from batcher.emulator.config import EmulatorConfig
from batcher.emulator.runner import start_emulator
from batcher.wire.addresses import is_loopback

EXIT_OK = 0
EXIT_USAGE = 2


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT or SIGTERM; 0 then, 2 on bad options or when the port is taken."""
    if not args.allow_remote and not is_loopback(args.host):
        _complain(f"--host {args.host} is not a loopback address; add --allow-remote to serve it")
        return EXIT_USAGE
    try:
        config = config_from_args(args)
    except ValueError as exc:
        _complain(str(exc))
        return EXIT_USAGE
    gc.freeze()  # keep full collections over the imported modules from stalling answers
    try:
        return asyncio.run(_serve(config))
    except KeyboardInterrupt:  # Ctrl-C before the signal handlers were in place
        return EXIT_OK
    except OSError as exc:  # the port is taken, the address is not ours, the log unwritable
        _complain(f"cannot start on {args.host}:{args.port}: {exc}")
        return EXIT_USAGE


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m batcher.emulator [options]`."""
    parser = argparse.ArgumentParser(
        prog="batcher emulator", description="A local stand-in for the VOD and MPS endpoints."
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


async def _serve(config: EmulatorConfig) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # Handlers first: a supervisor may signal as soon as it has read the URL.
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        emulator, runner = await start_emulator(config)
        try:
            print(emulator.url, flush=True)
            print(_summary(config, emulator.url), file=sys.stderr, flush=True)
            await stop.wait()
        finally:
            await runner.cleanup()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
    return EXIT_OK


def _summary(config: EmulatorConfig, url: str) -> str:
    """One line about the settings, for stderr (never the secret key)."""
    caps = ", ".join(
        f"{name} {action} {_cap(config.cap_for(service, action))}"
        for name, service in SERVICES.items()
        for action in service.caps
    )
    generation = config.generation
    return (
        f"batcher emulator: vod and mps on {url}, secret id {config.secret_id}, "
        f"caps {caps}; generation {generation.seconds:g} s +-{generation.jitter:.0%}, "
        f"images {generation.image_bytes} bytes, MPS URLs kept {generation.url_ttl:g} s; "
        "SIGINT or SIGTERM stops it"
    )


def _cap(cap: int) -> str:
    return f"{cap}/s" if cap else "unlimited"


def _complain(message: str) -> None:
    print(f"batcher emulator: {message}", file=sys.stderr)
