"""A Prefect flow that submits a manifest, brings its images home and reports the gallery.

    python docs/examples/prefect_flow.py jobs/example.yaml

Credentials and the endpoint come from the environment, as for the CLI (TENCENTCLOUD_SECRET_ID,
TENCENTCLOUD_SECRET_KEY, optionally BATCHER_ENDPOINT). The flow can be retried or rerun at any
time: batcher's ledgers make a rerun send only what is not done yet and fetch only what is
missing, so Prefect's retries never bill an image twice.
"""

from __future__ import annotations

import sys

from prefect import flow, task

import batcher


@task(retries=3, retry_delay_seconds=60)
def submit(manifest: str) -> dict[str, dict[str, int]]:
    result = batcher.submit(manifest, max_runtime=45 * 60)
    if result.exit_code == batcher.ExitCode.TIME_LIMIT:
        # Stopped early with tasks left (a time limit, an unreachable endpoint): nothing is
        # lost, and the retry resumes where this attempt stopped.
        raise RuntimeError(f"submit stopped early: {result.stop_detail}")
    if result.exit_code != batcher.ExitCode.OK:
        raise RuntimeError(f"some tasks failed: {result.counts()}")
    return result.counts()


@task(retries=3, retry_delay_seconds=300)
def collect(manifest: str) -> str:
    result = batcher.collect(manifest, wait=True, timeout=3600)
    if result.exit_code == batcher.ExitCode.TIME_LIMIT:
        raise RuntimeError("images still generating: the retry fetches what is missing")
    failed = {state: n for state, n in result.counts.items() if state != "downloaded"}
    if failed:
        raise RuntimeError(f"not every image came home: {failed}")
    return str(result.gallery)


@flow(name="batcher-images")
def images(manifest: str) -> str:
    submit(manifest)
    return collect(manifest)


if __name__ == "__main__":
    print(images(sys.argv[1]))
