"""docs/architecture.md#submitting and docs/operating.md#several-hosts rate cap: at most R requests
in any rolling second per cap, no burst, shared through a rate store, failing closed.

The reservation rule (`next_slot`, with its give-back of stale slots) is checked by simulation
over hypothesis-drawn lateness and process counts; the async limiter against the real event
loop on the memory and file stores (Redis: `tests/test_rate_store.py`).
"""

from __future__ import annotations

import asyncio
import heapq
import time
from bisect import bisect_left

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batcher.cli.options import DEFAULT_STORE_TIMEOUT as CLI_STORE_TIMEOUT
from batcher.exceptions import ExitCode
from batcher.run.limiter import (
    DEFAULT_STORE_TIMEOUT,
    SAFETY_MARGIN,
    SLOT_TOLERANCE,
    ClockOffset,
    RateLimiter,
    StoreUnreachable,
)
from batcher.run.rate_stores import FileStore, MemoryStore, cap_key, open_store
from batcher.run.rate_stores.base import next_slot


def most_in_one_second(times: list[float]) -> int:
    """The most send times in any window (t - 1 s, t]."""
    ordered = sorted(times)
    return max(
        (i + 1 - bisect_left(ordered, t - 1.0 + 1e-12) for i, t in enumerate(ordered)),
        default=0,
    )


def simulate(cap: float, processes: int, delays: list[float]) -> list[float]:
    """Send times of `len(delays)` requests from `processes` limiters sharing one store.

    Each holds one reservation at a time (its turn): it reserves, is ready `delay` after the
    slot (late wake-up + durable write), and sends only if the slot is not stale; otherwise it
    gives the slot back and reserves again — `Turn.ready`'s rule.
    """
    interval = 1.0 / (cap * SAFETY_MARGIN)
    store = {"next": float("-inf")}
    pending = iter(delays)
    events: list[tuple[float, int, float]] = []  # (ready at, process, slot)
    sent: list[float] = []

    def reserve(process: int, now: float, give_back: float | None = None,
                delay: float | None = None) -> None:
        delay = next(pending, None) if delay is None else delay
        if delay is None:
            return
        slot = next_slot(now, store["next"], interval, give_back)
        store["next"] = slot + interval
        heapq.heappush(events, (slot + delay, process, slot))

    for process in range(processes):
        reserve(process, 0.0)
    while events:
        now, process, slot = heapq.heappop(events)
        if now - slot > SLOT_TOLERANCE:
            reserve(process, now, give_back=slot, delay=SLOT_TOLERANCE * 0.5)
            continue
        sent.append(now)
        reserve(process, now)
    return sent


lateness = st.one_of(
    st.floats(min_value=0.0, max_value=0.002),      # ordinary timer lateness
    st.floats(min_value=0.0, max_value=0.25),       # fsync stalls, GC pauses
)


@settings(max_examples=200, deadline=None)
@given(
    cap=st.sampled_from([1.0, 5.0, 20.0, 50.0]),
    processes=st.integers(min_value=1, max_value=6),
    delays=st.lists(lateness, min_size=1, max_size=300),
)
def test_no_second_holds_more_than_the_cap_whatever_the_lateness(cap, processes, delays):
    sent = simulate(cap, processes, delays)
    assert len(sent) == len(delays)
    assert most_in_one_second(sent) <= cap


def test_a_stale_slot_given_back_is_reused_when_no_one_reserved_after_it():
    interval = 0.05
    slot = next_slot(10.0, float("-inf"), interval, None)
    # Stale at 10.004: given back, the fresh slot is now, not one interval later.
    assert next_slot(10.004, slot + interval, interval, give_back=slot) == 10.004
    # Someone reserved after it: the slot is lost, the next free one is taken.
    assert next_slot(10.004, slot + 2 * interval, interval, give_back=slot) == 10.1


def test_a_next_slot_far_ahead_is_a_clock_that_jumped_back_and_is_reset():
    assert next_slot(100.0, 100.0 + 3600, 0.05, None) == 100.0


def limiter_on(store, rate=20.0, **options) -> RateLimiter:
    return RateLimiter(store, scope="AKIDlimiterTest", service="vod",
                       action="CreateAigcImageTask", rate=rate, **options)


@pytest.fixture(params=["memory", "file"])
def store(request, tmp_path):
    return MemoryStore() if request.param == "memory" else FileStore(tmp_path / "rate.json")


@pytest.mark.serial
async def test_concurrent_callers_leave_at_most_the_cap_per_second_from_the_start(store):
    limiter = limiter_on(store)
    sent: list[float] = []

    async def caller() -> None:
        await limiter.acquire()
        sent.append(time.monotonic())

    await asyncio.gather(*(caller() for _ in range(30)))
    assert most_in_one_second(sent) <= 20
    # Paced from the first request on: 30 requests span at least 29 slots (no burst).
    assert max(sent) - min(sent) >= 29 / (20 * SAFETY_MARGIN) - SLOT_TOLERANCE


@pytest.mark.serial
async def test_two_limiters_on_one_file_share_the_cap(tmp_path):
    # Two processes' limiters, here in one loop: each alone would send 20 in the first second.
    first, second = (limiter_on(FileStore(tmp_path / "rate.json")) for _ in range(2))
    sent: list[float] = []

    async def caller(limiter: RateLimiter) -> None:
        await limiter.acquire()
        sent.append(time.monotonic())

    await asyncio.gather(*(caller(limiter) for limiter in (first, second) for _ in range(20)))
    assert most_in_one_second(sent) <= 20


