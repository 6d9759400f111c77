"""State: the JSONL ledgers on disk (docs/ledgers.md), their locks, replay and completion records.

Owns durability (group-committed fsync), the exclusive lock per ledger, replay of a ledger into
task states (a torn tail skipped with a warning), and the completion record that lets a finished
batch be recognised without reading it again. It knows nothing of HTTP, rates or manifests'
syntax. May import: `batcher.api` and `batcher.exceptions`.
"""
