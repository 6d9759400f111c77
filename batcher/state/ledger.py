"""The JSONL ledger: the durable record of every task's fate, and its replay on resume.

Guarantees: an event's line is on disk (written and fdatasync'ed) before its `await` returns, many
lines sharing one write and one sync; one run at a time holds a ledger (`open_ledger` locks it);
`replay` folds any ledger, torn or corrupt lines included, into each key's last state, compactly.

Use: `writer = open_ledger(path)` first (it fails at once with `LedgerLocked` if another run has
the ledger), then `replay(path)` while holding it, then `await writer.sending(...)` before each
request and `await writer.submitted(...)` (or `duplicate`, `failed`) after it; `await
writer.close()` at the end. Line format (docs/ledgers.md), one JSON object per line, keys in this
order:

    {"ts":"2026-11-22T10:00:00.123Z","key":"<32 hex>","service":"vod","event":"sending",
     "attempt":1,"session_id":"..."}

`sending` carries `attempt` (1 for the first, counting across runs) and `session_id` (vod);
`submitted` `task_id`, `request_id`, `session_id` (vod); `duplicate` `request_id`, `session_id`;
`failed` `error: {code, message, retryable}` and `request_id` when there is one. A task's state is
its last line's event.
"""

from batcher.exceptions import LedgerError, LedgerLocked
from batcher.state.events import FailureGroup, TaskState
from batcher.state.replay import LedgerReplay, replay
from batcher.state.writer import LedgerWriter, open_ledger

__all__ = [
    "FailureGroup",
    "LedgerError",
    "LedgerLocked",
    "LedgerReplay",
    "LedgerWriter",
    "TaskState",
    "open_ledger",
    "replay",
]
