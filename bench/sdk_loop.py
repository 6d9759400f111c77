"""What a user would write instead of batcher: the official SDK in a plain asyncio.gather loop.

Run as its own child process by the client-cost benchmark, so that its CPU time is measured
exactly as batcher's is (os.wait4 on the process):

    python bench/sdk_loop.py TASKS.jsonl HOST:PORT

`TASKS.jsonl` is `batcher plan --json` output (the very requests batcher sends, SessionIds
included). Each task becomes a `CreateAigcImageTaskRequest` of the official
`tencentcloud-sdk-python-vod` / `-mps` package, sent through the SDK's async client
(`vod_client_async.VodClient`, `mps_client_async.MpsClient`, over httpx with keep-alive on: its
best case) under `asyncio.Semaphore(64)`, all of them in one `asyncio.gather`. No ledger, no rate
cap, no retry: a floor, not a peer.

The SDK's async client needs httpx (`tencentcloud-sdk-python-common[async]`). When httpx is
missing, the same loop runs the SDK's synchronous client (requests) in a 64-thread pool via
`loop.run_in_executor`, and says so (`"client": "sync-in-threads"`).

Prints one JSON object: requests, answers by code, and the loop's own wall and CPU seconds
(request models built inside the loop, as a user would; imports and file reading outside).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from procs import SECRET_ID, SECRET_KEY
from tencentcloud.common.credential import Credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.mps.v20190612 import models as mps_models
from tencentcloud.vod.v20180717 import models as vod_models

CONCURRENCY = 64
REGION = "ap-guangzhou"
MODELS = {"vod": vod_models, "mps": mps_models}

Send = Callable[[str, dict[str, Any]], Awaitable[str]]


def _profile(endpoint: str) -> ClientProfile:
    http = HttpProfile(protocol="http", endpoint=endpoint, keepAlive=True)
    return ClientProfile(httpProfile=http)


def _request(service: str, params: dict[str, Any]) -> Any:
    request = MODELS[service].CreateAigcImageTaskRequest()
    request._deserialize(params)
    return request


def _async_clients(endpoint: str) -> tuple[dict[str, Any], Send] | None:
    """The SDK's async clients and a send function, or None without httpx."""
    try:
        from tencentcloud.mps.v20190612.mps_client_async import MpsClient
        from tencentcloud.vod.v20180717.vod_client_async import VodClient
    except ImportError:
        return None
    credential = Credential(SECRET_ID, SECRET_KEY)
    clients = {
        "vod": VodClient(credential, REGION, _profile(endpoint)),
        "mps": MpsClient(credential, REGION, _profile(endpoint)),
    }

    async def send(service: str, params: dict[str, Any]) -> str:
        await clients[service].CreateAigcImageTask(_request(service, params))
        return "ok"

    return clients, send


def _threaded_clients(endpoint: str) -> tuple[dict[str, Any], Send]:
    """The SDK's synchronous clients, called from a pool of CONCURRENCY threads."""
    from tencentcloud.mps.v20190612.mps_client import MpsClient
    from tencentcloud.vod.v20180717.vod_client import VodClient

    credential = Credential(SECRET_ID, SECRET_KEY)
    clients = {
        "vod": VodClient(credential, REGION, _profile(endpoint)),
        "mps": MpsClient(credential, REGION, _profile(endpoint)),
    }
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=CONCURRENCY)

    async def send(service: str, params: dict[str, Any]) -> str:
        def call() -> str:
            clients[service].CreateAigcImageTask(_request(service, params))
            return "ok"

        return await asyncio.get_running_loop().run_in_executor(pool, call)

    return clients, send


async def _run(tasks: list[tuple[str, dict[str, Any]]], endpoint: str) -> dict[str, Any]:
    found = _async_clients(endpoint)
    kind = "async"
    if found is None:
        found, kind = _threaded_clients(endpoint), "sync-in-threads"
    clients, send = found
    semaphore = asyncio.Semaphore(CONCURRENCY)
    codes: Counter[str] = Counter()

    async def one(service: str, params: dict[str, Any]) -> None:
        async with semaphore:
            try:
                codes[await send(service, params)] += 1
            except TencentCloudSDKException as error:
                codes[str(error.code)] += 1

    started_wall, started_cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(one(service, params) for service, params in tasks))
    wall, cpu = time.perf_counter() - started_wall, time.process_time() - started_cpu
    if kind == "async":
        for client in clients.values():
            await client.close()
    return {"client": kind, "requests": sum(codes.values()), "codes": dict(codes),
            "loop_wall_s": wall, "loop_cpu_s": cpu}


def read_tasks(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """(service, params) of each line of `batcher plan --json`."""
    with path.open(encoding="utf-8") as lines:
        return [(task["service"], task["params"]) for task in map(json.loads, lines)]


def main(argv: list[str]) -> int:
    tasks_path, endpoint = Path(argv[1]), argv[2]
    result = asyncio.run(_run(read_tasks(tasks_path), endpoint))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
