"""Back-off and retry budgets: how long to wait before the next attempt, and when to give up.

Exponential back-off with full jitter (a uniform draw between 0 and base·2^n, capped), which
spreads the retries of many workers instead of synchronising them. Throttling
(`RequestLimitExceeded`) has a budget of its own, so a busy API does not use up the attempts
meant for real failures.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Limits and delays of retries; one policy serves a whole run."""

    max_attempts: int = 8
    """Attempts per task for retryable errors, the first one included."""
    max_throttled: int = 30
    """Additional attempts per task refused with `RequestLimitExceeded`."""
    base_delay: float = 0.1
    """Ceiling of the first back-off. Short, because every retry also waits for a rate slot
    (the cap, not the back-off, is what keeps the load on the API bounded): a one-off error
    costs ~50 ms, while 8 attempts still ride out ~6 s of a failing API (ceilings 0.1 · 2^n)."""
    max_delay: float = 30.0


@dataclass(slots=True)
class RetryBudget:
    """What one task has used of its policy's budgets during this run."""

    policy: RetryPolicy
    rng: random.Random
    failures: int = 0
    throttles: int = 0

    @property
    def attempts_made(self) -> int:
        return self.failures + self.throttles

    def failed(self) -> bool:
        """Count a retryable failure; True if the task may be tried again."""
        self.failures += 1
        return self.failures < self.policy.max_attempts

    def throttled(self) -> bool:
        """Count a `RequestLimitExceeded`; True if the throttling budget allows another try."""
        self.throttles += 1
        return self.throttles <= self.policy.max_throttled

    def delay(self) -> float:
        """Seconds to wait before the next attempt: full jitter over an exponential ceiling."""
        exponent = max(0, self.attempts_made - 1)
        ceiling = min(self.policy.max_delay, self.policy.base_delay * (2**exponent))
        return self.rng.uniform(0, ceiling)
