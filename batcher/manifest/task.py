"""What a manifest pass hands out and how it collects mistakes: `Task`, `ValidationReport`,
`Problems`, and `Loc`, a place inside a request's parameters.

    >>> format_loc(("FileInfos", 0, "Url"))
    'FileInfos[0].Url'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from batcher.api.services import ServiceName
from batcher.exceptions import ManifestError

Loc = tuple[str | int, ...]
"""A place inside a request's parameters: keys and list indexes, `("OutputConfig", "Seed")`."""

MESSAGES_SHOWN = 10


@dataclass(frozen=True, slots=True)
class Task:
    """One request to send: validated, keyed, and traceable to the line that produced it.

    `params` is the exact wire JSON object (for `vod` including the SessionId sent); treat it as
    read-only. `session_id` is that SessionId (`vod`, the task's own or derived) or None (`mps`).
    """

    key: str
    service: ServiceName
    params: dict[str, Any]
    session_id: str | None
    origin: str
    copy: int
    place: int = 0
    """Where the task's source is in the manifest; `Manifest.tasks(start=place)` resumes there."""


class TaskKey(NamedTuple):
    """What the keys-only pass hands out per task: enough to look it up in a ledger."""

    key: str
    service: ServiceName
    session_id: str | None
    place: int
    params_json: str | None = None
    """The parameters sent, as compact JSON, when the pass was asked for them."""
    images: int = 1
    """The images the task asks for (`batcher.manifest.images.task_images`)."""
    model: str = ""
    """The model it asks for, `ModelName ModelVersion` (`images.task_model`)."""
    sub_app_id: int | None = None
    """The vod application it bills (`images.task_sub_app_id`); None on mps."""


@dataclass(slots=True)
class Spend:
    """Tasks and the images they ask for: what some tasks bill."""

    tasks: int = 0
    images: int = 0

    def add(self, tasks: int, images: int) -> None:
        self.tasks += tasks
        self.images += images


@dataclass(frozen=True, slots=True)
class ValidationReport:
    """What a valid manifest expands to: its batch and its task count per service."""

    batch: str
    tasks_per_service: Mapping[ServiceName, int]
    spend: Mapping[tuple[ServiceName, str, int | None], Spend] = field(default_factory=dict)
    """Tasks and images per (service, model, SubAppId): what the manifest bills, sent in full."""

    @property
    def total(self) -> int:
        """Every task of the manifest, `repeat` copies included."""
        return sum(self.tasks_per_service.values())


class Problems:
    """Where a pass reports user mistakes: collected by validate(), fatal in tasks()."""

    __slots__ = ("_fatal", "_keep", "count", "messages")

    def __init__(self, keep: int, fatal: bool = False) -> None:
        self._keep = keep
        self._fatal = fatal
        self.messages: list[str] = []
        self.count = 0

    def add(self, message: str) -> None:
        self.count += 1
        if self._fatal:
            raise ManifestError([message])
        if len(self.messages) < self._keep:
            self.messages.append(message)

    def raise_if_any(self) -> None:
        if self.count:
            raise ManifestError(self.messages, self.count)


def format_loc(loc: Loc) -> str:
    """`("FileInfos", 0, "Url")` as `FileInfos[0].Url`."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text
