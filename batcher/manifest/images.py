"""What a task bills: the images it asks for and the model that makes them (docs/spend.md).

Every image bills, and a task may ask several (vod `OutputConfig.OutputImageCount`, mps
`OutputImageCount`, 1 when absent), so `plan`, `submit` and the limits count images, not tasks.

    >>> task_images("vod", {"OutputConfig": {"OutputImageCount": 3}}), task_images("mps", {})
    (3, 1)
    >>> task_sub_app_id("vod", {"SubAppId": 251007502}), task_sub_app_id("mps", {})
    (251007502, None)
    >>> task_model("vod", {"ModelName": "GEM", "ModelVersion": "2.5"})
    'GEM 2.5'
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from batcher.api.services import ServiceName

IMAGE_COUNT_AT: Mapping[str, tuple[str, ...]] = {
    "vod": ("OutputConfig", "OutputImageCount"),
    "mps": ("OutputImageCount",),
}
"""Where each service's request says how many images it asks for (the SDKs' models)."""

MODEL_FIELDS = ("ModelName", "ModelVersion")
SUB_APP_ID = "SubAppId"

DEFAULT_MODEL = "(default)"
"""How a task that names no model (mps allows it: the service picks) is shown."""


def task_images(service: ServiceName | str, params: Mapping[str, Any]) -> int:
    """The images a task's request asks for: its OutputImageCount, 1 when absent."""
    node: Any = params
    for name in IMAGE_COUNT_AT[service]:
        if not isinstance(node, Mapping):
            return 1
        node = node.get(name)
    if isinstance(node, bool) or not isinstance(node, int) or node < 1:
        return 1
    return node


def task_sub_app_id(service: ServiceName | str, params: Mapping[str, Any]) -> int | None:
    """The vod application a task bills (its quota is per SubAppId); None on mps."""
    value = params.get("SubAppId") if service == "vod" else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def task_model(service: ServiceName | str, params: Mapping[str, Any]) -> str:
    """The model a task asks for, as `ModelName ModelVersion` ("GEM 2.5")."""
    del service  # both services name the model the same way
    parts = [str(params[name]) for name in MODEL_FIELDS if params.get(name) is not None]
    return " ".join(parts) or DEFAULT_MODEL
