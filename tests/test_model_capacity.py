"""The model server's capacity: on-demand maxima, partitions, UpdateTable, DescribeTable,
other traffic (BackgroundReader), and the private BulkLoad.

All through a real aiobotocore client that does not retry, against the model in-process
(``serve_model``); DescribeTable's common shape is also compared with moto's.
"""

from __future__ import annotations
import __future__

import asyncio
import types
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import ClientError
from hypothesis import given
from hypothesis import strategies as st

import dynascan_async
import dynascan_async.testing
import dynascan_async.testing.model
from dynascan_async.testing import BackgroundReader, bulk_load, serve_model
from dynascan_async.testing.model._values import check_value, number, number_size

INDEX = "grp-index"


@asynccontextmanager
async def _client(url: str) -> AsyncIterator[Any]:
    config = AioConfig(retries={"total_max_attempts": 1}, max_pool_connections=32)
    async with get_session().create_client(
        "dynamodb",
        endpoint_url=url,
        region_name="us-east-1",
        config=config,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ) as client:
        yield client


def _table_spec(name: str, **billing: Any) -> dict[str, Any]:
    index: dict[str, Any] = {
        "IndexName": INDEX,
        "KeySchema": [{"AttributeName": "grp", "KeyType": "HASH"}],
        "Projection": {"ProjectionType": "ALL"},
    }
    if "ProvisionedThroughput" in billing:  # an index has its own; the same here
        index["ProvisionedThroughput"] = billing["ProvisionedThroughput"]
    return {
        "TableName": name,
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
        "AttributeDefinitions": [
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "grp", "AttributeType": "S"},
        ],
        "GlobalSecondaryIndexes": [index],
        **billing,
    }


async def _create(client: Any, name: str, n_items: int = 40, **billing: Any) -> None:
    await client.create_table(**_table_spec(name, **billing))
    for start in range(0, n_items, 25):
        batch = [
            {"PutRequest": {"Item": {"pk": {"S": f"k{n}"}, "grp": {"S": f"g{n % 3}"}}}}
            for n in range(start, min(start + 25, n_items))
        ]
        await client.batch_write_item(RequestItems={name: batch})


async def _reads_until_throttled(
    client: Any, name: str, attempts: int = 50, **params: Any
) -> tuple[int, ClientError | None]:
    """Back-to-back one-unit reads; how many were served before the first refusal."""
    served = 0
    try:
        for served in range(attempts):  # noqa: B007 - served is the count at a refusal
            if params:
                consistent = "IndexName" not in params  # an index reads eventually consistent
                await client.scan(TableName=name, ConsistentRead=consistent, Limit=1, **params)
            else:
                await client.get_item(TableName=name, Key={"pk": {"S": "k1"}}, ConsistentRead=True)
    except ClientError as error:
        return served, error
    return attempts, None


async def _until(condition: Callable[[], bool]) -> None:
    """Wait (at most 10 s) until ``condition()`` holds."""
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not reached within 10 s")


def _reasons(error: ClientError) -> list[dict[str, str]]:
    response: dict[str, Any] = dict(error.response)
    reasons: list[dict[str, str]] = response.get("ThrottlingReasons") or response.get(
        "throttlingReasons", []
    )
    return reasons


# --- on-demand maximum throughput ---------------------------------------------------------


@pytest.mark.anyio
async def test_on_demand_maximum_throttles_with_throttling_exception() -> None:
    async with serve_model() as url, _client(url) as client:
        await _create(
            client,
            "capped",
            BillingMode="PAY_PER_REQUEST",
            OnDemandThroughput={"MaxReadRequestUnits": 2},
        )
        served, error = await _reads_until_throttled(client, "capped")
        assert error is not None, "50 one-unit reads at once must exceed 2 units a second"
        assert 2 <= served <= 5  # a 1-second burst of 2 units, then refusals
        assert error.response["Error"]["Code"] == "ThrottlingException"
        assert _reasons(error)[0]["reason"] == "TableReadMaxOnDemandThroughputExceeded"
        # The table's own limit does not touch its index, which has no maximum.
        for _ in range(20):
            await client.scan(TableName="capped", IndexName=INDEX, Limit=1)


@pytest.mark.anyio
async def test_on_demand_without_maximum_is_not_limited_as_a_whole() -> None:
    async with serve_model() as url, _client(url) as client:
        await _create(client, "uncapped", BillingMode="PAY_PER_REQUEST")
        served, error = await _reads_until_throttled(client, "uncapped", attempts=100)
        assert error is None
        assert served == 100


