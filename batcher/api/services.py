"""The service registry: what differs between the two Tencent endpoints batcher talks to.

One frozen `Service` per endpoint (host, API version, action, rate cap, and whether the server
deduplicates on `SessionId`). Every other module asks this registry instead of spelling a host or
a version itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ServiceName = Literal["vod", "mps"]

ACTION = "CreateAigcImageTask"


@dataclass(frozen=True, slots=True)
class Service:
    """One Tencent Cloud API endpoint that accepts `CreateAigcImageTask`."""

    name: ServiceName
    host: str
    version: str
    action: str
    rate_cap: int
    """Requests per second the API allows for this action."""
    dedups_session_id: bool
    """True when the server refuses a repeated SessionId (seen in the last 3 days)."""


VOD = Service(
    name="vod",
    host="vod.intl.tencentcloudapi.com",
    version="2018-07-17",
    action=ACTION,
    rate_cap=20,
    dedups_session_id=True,
)
MPS = Service(
    name="mps",
    host="mps.intl.tencentcloudapi.com",
    version="2019-06-12",
    action=ACTION,
    rate_cap=20,
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
