"""What the emulator remembers: SessionIds (VOD dedup), the tasks' lives, counters and records.

`EmulatorState` is the one mutable object of an emulator instance (no module-level state): the
handler calls `record` exactly once per request, which updates the counters behind
`/_emulator/stats`, appends an in-memory `RequestRecord` and, with `--log`, writes one JSON line.
`SessionStore` answers "was this VOD SessionId used by a task created in the last three days?".
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import IO, Any

from batcher.api.services import SERVICE_NAMES, get_service
from batcher.emulator.config import DEDUP_WINDOW_SECONDS, EmulatorConfig
from batcher.emulator.files import FileCounters
from batcher.emulator.ratelimit import PeakMeter
from batcher.emulator.tasks import TaskBook

OUTCOME_OK = "ok"
OUTCOME_HTTP_502 = "http_502"
"""Answered with an injected proxy 502; the request never reached the backend."""
OUTCOME_DROPPED = "dropped"
"""The task was created, then the connection was closed without an answer."""


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One request as the emulator saw it."""

    mono: float
    """Arrival time on the emulator's monotonic clock."""
    wall: float
    """Arrival time on the emulator's (skewed) wall clock, Unix seconds."""
    service: str | None
    """`vod` / `mps`, or None when the Authorization header named no known service."""
    code: str
    """`ok`, `dropped`, `http_502`, or the error code answered."""
    session_id: str | None = None
    task_id: str | None = None
    """The TaskId created (None for a poll, whatever TaskId it asked about)."""
    request_id: str | None = None
    action: str | None = None
    """`X-TC-Action` of the request, when its service could be told."""

    @property
    def created(self) -> bool:
        """A task was created (whether or not the client heard about it)."""
        return self.task_id is not None


class SessionStore:
    """SessionIds of created tasks, forgotten `window` seconds after their task was created."""

    __slots__ = ("_order", "_seen", "window")

    def __init__(self, window: float = DEDUP_WINDOW_SECONDS) -> None:
        self.window = window
        self._seen: dict[str, float] = {}
        # Creation order, for cheap expiry; an id re-created after expiry appears twice.
        self._order: deque[tuple[float, str]] = deque()

    def is_duplicate(self, session_id: str, now: float) -> bool:
        """True if a task with this SessionId was created within the window before `now`."""
        self._expire(now)
        created = self._seen.get(session_id)
        return created is not None and now - created < self.window

    def remember(self, session_id: str, now: float) -> None:
        self._seen[session_id] = now
        self._order.append((now, session_id))

    def __len__(self) -> int:
        return len(self._seen)

    def _expire(self, now: float) -> None:
        order, seen = self._order, self._seen
        horizon = now - self.window
        while order and order[0][0] <= horizon:
            created, session_id = order.popleft()
            if seen.get(session_id) == created:
                del seen[session_id]


class ServiceCounters:
    """The counters of one service (or of the requests no service could be told for)."""

    __slots__ = (
        "actions",
        "created",
        "created_per_session",
        "dropped",
        "errors",
        "http_502",
        "peak",
        "repeated_sessions",
        "requests",
    )

    def __init__(self) -> None:
        self.requests = 0
        self.created = 0
        self.dropped = 0
        self.http_502 = 0
        self.errors: dict[str, int] = {}
        self.peak = PeakMeter()
        self.created_per_session: dict[str, int] = {}
        self.repeated_sessions = 0
        """SessionIds that more than one created task carried."""
        self.actions: dict[str, int] = {}
        """Requests per action, answered or refused."""

    def count(self, record: RequestRecord) -> None:
        self.requests += 1
        if record.action is not None:
            self.actions[record.action] = self.actions.get(record.action, 0) + 1
        code = record.code
        if record.task_id is not None:
            self.created += 1
            if record.session_id:
                seen = self.created_per_session.get(record.session_id, 0) + 1
                self.created_per_session[record.session_id] = seen
                if seen == 2:
                    self.repeated_sessions += 1
            if code == OUTCOME_DROPPED:
                self.dropped += 1
        elif code == OUTCOME_HTTP_502:
            self.http_502 += 1
        elif code != OUTCOME_OK:
            self.errors[code] = self.errors.get(code, 0) + 1

    def to_json(
        self,
        *,
        rate_limit: int | None,
        include_sessions: bool,
        action_limits: dict[str, int] | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "requests": self.requests,
            "created": self.created,
            "dropped_after_create": self.dropped,
            "http_502": self.http_502,
            "errors": dict(sorted(self.errors.items())),
            "max_requests_in_rolling_second": self.peak.peak,
            "sessions_created_more_than_once": self.repeated_sessions,
            "requests_per_action": dict(sorted(self.actions.items())),
        }
        if rate_limit is not None:
            body["rate_limit"] = rate_limit
        if action_limits is not None:
            body["rate_limits"] = action_limits
        if include_sessions:
            body["sessions"] = dict(self.created_per_session)
        return body


