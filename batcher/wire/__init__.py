"""Wire: one signed HTTP exchange with a Tencent Cloud endpoint, and what its answer means.

Owns TC3 signing (`signing`), credentials (`credentials`, docs/operating.md#credentials), the HTTP
client (`client`) and the error classes of docs/architecture.md#submitting (`errors`: retryable,
duplicate, permanent, run-stopping, ambiguous). It knows nothing of manifests, ledgers or rates.
May import: `batcher.api` and `batcher.exceptions`.
"""
