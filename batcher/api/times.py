"""How the API writes times: `YYYY-MM-DDThh:mm:ssZ` (docs/results.md). Plain functions, no
pydantic, so the ledgers can use them without the models' import cost.

    >>> format_api_time(0), parse_api_time("1970-01-01T08:00:01+08:00")
    ('1970-01-01T00:00:00Z', 1.0)
    >>> api_time_or_none(""), api_time_or_none("2025-12-01T00:00:00"), api_time_or_none(None)
    (None, None, None)
"""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["api_time_or_none", "format_api_time", "parse_api_time"]


def format_api_time(unix_seconds: float) -> str:
    """`YYYY-MM-DDThh:mm:ssZ` (UTC, whole seconds, truncated): how the API writes times."""
    return datetime.fromtimestamp(int(unix_seconds), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_api_time(text: str) -> float:
    """Unix seconds of an ISO 8601 time with `Z` or an offset (ValueError otherwise)."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"time {text!r} has no time zone: end it with Z or an offset")
    return moment.timestamp()


def api_time_or_none(text: object) -> float | None:
    """`parse_api_time` for a field that may be absent, empty or unreadable: None then."""
    if not isinstance(text, str) or not text:
        return None
    try:
        return parse_api_time(text)
    except ValueError:
        return None
