"""Duplicate detection: two tasks that send the same request, or the same own SessionId.

The first pass keeps a 64-bit fingerprint per task (8 bytes); only when two fingerprints meet
does a second pass compare the suspects in full and name both origins.
"""

from __future__ import annotations

import itertools
from array import array
from collections.abc import Callable

from batcher.api.models import RequestModel, VodCreateAigcImageTaskRequest
from batcher.api.services import ServiceName
from batcher.manifest.keys import UNKEYED_PARAMS, task_key
from batcher.manifest.plan import Plan
from batcher.manifest.task import Problems
from batcher.manifest.validate import checked_requests, own_session_id


def _request_json(request: RequestModel) -> bytes:
    """A request's identity within this process: what its key hashes, in the model's field order.

    Not the canonical JSON of `keys` (which sorts keys, and costs three times as much):
    the serializer writes fields in declaration order whatever order the manifest used, which is
    all that comparing two requests of one run needs.
    """
    serializer = request.__pydantic_serializer__
    if isinstance(request, VodCreateAigcImageTaskRequest) and (
        request.SessionId is not None or request.SessionContext is not None
    ):
        return serializer.to_json(request, exclude_none=True, exclude=set(UNKEYED_PARAMS))
    return serializer.to_json(request, exclude_none=True)


Fingerprint = Callable[["Plan", ServiceName, RequestModel], int]


def request_fingerprint(plan: Plan, service: ServiceName, request: RequestModel) -> int:
    """64 bits of a request's identity, stable within this process only."""
    return hash((service, _request_json(request))) & _SIXTY_FOUR_BITS


def key_fingerprint(plan: Plan, service: ServiceName, request: RequestModel) -> int:
    """64 bits of a request's identity: the first 16 hex digits of its first copy's key."""
    return int(task_key(plan.batch, service, request.to_wire(), 0)[:16], 16)


def text_fingerprint(text: str) -> int:
    """64 bits of any text, stable within the process: enough to pick suspects to compare."""
    return hash(text) & _SIXTY_FOUR_BITS


_SIXTY_FOUR_BITS = 0xFFFF_FFFF_FFFF_FFFF


class CollisionFinder:
    """Finds repeated 64-bit fingerprints among millions, in 8 bytes each.

    Fingerprints go into 256 arrays by their top byte, so finding repeats sorts one small bucket
    at a time instead of a list of a million Python ints.
    """

    __slots__ = ("_buckets",)

    def __init__(self) -> None:
        self._buckets = [array("Q") for _ in range(256)]

    def add(self, fingerprint: int) -> None:
        self._buckets[fingerprint >> 56].append(fingerprint)

    def repeated(self) -> set[int]:
        found: set[int] = set()
        for bucket in self._buckets:
            ordered = sorted(bucket)
            found.update(a for a, b in itertools.pairwise(ordered) if a == b)
        return found


def report_duplicates(
    plan: Plan,
    fingerprint: Fingerprint,
    suspect_requests: set[int],
    suspect_session_ids: set[int],
    problems: Problems,
) -> None:
    """Second pass, only after a fingerprint repeated: name both origins of each duplicate."""
    first_request: dict[tuple[ServiceName, bytes], tuple[int, str]] = {}
    first_session_id: dict[str, tuple[int, str]] = {}
    stream = checked_requests(plan, Problems(keep=0))
    for position, (variant, request) in enumerate(stream):
        here = (position, variant.origin)  # two tasks may share an origin: one line, `[{}, {}]`
        if fingerprint(plan, variant.service, request) in suspect_requests:
            identity = (variant.service, _request_json(request))
            first = first_request.setdefault(identity, here)
            if first != here:
                problems.add(
                    f"{variant.origin}: {variant.service} task: the same request as {first[1]} "
                    "(SessionId and SessionContext aside): change one, or use `repeat` for "
                    "deliberate copies"
                )
                continue  # one message for one mistake, whatever SessionId it repeats
        session_id = own_session_id(request)
        if session_id is not None and text_fingerprint(session_id) in suspect_session_ids:
            first = first_session_id.setdefault(session_id, here)
            if first != here:
                problems.add(
                    f"{variant.origin}: vod task: SessionId {session_id!r} is also sent by "
                    f"{first[1]}: VOD would refuse the second as a duplicate: give each its own "
                    "SessionId"
                )
