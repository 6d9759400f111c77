"""batcher: bulk, rate-capped, idempotent submission of Tencent Cloud AIGC image tasks."""

__version__ = "0.1.0"
