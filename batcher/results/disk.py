"""A full disk, said in one line: which file could not be written, on which disk, how much is
free (exit 2, no traceback; docs/results.md). Other OS errors are left as they are."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

from batcher.exceptions import BatcherError

FULL_DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


class DiskFull(BatcherError):
    """A file of the run could not be written for lack of space: exit 2, free some, run again."""


def disk_error(error: OSError, path: Path) -> BaseException:
    """`DiskFull` naming `path` and its disk when `error` is a full disk, else `error` itself."""
    if error.errno not in FULL_DISK_ERRNOS:
        return error
    mount = _mount_point(path)
    try:
        free = f"{shutil.disk_usage(mount).free} bytes free"
    except OSError:
        free = "free space unknown"
    return DiskFull(f"cannot write {path}: the disk mounted at {mount} is full ({free}); "
                    "free some space and run collect again (nothing was lost)")


def _mount_point(path: Path) -> Path:
    current = path.absolute()
    while not current.exists() and current != current.parent:
        current = current.parent
    while not os.path.ismount(current) and current != current.parent:
        current = current.parent
    return current
