"""Whole-file replacement for the files batcher rewrites on every run.

`results.csv` and `index.html` (docs/results.md), the metrics files and the completion records are
read by people, scripts and collectors at any moment, even while a cron run is rewriting them; a
crash or a full disk must leave the previous version, never half of a new one. So each is written to
a temporary file beside it, flushed, fsynced and renamed over the old one::

    with replaced_text_file(out / "results.csv", newline="") as stream:
        stream.write("key,service\\n")
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

__all__ = ["replace_text", "replaced_text_file"]

_READABLE_BY_ALL = 0o644
"""The mode of the result: mkstemp's 0600 would hide the gallery from a web server's user and
the metrics from node_exporter's."""


@contextmanager
def replaced_text_file(path: Path, newline: str | None = None) -> Iterator[TextIO]:
    """A UTF-8 text stream whose content replaces `path` when the block ends without error.

    The directory is created if missing. If the block raises, `path` is left as it was and the
    temporary file is removed.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline=newline) as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, _READABLE_BY_ALL)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def replace_text(path: Path, text: str) -> None:
    """Replace `path` with `text`, atomically (see `replaced_text_file`)."""
    with replaced_text_file(path) as stream:
        stream.write(text)
