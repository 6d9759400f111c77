"""What a submit run is about to spend, checked before its first request (docs/spend.md).

After every manifest is planned (the ledgers locked: resume decides what is sent) and before the
pipeline starts, `check_spend`:

1. reads the AIGC image quota (`DescribeAigcQuotas`, free) of each vod application the run sends
   to, and refuses the run (`SpendRefused`, exit 2, nothing sent) when it needs more images than
   are left; a read that fails (no permission, any error) is a warning and the run goes on;
2. asks the face's `confirm` (a terminal's question) when the run sends more than `confirm_above`
   images; anything but yes refuses the run, exit 2, nothing sent.

The face renders what is shown (`Sending`, which `plan` uses too: this module imports neither
aiohttp nor pydantic until a quota is read); nothing here knows a terminal.
"""

from __future__ import annotations

import contextlib
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from batcher.api.services import DESCRIBE_AIGC_QUOTAS, VOD
from batcher.exceptions import BatcherError
from batcher.run.prices import PriceTable
from batcher.run.resume import ServicePlan

if TYPE_CHECKING:  # `plan` counts with `Sending` and must not import aiohttp or pydantic
    from batcher.wire.client import AigcClient

log = logging.getLogger("batcher")

DEFAULT_CONFIRM_ABOVE = 1000
QUOTA_CONSOLE = ("raise it in the VOD console (the application's AIGC quota settings, or "
                 "ModifyAigcQuota), or send fewer images")


class SpendRefused(BatcherError):
    """The run would spend more than it may (a quota) or than the person confirmed: exit 2,
    nothing sent."""


@dataclass(slots=True)
class Sending:
    """What a run is about to send: tasks and images per service and per (service, model)."""

    services: dict[str, Counter[str]] = field(default_factory=dict)
    models: dict[tuple[str, str], Counter[str]] = field(default_factory=dict)
    apps: Counter[int] = field(default_factory=Counter)
    quotas_left: dict[int, int] = field(default_factory=dict)
    """Images left of each vod application's quota, where it was read and there is one."""

    @property
    def images(self) -> int:
        return sum(counts["images"] for counts in self.services.values())

    def cost(self, prices: PriceTable) -> tuple[float, list[str]]:
        """(estimated cost, the models the table has no price for)."""
        total, unpriced = 0.0, []
        for (service, model), counts in sorted(self.models.items()):
            price = prices.per_image(service, model)
            if price is None:
                unpriced.append(f"{service} {model}")
            else:
                total += price * counts["images"]
        return total, unpriced


def sending(plans: Iterable[Mapping[str, ServicePlan]]) -> Sending:
    """The tasks and images the planned manifests send, summed."""
    summary = Sending()
    for manifest in plans:
        for name, plan in manifest.items():
            for model, counts in plan.models.items():
                if not counts.tasks_to_send:
                    continue
                service = summary.services.setdefault(name, Counter())
                service.update(tasks=counts.tasks_to_send, images=counts.images_to_send)
                summary.models.setdefault((name, model), Counter()).update(
                    tasks=counts.tasks_to_send, images=counts.images_to_send)
            summary.apps.update(plan.apps_to_send)
    return summary


Confirm = Callable[[Sending], bool]
"""The face's question: True sends. Runs in a thread (it may wait for a person)."""


@dataclass(frozen=True, slots=True)
class SpendRules:
    confirm: Confirm | None = None
    """Asked when the run sends more than `confirm_above` images; None never asks (no terminal,
    `--yes`, the Python API)."""
    confirm_above: int = DEFAULT_CONFIRM_ABOVE
    read_quotas: bool = True


async def check_spend(rules: SpendRules, summary: Sending, client: AigcClient) -> None:
    """Refuse (SpendRefused) a run that needs more than a quota has left or that the person did
    not confirm; otherwise return, having logged what each quota has left."""
    if rules.read_quotas:
        for app, needed in sorted(summary.apps.items()):
            left = await read_images_left(client, app)
            if left is None:
                continue
            summary.quotas_left[app] = left
            log.info("vod application %d: %d image(s) left of its AIGC quota; this run "
                     "sends %d", app, left, needed)
            if needed > left:
                raise SpendRefused(
                    f"vod application {app}: this run sends {needed} image(s) but its AIGC "
                    f"image quota (DescribeAigcQuotas, QuotaType Image) has {left} left: "
                    f"{QUOTA_CONSOLE}; nothing was sent")
    if summary.images:
        log.info("this run sends %d image(s) (%s)", summary.images, ", ".join(
            f"{name} {counts['images']}" for name, counts in sorted(summary.services.items())))
    asks = rules.confirm is not None and summary.images > rules.confirm_above
    if asks and rules.confirm is not None and not await _ask(rules.confirm, summary):
        raise SpendRefused(f"not confirmed: nothing was sent ({summary.images} images "
                               "asked; --yes answers for it)")


async def _ask(confirm: Confirm, summary: Sending) -> bool:
    """`confirm` in a daemon thread: Ctrl-C while a person thinks cancels the run at once (a
    thread of the loop's executor would hold the exit until Enter)."""
    import asyncio  # late, with the rest of a submit's machinery: `plan` imports this module
    import threading

    loop = asyncio.get_running_loop()
    answer: asyncio.Future[bool] = loop.create_future()

    def settle(result: bool) -> None:
        if not answer.done():
            answer.set_result(result)

    def ask() -> None:
        try:
            result = confirm(summary)
        except Exception:  # a closed terminal: no answer is no
            result = False
        with contextlib.suppress(RuntimeError):  # the loop is gone: the run was stopped
            loop.call_soon_threadsafe(settle, result)

    threading.Thread(target=ask, name="batcher-confirm", daemon=True).start()
    return await answer


async def read_images_left(client: AigcClient, app: int) -> int | None:
    """Images vod application `app` may still create; None when it has no image quota or the
    read failed (a warning: the run goes on without it)."""
    from batcher.api.quotas import IMAGE_QUOTA
    from batcher.wire.client import Answer

    answer = await client.call(VOD, DESCRIBE_AIGC_QUOTAS, {"SubAppId": app,
                                                           "QuotaType": IMAGE_QUOTA})
    if not isinstance(answer, Answer):
        log.warning("could not read the AIGC quota of vod application %d (%s: %s): going on "
                    "without it", app, answer.code, answer.message)
        return None
    left = None
    items = answer.response.get("QuotaSet")
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict) or item.get("QuotaType") != IMAGE_QUOTA:
            continue
        limit, used = item.get("QuotaLimit"), item.get("Usage") or 0
        if isinstance(limit, int) and isinstance(used, int):
            item_left = max(0, limit - used)
            left = item_left if left is None else min(left, item_left)
    return left
