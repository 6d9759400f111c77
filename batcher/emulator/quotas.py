"""The vod applications' AIGC image quotas (`--aigc-quota SUBAPPID=N`), as the API keeps them.

Each configured application counts the images its created tasks ask for (`Usage`) against its
`QuotaLimit`; `DescribeAigcQuotas` reports both, and once `Usage` reaches the limit a create is
answered `LimitExceeded.Quota`. As the API's pages say, the limit is checked when a task is
created, not per image: the last task admitted may take `Usage` past it. An application with no
quota configured lists none and is never refused.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from batcher.api.quotas import (
    IMAGE_QUOTA,
    AigcQuotaItem,
    DescribeAigcQuotasRequest,
    DescribeAigcQuotasResponse,
)


class QuotaBook:
    """The image quota and usage of each vod application that has one."""

    __slots__ = ("_limits", "_used")

    def __init__(self, limits: Iterable[tuple[int, int]]) -> None:
        self._limits = dict(limits)
        self._used: Counter[int] = Counter()

    def refuses(self, sub_app_id: int) -> bool:
        """True when the application's image quota is used up: the create is refused."""
        limit = self._limits.get(sub_app_id)
        return limit is not None and self._used[sub_app_id] >= limit

    def charge(self, sub_app_id: int, images: int) -> None:
        """A task asking `images` was created for the application."""
        if sub_app_id in self._limits:
            self._used[sub_app_id] += images

    def used(self, sub_app_id: int) -> int:
        return self._used[sub_app_id]

    def describe(self, request: DescribeAigcQuotasRequest) -> DescribeAigcQuotasResponse:
        """The answer to `DescribeAigcQuotas`: the application's quota of the type asked."""
        limit = self._limits.get(request.SubAppId)
        items = []
        if limit is not None and request.QuotaType == IMAGE_QUOTA:
            items.append(AigcQuotaItem(QuotaType=IMAGE_QUOTA, QuotaLimit=limit,
                                       Usage=self._used[request.SubAppId]))
        offset = request.Offset or 0
        page = items[offset:offset + (request.Limit or 10)]
        return DescribeAigcQuotasResponse(QuotaSet=page, TotalCount=len(items))
