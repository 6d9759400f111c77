"""How many images a task asks for: what it may bill (docs/spend.md).

vod `OutputConfig.OutputImageCount`, mps `OutputImageCount`; 1 when the task does not say.

    >>> task_images("vod", {"OutputConfig": {"OutputImageCount": 3}})
    3
    >>> task_images("mps", {"Prompt": "a cat"})
    1
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def task_images(service: str, params: Mapping[str, Any]) -> int:
    """Images one task of `service` with these request parameters creates (1 by default)."""
    holder: Any = params.get("OutputConfig") if service == "vod" else params
    count = holder.get("OutputImageCount") if isinstance(holder, Mapping) else None
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        return 1
    return count
