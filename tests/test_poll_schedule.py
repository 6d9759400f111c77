"""The poll schedule at scale, on a fake clock (docs/results.md): beside a submit at the cap, each
task is asked about once, when it is most likely done, and the last finish is seen soon after."""

from __future__ import annotations

import random

from batcher.results.schedule import PollSchedule, PollTiming


def beside_submit(tasks: int, mean: float, cap: float, seed: int = 1) -> tuple[float, float, float]:
    """Tasks sent at 99% of `cap` taking `mean` ± 50%, polled at most `cap` a second: (requests
    per task, seconds between the last finish and seeing it, the learnt generation time)."""
    rng = random.Random(seed)
    now = [0.0]
    schedule = PollSchedule(PollTiming(), clock=lambda: now[0], rate=cap)
    durations = [rng.uniform(mean * 0.5, mean * 1.5) for _ in range(tasks)]
    sent = [index / (cap * 0.99) for index in range(tasks)]
    added = done = 0
    next_slot = 0.0
    for _ in range(50 * tasks):  # bounded: a busy loop fails the test instead of hanging it
        if done == tasks:
            break
        while added < tasks and sent[added] <= now[0]:
            schedule.add(str(added), sent[added], first_at_age=2.0)
            added += 1
        if now[0] < next_slot:
            now[0] = next_slot
            continue
        key = schedule.pop_due()
        if key is not None:
            next_slot = now[0] + 1 / cap
            index = int(key)
            if now[0] >= sent[index] + durations[index]:
                schedule.finished(key)
                done += 1
            else:
                schedule.pending(key)
            continue
        wait = schedule.wait()
        assert wait is None or wait > 0, "never a busy loop"
        upcoming = [now[0] + wait] if wait is not None else []
        if added < tasks:
            upcoming.append(sent[added])
        now[0] = min(upcoming)
    assert done == tasks
    last = max(s + d for s, d in zip(sent, durations, strict=True))
    return schedule.polls / tasks, now[0] - last, schedule.expected_generation()


def test_beside_a_submit_at_the_cap_each_task_is_asked_about_once():
    for cap in (20, 100):  # mps, vod
        per_task, late, learnt = beside_submit(2000, 15.0, cap)
        assert per_task <= 1.15, (cap, per_task)
        assert late <= 5, (cap, late)
        assert 15 < learnt < 25, learnt  # near the p90 of 7.5-22.5 s (21 s), not the median


def test_a_small_batch_uses_the_idle_budget_to_see_the_last_finish_soon():
    per_task, late, _ = beside_submit(10, 15.0, 20)
    assert late <= 1.5, late  # asked every second once overdue: the budget is idle
    assert per_task <= 10, per_task


def test_a_task_being_asked_is_never_handed_out_again_until_it_is_answered():
    # A listing brings a task forward (`poll_now`) while its ask is still on the way: handing
    # it out twice settled it twice (collect died on a KeyError beside a 1,000-task submit).
    now = [10.0]
    schedule = PollSchedule(PollTiming(), clock=lambda: now[0], rate=20)
    schedule.add("a", 0.0, first_at_age=2.0)
    assert schedule.pop_due() == "a"
    assert schedule.poll_now("a")
    assert schedule.pop_due() is None
    schedule.pending("a")  # answered "not yet": due again after its back-off
    now[0] += PollTiming().max_delay
    assert schedule.pop_due() == "a"
    schedule.finished("a")
    assert schedule.pop_due() is None and len(schedule) == 0
