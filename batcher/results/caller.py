"""One API call of `collect`, under its action's rate cap, with `submit`'s error rules
(docs/architecture.md#submitting).

Each (service, action) has its own limiter at the registry's cap (`Service.cap(action)`), lowered
by `--poll-rate`. Retryable failures (network, timeouts, 5xx, `InternalError*`,
`RequestLimitExceeded*`, which also slows that action down) are retried with back-off; what is
left after the budget comes back to the caller, which asks again later. A run-stopping error
(bad credentials, no permission, wrong SubAppId) raises `RunStopped`; when every request of the
last `unreachable_after` seconds failed before anything was sent, `EndpointUnreachable` (exit 75).

    caller = ApiCaller(client, limiters, CallerSettings(), stop=stop_event)
    answer = await caller.call(VOD, DESCRIBE_TASK_DETAIL, {"TaskId": ..., "SubAppId": ...})
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from batcher.api.services import Service
from batcher.exceptions import BatcherError, ExitCode
from batcher.run.limiter import RateLimiter
from batcher.run.retry import RetryBudget, RetryPolicy
from batcher.run.stopping import STOPPED, unless_stopped
from batcher.wire.client import AigcClient, Answer
from batcher.wire.errors import ApiError, ErrorClass, TransportError, is_throttling

UNREACHABLE_AFTER = 30.0
"""Seconds of nothing but failures-before-sending after which the run stops
(docs/architecture.md#submitting)."""


class RunStopped(BatcherError):
    """An error that will fail every call of the account: the run stops, exit 2."""

    exit_code = ExitCode.USAGE


class EndpointUnreachable(BatcherError):
    """Nothing reached the endpoint for `UNREACHABLE_AFTER` seconds: exit 75, run again later."""

    exit_code = ExitCode.TIME_LIMIT


class Stopped(Exception):
    """The run is stopping (a signal, --max-runtime, --timeout): no call was made."""


@dataclass(frozen=True, slots=True)
class CallerSettings:
    retry: RetryPolicy = field(default_factory=lambda: RetryPolicy(max_attempts=4))
    unreachable_after: float = UNREACHABLE_AFTER


class ApiCaller:
    """Sends calls through one client, one limiter per (service, action)."""

    __slots__ = (
        "_client", "_clock", "_last_reached", "_limiters", "_rng", "_settings", "_stop", "calls"
    )

    def __init__(
        self,
        client: AigcClient,
        limiters: Mapping[tuple[str, str], RateLimiter],
        settings: CallerSettings,
        *,
        stop: asyncio.Event,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._limiters = limiters
        self._settings = settings
        self._stop = stop
        self._rng = random.Random()
        self._clock = clock
        self._last_reached = clock()
        self.calls: dict[str, int] = {}
        """Requests sent per action (the polls-per-task figure of `make bench`)."""

    def __repr__(self) -> str:
        return f"<ApiCaller calls={self.calls}>"

    async def call(
        self, service: Service, action: str, params: Mapping[str, Any]
    ) -> Answer | ApiError | TransportError:
        """The answer, a permanent `ApiError`, or the last retryable failure once the budget is
        spent. `Stopped` if the run stops first."""
        budget = RetryBudget(self._settings.retry, self._rng)
        limiter = self._limiters[(service.name, action)]
        while True:
            if self._stop.is_set():
                raise Stopped
            if not limiter.unlimited:  # caps lifted (bench): no slot to wait for
                await self._unless_stopped(limiter.acquire())
            self.calls[action] = self.calls.get(action, 0) + 1
            answer = await self._client.call(service, action, params)
            self._note_reach(answer)
            if isinstance(answer, Answer):
                return answer
            if isinstance(answer, ApiError):
                if answer.error_class is ErrorClass.RUN_STOPPING:
                    raise RunStopped(f"{service.name} {action}: {answer.code}: {answer.message}")
                if answer.error_class is not ErrorClass.RETRYABLE:
                    return answer
                if is_throttling(answer.code):
                    limiter.throttled()
                    may_retry = budget.throttled()
                else:
                    may_retry = budget.failed()
            else:
                may_retry = budget.failed()
            if not may_retry:
                return answer
            await self._unless_stopped(asyncio.sleep(budget.delay()))

    def _note_reach(self, answer: Answer | ApiError | TransportError) -> None:
        now = self._clock()
        if not (isinstance(answer, TransportError) and not answer.may_have_reached_server):
            self._last_reached = now
        elif now - self._last_reached >= self._settings.unreachable_after:
            raise EndpointUnreachable(
                f"the endpoint could not be reached for {self._settings.unreachable_after:.0f} s "
                f"({answer.code}: {answer.message}); run again later"
            )

    async def _unless_stopped(self, awaitable: Awaitable[object]) -> None:
        """Await `awaitable`, or raise `Stopped` as soon as the run stops."""
        if await unless_stopped(awaitable, self._stop) is STOPPED:
            raise Stopped
