"""Results: what the submitted tasks generated, brought home (docs/results.md).

Owns the polling schedule (per-task back-off), duplicate recovery through `DescribeTasks`,
downloads (`.part`, size check, fsync, rename), `results.csv` and the gallery page. May import:
`batcher.run`, `batcher.state`, `batcher.manifest`, `batcher.wire`, `batcher.api` and
`batcher.exceptions`.

One module per idea: `collector` runs a collect (and says the order of things); `tracking`
places each task from the two ledgers; `schedule` decides when to ask again; `caller` makes one
rate-capped API call with submit's error rules; `outcomes` reads a poll's answer (and which
failures are retryable); `recovery` finds a vod duplicate's TaskId; `download` and `names` put
files on disk; `rows`, `table` and `gallery` render what the user gets.
"""
