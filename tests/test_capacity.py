"""rate_limit="P%" against real servers, and adaptive control against real throttling.

DescribeTable's shapes come from moto (provisioned tables, an index's own capacity,
on-demand tables). moto 5.1 accepts ``OnDemandThroughput`` in CreateTable but does not
report it in DescribeTable, so an on-demand table *with* ``MaxReadRequestUnits`` is
tested against the model server, which reports and enforces it. Throttling is the model
server's too: moto never throttles.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest

import dynascan_async
from dynascan_async._capacity import Tuning
from dynascan_async.testing import serve_model
from tests.support import tables
from tests.support.faultproxy import FaultProxy
from tests.support.helpers import assert_same_items, async_client

pytestmark = pytest.mark.anyio


def _spec(name: str, *, index: bool = False, **billing: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "TableName": name,
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
        **billing,
    }
    if index:
        spec["AttributeDefinitions"].append({"AttributeName": "grp", "AttributeType": "S"})
        spec["GlobalSecondaryIndexes"] = [
            {
                "IndexName": "by-grp",
                "KeySchema": [{"AttributeName": "grp", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "ALL"},
                "ProvisionedThroughput": {"ReadCapacityUnits": 12, "WriteCapacityUnits": 5},
            }
        ]
    return spec


def _items(n: int, size: int = 10) -> list[dict[str, Any]]:
    return [
        {"pk": {"S": f"k{i:05d}"}, "grp": {"S": f"g{i % 3}"}, "pad": {"S": "x" * size}}
        for i in range(n)
    ]


async def _fill(client: Any, name: str, items: list[dict[str, Any]]) -> None:
    for start in range(0, len(items), 25):
        batch = [{"PutRequest": {"Item": item}} for item in items[start : start + 25]]
        await client.batch_write_item(RequestItems={name: batch})


async def _on_demand_table(
    client: Any, name: str, maximum: int, items: list[dict[str, Any]]
) -> None:
    """An on-demand table whose ``MaxReadRequestUnits`` is ``maximum``, holding ``items``."""
    on_demand = {"MaxReadRequestUnits": maximum}
    await client.create_table(
        **_spec(name, BillingMode="PAY_PER_REQUEST", OnDemandThroughput=on_demand)
    )
    await _fill(client, name, items)


PROVISIONED = {"ProvisionedThroughput": {"ReadCapacityUnits": 40, "WriteCapacityUnits": 5}}


# --- DescribeTable's shapes (moto) -------------------------------------------------------


async def test_share_of_a_provisioned_table_and_of_its_index(
    client: Any, loaded: tables.Loaded
) -> None:
    name = f"cap-{uuid.uuid4().hex[:8]}"
    await client.create_table(**_spec(name, index=True, **PROVISIONED))
    items = _items(30)
    await _fill(client, name, items)
    async with dynascan_async.scan(
        client, name, segments=3, rate_limit="50%", deserialize=False
    ) as scan:
        got = [item async for item in scan]
        assert scan.stats.rate_limit == 20.0
    assert_same_items(got, items)
    async with dynascan_async.scan(
        client, name, segments=2, rate_limit="25%", IndexName="by-grp", deserialize=False
    ) as scan:
        got = [item async for item in scan]
    assert scan.stats.rate_limit == 3.0  # a quarter of the index's own 12, not the table's 40
    assert_same_items(got, items)


async def test_an_absolute_rate_limit_shows_in_stats(client: Any, loaded: tables.Loaded) -> None:
    scan = dynascan_async.scan(client, tables.TINY, rate_limit=250)
    assert scan.stats.rate_limit == 250.0
    async for _ in scan:
        pass
    assert scan.stats.rate_limit == 250.0
    unlimited = dynascan_async.scan(client, tables.TINY)
    async for _ in unlimited:
        pass
    assert unlimited.stats.rate_limit is None


@pytest.mark.parametrize("form", ["with", "bare"])
@pytest.mark.parametrize("index", [None, tables.WEBLOG_INDEX])
async def test_on_demand_without_a_maximum_is_refused_before_any_scan(
    proxied_client: Any, faults: FaultProxy, form: str, index: str | None
) -> None:
    params: dict[str, Any] = {} if index is None else {"IndexName": index}
    scan = dynascan_async.scan(proxied_client, tables.WEBLOG, rate_limit="50%", **params)
    with pytest.raises(ValueError, match=r"on-demand.*rate_limit=1000") as info:
        if form == "with":
            async with scan:
                async for _ in scan:
                    pass
        else:
            async for _ in scan:
                pass
    assert repr(tables.WEBLOG) in str(info.value)
    assert faults.scan_requests == 0
    assert faults.forwarded == 0


async def test_a_missing_table_fails_at_describe_before_any_scan(
    proxied_client: Any, faults: FaultProxy
) -> None:
    scan = dynascan_async.scan(proxied_client, "no_such_table", rate_limit="10%")
    with pytest.raises(proxied_client.exceptions.ResourceNotFoundException) as info:
        async for _ in scan:
            pass
    assert getattr(info.value, "dynascan_table", None) == "no_such_table"
    assert faults.scan_requests == 0


# --- the model server: on-demand maxima, throttling, UpdateTable --------------------------


@asynccontextmanager
async def model(**options: Any) -> AsyncIterator[Any]:
    async with (
        serve_model(**options) as url,
        async_client(url, max_pool_connections=32) as client,
    ):
        yield client


async def test_share_of_an_on_demand_maximum() -> None:
    async with model() as client:
        items = _items(20)
        await _on_demand_table(client, "od-table", 300, items)
        async with dynascan_async.scan(
            client, "od-table", rate_limit="10%", deserialize=False
        ) as scan:
            got = [item async for item in scan]
        assert scan.stats.rate_limit == 30.0
        assert_same_items(got, items)


async def _scan_watching_the_rate(scan: Any) -> tuple[list[Any], list[float | None]]:
    got, rates = [], []
    async with scan:
        async for item in scan:
            got.append(item)
            rates.append(scan.stats.rate_limit)
    return got, rates


@pytest.mark.parametrize("rate_limit", [None, "100%"])
async def test_a_throttling_table_is_read_exactly_once_and_the_rate_drops(
    rate_limit: str | None,
) -> None:
    # 16 segments against a table whose maximum is 30 units a second but whose four
    # partitions serve 5 each: ~70 units to read, 20 a second after a 1-second burst.
    # Even "100%" (30) is more than it serves, so throttling is certain either way.
    async with model(partitions=4, partition_rcu=5.0) as client:
        items = _items(200, size=2500)  # ~70 units in pages of 10, eventually consistent
        await _on_demand_table(client, "hot", 30, items)
        scan = dynascan_async.scan(
            client, "hot", segments=16, Limit=10, rate_limit=rate_limit, deserialize=False
        )
        with anyio.fail_after(60):
            got, rates = await _scan_watching_the_rate(scan)
    assert_same_items(got, items)
    assert scan.stats.throttles > 0
    engaged = [rate for rate in rates if rate is not None]
    # Unlimited: the first throttle engages a rate. "100%": the rate went below 30.
    assert engaged, "the first throttle engages the rate"
    assert min(engaged) < 30.0


async def test_throttled_attempts_spend_their_estimate_so_retries_are_paced() -> None:
    # A table serving 10 units a second, read at a fixed 20 (adaptive control off) by
    # 8 segments whose backoff is a millisecond. A throttled attempt keeps the estimate
    # it drew from the bucket, so attempts, failed or not, stay within the rate. Were
    # failures refunded, the retries would go out as fast as the round trips allow
    # (thousands a second here) while the table refuses them.
    async with model() as client:
        items = _items(40, size=3000)  # one unit each, read consistently
        await _on_demand_table(client, "paced", 10, items)
        scan = dynascan_async.scan(
            client,
            "paced",
            segments=8,
            Limit=2,
            ConsistentRead=True,
            rate_limit=20,
            deserialize=False,
            retry=dynascan_async.RetryPolicy(max_attempts=10_000, base=0.001, cap=0.001),
            _tuning=Tuning(adaptive=False),
        )
        with anyio.fail_after(60):
            got, _ = await _scan_watching_the_rate(scan)
    assert_same_items(got, items)
    stats = scan.stats
    assert stats.throttles > 0
    # Pages cost 2 units (1 for the last of a segment); the estimate follows them from 1.
    budget = 20 * stats.elapsed + 20  # the rate over the scan, plus its 1-second burst
    assert stats.pages + stats.throttles <= budget, (stats, budget)


async def test_botocore_retries_count_as_throttles() -> None:
    # With botocore's own retries the library sees RetryAttempts, not the throttles.
    async with serve_model() as url:
        retries = {"mode": "standard", "total_max_attempts": 5}
        async with async_client(url, retries=retries) as client:
            await client.create_table(
                **_spec(
                    "hidden",
                    BillingMode="PAY_PER_REQUEST",
                    OnDemandThroughput={"MaxReadRequestUnits": 30},
                )
            )
            items = _items(300, size=2500)
            await _fill(client, "hidden", items)
            scan = dynascan_async.scan(
                client, "hidden", segments=16, Limit=10, deserialize=False, transport="botocore"
            )
            with anyio.fail_after(60):
                got, rates = await _scan_watching_the_rate(scan)
    assert_same_items(got, items)
    assert scan.stats.retries > 0
    assert any(rate is not None for rate in rates)


async def test_a_capacity_change_is_followed_within_a_refresh_period() -> None:
    async with model() as client:
        slow: dict[str, Any] = {
            "ProvisionedThroughput": {"ReadCapacityUnits": 4, "WriteCapacityUnits": 50}
        }
        await client.create_table(**_spec("grows", **slow))
        items = _items(200, size=700)
        await _fill(client, "grows", items)
        scan = dynascan_async.scan(
            client,
            "grows",
            segments=4,
            Limit=5,
            rate_limit="50%",
            deserialize=False,
            _tuning=Tuning(refresh=0.2),
        )
        got, rates = [], []
        with anyio.fail_after(60):
            async with scan:
                async for item in scan:
                    got.append(item)
                    rates.append(scan.stats.rate_limit)
                    if len(got) == 20:
                        await client.update_table(
                            TableName="grows",
                            ProvisionedThroughput={
                                "ReadCapacityUnits": 400,
                                "WriteCapacityUnits": 50,
                            },
                        )
    assert_same_items(got, items)
    assert rates[0] == 2.0
    assert rates[-1] == 200.0  # half of the new capacity
    # And nothing in between: the ceiling moved in one step.
    assert set(rates) == {2.0, 200.0}
