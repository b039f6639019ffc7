"""Every item exactly once, whatever the segments, the concurrency and the Scan parameters.

Each scan is compared with a plain boto3 paginator scan of the same table and parameters.
"""

from __future__ import annotations

from typing import Any

import pytest
from boto3.dynamodb.types import TypeDeserializer

import dynascan_async
from tests.support import tables
from tests.support.helpers import assert_same_items

# Every test here runs once with each transport (see conftest.every_transport).
pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("every_transport")]


async def collect(client: Any, table: str, **kwargs: Any) -> tuple[list[Any], Any]:
    async with dynascan_async.scan(client, table, **kwargs) as scan:
        items = [item async for item in scan]
    return items, scan.stats


def plain(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What boto3's TypeDeserializer makes of raw items."""
    deserializer = TypeDeserializer()
    return [{k: deserializer.deserialize(v) for k, v in item.items()} for item in items]


@pytest.mark.parametrize(
    ("segments", "concurrency"),
    [(1, 1), (1, 4), (2, 1), (3, 3), (7, 2), (25, 5), (16, 16), (40, 64)],
)
async def test_every_item_once_raw(
    client: Any, loaded: tables.Loaded, segments: int, concurrency: int
) -> None:
    items, stats = await collect(
        client,
        tables.WEBLOG,
        segments=segments,
        concurrency=concurrency,
        deserialize=False,
        Limit=60,
    )
    assert_same_items(items, loaded.weblog)
    assert stats.items == len(loaded.weblog) == stats.count == stats.scanned
    assert stats.segments == segments
    assert stats.segments_done == segments
    # Limit=60 over 600 items: at least 10 pages, plus one closing page per segment at most.
    assert stats.pages >= len(loaded.weblog) // 60


async def test_bare_async_for_gives_every_item(client: Any, loaded: tables.Loaded) -> None:
    items = [
        item async for item in dynascan_async.scan(client, tables.WEBLOG, segments=8, Limit=50)
    ]
    assert_same_items(items, plain(loaded.weblog))


async def test_defaults_choose_segments_and_concurrency(client: Any, loaded: tables.Loaded) -> None:
    async with dynascan_async.scan(client, tables.WEBLOG) as scan:
        items = [item async for item in scan]
    assert_same_items(items, plain(loaded.weblog))
    assert scan.stats.segments > 1
    assert scan.stats.segments_done == scan.stats.segments


async def test_more_segments_than_items(client: Any, loaded: tables.Loaded) -> None:
    items, stats = await collect(client, tables.TINY, segments=50, concurrency=10)
    assert_same_items(items, plain(loaded.tiny))
    assert stats.segments_done == 50
    assert stats.pages >= 50  # every segment answers at least once, most of them empty


async def test_every_attribute_type_deserialized_like_boto3(
    client: Any, loaded: tables.Loaded
) -> None:
    raw, _ = await collect(client, tables.TYPES, segments=4, deserialize=False, Limit=7)
    assert_same_items(raw, loaded.types)
    items, _ = await collect(client, tables.TYPES, segments=4, Limit=7)
    by_key = {(i["pk"], i["sk"]): i for i in items}
    deserializer = TypeDeserializer()
    for raw_item in loaded.types:
        got = by_key[(raw_item["pk"]["S"], deserializer.deserialize(raw_item["sk"]))]
        for name, value in raw_item.items():
            if name == "n_wide":
                continue  # TypeDeserializer raises on it; checked below
            assert got[name] == deserializer.deserialize(value), name
            assert type(got[name]) is type(deserializer.deserialize(value)), name
        # Exact where TypeDeserializer would raise: 40 digits, one significant.
        assert str(got["n_wide"]) == "1" + "0" * 39


async def test_pages_split_at_one_megabyte(client: Any, loaded: tables.Loaded) -> None:
    items, stats = await collect(client, tables.BIG, segments=2, deserialize=False)
    assert_same_items(items, loaded.big)
    # 24 items of 150 KB are 3.6 MB: without any Limit, the 1 MB cap makes several pages.
    assert stats.pages >= 4


WEBLOG_FILTER = {
    "FilterExpression": "responsecode <> :f",
    "ExpressionAttributeValues": {":f": {"N": "200"}},
    "ProjectionExpression": "#b, requestid",
    "ExpressionAttributeNames": {"#b": "bytessent"},
}


async def test_filter_projection_names_values(
    client: Any, sync_client: Any, loaded: tables.Loaded
) -> None:
    expected = tables.reference_scan(sync_client, tables.WEBLOG, **WEBLOG_FILTER)
    assert 0 < len(expected) < len(loaded.weblog)
    items, stats = await collect(
        client,
        tables.WEBLOG,
        segments=5,
        concurrency=3,
        deserialize=False,
        Limit=40,
        **WEBLOG_FILTER,
    )
    assert_same_items(items, expected)
    assert all(set(item) == {"bytessent", "requestid"} for item in items)
    # Limit counts items read before the filter: all were scanned, fewer were returned.
    assert stats.scanned == len(loaded.weblog)
    assert stats.count == stats.items == len(expected)
    # The seeds' aggregate: total bytes sent where responsecode <> 200.
    total = sum(int(i["bytessent"]["N"]) for i in loaded.weblog if i["responsecode"]["N"] != "200")
    assert sum(int(i["bytessent"]["N"]) for i in items) == total


async def test_global_secondary_index(client: Any, sync_client: Any) -> None:
    expected = tables.reference_scan(sync_client, tables.WEBLOG, IndexName=tables.WEBLOG_INDEX)
    assert len(expected) == tables.WEBLOG_ROWS
    items, stats = await collect(
        client,
        tables.WEBLOG,
        segments=3,
        deserialize=False,
        IndexName=tables.WEBLOG_INDEX,
        Limit=100,
    )
    assert_same_items(items, expected)
    assert stats.scanned == tables.WEBLOG_ROWS
    assert all(set(item) <= {"host", "requestid", "bytessent"} for item in items)


async def test_consistent_read_and_consumed_capacity(client: Any, loaded: tables.Loaded) -> None:
    # That ConsistentRead reaches the server is checked on the wire (test_requests_seen.py):
    # moto charges the same for both, so capacity cannot tell them apart.
    items, consistent = await collect(
        client, tables.WEBLOG, segments=2, ConsistentRead=True, Limit=100
    )
    assert_same_items(items, plain(loaded.weblog))
    assert consistent.consumed_capacity > 0


async def test_select_count_yields_nothing_and_counts(client: Any, loaded: tables.Loaded) -> None:
    items, stats = await collect(
        client,
        tables.WEBLOG,
        segments=4,
        Select="COUNT",
        Limit=100,
        FilterExpression="responsecode = :c",
        ExpressionAttributeValues={":c": {"N": "404"}},
    )
    assert items == []
    expected = sum(1 for i in loaded.weblog if i["responsecode"]["N"] == "404")
    assert stats.count == expected > 0
    assert stats.scanned == len(loaded.weblog)
    assert stats.items == 0


async def test_stats_during_and_after(client: Any, loaded: tables.Loaded) -> None:
    async with dynascan_async.scan(client, tables.WEBLOG, segments=4, Limit=50) as scan:
        before = scan.stats
        seen = 0
        async for _ in scan:
            seen += 1
            if seen == 10:
                during = scan.stats
    after = scan.stats
    assert before.items == 0
    assert during.items == 10
    assert during.segments_done <= after.segments_done == 4
    assert after.items == len(loaded.weblog)
    assert after.elapsed > 0
    assert after.items_per_second == pytest.approx(after.items / after.elapsed)
    assert after.retries == after.throttles == 0
    assert dataclass_is_frozen(after)


def dataclass_is_frozen(stats: dynascan_async.ScanStats) -> bool:
    try:
        stats.items = 0  # type: ignore[misc]
    except AttributeError:
        return True
    return False


async def test_client_is_not_closed(client: Any) -> None:
    async with dynascan_async.scan(client, tables.TINY, segments=2) as scan:
        assert len([item async for item in scan]) == 5
    async for _ in dynascan_async.scan(client, tables.TINY, segments=2):
        break
    # Still usable: the library never closes a client it was given.
    described = await client.describe_table(TableName=tables.TINY)
    assert described["Table"]["TableName"] == tables.TINY


async def test_empty_pages_with_a_key_do_not_end_a_segment(
    client: Any, sync_client: Any, loaded: tables.Loaded
) -> None:
    wanted = {"req-0000003", "req-0000301", "req-0000598"}
    params: dict[str, Any] = {
        "FilterExpression": "requestid IN (:a, :b, :c)",
        "ExpressionAttributeValues": {
            f":{name}": {"S": value} for name, value in zip("abc", sorted(wanted), strict=True)
        },
    }
    items, stats = await collect(
        client, tables.WEBLOG, segments=2, deserialize=False, Limit=10, **params
    )
    assert {item["requestid"]["S"] for item in items} == wanted
    assert_same_items(items, tables.reference_scan(sync_client, tables.WEBLOG, **params))
    # Most of the ~60 pages were empty and still carried a LastEvaluatedKey.
    assert stats.pages >= len(loaded.weblog) // 10
    assert stats.scanned == len(loaded.weblog)


async def test_users_own_scan_calls_on_the_same_client_are_untouched(
    client: Any, sync_client: Any, loaded: tables.Loaded
) -> None:
    """The library takes page bodies off the wire only for its own calls."""
    raw, _ = await collect(client, tables.BINARY_KEYS, segments=2, deserialize=False, Limit=50)
    assert_same_items(raw, loaded.binary_keys)
    page = await client.scan(TableName=tables.BINARY_KEYS, Limit=7)
    expected = sync_client.scan(TableName=tables.BINARY_KEYS, Limit=7)
    assert page["Items"] == expected["Items"]
    assert isinstance(page["LastEvaluatedKey"]["id"]["B"], bytes)
    assert not any(key.startswith("__dynascan") for key in page)