@pytest.mark.serial
async def test_a_turn_is_reserved_just_in_time_not_behind_every_waiting_worker(store):
    # 32 workers wait; each turn's slot is at most one interval after the turn begins, so a
    # line written `ahead` of the slot precedes the request by `ahead`
    # (docs/architecture.md#submitting: 150 ms).
    limiter = limiter_on(store, rate=4)
    leads: list[float] = []

    async def worker() -> None:
        async with limiter.turn(ahead=0.05) as turn:
            assert turn is not None
            entered = time.monotonic()
            await turn.ready()
            leads.append(time.monotonic() - entered)

    await asyncio.gather(*(worker() for _ in range(8)))
    assert max(leads) < 0.15


async def test_a_stop_ends_every_wait_for_a_turn_at_once(store):
    limiter = limiter_on(store, rate=0.5)  # one slot every 2 s
    stop = asyncio.Event()
    await limiter.acquire()
    outcomes: list[object] = []

    async def worker() -> None:
        async with limiter.turn(ahead=0.05, stop=stop) as turn:
            outcomes.append(turn)

    workers = [asyncio.create_task(worker()) for _ in range(5)]
    await asyncio.sleep(0.1)
    stop.set()
    await asyncio.wait_for(asyncio.gather(*workers), timeout=1.0)  # not 10 s of slots
    assert outcomes == [None] * 5


async def test_a_store_that_does_not_answer_pauses_then_stops_with_exit_75(tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    limiter = limiter_on(FileStore(blocker / "rate.json"), store_timeout=0.6)
    started = time.monotonic()
    with pytest.raises(StoreUnreachable) as raised:
        await limiter.acquire()
    assert time.monotonic() - started >= 0.6, "it waited for the store, never sent without it"
    assert raised.value.exit_code is ExitCode.TIME_LIMIT
    assert str(blocker) in str(raised.value)


async def test_unlimited_limiter_never_asks_the_store(tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    limiter = limiter_on(FileStore(blocker / "rate.json"), rate=0, store_timeout=0.1)
    for _ in range(100):
        await limiter.acquire()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_throttling_halves_the_rate_and_recovers_by_steps():
    clock = FakeClock()
    limiter = limiter_on(MemoryStore(), recovery_seconds=5, clock=clock)
    limiter.throttled()
    assert limiter.rate == 10
    limiter.throttled()
    assert limiter.rate == 5
    clock.now += 5
    await limiter.acquire()
    assert limiter.rate == 7
    for _ in range(20):
        limiter.throttled()
    assert limiter.rate == 1


def test_store_keys_hide_the_secret_id_and_separate_accounts_and_actions():
    key = cap_key("AKIDsecretish", "mps", "DescribeAigcImageTask")
    assert "AKIDsecretish" not in key
    assert key != cap_key("AKIDother", "mps", "DescribeAigcImageTask")
    assert key != cap_key("AKIDsecretish", "mps", "CreateAigcImageTask")


def test_the_cli_and_the_layers_agree_on_the_store_timeout_and_environment_names():
    # The parser keeps its own copies (importing the layers would slow every start).
    from batcher.cli import options
    from batcher.run.rate_stores import RATE_STORE_ENV
    from batcher.wire.credentials import ENV_PROFILE

    assert CLI_STORE_TIMEOUT == DEFAULT_STORE_TIMEOUT
    assert options.RATE_STORE_ENV == RATE_STORE_ENV
    assert options.PROFILE_ENV == ENV_PROFILE


@pytest.mark.parametrize("url", ["mysql://x", "file:", "redis://host:notaport/0"])
def test_a_store_url_that_cannot_be_used_is_a_usage_error(url):
    from batcher.exceptions import UsageError

    with pytest.raises(UsageError):
        open_store(url)


def test_the_clock_offset_never_maps_a_slot_early_and_closes_in_on_the_fastest_round_trip():
    offset = ClockOffset()  # the store's clock is the local one plus 100 s
    offset.observe(asked=0.0, store_now=100.004, answered=0.010)  # a slow first round trip
    assert offset.local(200.0) >= 100.0, "never early"
    assert offset.uncertainty == pytest.approx(0.010)
    offset.observe(asked=1.0, store_now=101.0001, answered=1.0002)  # a fast one
    assert 100.0 <= offset.local(200.0) <= 100.0002
    assert offset.uncertainty == pytest.approx(0.0002)


@pytest.mark.serial
async def test_a_limiters_first_slot_is_followed_by_a_double_interval():
    # The first request of a process leaves late by its cold start (a new connection): the
    # slot after it, whoever takes it, is two intervals away so that nothing bunches up.
    limiter = limiter_on(MemoryStore())
    first = await limiter.acquire()
    second = await limiter.acquire()
    third = await limiter.acquire()
    interval = 1 / (20 * SAFETY_MARGIN)
    assert second - first >= 2 * interval - 1e-3
    # One interval again, not two (a timer on a busy VM wakes a few ms late: seen 5.6 ms).
    assert interval - 1e-3 <= third - second < 1.5 * interval


@pytest.mark.serial
async def test_a_stale_first_slot_given_back_is_replaced_by_one_at_once():
    # The first slot is spaced two intervals from the next; given back stale (a slow first
    # write), the store must still recognise it: the fresh slot is now, not 100 ms later.
    clock = FakeClock()
    # One clock for the limiter and its store: with the store on the real clock, the fake one
    # standing still, the fresh slot mapped after the real time that passed and never came.
    store = MemoryStore(clock=clock)
    limiter = limiter_on(store, clock=clock)
    async with limiter.turn() as turn:
        assert turn is not None
        clock.now += 0.02  # the `sending` line took 20 ms: the slot is stale
        started = time.monotonic()
        await asyncio.wait_for(turn.ready(), timeout=1.0)
    assert time.monotonic() - started < 0.05
