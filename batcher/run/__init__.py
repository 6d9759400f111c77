"""Run: a submit run from start to end, and the asyncio pipeline that sends its tasks.

Owns (docs/architecture.md) the whole submit sequence (`submission`: lock, replay, plan, run,
completion records) and how it ended (`outcome`: the exit code; `summary`: counts per manifest
and service), the per-service lanes and workers (`pipeline`) with what a run is made of
(`jobs`), the producer that feeds a lane (`producer`), how an answer is judged (`verdict`), the
pace of a full service (`capacity`) and what a run may spend in images (`image_budget`), the
slot grid of the rate cap (`limiter`) and whose caps it counts against (`rate_scope`), back-off
and retry budgets (`retry`), what a resumed run sends (`resume`), and the event loop
(`eventloop`). May import:
`batcher.state`, `batcher.manifest`, `batcher.wire`, `batcher.api` and `batcher.exceptions`.
"""
