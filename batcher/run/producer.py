"""A lane's producer: the tasks of one service, dealt round-robin from every job into a queue.

Several manifests share a service fairly (one task of each in turn); what the ledger says is
done or held is passed over without being counted again (`batcher.run.resume`), and a manifest
is read no further than its last task to send. Every `put` gives way to a stop: once the run
stops (a signal, `--max-runtime`, a worker's unexpected error) the producer returns at once,
even when no worker is left to take from the queue.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Sequence

from batcher.api.services import ServiceName
from batcher.manifest import Task
from batcher.run.jobs import Job
from batcher.run.resume import Decision, ResumeRules, decide_task, regenerated
from batcher.run.stopping import STOPPED, unless_stopped

YIELD_EVERY = 256
"""Skipped tasks between two yields to the event loop, so a long resume scan never starves it."""


async def produce(
    jobs: Sequence[Job],
    service: ServiceName,
    rules: ResumeRules,
    queue: asyncio.Queue[tuple[Job, Task]],
    stop: asyncio.Event,
) -> None:
    """Deal the tasks to send into `queue`, round-robin over the jobs, until done or stopped."""
    streams = [
        tasks_to_send(job, service, plan.to_send, rules)
        for job in jobs
        if (plan := job.plans.get(service)) is not None and plan.to_send
    ]
    try:
        while streams and not stop.is_set():
            still_open = []
            for stream in streams:
                item = await anext(stream, None)
                if item is None:
                    continue
                still_open.append(stream)
                if await unless_stopped(queue.put(item), stop) is STOPPED:
                    return
            streams = still_open
    finally:
        for stream in streams:
            await stream.aclose()


async def tasks_to_send(
    job: Job, service: ServiceName, count: int, rules: ResumeRules
) -> AsyncGenerator[tuple[Job, Task], None]:
    """The job's `count` tasks of `service` to send: the manifest is read no further than
    the last of them, and the tasks passed over (done, held) are not counted again."""
    passed_over = 0
    for task in job.manifest.tasks(service, start=job.plans[service].send_from or 0):
        state = job.replay.state_of(task.key)
        regeneration = job.regenerations.get(task.key)
        if decide_task(task, state, regeneration, rules) is Decision.SEND:
            yield job, task if regeneration is None else regenerated(task, regeneration.number)
            count -= 1
            if count == 0:
                return
        else:
            passed_over += 1
            if passed_over % YIELD_EVERY == 0:
                await asyncio.sleep(0)  # a long resume scan never starves the event loop