class EmulatorState:
    """Everything one emulator remembers between requests."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.sessions = SessionStore()
        self.records: deque[RequestRecord] = deque(maxlen=config.max_records)
        self.counters: dict[str, ServiceCounters] = {
            name: ServiceCounters() for name in SERVICE_NAMES
        }
        self.unrouted = ServiceCounters()
        self.tasks = TaskBook(config.generation, seed=config.faults.seed)
        self.files = FileCounters()
        self._log: IO[str] | None = None
        if config.log_path is not None:
            # Line-buffered: a test or a human tailing the file sees each request at once.
            self._log = config.log_path.open("a", encoding="utf-8", buffering=1)

    def counters_for(self, service: str | None) -> ServiceCounters:
        if service is None:
            return self.unrouted
        return self.counters[service]

    def record(self, record: RequestRecord) -> None:
        """Account for one finished request (exactly once per request)."""
        self.counters_for(record.service).count(record)
        self.records.append(record)
        if self._log is not None:
            self._log.write(json.dumps(asdict(record), separators=(",", ":")) + "\n")

    def created(self, service: str | None = None) -> list[RequestRecord]:
        """Records of the requests that created a task (of `service`, or of any)."""
        return [r for r in self.records if r.task_id is not None and service in (None, r.service)]

    def stats(self, *, include_sessions: bool = True) -> dict[str, Any]:
        """The JSON of `GET /_emulator/stats` (`?sessions=0` leaves out the per-SessionId map).

        `{"services": {"vod": {...}, "mps": {...}}, "unrouted": {...}, "records_kept": N}`, each
        service with `requests`, `created` (including `dropped_after_create`), `http_502`,
        `errors` (code -> count), `max_requests_in_rolling_second` (arrivals, polls aside),
        `rate_limit` (the creation cap, 0 = unlimited), `rate_limits` (action -> cap),
        `requests_per_action` (polls per action among them), `sessions` (SessionId -> tasks
        created with it) and `sessions_created_more_than_once`. `unrouted` counts requests whose
        Authorization named no known service. `files` counts the file server's answers
        (`served`, `bytes`, `expired`, `not_found`, `dropped_mid_body`, `http_503`),
        `tasks_known` the tasks of the last three days, and `images_created` (service -> the
        images its tasks asked for: what the account was billed).
        """
        return {
            "services": {
                name: counters.to_json(
                    rate_limit=self.config.rate_for(get_service(name)),
                    include_sessions=include_sessions,
                    action_limits=self._limits(name),
                )
                for name, counters in self.counters.items()
            },
            "unrouted": self.unrouted.to_json(rate_limit=None, include_sessions=False),
            "records_kept": len(self.records),
            "files": self.files.to_json(),
            "tasks_known": len(self.tasks),
            "images_created": self.tasks.images_created(),
        }

    def _limits(self, name: str) -> dict[str, int]:
        service = get_service(name)
        return {action: self.config.cap_for(service, action) for action in service.caps}

    def close(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None


def max_in_rolling_second(times: Iterable[float]) -> int:
    """The most of `times` (sorted) that fall in any window `(t - 1 s, t]`: for checking records."""
    meter = PeakMeter()
    for now in times:
        meter.observe(now)
    return meter.peak
