"""What a run may spend, in images: `--max-images` (this run) and `--daily-images` (the account,
per UTC day, in the rate store, so every process and host sharing the store shares the limit).

A task claims its images (`batcher.manifest.images.task_images`) once, before its first request;
the claim holds whatever its attempts bring, since what may have been billed counts (an answer
lost on the way may still have created it). Only a task that certainly created nothing (an
error answer, stopped or refused before sending) gives its images back. A claim that does not
fit ends the run (exit 75): the rest is not sent, and a later run (a new day, a higher limit)
goes on (docs/spend.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from batcher.run.rate_stores import RateStore
from batcher.run.rate_stores.images import day_key


@dataclass(frozen=True, slots=True)
class Claim:
    images: int
    day_key: str | None
    """The day counted against (a claim made before midnight is given back to that day)."""


class ImageBudget:
    """This run's image count and the account's daily count in `store`."""

    def __init__(self, store: RateStore, scope: str, max_images: int | None,
                 daily_images: int | None) -> None:
        self._store = store
        self._scope = scope
        self.max_images = max_images
        self.daily_images = daily_images
        self.claimed = 0
        """Images this run holds: sent, or about to be."""

    @property
    def limited(self) -> bool:
        return self.max_images is not None or self.daily_images is not None

    async def claim(self, images: int) -> Claim | str:
        """The claim, or why it does not fit (one line). Raises `StoreUnavailable`."""
        if self.max_images is not None and self.claimed + images > self.max_images:
            return (f"--max-images {self.max_images} reached ({self.claimed} image(s) sent by "
                    "this run): run again to send the rest")
        key = None
        if self.daily_images is not None:
            key = day_key(self._scope)
            if not await self._store.claim_images(key, images, self.daily_images):
                return (f"--daily-images {self.daily_images} reached for this account today "
                        "(UTC): the rest is sent by a run tomorrow, or raise the limit")
        self.claimed += images
        return Claim(images, key)

    async def give_back(self, claim: Claim) -> None:
        """The task certainly created nothing: its images count no more. Raises
        `StoreUnavailable`."""
        self.claimed -= claim.images
        if claim.day_key is not None:
            await self._store.give_back_images(claim.day_key, claim.images)