@pytest.mark.anyio
async def test_on_demand_partitions_throttle_separately() -> None:
    async with serve_model(partitions=4, partition_rcu=2.0) as url, _client(url) as client:
        await _create(client, "parts", n_items=200, BillingMode="PAY_PER_REQUEST")
        served, error = await _reads_until_throttled(client, "parts", Segment=0, TotalSegments=4)
        assert error is not None
        assert 2 <= served <= 5
        assert error.response["Error"]["Code"] == "ProvisionedThroughputExceededException"
        [reason] = _reasons(error)
        assert reason["reason"] == "TableReadKeyRangeThroughputExceeded"
        assert reason["resource"].endswith(":table/parts")
        # Partition 0 is out of capacity; the other three are not.
        for segment in (1, 2, 3):
            await client.scan(
                TableName="parts", Segment=segment, TotalSegments=4, Limit=1, ConsistentRead=True
            )


# --- UpdateTable: capacity changes take effect at once ------------------------------------


@pytest.mark.anyio
async def test_update_table_raises_and_lowers_provisioned_capacity_at_once() -> None:
    throughput = {"ReadCapacityUnits": 1, "WriteCapacityUnits": 1}
    async with serve_model() as url, _client(url) as client:
        await _create(client, "prov", BillingMode="PROVISIONED", ProvisionedThroughput=throughput)
        served, error = await _reads_until_throttled(client, "prov")
        assert error is not None
        assert served <= 3
        assert error.response["Error"]["Code"] == "ProvisionedThroughputExceededException"
        assert _reasons(error)[0]["reason"] == "TableReadProvisionedThroughputExceeded"

        answer = await client.update_table(
            TableName="prov",
            ProvisionedThroughput={"ReadCapacityUnits": 1000, "WriteCapacityUnits": 1},
        )
        assert answer["TableDescription"]["ProvisionedThroughput"]["ReadCapacityUnits"] == 1000
        served, error = await _reads_until_throttled(client, "prov")
        assert error is None
        assert served == 50

        await client.update_table(TableName="prov", ProvisionedThroughput=throughput)
        served, error = await _reads_until_throttled(client, "prov")
        assert error is not None
        assert served <= 3
        described = await client.describe_table(TableName="prov")
        assert described["Table"]["ProvisionedThroughput"]["ReadCapacityUnits"] == 1


@pytest.mark.anyio
async def test_update_table_changes_an_index_and_an_on_demand_maximum() -> None:
    async with serve_model() as url, _client(url) as client:
        await _create(
            client,
            "odt",
            BillingMode="PAY_PER_REQUEST",
            OnDemandThroughput={"MaxReadRequestUnits": 1000},
        )
        await client.update_table(
            TableName="odt",
            OnDemandThroughput={"MaxReadRequestUnits": 1},
            GlobalSecondaryIndexUpdates=[
                {"Update": {"IndexName": INDEX, "OnDemandThroughput": {"MaxReadRequestUnits": 1}}}
            ],
        )
        served, error = await _reads_until_throttled(client, "odt")
        assert error is not None
        assert served <= 3
        served, error = await _reads_until_throttled(client, "odt", IndexName=INDEX)
        assert error is not None
        assert served <= 3
        assert _reasons(error)[0]["reason"] == "IndexReadMaxOnDemandThroughputExceeded"
        assert _reasons(error)[0]["resource"].endswith(f":table/odt/index/{INDEX}")

        # -1 removes the maximum.
        await client.update_table(TableName="odt", OnDemandThroughput={"MaxReadRequestUnits": -1})
        served, error = await _reads_until_throttled(client, "odt")
        assert error is None
        table = (await client.describe_table(TableName="odt"))["Table"]
        assert table["OnDemandThroughput"]["MaxReadRequestUnits"] == -1
        assert table["GlobalSecondaryIndexes"][0]["OnDemandThroughput"]["MaxReadRequestUnits"] == 1


@pytest.mark.anyio
async def test_update_table_switches_billing_mode() -> None:
    async with serve_model() as url, _client(url) as client:
        await _create(client, "switch", BillingMode="PAY_PER_REQUEST")
        with pytest.raises(ClientError) as excinfo:
            await client.update_table(TableName="switch", BillingMode="PROVISIONED")
        assert excinfo.value.response["Error"]["Code"] == "ValidationException"
        units = {"ReadCapacityUnits": 1, "WriteCapacityUnits": 1}
        await client.update_table(
            TableName="switch",
            BillingMode="PROVISIONED",
            ProvisionedThroughput=units,
            GlobalSecondaryIndexUpdates=[
                {"Update": {"IndexName": INDEX, "ProvisionedThroughput": units}}
            ],
        )
        table = (await client.describe_table(TableName="switch"))["Table"]
        assert table["BillingModeSummary"]["BillingMode"] == "PROVISIONED"
        assert "OnDemandThroughput" not in table
        served, error = await _reads_until_throttled(client, "switch")
        assert error is not None
        assert served <= 3
        with pytest.raises(ClientError) as excinfo:
            await client.update_table(
                TableName="switch", OnDemandThroughput={"MaxReadRequestUnits": 5}
            )
        assert excinfo.value.response["Error"]["Code"] == "ValidationException"


