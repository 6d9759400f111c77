"""The daily image count of an account, kept in the rate store beside its send slots.

`--daily-images N` (docs/spend.md) bounds the images an account may create per UTC day across
every process and host that names the same store. A task claims its images before its first
request (`claim`: atomically, `used + n <= limit` or nothing), and gives them back only when it
certainly created nothing (`give_back`). The key is per account (its SecretId as a hash) and per
UTC day, so a new day starts from nothing; an old day's count is dropped after two days.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

KEEP_SECONDS = 2 * 86_400
"""How long a day's count is kept (Redis expiry; the file store drops older days)."""

PREFIX = "batcher:images:"


def day_key(secret_id: str, moment: datetime | None = None) -> str:
    """The store key of one account's image count for the UTC day of `moment` (default: now).

    >>> day_key("AKIDexample", datetime(2026, 12, 2, 23, 59, tzinfo=UTC))
    'batcher:images:5dd2a3bac51024c4:2026-12-02'
    """
    digest = hashlib.sha256(secret_id.encode()).hexdigest()[:16]
    day = (moment or datetime.now(UTC)).astimezone(UTC).date().isoformat()
    return f"{PREFIX}{digest}:{day}"


def day_of(key: str) -> str:
    """The `YYYY-MM-DD` a day key counts."""
    return key.rpartition(":")[2]


def claim_in(counts: dict[str, int], key: str, count: int, limit: int) -> bool:
    """The claim rule on a dict, for the stores that run it in Python (Redis mirrors it)."""
    used = counts.get(key, 0)
    if used + count > limit:
        return False
    counts[key] = used + count
    return True


def give_back_in(counts: dict[str, int], key: str, count: int) -> None:
    counts[key] = max(0, counts.get(key, 0) - count)
