"""Run: the asyncio pipeline that sends tasks at the rate cap and settles every outcome.

Owns SPEC §5: the per-service lanes and workers (`pipeline`), the slot grid of the rate cap
(`limiter`), back-off and retry budgets (`retry`), what a resumed run sends (`resume`), and the
event loop (`eventloop`). May import: `batcher.state`, `batcher.manifest`, `batcher.wire`,
`batcher.api` and `batcher.exceptions`.
"""