@pytest.mark.anyio
async def test_a_scan_follows_a_capacity_change() -> None:
    """The library's scan, throttled at 1 RCU, finishes once UpdateTable raises capacity."""
    throughput = {"ReadCapacityUnits": 1, "WriteCapacityUnits": 1}
    async with serve_model() as url, _client(url) as client:
        await _create(
            client, "follow", 60, BillingMode="PROVISIONED", ProvisionedThroughput=throughput
        )

        async def raise_capacity() -> None:
            await asyncio.sleep(0.3)
            await client.update_table(
                TableName="follow",
                ProvisionedThroughput={"ReadCapacityUnits": 10_000, "WriteCapacityUnits": 1},
            )

        with anyio.fail_after(30):
            raiser = asyncio.create_task(raise_capacity())
            async with dynascan_async.scan(
                client,
                "follow",
                segments=4,
                Limit=1,
                ConsistentRead=True,
                retry=dynascan_async.RetryPolicy(max_attempts=100, base=0.01, cap=0.1),
            ) as scan:
                items = [item async for item in scan]
            await raiser
    assert len(items) == 60
    assert scan.stats.throttles > 0


# --- DescribeTable ------------------------------------------------------------------------


@pytest.mark.anyio
async def test_describe_table_reports_what_the_model_enforces() -> None:
    async with serve_model() as url, _client(url) as client:
        await _create(
            client,
            "prov-shape",
            10,
            BillingMode="PROVISIONED",
            ProvisionedThroughput={"ReadCapacityUnits": 400, "WriteCapacityUnits": 5},
        )
        table = (await client.describe_table(TableName="prov-shape"))["Table"]
        assert table["BillingModeSummary"] == {"BillingMode": "PROVISIONED"}
        assert table["ProvisionedThroughput"]["ReadCapacityUnits"] == 400
        assert table["ProvisionedThroughput"]["WriteCapacityUnits"] == 5
        assert "OnDemandThroughput" not in table
        assert table["ItemCount"] == 10
        assert table["TableSizeBytes"] > 0
        [index] = table["GlobalSecondaryIndexes"]
        assert index["ProvisionedThroughput"]["ReadCapacityUnits"] == 400
        assert index["ItemCount"] == 10
        assert index["IndexSizeBytes"] > 0

        await _create(
            client,
            "od-shape",
            10,
            BillingMode="PAY_PER_REQUEST",
            OnDemandThroughput={"MaxReadRequestUnits": 300},
        )
        table = (await client.describe_table(TableName="od-shape"))["Table"]
        assert table["BillingModeSummary"] == {"BillingMode": "PAY_PER_REQUEST"}
        assert table["ProvisionedThroughput"]["ReadCapacityUnits"] == 0
        assert table["OnDemandThroughput"] == {
            "MaxReadRequestUnits": 300,
            "MaxWriteRequestUnits": -1,
        }
        [index] = table["GlobalSecondaryIndexes"]
        assert index["OnDemandThroughput"] == {
            "MaxReadRequestUnits": -1,
            "MaxWriteRequestUnits": -1,
        }


def _common_shape(table: dict[str, Any]) -> dict[str, Any]:
    """What DescribeTable says about capacity and keys, the part moto and the model share."""
    return {
        "BillingMode": table["BillingModeSummary"]["BillingMode"],
        "Read": table["ProvisionedThroughput"]["ReadCapacityUnits"],
        "Write": table["ProvisionedThroughput"]["WriteCapacityUnits"],
        "KeySchema": table["KeySchema"],
        "ItemCount": table["ItemCount"],
        "Indexes": [
            (
                index["IndexName"],
                index["KeySchema"],
                index["ProvisionedThroughput"]["ReadCapacityUnits"],
            )
            for index in table.get("GlobalSecondaryIndexes", [])
        ],
    }


