"""``dynascan_async.arrow`` against a real server: the same items as ``scan()``, as batches.

Every table is read back to Python values with ``arrow.to_items`` and compared with what
``scan()`` yields for it; the type mapping itself is pinned down by ``test_arrow_types``.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from typing import Any, cast

import anyio
import pyarrow as pa
import pytest

import dynascan_async
from dynascan_async import arrow
from tests.support import tables
from tests.support.arrow_help import assert_same_values
from tests.support.faultproxy import FaultProxy
from tests.support.helpers import other_tasks

pytestmark = pytest.mark.anyio


async def python_items(client: Any, table: str, **options: Any) -> list[dict[str, Any]]:
    return [item async for item in dynascan_async.scan(client, table, **options)]


@pytest.mark.parametrize(
    "table", [tables.WEBLOG, tables.TYPES, tables.BIG, tables.TINY, tables.BINARY_KEYS]
)
async def test_read_table_holds_what_scan_yields(
    client: Any, every_transport: str, table: str
) -> None:
    result = await arrow.read_table(
        client, table, segments=4, concurrency=2, Limit=50, transport=cast(Any, every_transport)
    )
    assert isinstance(result, pa.Table)
    assert_same_values(arrow.to_items(result), await python_items(client, table, segments=3))


async def test_batches_are_pages_with_one_schema(client: Any, loaded: tables.Loaded) -> None:
    async with arrow.scan_batches(client, tables.WEBLOG, segments=5, Limit=40) as batches:
        got = [batch async for batch in batches]
        stats = batches.stats
    assert {batch.schema for batch in got} == {batches.schema}
    assert all(0 < batch.num_rows <= 40 for batch in got)
    assert stats.items == sum(b.num_rows for b in got) == len(loaded.weblog)
    assert stats.pages >= len(got)
    schema = batches.schema
    assert schema is not None
    assert schema.field("bytessent").type == pa.int64()
    assert schema.field("requestid").type == pa.string()
    # An ISO date is text, as it was written: Arrow's JSON reader would make it a timestamp.
    assert schema.field("timestamp").type == pa.string()
    assert schema.names[-1] == arrow.REST


async def test_filter_and_projection(client: Any, loaded: tables.Loaded) -> None:
    params: dict[str, Any] = {
        "FilterExpression": "responsecode <> :ok",
        "ExpressionAttributeValues": {":ok": {"N": "200"}},
        "ProjectionExpression": "requestid, bytessent",
    }
    result = await arrow.read_table(client, tables.WEBLOG, segments=4, **params)
    assert result.schema.names == ["requestid", "bytessent", arrow.REST]
    expected = [
        {"requestid": i["requestid"]["S"], "bytessent": int(i["bytessent"]["N"])}
        for i in loaded.weblog
        if i["responsecode"]["N"] != "200"
    ]
    assert sorted(result.select(["requestid", "bytessent"]).to_pylist(), key=str) == sorted(
        expected, key=str
    )


async def test_count_only_gives_an_empty_table(client: Any) -> None:
    result = await arrow.read_table(client, tables.WEBLOG, segments=2, Select="COUNT")
    assert result.num_rows == 0
    assert result.schema.names == [arrow.REST]


async def test_schema_is_honoured(client: Any, loaded: tables.Loaded) -> None:
    schema = pa.schema(
        [
            ("requestid", pa.string()),
            ("bytessent", pa.decimal128(20, 2)),
            ("responsecode", pa.int16()),
            ("host", pa.large_string()),
        ]
    )
    result = await arrow.read_table(client, tables.WEBLOG, segments=3, schema=schema)
    assert result.schema.names == [*schema.names, arrow.REST]
    for field in schema:
        assert result.schema.field(field.name).type == field.type
    # Attributes the schema leaves out are kept whole in _rest.
    rest = [json.loads(text) for text in result.column(arrow.REST).to_pylist()]
    assert all(set(r) == {"timestamp", "method", "url", "useragent"} for r in rest)
    assert_same_values(arrow.to_items(result), await python_items(client, tables.WEBLOG))


async def test_values_that_disagree_with_the_schema_go_to_rest(client: Any) -> None:
    # bytessent does not fit int8; requestid is not a number; "nope" is not there at all.
    schema = pa.schema([("requestid", pa.int64()), ("bytessent", pa.int8()), ("nope", pa.bool_())])
    result = await arrow.read_table(client, tables.TINY, schema=schema)
    assert result.column("requestid").null_count == result.num_rows
    assert result.column("nope").null_count == result.num_rows
    assert_same_values(arrow.to_items(result), await python_items(client, tables.TINY))


async def test_bad_schema_is_refused_before_any_request(client: Any) -> None:
    with pytest.raises(TypeError, match="cannot hold DynamoDB values exactly"):
        arrow.scan_batches(client, tables.WEBLOG, schema=pa.schema([("x", pa.float64())]))
    with pytest.raises(TypeError, match=r"pyarrow\.Schema"):
        arrow.scan_batches(client, tables.WEBLOG, schema=cast(Any, {"x": "int"}))
    with pytest.raises(TypeError, match="deserialize"):
        arrow.scan_batches(client, tables.WEBLOG, deserialize=True)
    with pytest.raises(ValueError, match="segments"):
        arrow.scan_batches(client, tables.WEBLOG, segments=0)


@pytest.mark.parametrize("stop_after", [1, 4, 9])
async def test_break_then_resume_is_exact(
    client: Any, loaded: tables.Loaded, stop_after: int
) -> None:
    options: dict[str, Any] = {"segments": 6, "concurrency": 3, "Limit": 45}
    first: list[pa.RecordBatch] = []
    async with arrow.scan_batches(client, tables.WEBLOG, **options) as batches:
        async for batch in batches:
            first.append(batch)
            if len(first) == stop_after:
                break
        state = json.loads(json.dumps(batches.checkpoint()))
        schema = batches.schema
    async with arrow.scan_batches(
        client, tables.WEBLOG, resume_from=state, schema=schema, **options
    ) as batches:
        rest = [batch async for batch in batches]
    assert batches.schema == schema
    ids = [r for b in first + rest for r in b.column("requestid").to_pylist()]
    assert len(ids) == len(set(ids)) == len(loaded.weblog)


async def test_resume_from_an_item_checkpoint_of_scan(client: Any, loaded: tables.Loaded) -> None:
    """A checkpoint taken mid-page by scan() resumes mid-page here: the page is sliced."""
    options: dict[str, Any] = {"segments": 4, "Limit": 45}
    seen = []
    async with dynascan_async.scan(client, tables.WEBLOG, **options) as scan:
        async for item in scan:
            seen.append(item["requestid"])
            if len(seen) == 70:
                break
        state = scan.checkpoint()
    result = await arrow.read_table(client, tables.WEBLOG, resume_from=state, **options)
    ids = seen + result.column("requestid").to_pylist()
    assert len(ids) == len(set(ids)) == len(loaded.weblog)


async def test_pandas_and_polars_read_it(client: Any, loaded: tables.Loaded) -> None:
    import pandas as pd
    import polars as pl

    result = await arrow.read_table(client, tables.WEBLOG, segments=4)
    total = sum(int(i["bytessent"]["N"]) for i in loaded.weblog)
    frame = result.to_pandas()
    assert isinstance(frame, pd.DataFrame)
    assert len(frame) == len(loaded.weblog)
    assert int(frame["bytessent"].sum()) == total
    polars_frame = pl.from_arrow(result)
    assert isinstance(polars_frame, pl.DataFrame)
    assert polars_frame["bytessent"].sum() == total
    assert polars_frame["timestamp"].dtype == pl.String


async def test_types_table_to_pandas_and_polars(client: Any) -> None:
    import polars as pl

    result = await arrow.read_table(client, tables.TYPES, segments=2)
    assert len(result.to_pandas()) == result.num_rows == 60
    frame = pl.from_arrow(result)
    assert isinstance(frame, pl.DataFrame)
    assert frame.height == 60


def test_import_dynascan_async_does_not_import_pyarrow() -> None:
    code = (
        "import sys, dynascan_async, dynascan_async.cli; "
        "heavy = {'pyarrow', 'pandas', 'polars'} & set(sys.modules); "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# -- lifecycle: the same guarantees as scan() ---------------------------------------------------

OPTIONS: dict[str, Any] = {"segments": 8, "concurrency": 4, "Limit": 20}


@pytest.fixture
def slow(faults: FaultProxy) -> FaultProxy:
    faults.latency = 0.05
    return faults


async def test_break_in_bare_loop(proxied_client: Any, slow: FaultProxy) -> None:
    async for _ in arrow.scan_batches(proxied_client, tables.WEBLOG, **OPTIONS):
        assert other_tasks()
        break
    await asyncio.sleep(0)
    assert other_tasks() == set()


async def test_break_in_async_with(proxied_client: Any, slow: FaultProxy) -> None:
    async with arrow.scan_batches(proxied_client, tables.WEBLOG, **OPTIONS) as batches:
        async for _ in batches:
            break
    assert other_tasks() == set()
    assert batches.stats.items == 20


async def test_timeout_around_bare_loop(proxied_client: Any, slow: FaultProxy) -> None:
    slow.latency = 0.5
    with anyio.move_on_after(0.2) as scope:
        async for _ in arrow.scan_batches(proxied_client, tables.WEBLOG, **OPTIONS):
            pass
    assert scope.cancelled_caught
    await asyncio.sleep(0)
    assert other_tasks() == set()


async def test_cancelled_task_leaves_nothing(proxied_client: Any, slow: FaultProxy) -> None:
    async def consume() -> None:
        async with arrow.scan_batches(proxied_client, tables.WEBLOG, **OPTIONS) as batches:
            async for _ in batches:
                await asyncio.sleep(10)

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert other_tasks() == set()


async def test_missing_table_raises_client_error(client: Any) -> None:
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError) as caught:
        await arrow.read_table(client, "no_such_table", segments=2)
    assert caught.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert other_tasks() == set()


async def test_duckdb_queries_it(client: Any, loaded: tables.Loaded) -> None:
    import duckdb

    logs = await arrow.read_table(client, tables.WEBLOG, segments=4)
    total = sum(int(i["bytessent"]["N"]) for i in loaded.weblog if i["responsecode"]["N"] != "200")
    with duckdb.connect() as con:
        con.register("logs", logs)
        row = con.execute("select sum(bytessent) from logs where responsecode <> 200").fetchone()
    assert row is not None
    assert row[0] == total


async def test_parquet_keeps_the_types_and_markers(client: Any, tmp_path: Any) -> None:
    import pyarrow.parquet as pq

    result = await arrow.read_table(client, tables.TYPES, segments=2)
    pq.write_table(result, tmp_path / "types.parquet")
    again = pq.read_table(tmp_path / "types.parquet")
    assert again.schema.equals(result.schema, check_metadata=True)
    assert_same_values(arrow.to_items(again), await python_items(client, tables.TYPES))
