"""TokenBucket: the long-run rate, debt, estimates, FIFO order and cancellation.

Nothing here sleeps for real. ``FakeClock`` jumps forward by whatever a sleeper asks
for (good for long runs); ``ManualClock`` only moves when the test says so (good for
looking at who is waiting on what).
"""

from __future__ import annotations

import math
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import anyio.abc
import anyio.lowlevel
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dynascan_async._limiter import TokenBucket

# What TokenBucket adds to each sleep; tests allow a little more than that.
EPS = 1e-5


class FakeClock:
    """Time passes only in sleep(), which takes no real time."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, dt: float) -> None:
        self.sleeps.append(dt)
        self.now += dt
        await anyio.lowlevel.checkpoint()


class ManualClock:
    """Time passes only in advance(); sleepers stay asleep until then."""

    def __init__(self) -> None:
        self.now = 0.0
        self._sleepers: list[tuple[float, anyio.Event]] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, dt: float) -> None:
        entry = (self.now + dt, anyio.Event())
        self._sleepers.append(entry)
        try:
            await entry[1].wait()
        finally:
            self._sleepers.remove(entry)

    def advance(self, dt: float) -> None:
        self.now += dt
        for deadline, event in self._sleepers:
            if deadline <= self.now:
                event.set()


async def let_run() -> None:
    """Let every other task run until it blocks (anyio's wait_all_tasks_blocked polls
    every 0.1 s of real time; the hand-offs here take a few loop iterations)."""
    for _ in range(50):
        await anyio.lowlevel.checkpoint()


@asynccontextmanager
async def task_group() -> AsyncIterator[anyio.abc.TaskGroup]:
    """A task group that fails the test instead of hanging it (a broken bucket can
    leave a waiter asleep forever on a clock that never moves)."""
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            yield tg


def fake_bucket(rate: float, burst: float | None = None) -> tuple[TokenBucket, FakeClock]:
    clock = FakeClock()
    return TokenBucket(rate, burst=burst, clock=clock, sleep=clock.sleep), clock


def manual_bucket(rate: float, burst: float | None = None) -> tuple[TokenBucket, ManualClock]:
    clock = ManualClock()
    return TokenBucket(rate, burst=burst, clock=clock, sleep=clock.sleep), clock


# -- construction and bookkeeping ---------------------------------------------------


@pytest.mark.parametrize("rate", [0.0, -1.0, math.nan, math.inf, -math.inf])
def test_invalid_rate(rate: float) -> None:
    with pytest.raises(ValueError, match="rate"):
        TokenBucket(rate)


@pytest.mark.parametrize("burst", [0.0, -1.0, math.nan, math.inf])
def test_invalid_burst(burst: float) -> None:
    with pytest.raises(ValueError, match="burst"):
        TokenBucket(10.0, burst=burst)


@pytest.mark.parametrize(
    ("estimate", "actual", "bad"),
    [
        (-1.0, 1.0, "estimate"),
        (math.nan, 1.0, "estimate"),
        (1.0, -1.0, "actual"),
        (1.0, math.inf, "actual"),
    ],
)
def test_invalid_settle(estimate: float, actual: float, bad: str) -> None:
    bucket, _ = fake_bucket(10.0)
    with pytest.raises(ValueError, match=bad):
        bucket.settle(estimate, actual)
    assert bucket.level == 10.0


@pytest.mark.anyio
@pytest.mark.parametrize("estimate", [-1.0, math.nan, math.inf])
async def test_invalid_estimate(estimate: float) -> None:
    bucket, _ = fake_bucket(10.0)
    with pytest.raises(ValueError, match="estimate"):
        await bucket.acquire(estimate)
    assert bucket.level == 10.0
    assert bucket.waiting == 0


@pytest.mark.parametrize(
    ("rate", "burst", "expected"), [(20.0, None, 20.0), (0.25, None, 1.0), (20.0, 3.0, 3.0)]
)
def test_burst_default_and_starting_level(
    rate: float, burst: float | None, expected: float
) -> None:
    bucket, _ = fake_bucket(rate, burst)
    assert bucket.rate == rate
    assert bucket.burst == expected
    assert bucket.level == expected  # starts full


def test_refill_and_refunds_are_capped_at_burst() -> None:
    bucket, clock = fake_bucket(10.0, burst=50.0)
    bucket.settle(0.0, 80.0)
    assert bucket.level == -30.0
    clock.now += 2.0
    assert bucket.level == pytest.approx(-10.0)
    clock.now += 100.0
    assert bucket.level == 50.0
    bucket.settle(128.0, 0.0)  # a refund bigger than the room left
    assert bucket.level == 50.0


def test_repr_is_live() -> None:
    bucket, clock = fake_bucket(10.0, burst=20.0)
    bucket.settle(0.0, 25.0)
    assert repr(bucket) == "<TokenBucket rate=10.0 level=-5.00 waiting=0>"
    clock.now += 0.75
    assert repr(bucket) == "<TokenBucket rate=10.0 level=2.50 waiting=0>"


@pytest.mark.anyio
async def test_default_clock_and_sleep() -> None:
    bucket = TokenBucket(1000.0, burst=5.0)
    await bucket.acquire(2.0)
    assert 2.9 < bucket.level <= 5.0
    bucket.settle(2.0, 0.0)
    assert bucket.level == 5.0


# -- rate and debt ------------------------------------------------------------------


async def run_sequential(
    bucket: TokenBucket, clock: FakeClock, costs: list[tuple[float, float]]
) -> tuple[float, float]:
    """Acquire/settle once per (estimate, actual); then wait for the debt to be repaid.

    Returns (total charged, fake time elapsed).
    """
    start = clock.now
    charged = 0.0
    for estimate, actual in costs:
        await bucket.acquire(estimate)
        bucket.settle(estimate, actual)
        charged += actual
    await bucket.acquire()  # the last page's debt is part of the bill
    return charged, clock.now - start


@pytest.mark.anyio
@pytest.mark.parametrize("estimate", [0.0, 32.0, 128.0])
async def test_long_run_rate(estimate: float) -> None:
    rate = 100.0
    bucket, clock = fake_bucket(rate)
    rng = random.Random(20240601)
    costs = [(estimate, rng.uniform(0.5, 128.0)) for _ in range(2000)]

    charged, elapsed = await run_sequential(bucket, clock, costs)

    assert elapsed > 1000.0  # ~128,000 RCU at 100 RCU/s
    assert charged / elapsed == pytest.approx(rate, rel=0.01)
    # Never more than the rate allows, plus the one burst the bucket started with.
    assert charged <= rate * elapsed + bucket.burst + 1e-6


@settings(max_examples=50, deadline=None, database=None)
@given(
    rate=st.floats(0.5, 500.0),
    burst=st.one_of(st.none(), st.floats(0.5, 300.0)),
    costs=st.lists(
        st.tuples(st.floats(0.0, 256.0), st.floats(0.0, 256.0)), min_size=1, max_size=150
    ),
)
def test_long_run_rate_property(
    rate: float, burst: float | None, costs: list[tuple[float, float]]
) -> None:
    bucket, clock = fake_bucket(rate, burst)
    charged, elapsed = anyio.run(run_sequential, bucket, clock, costs, backend="asyncio")
    tolerance = 1e-9 * (charged + rate * elapsed) + 1e-9
    # Under continuous demand the bucket neither admits more than rate * time plus the
    # starting burst, nor leaves capacity unused: every sleep ends just above zero.
    assert rate * elapsed - tolerance <= charged <= rate * elapsed + bucket.burst + tolerance


@pytest.mark.anyio
async def test_debt_is_repaid_before_the_next_grant() -> None:
    bucket, clock = fake_bucket(10.0)
    await bucket.acquire()
    bucket.settle(0.0, 110.0)
    assert bucket.level == pytest.approx(-100.0)

    await bucket.acquire()

    assert clock.now == pytest.approx(10.0, abs=EPS)
    # One sleep for exactly the debt: no polling.
    assert clock.sleeps == [pytest.approx(10.0, abs=EPS)]
    assert 0.0 < bucket.level < 10.0 * EPS


@pytest.mark.anyio
async def test_debt_added_during_the_sleep_is_waited_out() -> None:
    bucket, clock = manual_bucket(1.0)
    bucket.settle(0.0, 11.0)  # level -10
    granted: list[float] = []

    async def waiter() -> None:
        await bucket.acquire()
        granted.append(clock.now)

    async with task_group() as tg:
        tg.start_soon(waiter)
        await let_run()
        bucket.settle(0.0, 5.0)  # more debt while the head sleeps: level -15
        clock.advance(10.5)
        await let_run()
        assert granted == []  # woke up, found -4.5, went back to sleep
        assert bucket.waiting == 1
        clock.advance(5.0)
    assert granted == [15.5]
    assert bucket.level == pytest.approx(0.5)


@pytest.mark.anyio
async def test_refund_wakes_the_head_early() -> None:
    bucket, clock = manual_bucket(1.0, burst=10.0)
    bucket.settle(0.0, 110.0)  # level -100: the head will sleep for 100 s
    granted = anyio.Event()

    async def waiter() -> None:
        await bucket.acquire()
        granted.set()

    async with task_group() as tg:
        tg.start_soon(waiter)
        await let_run()
        bucket.settle(0.0, 5.0)  # more debt does not wake it
        await let_run()
        assert not granted.is_set()
        bucket.settle(200.0, 0.0)  # a big refund does
        await let_run()
        assert granted.is_set()
    assert clock.now == 0.0
    assert bucket.level == 10.0


@pytest.mark.anyio
@pytest.mark.parametrize(("estimate", "second_grant_at"), [(0.0, 0.0), (5.0, 4.0)])
async def test_estimate_is_deducted_at_grant(estimate: float, second_grant_at: float) -> None:
    bucket, clock = fake_bucket(1.0)  # balance 1
    grants: list[float] = []

    async def request() -> None:
        await bucket.acquire(estimate)
        grants.append(clock.now)

    async with task_group() as tg:
        tg.start_soon(request)
        tg.start_soon(request)
    # With an estimate of 5 the first request takes the balance to -4, and the second
    # waits for it; with no estimate both slip through on the same positive balance.
    assert grants == [0.0, pytest.approx(second_grant_at, abs=EPS)]


# -- fairness -----------------------------------------------------------------------


@pytest.mark.anyio
async def test_segments_are_served_round_robin() -> None:
    rate = cost = 10.0
    bucket, clock = fake_bucket(rate)
    grants: list[int] = []

    async def segment(n: int) -> None:
        while clock.now < 50.0:
            await bucket.acquire(cost)
            grants.append(n)
            await anyio.lowlevel.checkpoint()  # the request
            bucket.settle(cost, cost)

    async with task_group() as tg:
        for n in range(4):
            tg.start_soon(segment, n)

    first_round = grants[:4]
    assert sorted(first_round) == [0, 1, 2, 3]
    assert len(grants) >= 40
    assert grants == [first_round[i % 4] for i in range(len(grants))]
    counts = [grants.count(n) for n in range(4)]
    assert max(counts) - min(counts) <= 1
    # The starting balance paid for the first page; the last one is still owed.
    assert clock.now == pytest.approx((len(grants) - 2) * cost / rate, abs=0.01)


@pytest.mark.anyio
async def test_fifo_with_varied_costs() -> None:
    bucket, _ = fake_bucket(50.0)
    rng = random.Random(7)
    grants: list[int] = []

    async def segment(n: int) -> None:
        for _ in range(25):
            await bucket.acquire(64.0)
            grants.append(n)
            await anyio.lowlevel.checkpoint()
            bucket.settle(64.0, rng.uniform(0.5, 128.0))

    async with task_group() as tg:
        for n in range(5):
            tg.start_soon(segment, n)

    # Cheap and expensive pages alike: everyone gets one turn per round.
    first_round = grants[:5]
    assert sorted(first_round) == list(range(5))
    assert grants == first_round * 25


@pytest.mark.anyio
async def test_late_arrival_does_not_jump_the_queue() -> None:
    bucket, clock = manual_bucket(1.0)
    bucket.settle(0.0, 1.0)  # level 0: the next ones must wait
    grants: list[str] = []

    async def waiter(name: str) -> None:
        await bucket.acquire()
        grants.append(name)

    async with task_group() as tg:
        tg.start_soon(waiter, "first")
        await let_run()
        tg.start_soon(waiter, "second")
        await let_run()
        assert bucket.waiting == 2

        bucket.settle(1.0, 0.0)  # the balance is positive again, two tasks still queued
        assert bucket.level > 0
        await bucket.acquire()
        grants.append("late")

    assert grants == ["first", "second", "late"]
    assert clock.now == 0.0


# -- cancellation -------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("cancelled", [0, 1, 2], ids=["head", "middle", "last"])
async def test_cancelled_waiter_is_not_charged(cancelled: int) -> None:
    bucket, clock = manual_bucket(1.0)
    bucket.settle(0.0, 1.0)  # level 0
    scopes = [anyio.CancelScope() for _ in range(3)]
    grants: list[tuple[int, float]] = []
    outcome: dict[int, str] = {}

    async def waiter(n: int) -> None:
        # The cancelled one asks for a lot, so that charging it would show.
        estimate = 5.0 if n == cancelled else 1.0
        with scopes[n]:
            await bucket.acquire(estimate)
            grants.append((n, clock.now))
            outcome[n] = "granted"
            return
        outcome[n] = "cancelled"

    async with task_group() as tg:
        for n in range(3):
            tg.start_soon(waiter, n)
            await let_run()
        assert bucket.waiting == 3
        before = bucket.level

        scopes[cancelled].cancel()  # from another task, while it waits
        await let_run()
        assert outcome == {cancelled: "cancelled"}
        assert bucket.waiting == 2
        assert bucket.level == before

        for _ in range(40):  # ten seconds of fake time, at most
            if len(grants) == 2:
                break
            clock.advance(0.25)
            await let_run()

    others = [n for n in range(3) if n != cancelled]
    # The next waiter is served at the first tick, the one after it a second later
    # (not five: the cancelled waiter's estimate was never charged).
    assert grants == [(others[0], 0.25), (others[1], 1.25)]
    assert bucket.level == pytest.approx(-0.75)
    assert bucket.waiting == 0


# -- changing the rate (adaptive control does it while segments wait) ----------------


def test_rate_change_credits_elapsed_time_at_the_old_rate() -> None:
    bucket, clock = manual_bucket(10.0)
    assert bucket.burst == 10.0
    bucket.settle(0.0, 30.0)  # level -20
    clock.advance(1.0)  # +10 at the old rate: -10
    bucket.rate = 2.0
    assert bucket.rate == 2.0
    assert bucket.burst == 2.0
    assert bucket.level == pytest.approx(-10.0)
    clock.advance(1.0)
    assert bucket.level == pytest.approx(-8.0)
    bucket.rate = 50.0
    clock.advance(1.0)
    assert bucket.level == pytest.approx(42.0)
    bucket.rate = 5.0  # savings made at a high rate do not carry over to a low one
    assert bucket.level == 5.0
    with pytest.raises(ValueError, match="rate"):
        bucket.rate = 0.0
    fixed, _ = manual_bucket(10.0, burst=3.0)
    fixed.rate = 100.0
    assert fixed.burst == 3.0  # a burst given explicitly stays


@pytest.mark.anyio
async def test_rate_change_retimes_the_head_and_keeps_the_order() -> None:
    bucket, clock = manual_bucket(1.0, burst=1.0)
    bucket.settle(0.0, 101.0)  # level -100: 100 s at 1 RCU/s
    order: list[int] = []

    async def waiter(n: int) -> None:
        await bucket.acquire(1.0)
        order.append(n)

    async with task_group() as tg:
        for n in range(3):
            tg.start_soon(waiter, n)
            await let_run()
        bucket.rate = 100.0  # now the debt is repaid in 1 s, not 100
        await let_run()
        clock.advance(1.01)
        await let_run()
        assert order == [0]
        for _ in range(4):
            clock.advance(0.011)
            await let_run()
        assert order == [0, 1, 2]
    assert clock.now < 2.0