@pytest.mark.anyio
@pytest.mark.parametrize(
    "billing",
    [
        {
            "BillingMode": "PROVISIONED",
            "ProvisionedThroughput": {"ReadCapacityUnits": 400, "WriteCapacityUnits": 5},
        },
        {"BillingMode": "PAY_PER_REQUEST"},
    ],
    ids=["provisioned", "on-demand"],
)
async def test_describe_table_matches_moto(moto_server: Any, billing: dict[str, Any]) -> None:
    name = f"shape-{uuid.uuid4().hex[:8]}"
    async with (
        serve_model() as url,
        _client(url) as model,
        _client(moto_server.endpoint_url) as moto,
    ):
        shapes = []
        for client in (moto, model):
            await _create(client, name, 10, **billing)
            shapes.append(_common_shape((await client.describe_table(TableName=name))["Table"]))
        await moto.delete_table(TableName=name)
    assert shapes[0] == shapes[1]


# --- other traffic: BackgroundReader ------------------------------------------------------


@pytest.mark.anyio
async def test_background_reader_counts_the_throttles_it_meets() -> None:
    throughput = {"ReadCapacityUnits": 5, "WriteCapacityUnits": 1}
    async with serve_model() as url, _client(url) as client:
        await _create(client, "busy", BillingMode="PROVISIONED", ProvisionedThroughput=throughput)
        async with BackgroundReader(client, "busy", rcu=200) as reader:
            await _until(lambda: reader.stats.requests >= 60)
        stats = reader.stats
    # 200 one-unit reads a second against 5 units a second: most are refused.
    assert stats.throttled > 0
    assert stats.throttled + stats.reads == stats.requests
    assert stats.consumed_capacity == stats.reads  # one unit each
    assert reader.stats == stats  # frozen once the reader has stopped


@pytest.mark.anyio
async def test_background_reader_within_capacity_is_not_throttled() -> None:
    throughput = {"ReadCapacityUnits": 1000, "WriteCapacityUnits": 1}
    async with serve_model() as url, _client(url) as client:
        await _create(client, "calm", BillingMode="PROVISIONED", ProvisionedThroughput=throughput)
        async with BackgroundReader(client, "calm", rcu=100) as reader:
            await _until(lambda: reader.stats.reads >= 20)
        stats = reader.stats
    assert stats.throttled == 0
    assert stats.reads == stats.requests >= 20
    # Never faster than its rate: one request per 1/100 s, the first at once.
    assert stats.requests <= 100 * stats.elapsed + 1


@pytest.mark.anyio
async def test_background_reader_raises_what_is_not_throttling() -> None:
    async with serve_model() as url, _client(url) as client:
        await _create(client, "gone", BillingMode="PAY_PER_REQUEST")
        with pytest.raises(ClientError) as excinfo:
            async with BackgroundReader(client, "gone", rcu=50) as reader:
                await client.delete_table(TableName="gone")
                await _until(lambda: reader.stats.requests > reader.stats.reads)
        assert excinfo.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_background_reader_options_are_checked() -> None:
    with pytest.raises(ValueError, match="rcu"):
        BackgroundReader(object(), "t", rcu=0)
    with pytest.raises(ValueError, match="max_in_flight"):
        BackgroundReader(object(), "t", rcu=1, max_in_flight=0)


# --- BulkLoad ---------------------------------------------------------------------------


@pytest.mark.anyio
async def test_bulk_load_puts_checked_items_all_or_nothing() -> None:
    async with serve_model() as url, _client(url) as client:
        await _create(client, "bulk", 0, BillingMode="PAY_PER_REQUEST")
        items = [{"pk": {"S": f"b{n}"}, "grp": {"S": "g"}, "n": {"N": str(n)}} for n in range(250)]
        assert await bulk_load(url, "bulk", items, per_request=100) == 250
        async with dynascan_async.scan(client, "bulk", segments=4) as scan:
            found = sorted([item["n"] async for item in scan])
        assert found == list(range(250))
        bad = [{"pk": {"S": "fine"}}, {"pk": {"N": "1"}}]  # a key of the wrong type
        with pytest.raises(RuntimeError, match="ValidationException"):
            await bulk_load(url, "bulk", bad)
        table = (await client.describe_table(TableName="bulk"))["Table"]
        assert table["ItemCount"] == 250  # the refused request put nothing


@given(st.integers(min_value=-(10**38) + 1, max_value=10**38 - 1))
def test_integer_sizes_take_the_decimal_rule(value: int) -> None:
    """The model's fast path for plain integers sizes them as the Decimal rule does."""
    text = str(value)
    assert check_value({"N": text})[1] == number_size(number(text))


@pytest.mark.parametrize("module", [dynascan_async.testing, dynascan_async.testing.model])
def test_testing_public_names_match_all(module: types.ModuleType) -> None:
    public = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType | __future__._Feature)  # not `annotations`
    }
    assert public == set(module.__all__)
