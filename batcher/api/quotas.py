"""vod `DescribeAigcQuotas` (2018-07-17): an application's AIGC quotas (docs/spend.md).

Names and nesting follow the official SDK's `models.py`: `DescribeAigcQuotasRequest`
(`SubAppId`, `QuotaType`: `Image` / `Video` / `Text`, `ApiToken`, `Limit`, `Offset`) and
`DescribeAigcQuotasResponse` (`QuotaSet[]` of `AigcQuotaItem`: `QuotaType`, `ApiToken`,
`QuotaLimit`, `Usage`; `TotalCount`). An application with no quota configured lists none: it is
not limited. The read is free; `LimitExceeded.Quota` answers a create once the quota is used up.

    >>> answer = {"QuotaSet": [{"QuotaType": "Image", "QuotaLimit": 100, "Usage": 40}],
    ...           "TotalCount": 1, "RequestId": "r"}
    >>> DescribeAigcQuotasResponse.model_validate(answer).images_left()
    60
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from batcher.api.models import ApiModel

IMAGE_QUOTA = "Image"
"""`QuotaType` of AIGC image tasks (counted in images)."""
QUOTA_TYPES = ("Image", "Video", "Text")
QUOTAS_LIMIT_MAX = 100
QUOTA_EXCEEDED = "LimitExceeded.Quota"


class DescribeAigcQuotasRequest(ApiModel):
    """vod `DescribeAigcQuotas` request: one application's quotas of one type."""

    SubAppId: int
    QuotaType: str
    ApiToken: str | None = None
    Limit: Annotated[int, Field(ge=1, le=QUOTAS_LIMIT_MAX)] | None = None
    Offset: Annotated[int, Field(ge=0)] | None = None


class AigcQuotaItem(BaseModel):
    """One quota: how much may be used (`QuotaLimit`) and how much is (`Usage`)."""

    model_config = ConfigDict(extra="ignore")

    QuotaType: str | None = None
    ApiToken: str | None = None
    QuotaLimit: int | None = None
    Usage: int | None = None


class DescribeAigcQuotasResponse(BaseModel):
    """The inside of a `DescribeAigcQuotas` answer's `"Response"`."""

    model_config = ConfigDict(extra="ignore")

    QuotaSet: list[AigcQuotaItem] = Field(default_factory=list)
    TotalCount: int | None = None
    RequestId: str | None = None

    def images_left(self) -> int | None:
        """Images the application may still create; None when it has no image quota."""
        left = [max(0, (item.QuotaLimit or 0) - (item.Usage or 0)) for item in self.QuotaSet
                if item.QuotaType == IMAGE_QUOTA and item.QuotaLimit is not None]
        return min(left) if left else None
