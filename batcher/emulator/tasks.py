"""The life of each created task: waiting, running, then finished (with files) or failed.

`TaskBook.add` is called once per created task, with the emulator's wall clock; it fixes the
task's whole timeline at once (a generation time drawn from the configured spread, and whether
the prompt carries the fail marker), so that any later question — "where is this task at time
t?" — is a pure function of t. That is what lets a test move an injected clock instead of
sleeping. Tasks are forgotten three days after creation, as the real API forgets them.

    >>> book = TaskBook(GenerationConfig(seconds=10.0), seed=1)
    >>> task = book.add(TaskSpec("vod", "1-AigcImage-a", prompt="a cat"), now=100.0)
    >>> [book.get("1-AigcImage-a", t).phase(t) for t in (101.0, 105.0, 110.0)]
    ['waiting', 'running', 'done']
"""

from __future__ import annotations

import bisect
import hashlib
import heapq
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from batcher.api.results import DESCRIBE_TASKS_HISTORY_SECONDS
from batcher.emulator.config import GenerationConfig

Phase = Literal["waiting", "running", "done", "failed"]
WAITING_SHARE = 0.2
"""The part of its generation time a task spends waiting before it runs."""


@dataclass(frozen=True, slots=True)
class TaskSpec:
    """What a `CreateAigcImageTask` request asked for, as far as the result side cares."""

    service: str
    task_id: str
    prompt: str | None = None
    model_name: str | None = None
    model_version: str | None = None
    image_count: int = 1
    sub_app_id: int | None = None
    session_id: str | None = None
    session_context: str | None = None
    storage_mode: str | None = None
    """VOD `OutputConfig.StorageMode` as sent (None = the API's default, Temporary)."""
    media_name: str | None = None
    expire_time: float | None = None
    """VOD `OutputConfig.ExpireTime` as sent, in Unix seconds."""


@dataclass(frozen=True, slots=True)
class Task:
    """One created task and its fixed timeline (Unix seconds on the emulator's wall clock)."""

    spec: TaskSpec
    seq: int
    """Creation order, from 0."""
    created: float
    began: float
    """When it stops waiting and starts running."""
    finished: float
    fails: bool
    """Generation fails (the prompt carries the fail marker): no files."""

    @property
    def task_id(self) -> str:
        return self.spec.task_id

    def phase(self, now: float) -> Phase:
        if now >= self.finished:
            return "failed" if self.fails else "done"
        return "running" if now >= self.began else "waiting"

    def progress(self, now: float) -> int:
        """0-100: 0 while waiting, rising while running, 100 once finished."""
        if now >= self.finished:
            return 100
        if now < self.began:
            return 0
        return min(99, int(100 * (now - self.began) / (self.finished - self.began)))

    def colour(self, index: int) -> tuple[int, int, int]:
        """The colour of output `index`: derived from the TaskId, so each image looks different."""
        digest = hashlib.blake2b(f"{self.task_id}/{index}".encode(), digest_size=3).digest()
        return (digest[0], digest[1], digest[2])


class TaskBook:
    """Every task created in the last three days, by TaskId and in creation order."""

    __slots__ = ("_by_id", "_created", "_finishing", "_order", "_rng", "_seq", "config",
                 "history")

    def __init__(
        self,
        config: GenerationConfig,
        *,
        seed: int | None = None,
        history: float = DESCRIBE_TASKS_HISTORY_SECONDS,
    ) -> None:
        self.config = config
        self.history = history
        self._rng = random.Random(seed)
        self._by_id: dict[str, Task] = {}
        self._order: list[Task] = []
        self._created: list[float] = []
        """`created` of `_order`, for bisection (creation times never go backwards here)."""
        self._seq = 0
        self._finishing: dict[str, list[float]] = {}
        """service → a heap of the finish times of its tasks not yet finished."""

    def images_created(self) -> dict[str, int]:
        """service → the images its known tasks asked for (what the account was billed)."""
        images: dict[str, int] = {}
        for task in self._order:
            images[task.spec.service] = images.get(task.spec.service, 0) + task.spec.image_count
        return images

    def unfinished(self, service: str, now: float) -> int:
        """How many of `service`'s tasks are waiting or running at `now`."""
        heap = self._finishing.get(service, [])
        while heap and heap[0] <= now:
            heapq.heappop(heap)
        return len(heap)

    def add(self, spec: TaskSpec, now: float) -> Task:
        """Create the task `spec` at `now` and fix its timeline."""
        config = self.config
        spread = self._rng.uniform(-config.jitter, config.jitter) if config.jitter else 0.0
        duration = config.seconds * (1.0 + spread)
        # A clock set back (an injected one, or a skew change) must not unsort the order.
        created = max(now, self._created[-1]) if self._created else now
        task = Task(
            spec=spec,
            seq=self._seq,
            created=created,
            began=created + WAITING_SHARE * duration,
            finished=created + duration,
            fails=bool(spec.prompt) and config.fail_marker in (spec.prompt or ""),
        )
        self._seq += 1
        self._by_id[spec.task_id] = task
        self._order.append(task)
        self._created.append(created)
        heapq.heappush(self._finishing.setdefault(spec.service, []), task.finished)
        return task

    def get(self, task_id: str, now: float) -> Task | None:
        """The task, if it was created within the last three days before `now`."""
        self._forget(now)
        return self._by_id.get(task_id)

    def created_between(self, after: float, before: float, now: float) -> Iterator[Task]:
        """Tasks with `after` <= whole-second creation time < `before`, oldest first."""
        self._forget(now)
        # Whole seconds: the API shows and filters CreateTime to the second.
        order = self._order
        for position in range(bisect.bisect_left(self._created, after), len(order)):
            task = order[position]
            second = int(task.created)
            if second >= before:
                break
            if second >= after:
                yield task

    def __len__(self) -> int:
        return len(self._order)

    def __repr__(self) -> str:
        config = self.config
        return (
            f"TaskBook({len(self._order)} tasks, generation {config.seconds:g} s "
            f"+-{config.jitter:.0%}, fail marker {config.fail_marker!r})"
        )

    def _forget(self, now: float) -> None:
        horizon = now - self.history
        stale = bisect.bisect_right(self._created, horizon)
        if stale:
            for task in self._order[:stale]:
                del self._by_id[task.task_id]
            del self._order[:stale]
            del self._created[:stale]
