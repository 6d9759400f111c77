"""Results: what the submitted tasks generated, brought home (SPEC §9).

Owns the polling schedule (per-task back-off), duplicate recovery through `DescribeTasks`,
downloads (`.part`, size check, fsync, rename), `results.csv` and the gallery page. May import:
`batcher.run`, `batcher.state`, `batcher.manifest`, `batcher.wire`, `batcher.api` and
`batcher.exceptions`.
"""
