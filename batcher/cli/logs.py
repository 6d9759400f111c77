"""Log configuration of the `batcher` logger: text or JSON lines, on stderr or in a file.

On a terminal, messages are short; without one (cron, scripts) every line carries a UTC
timestamp, so a log file read days later still tells when each thing happened. Nothing else in
batcher configures logging; modules only call `logging.getLogger("batcher")`.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TextIO

if TYPE_CHECKING:
    from batcher.exceptions import BatcherError

LogFormat = Literal["text", "json"]

LOGGER_NAME = "batcher"


class _UtcTextFormatter(logging.Formatter):
    converter = staticmethod(time.gmtime)

    def __init__(self, with_time: bool) -> None:
        fmt = "%(asctime)s %(levelname)s %(message)s" if with_time else "batcher: %(message)s"
        super().__init__(fmt, datefmt="%Y-%m-%dT%H:%M:%SZ")


class _JsonFormatter(logging.Formatter):
    converter = staticmethod(time.gmtime)

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%SZ"),
            "level": record.levelname.lower(),
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(
    *,
    log_format: LogFormat = "text",
    log_file: Path | None = None,
    quiet: bool = False,
    verbose: bool = False,
    stream: TextIO | None = None,
) -> logging.Logger:
    """Set up the `batcher` logger once for this process and return it."""
    stream = stream if stream is not None else sys.stderr
    logger = logging.getLogger(LOGGER_NAME)
    for old in list(logger.handlers):
        logger.removeHandler(old)
        old.close()
    logger.propagate = False
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    handler: logging.Handler
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(log_file, encoding="utf-8")
        with_time = True
    else:
        handler = logging.StreamHandler(stream)
        with_time = not stream.isatty()
    if quiet and log_file is None:
        handler.setLevel(logging.ERROR)
    handler.setFormatter(
        _JsonFormatter() if log_format == "json" else _UtcTextFormatter(with_time)
    )
    logger.addHandler(handler)
    return logger


def log_failure(args: argparse.Namespace, error: BatcherError, command: str) -> None:
    """A run stopped by `error` still tells cron: its lines and its exit code go to
    `--log-file`, when the command has one (each command's `record_failure` calls this)."""
    if args.log_file is None:
        return
    logger = configure_logging(log_format=args.log_format, log_file=args.log_file,
                               quiet=args.quiet)
    for line in str(error).splitlines():
        logger.error("%s", line)
    logger.info("%s ended, exit code %d: %s", command, error.exit_code, type(error).__name__)
