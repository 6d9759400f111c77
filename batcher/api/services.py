"""The service registry: what differs between the two Tencent endpoints batcher talks to.

One frozen `Service` per endpoint: host, API version, the action that creates a task and the one
that polls it, each action's rate cap (docs/architecture.md#the-two-services and
docs/results.md#polling), and whether the server deduplicates on
`SessionId`. Every other module asks this registry instead of spelling a host, a version or a cap
itself.

>>> VOD.cap(DESCRIBE_TASK_DETAIL), MPS.rate_cap
(100, 20)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

ServiceName = Literal["vod", "mps"]
Site = Literal["intl", "mainland"]
SITES: tuple[Site, ...] = ("intl", "mainland")
DEFAULT_SITE: Site = "intl"

ACTION = "CreateAigcImageTask"
"""The action that creates a task, on both services."""
DESCRIBE_TASK_DETAIL = "DescribeTaskDetail"
"""vod: one task's status and output files."""
DESCRIBE_TASKS = "DescribeTasks"
"""vod: the tasks created in a time window (3 days back), with their SessionIds."""
DESCRIBE_AIGC_IMAGE_TASK = "DescribeAigcImageTask"
"""mps: one AIGC image task's status and image URLs."""
DESCRIBE_AIGC_QUOTAS = "DescribeAigcQuotas"
"""vod: an application's AIGC quotas (free; `batcher.api.quotas`)."""

MPS_IMAGE_URL_TTL_SECONDS = 12 * 3600
"""MPS keeps a generated image (and its URL) for 12 hours."""


@dataclass(frozen=True, slots=True)
class Service:
    """One Tencent Cloud API endpoint that accepts `CreateAigcImageTask`."""

    name: ServiceName
    host: str
    """The public host of the international site (the default, `--site intl`)."""
    mainland_host: str
    """The public host of the mainland China site (`--site mainland`, the SDK's default)."""
    version: str
    action: str
    """The action that creates a task."""
    poll_action: str
    """The action that reports one task's generation status and files."""
    caps: Mapping[str, int]
    """Requests per second the API allows, per action this service is called with."""
    dedups_session_id: bool
    """True when the server refuses a repeated SessionId (seen in the last 3 days)."""

    @property
    def rate_cap(self) -> int:
        """Requests per second the API allows for creating tasks."""
        return self.caps[self.action]

    def public_host(self, site: Site) -> str:
        """This service's host on `site` (`intl` or `mainland`)."""
        return self.mainland_host if site == "mainland" else self.host

    def cap(self, action: str) -> int:
        """Requests per second the API allows for `action` (KeyError for an unknown one)."""
        return self.caps[action]


VOD = Service(
    name="vod",
    host="vod.intl.tencentcloudapi.com",
    mainland_host="vod.tencentcloudapi.com",
    version="2018-07-17",
    action=ACTION,
    poll_action=DESCRIBE_TASK_DETAIL,
    # DescribeAigcQuotas: "A maximum of 20 requests can be initiated per second" (its API page).
    caps={ACTION: 20, DESCRIBE_TASK_DETAIL: 100, DESCRIBE_TASKS: 100, DESCRIBE_AIGC_QUOTAS: 20},
    dedups_session_id=True,
)
MPS = Service(
    name="mps",
    host="mps.intl.tencentcloudapi.com",
    mainland_host="mps.tencentcloudapi.com",
    version="2019-06-12",
    action=ACTION,
    poll_action=DESCRIBE_AIGC_IMAGE_TASK,
    # DescribeAigcImageTask's cap is not published: the create cap is the safe guess.
    caps={ACTION: 20, DESCRIBE_AIGC_IMAGE_TASK: 20},
    dedups_session_id=False,
)

SERVICES: dict[str, Service] = {VOD.name: VOD, MPS.name: MPS}
SERVICE_NAMES: tuple[ServiceName, ...] = ("vod", "mps")

DEFAULT_RATE: float = float(min(service.rate_cap for service in SERVICES.values()))
"""The default `--rate`: the API's cap, the one place the CLI and the pipeline take it from."""


def get_service(name: str) -> Service:
    """The registered service called `name`; `KeyError` names the valid ones."""
    try:
        return SERVICES[name]
    except KeyError:
        raise KeyError(f"unknown service {name!r}: use one of {', '.join(SERVICES)}") from None
