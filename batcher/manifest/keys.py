"""Task keys and VOD SessionIds: the identity of a task across runs, processes and machines.

A task's key is the SHA-256 of the canonical JSON of `{"batch", "service", "params", "copy"}`
(docs/manifests.md#keys-and-sessionids), truncated to 128 bits (32 lowercase hex characters).
Canonical means: keys sorted at every depth, UTF-8 rather than `\\u` escapes, no whitespace.
`SessionId` and `SessionContext` are left out of `params` first, so that a request's key does not
depend on the very identifiers that are derived from it or only tag it. A `vod` task that sets no
SessionId of its own sends
`session_id_for(key)`; the server refuses a SessionId it saw in the last 3 days, which turns a
retried or resumed request into a harmless duplicate instead of a second billed image.

Changing anything here (the fields hashed, the canonical form, the truncation, the SessionId
prefix) changes every key and every derived SessionId: a resumed batch then finds none of its
tasks in its ledger and the server no longer recognises them, so the whole batch is submitted,
and billed, again. `tests/golden/example-keys.json` pins the derivation; a failing golden test
means exactly this, so don't regenerate it to make the test pass.
"""

from __future__ import annotations

import hashlib
import json
import json.encoder
from collections.abc import Callable, Mapping
from typing import Any

from batcher.api.schema import max_length

KEY_HEX_CHARS = 32
"""128 bits: collisions stay out of reach for any number of tasks a ledger can hold."""

SESSION_ID_PREFIX = "batcher-"
"""Marks a SessionId as derived by batcher, for someone reading the VOD console."""

SESSION_ID_MAX = max_length("vod", "SessionId")

UNKEYED_PARAMS = frozenset({"SessionId", "SessionContext"})
"""Parameters left out of the key: the SessionId is derived from the key, the context only tags."""

# A JSONEncoder holds only its settings, so sharing one is safe; it saves building one per task.
_CANONICAL_ENCODER = json.JSONEncoder(
    sort_keys=True, ensure_ascii=False, separators=(",", ":"), allow_nan=False, check_circular=False
)


def _make_fast_encoder() -> Callable[[Any], str] | None:
    """The C scanner that `JSONEncoder.encode` itself uses, without its per-call set-up.

    Same settings, hence the same text (tests/test_keys.py compares the two); on a Python without
    the C accelerator this is None and `_CANONICAL_ENCODER` does the work.
    """
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # pragma: no cover - CPython always has it
        return None
    iterencode = make(
        None, _not_json, json.encoder.encode_basestring, None, ":", ",", True, False, False
    )

    def encode(value: Any) -> str:
        return "".join(iterencode(value, 0))

    return encode


def _not_json(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


_FAST_ENCODER = _make_fast_encoder()


def canonical_json(value: Any) -> str:
    """`value` as canonical JSON: sorted keys at every depth, UTF-8 text, compact separators."""
    if _FAST_ENCODER is not None:
        return _FAST_ENCODER(value)
    return _CANONICAL_ENCODER.encode(value)


def task_key(batch: str, service: str, params: Mapping[str, Any], copy: int) -> str:
    """The key of one task: 32 lowercase hex characters, stable across processes and machines.

    `params` are the request's wire parameters; `SessionId` and `SessionContext` are ignored.
    `copy` tells apart the `repeat` copies of one request (0 for the first).
    """
    if not params.keys().isdisjoint(UNKEYED_PARAMS):  # this way round: two lookups
        params = {name: value for name, value in params.items() if name not in UNKEYED_PARAMS}
    document = {"batch": batch, "copy": copy, "params": params, "service": service}
    digest = hashlib.sha256(canonical_json(document).encode("utf-8")).hexdigest()
    return digest[:KEY_HEX_CHARS]


def session_id_for(key: str, regeneration: int = 0) -> str:
    """The VOD SessionId a task sends when it sets none itself: at most 50 characters.

    `regeneration` n > 0 (`submit --regenerate`, the n-th resend after a failed generation) gets
    its own SessionId, `batcher-<key>-r<n>`, so that the server dedups each regeneration too.
    """
    session_id = SESSION_ID_PREFIX + key
    if regeneration:
        session_id += f"-r{regeneration}"
    if len(session_id) > SESSION_ID_MAX:
        raise ValueError(f"{key!r} is not a task key: its SessionId would exceed {SESSION_ID_MAX}")
    return session_id
