"""batcher: bulk, rate-capped, idempotent submission of Tencent Cloud AIGC image tasks.

Packages, one per layer, imports going downward only (see each package's docstring):
`cli` (the face) → `results` → `run` → `state` / `manifest` → `wire` → `api`; `emulator` beside
them, importing only `api` and the signer; `exceptions` is a leaf every layer may raise from.
"""

__version__ = "0.1.0"
"""The one place the version is written (pyproject.toml reads it from here)."""
