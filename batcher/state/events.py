"""A task's submission state (its last ledger line's event) and the failure groups of `status`."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Final

from batcher.api.services import SERVICE_NAMES


class TaskState(enum.IntEnum):
    """A task's state, from its last ledger line."""

    PENDING = 0
    """Never seen in the ledger."""
    IN_DOUBT = 1
    """Last line `sending`: the request may or may not have reached the server."""
    SUBMITTED = 2
    DUPLICATE = 3
    """vod refused the SessionId as used before: the task was accepted by an earlier request."""
    FAILED_RETRYABLE = 4
    FAILED_PERMANENT = 5

    @property
    def is_done(self) -> bool:
        """True for SUBMITTED and DUPLICATE: the task exists on the server, never send it again."""
        return self in _DONE_STATES


_DONE_STATES: Final = frozenset({TaskState.SUBMITTED, TaskState.DUPLICATE})


@dataclass(frozen=True, slots=True)
class FailureGroup:
    """The keys that currently stand failed with one error code, for `batcher status`."""

    code: str
    count: int
    retryable: int
    """How many of `count` failed with `retryable: true` (sent again without --retry-failed)."""
    example: str
    """The message of one of them."""


SERVICE_INDEX: Final[dict[str, int]] = {name: index for index, name in enumerate(SERVICE_NAMES)}
"""Each service's index, as replay packs it into a key's record."""
_KEY_RE: Final = re.compile(r"[0-9a-fA-F]{32}")


def is_key(value: str) -> bool:
    """A task key as the ledger stores it: 32 hex digits."""
    return _KEY_RE.fullmatch(value) is not None


def is_attempt(value: object) -> bool:
    """An attempt number: an int (not a bool) of at least 1."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1
