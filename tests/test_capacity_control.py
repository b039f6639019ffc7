"""The capacity controller on a fake clock: drops, climbs, the ceiling, the share, refresh.

Pure logic: no server, no sleeping. The clock moves only when a test moves it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from dynascan_async._capacity import Controller, Tuning, capacity_of, parse_share
from dynascan_async._limiter import TokenBucket
from dynascan_async._stats import Counters


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make(
    clock: Clock,
    *,
    rate_limit: float | None = None,
    share: float | None = None,
    described: list[Any] | None = None,
    index: str | None = None,
    **tuning: Any,
) -> tuple[Controller, Counters, list[int]]:
    counters = Counters(4, 0)
    calls: list[int] = []

    async def describe() -> Mapping[str, Any]:
        calls.append(1)
        assert described, "DescribeTable asked more often than the test expects"
        answer = described.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return dict(answer)

    control = Controller(
        rate_limit=rate_limit,
        share=share,
        table="t",
        index=index,
        counters=counters,
        describe=describe if share is not None else None,
        adaptive=True,
        tuning=Tuning(clock=clock, **tuning),
    )
    return control, counters, calls


def run_at(control: Controller, clock: Clock, rate: float, seconds: float, page: float) -> None:
    """Pages of ``page`` RCU coming back at ``rate`` RCU/s for ``seconds``."""
    end = clock.now + seconds
    while clock.now < end:
        clock.now += page / rate
        control.succeeded(page, clock.now - 0.01)


def provisioned(rcu: int, **extra: Any) -> dict[str, Any]:
    return {"Table": {"ProvisionedThroughput": {"ReadCapacityUnits": rcu}, **extra}}


# --- parse_share and capacity_of --------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "share"), [("50%", 0.5), ("100%", 1.0), (" 12.5 % ", 0.125), ("0.1%", 0.001)]
)
def test_parse_share(text: str, share: float) -> None:
    assert parse_share(text) == pytest.approx(share)


@pytest.mark.parametrize("text", ["0%", "100.01%", "-5%", "50", "%", "abc%", "nan%", "1e2%"])
def test_parse_share_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="rate_limit"):
        parse_share(text)


def test_capacity_of_shapes() -> None:
    gsi = {"IndexName": "g", "ProvisionedThroughput": {"ReadCapacityUnits": 12}}
    lsi = {"IndexName": "l"}
    table = provisioned(40, GlobalSecondaryIndexes=[gsi], LocalSecondaryIndexes=[lsi])
    assert capacity_of(table, table="t", index=None) == 40
    assert capacity_of(table, table="t", index="g") == 12
    assert capacity_of(table, table="t", index="l") == 40  # a local index shares the table's
    with pytest.raises(ValueError, match="no such index"):
        capacity_of(table, table="t", index="nope")
    on_demand: dict[str, Any] = {
        "BillingModeSummary": {"BillingMode": "PAY_PER_REQUEST"},
        "ProvisionedThroughput": {"ReadCapacityUnits": 0},
        "OnDemandThroughput": {"MaxReadRequestUnits": 300, "MaxWriteRequestUnits": -1},
        "GlobalSecondaryIndexes": [{"IndexName": "g", "OnDemandThroughput": {}}],
    }
    assert capacity_of({"Table": on_demand}, table="t", index=None) == 300
    with pytest.raises(ValueError, match=r"index 'g' of table 't'.*rate_limit=1000"):
        capacity_of({"Table": on_demand}, table="t", index="g")
    unlimited = {**on_demand, "OnDemandThroughput": {"MaxReadRequestUnits": -1}}
    with pytest.raises(ValueError, match=r"table 't'.*MaxReadRequestUnits"):
        capacity_of({"Table": unlimited}, table="t", index=None)


# --- adaptive control ------------------------------------------------------------------


def test_a_ceiling_holds_until_a_throttle() -> None:
    clock = Clock()
    control, counters, _ = make(clock, rate_limit=200.0)
    assert isinstance(control.bucket, TokenBucket)
    assert control.bucket.rate == counters.rate_limit == 200.0
    run_at(control, clock, 200.0, 5.0, page=10.0)
    assert control.rate == 200.0


def test_throttle_drops_once_per_event_then_climbs_back_to_the_ceiling() -> None:
    clock = Clock()
    control, counters, _ = make(clock, rate_limit=200.0)
    run_at(control, clock, 200.0, 3.0, page=10.0)
    sent = clock.now - 0.01
    control.throttled(sent)
    assert control.rate == pytest.approx(0.7 * 200.0, rel=0.03)  # measured ~ 200
    assert counters.rate_limit == control.rate
    assert control.bucket is not None
    assert control.bucket.rate == control.rate
    dropped = control.rate
    # The other requests in flight come back throttled too: the same event, no new drop.
    for _ in range(15):
        control.throttled(sent)
    clock.now += 0.1
    control.throttled(clock.now - 0.05)  # sent after the drop, but within min_interval
    assert control.rate == dropped
    # Climbing: concave towards the rate that throttled (w_max) after `recover` seconds.
    rates = []
    for _ in range(12):
        run_at(control, clock, dropped, 0.5, page=1.0)
        assert control.rate is not None
        rates.append(control.rate)
    assert rates == sorted(rates)
    assert rates[-1] <= 200.0
    gains = [b - a for a, b in itertools.pairwise(rates)][:8]
    assert gains[0] > gains[-1]  # concave: fast at first, flat near w_max
    run_at(control, clock, 200.0, 10.0, page=1.0)
    assert control.rate == counters.rate_limit == 200.0  # never above the ceiling


def test_repeated_throttling_keeps_dropping_but_not_below_the_floor() -> None:
    clock = Clock()
    control, _, _ = make(clock, rate_limit=100.0)
    for _ in range(60):
        clock.now += 0.6
        control.throttled(clock.now - 0.01)
    assert control.rate == 1.0
    clock.now += 0.6
    control.throttled(clock.now - 0.01)
    assert control.rate == 1.0


def test_a_drop_follows_the_measured_rate_when_the_bucket_is_not_binding() -> None:
    clock = Clock()
    control, _, _ = make(clock, rate_limit=1000.0)
    run_at(control, clock, 100.0, 5.0, page=5.0)  # latency-bound at 100 RCU/s
    control.throttled(clock.now - 0.01)
    assert control.rate == pytest.approx(70.0, rel=0.05)


def test_unlimited_engages_on_the_first_throttle_and_releases_later() -> None:
    clock = Clock()
    control, counters, _ = make(clock)
    assert control.bucket is None
    assert counters.rate_limit is None
    run_at(control, clock, 500.0, 3.0, page=20.0)
    control.throttled(clock.now - 0.01)
    bucket: TokenBucket | None = control.bucket  # (mypy narrowed control.bucket to None)
    assert bucket is not None
    assert control.rate == pytest.approx(350.0, rel=0.05)
    assert bucket.level <= 0  # no burst saved at the old rate goes out
    run_at(control, clock, 350.0, 6.0, page=5.0)
    assert control.rate == pytest.approx(500.0, rel=0.05)  # back near w_max after K
    run_at(control, clock, 500.0, 15.0, page=5.0)
    assert control.bucket is None
    assert control.rate is None
    assert counters.rate_limit is None


def test_throttled_before_anything_was_read_starts_at_the_floor() -> None:
    clock = Clock()
    control, _, _ = make(clock)
    control.throttled(clock.now)
    assert control.rate == 1.0


def test_adaptive_off_ignores_throttles() -> None:
    clock = Clock()
    control, _, _ = make(clock, rate_limit=50.0, adaptive=False)
    control.throttled(clock.now)
    assert control.rate == 50.0
    control2, counters, _ = make(clock, adaptive=False)
    control2.throttled(clock.now)
    assert control2.bucket is None
    assert counters.rate_limit is None


# --- the share and its refresh ----------------------------------------------------------


@pytest.mark.anyio
async def test_share_is_read_first_then_refreshed_on_its_period() -> None:
    clock = Clock()
    described: list[Any] = [provisioned(400), provisioned(800), RuntimeError("down")]
    control, counters, calls = make(clock, share=0.5, described=described, refresh=60.0)
    assert control.bucket is None
    assert control.due()
    await control.refresh()
    assert control.rate == counters.rate_limit == 200.0
    assert calls == [1]
    clock.now += 59.0
    assert not control.due()
    clock.now += 1.0
    assert control.due()
    await control.refresh()  # auto scaling doubled the table: followed at once
    assert control.ceiling == control.rate == 400.0
    clock.now += 60.0
    await control.refresh()  # a failed refresh keeps the figure it had
    assert control.rate == 400.0
    assert len(calls) == 3
    assert not control.due()


@pytest.mark.anyio
async def test_a_refresh_while_recovering_caps_the_rate_or_ends_the_recovery() -> None:
    clock = Clock()
    described = [provisioned(100), provisioned(50), provisioned(50), provisioned(300)]
    control, _, _ = make(clock, share=1.0, described=described)
    await control.refresh()
    run_at(control, clock, 100.0, 2.0, page=5.0)
    control.throttled(clock.now - 0.01)
    assert control.rate == pytest.approx(70.0, rel=0.05)
    clock.now += 200.0
    await control.refresh()
    assert control.ceiling == 50.0
    assert control.rate == 50.0  # lowered below the rate: capped
    run_at(control, clock, 50.0, 2.0, page=5.0)
    control.throttled(clock.now - 0.01)
    assert control.rate == pytest.approx(35.0, rel=0.05)
    clock.now += 0.2
    control.succeeded(1.0, clock.now)
    recovering = control.rate
    clock.now += 100.0
    await control.refresh()  # the same capacity: the recovery goes on
    assert control.rate == recovering
    clock.now += 200.0
    await control.refresh()  # raised: followed at once, and the recovery is over
    assert control.ceiling == 300.0
    assert control.rate == 300.0
    run_at(control, clock, 300.0, 2.0, page=5.0)
    assert control.rate == 300.0


@pytest.mark.anyio
async def test_the_first_reading_is_awaited_by_everyone_and_its_error_raised() -> None:
    clock = Clock()
    on_demand = {"Table": {"BillingModeSummary": {"BillingMode": "PAY_PER_REQUEST"}}}
    control, _, calls = make(clock, share=0.5, described=[on_demand])
    with pytest.raises(ValueError, match="on-demand"):
        await control.refresh()
    assert calls == [1]
    assert control.bucket is None

    gate = anyio.Event()
    control, _, calls = make(clock, share=0.5, described=[provisioned(10)])
    original = control._describe
    assert original is not None

    async def slow() -> Mapping[str, Any]:
        await gate.wait()
        return await original()

    control._describe = slow
    seen: list[float | None] = []

    async def worker() -> None:
        await control.refresh()
        seen.append(control.rate)

    async with anyio.create_task_group() as tg:
        for _ in range(3):
            tg.start_soon(worker)
        for _ in range(5):
            await anyio.lowlevel.checkpoint()
        assert seen == []  # nobody goes on before the first reading is in
        gate.set()
    assert seen == [5.0, 5.0, 5.0]
    assert calls == [1]
    assert not math.isinf(control.rate or math.inf)


def test_a_rate_still_far_too_high_drops_again_at_once() -> None:
    clock = Clock()
    control, _, _ = make(clock)
    run_at(control, clock, 1000.0, 1.0, page=10.0)  # the table's burst, read flat out
    control.throttled(clock.now - 0.01)
    first = control.rate
    assert first is not None
    assert first == pytest.approx(700.0, rel=0.05)
    w_max = control.w_max
    # Most requests sent since are throttled too: drop again, well within min_interval.
    for _ in range(2):
        clock.now += 0.01
        control.throttled(clock.now - 0.005)
    assert control.rate == first  # two are not enough to tell
    clock.now += 0.01
    control.throttled(clock.now - 0.005)
    assert control.rate == pytest.approx(first / 4)  # quartered: far too high
    assert control.w_max == w_max  # the episode's w_max, kept for the release
    # A few throttles among many reads right after a drop are the same event.
    second = control.rate
    for _ in range(10):
        clock.now += 0.01
        control.succeeded(5.0, clock.now - 0.005)
    for _ in range(5):
        clock.now += 0.01
        control.throttled(clock.now - 0.005)
    assert control.rate >= second


def test_a_page_retried_into_the_same_debt_counts_once_towards_a_fast_drop() -> None:
    clock = Clock()
    control, _, _ = make(clock)
    run_at(control, clock, 1000.0, 1.0, page=10.0)
    control.throttled(clock.now - 0.01)
    first = control.rate
    # One page, throttled again and again since the drop: not "most requests failing".
    for _ in range(6):
        clock.now += 0.01
        control.throttled(clock.now - 0.005, again=True)
    assert control.rate == first
    # Three different pages are.
    for _ in range(3):
        clock.now += 0.01
        control.throttled(clock.now - 0.005)
    assert first is not None
    assert control.rate == pytest.approx(first / 4)


def _fast_drop(control: Controller, clock: Clock) -> None:
    """Three requests sent since the last drop, all throttled, 10 ms apart."""
    for _ in range(3):
        clock.now += 0.01
        control.throttled(clock.now - 0.005)


def test_after_a_fast_drop_the_rate_doubles_until_the_next_throttle() -> None:
    clock = Clock()
    control, _, _ = make(clock)
    run_at(control, clock, 2000.0, 0.2, page=10.0)  # the table's burst, read flat out
    control.throttled(clock.now - 0.01)
    _fast_drop(control, clock)
    _fast_drop(control, clock)
    low = control.rate
    assert low is not None
    assert low == pytest.approx(0.7 * 2000.0 / 16, rel=0.1)
    # Not a cubic race back to the burst's 2000 (that took 0.5 s to reach 400 before):
    # twice the rate every half second, whatever the table serves meanwhile.
    rates = []
    for _ in range(4):
        run_at(control, clock, control.rate or 0.0, 0.5, page=1.0)
        rates.append(control.rate or 0.0)
    for got, doublings in zip(rates, (1, 2, 3, 4), strict=True):
        assert got == pytest.approx(low * 2**doublings, rel=0.15)
    # The next throttle is a regular drop, from what the table served: cubic from there.
    probed = rates[-1]
    clock.now += 0.6
    control.throttled(clock.now - 0.01)
    assert control.rate is not None
    assert control.rate < probed
    assert control.w_max <= probed
    before = control.rate
    run_at(control, clock, before, 1.0, page=1.0)
    assert before < (control.rate or 0.0) < control.w_max  # climbing, concave, below w_max


def test_fast_drops_belong_to_the_first_episode_only() -> None:
    clock = Clock()
    control, _, _ = make(clock, rate_limit=400.0)
    run_at(control, clock, 400.0, 2.0, page=10.0)
    control.throttled(clock.now - 0.01)  # the first episode: a ceiling the table refuses
    first = control.rate
    assert first is not None
    _fast_drop(control, clock)
    assert control.rate == pytest.approx(first / 4)
    run_at(control, clock, control.rate or 0.0, 3.0, page=1.0)
    clock.now += 0.6
    control.throttled(clock.now - 0.01)  # a later episode: a regular drop ...
    second = control.rate
    assert second is not None
    # ... and requests failing right after it are the table repaying the overshoot's
    # debt, not a rate far too high: no fast drop until min_interval has passed.
    _fast_drop(control, clock)
    _fast_drop(control, clock)
    assert control.rate == second
    clock.now += 0.5
    control.throttled(clock.now - 0.01)
    assert control.rate < second  # a regular drop, once min_interval has passed
