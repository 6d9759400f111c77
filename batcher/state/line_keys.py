"""A ledger line's key, read without parsing the line: for a reader that wants a few keys' lines
out of a million (docs/ledgers.md).

The writer (`batcher.state.writer`) starts every line, in both ledgers, with the same fields at
fixed places: `{"ts":"<24 characters>","key":"<32 hex digits>","service":...`. A line of that
shape names its key there, and a reader skips it unparsed when the key is not one it wants; any
other line (another writer's spacing, a torn line) gives None and is parsed as usual.

    >>> line = b'{"ts":"2026-12-01T10:00:00.000Z","key":"' + b"ab" * 16 + b'","service":"vod"}'
    >>> written_key(line) == "ab" * 16
    True
    >>> written_key(b'{"key": "ab"}') is None
    True
"""

from __future__ import annotations

from typing import Final

_TS_TAG: Final = b'{"ts":"'
_KEY_TAG: Final = b'","key":"'
_KEY_TAG_AT: Final = len(_TS_TAG) + 24
_KEY_AT: Final = _KEY_TAG_AT + len(_KEY_TAG)
_KEY_END: Final = _KEY_AT + 32


def written_key(line: bytes) -> str | None:
    """The key of a line in the writer's own shape, None for any other line."""
    if (
        line.startswith(_TS_TAG)
        and line[_KEY_TAG_AT:_KEY_AT] == _KEY_TAG
        and line[_KEY_END:_KEY_END + 1] == b'"'
    ):
        key = line[_KEY_AT:_KEY_END]
        if key.isalnum() and key.isascii():
            return key.decode("ascii")
    return None
