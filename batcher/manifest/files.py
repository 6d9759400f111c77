"""Opening manifest files as hostile input: regular files only, and every read bounded.

A manifest path may name anything: a FIFO (a plain `open` waits for a writer forever), a symlink
to `/dev/zero` (an endless read), a device, a file of gigabytes with no line end. So a manifest
is opened without blocking, and `fstat` of what was opened (symlinks resolved) must say a regular
file. A YAML manifest is read whole, so it has a size limit; a CSV is streamed and may be huge,
but each of its rows is bounded (and each cell, by the `csv` module's own field limit).

CSV text is also cleaned as it is read (docs/manifests.md):
- a NUL character is refused, naming its row: it would otherwise be sent inside a prompt;
- line ends inside quoted cells are normalised to `\\n`, so that saving a CSV with CRLF instead
  of LF line ends does not change what its tasks send, hence neither their keys: a file's
  line-end convention is not part of a task.
"""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from batcher.exceptions import ManifestError

MAX_YAML_BYTES = 64 << 20
"""A YAML manifest is held whole; a real one is a few kilobytes (big lists of tasks go in CSV)."""

MAX_CSV_ROW_CHARS = 8 << 20
"""One CSV row, with its quoted line ends; a row is one task's parameters."""

_KINDS = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def open_regular(path: Path, display: str) -> io.FileIO:
    """`path` opened for reading if it is a regular file (after symlinks); ManifestError if not.

    Opened with O_NONBLOCK, so that opening a FIFO does not wait for a writer; the check is on
    the opened descriptor, so what is read is what was checked."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise ManifestError([f"{display}: no such file: check the path"]) from None
    except IsADirectoryError:
        raise ManifestError([f"{display}: is a directory, not a manifest file"]) from None
    except OSError as error:
        raise ManifestError([f"{display}: cannot read it: {error.strerror}"]) from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise ManifestError([f"{display}: is a directory, not a manifest file"])
        if not stat.S_ISREG(mode):
            kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
            raise ManifestError(
                [f"{display}: is {kind}, not a manifest file: give the path of a saved file"]
            )
        os.set_blocking(fd, True)
        return io.FileIO(fd, "r", closefd=True)
    except BaseException:
        os.close(fd)
        raise


def read_yaml_bytes(path: Path, display: str) -> bytes:
    """A whole YAML manifest, at most `MAX_YAML_BYTES`; ManifestError if larger or unreadable."""
    with open_regular(path, display) as stream:
        try:
            data = stream.read(MAX_YAML_BYTES + 1)
        except OSError as error:
            raise ManifestError([f"{display}: cannot read it: {error.strerror}"]) from None
    if data is None or len(data) > MAX_YAML_BYTES:
        raise ManifestError(
            [
                f"{display}: larger than {MAX_YAML_BYTES >> 20} MiB, too large for a YAML "
                "manifest: put the tasks in a CSV file (`csv:`), which is read as a stream"
            ]
        )
    return data


def open_csv_text(path: Path, display: str) -> TextIO:
    """A CSV file as text for `csv.reader` (wrap it in `CsvLines`); ManifestError if not a file."""
    raw = open_regular(path, display)
    return io.TextIOWrapper(io.BufferedReader(raw), encoding="utf-8-sig", newline="")


class CsvTextError(ValueError):
    """A problem in the row being read; the message names no row (the reader knows it)."""


class CsvLines:
    """The lines of a CSV text stream for `csv.reader`: each bounded, NUL refused, line ends
    normalised to `\\n`. Call `new_row()` before each row, so a row's size is bounded."""

    __slots__ = ("_chars", "_stream")

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._chars = 0

    def new_row(self) -> None:
        self._chars = 0

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        room = MAX_CSV_ROW_CHARS - self._chars
        line = self._stream.readline(room + 1)
        if not line:
            raise StopIteration
        self._chars += len(line)
        if self._chars > MAX_CSV_ROW_CHARS:
            raise CsvTextError(
                f"a row longer than {MAX_CSV_ROW_CHARS >> 20} MiB (is it a CSV file?): "
                "a row is one task's parameters"
            )
        if "\x00" in line:
            raise CsvTextError("a NUL character (byte 0x00): remove it, or save the file as UTF-8")
        if "\r" in line:  # CRLF (or CR) saved line ends: the same cells as LF ones
            line = line.replace("\r\n", "\n").replace("\r", "\n")
        return line
