"""The DynamoDB model server: the same answers as moto where moto is right, DynamoDB's rules
where moto is not, and the knobs only the model has (latency, partitions, provisioned
capacity, 1 MB pages, capacity units).

Everything goes through real clients (boto3, aiobotocore) over HTTP: the model in a child
process (``ModelServer``) for the synchronous tests, in-process (``serve_model``) for the
asynchronous ones.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import math
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.config import Config
from botocore.exceptions import ClientError

import dynascan_async
from dynascan_async.testing.model import ModelServer, serve_model
from tests.support.helpers import as_multiset, assert_same_items

REGION = "us-east-1"
KEY_ID = SECRET = "testing"
N_ITEMS = 160
INDEX = "grp-index"
SCAN = "DynamoDB_20120810.Scan"


# --- fixtures -----------------------------------------------------------------------------


def _client(endpoint_url: str) -> Any:
    return boto3.client(
        "dynamodb",
        endpoint_url=endpoint_url,
        region_name=REGION,
        config=Config(retries={"total_max_attempts": 1}),
        aws_access_key_id=KEY_ID,
        aws_secret_access_key=SECRET,
    )


@asynccontextmanager
async def _async_client(endpoint_url: str) -> AsyncIterator[Any]:
    config = AioConfig(retries={"total_max_attempts": 1}, max_pool_connections=16)
    async with get_session().create_client(
        "dynamodb",
        endpoint_url=endpoint_url,
        region_name=REGION,
        config=config,
        aws_access_key_id=KEY_ID,
        aws_secret_access_key=SECRET,
    ) as client:
        yield client


@pytest.fixture(scope="module")
def model_server() -> Iterator[ModelServer]:
    with ModelServer(partitions=4) as server:
        yield server


@pytest.fixture(scope="module")
def model(model_server: ModelServer) -> Iterator[Any]:
    client = _client(model_server.endpoint_url)
    yield client
    client.close()


def conformance_item(n: int) -> dict[str, Any]:
    """Every attribute type, a missing attribute now and then, an index key on a third."""
    item: dict[str, Any] = {
        "pk": {"S": f"p-{n % 13:02d}"},
        "sk": {"N": str(n)},
        "s": {"S": f"word {n % 5} {'x' * (n % 4)}"},
        "n": {"N": str((n * 37) % 101)},
        "frac": {"N": f"{n % 3}.50"},
        "b": {"B": bytes([n % 256, 255 - n % 256])},
        "flag": {"BOOL": n % 2 == 0},
        "tags": {"SS": [f"t{n % 3}", f"t{n % 4 + 3}", *(["extra"] if n % 5 == 0 else [])]},
        "nums": {"NS": [str(n % 5), "100"]},
        "l": {
            "L": [
                {"S": f"e{n % 2}"},
                {"N": str(n % 3)},
                {"L": [{"BOOL": True}, {"S": f"deep{n % 2}"}]},
                {"M": {"k": {"S": "v"}}},
            ]
        },
        "m": {"M": {"child": {"M": {"deep": {"N": str(n % 10)}}}, "label": {"S": f"m{n % 4}"}}},
    }
    if n % 6 == 0:
        item["m"]["M"]["extra"] = {"BOOL": True}
    if n % 3 == 0:
        item["grp"] = {"S": f"g{n % 2}"}
    if n % 7 == 0:
        del item["s"]
    if n % 11 == 0:
        item["nothing"] = {"NULL": True}
    return item


ITEMS = [conformance_item(n) for n in range(N_ITEMS)]


def create_conformance_table(client: Any, name: str) -> None:
    client.create_table(
        TableName=name,
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "N"},
            {"AttributeName": "grp", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
        GlobalSecondaryIndexes=[
            {
                "IndexName": INDEX,
                "KeySchema": [
                    {"AttributeName": "grp", "KeyType": "HASH"},
                    {"AttributeName": "sk", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["s"]},
            }
        ],
    )
    put_all(client, name, ITEMS)


def put_all(client: Any, name: str, items: list[dict[str, Any]]) -> None:
    for start in range(0, len(items), 25):
        batch = [{"PutRequest": {"Item": item}} for item in items[start : start + 25]]
        assert not client.batch_write_item(RequestItems={name: batch})["UnprocessedItems"]


@dataclass(frozen=True)
class Pair:
    """One table, created and filled identically on moto and on the model."""

    table: str
    moto: Any
    model: Any

    def both(self) -> list[tuple[str, Any]]:
        return [("moto", self.moto), ("model", self.model)]


@pytest.fixture(scope="module")
def pair(sync_client: Any, model: Any) -> Iterator[Pair]:
    # A name of our own: the moto server is shared with the rest of the suite.
    table = f"model-conformance-{uuid.uuid4().hex[:8]}"
    create_conformance_table(sync_client, table)
    create_conformance_table(model, table)
    yield Pair(table, sync_client, model)
    sync_client.delete_table(TableName=table)


def pages(client: Any, **params: Any) -> list[dict[str, Any]]:
    """Every page of a Scan, following LastEvaluatedKey to the end."""
    found = []
    while True:
        page = client.scan(**params)
        found.append(page)
        if "LastEvaluatedKey" not in page:
            return found
        params = {**params, "ExclusiveStartKey": page["LastEvaluatedKey"]}


def items_of(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [item for page in found for item in page.get("Items", [])]


def error_code(excinfo: pytest.ExceptionInfo[ClientError]) -> str:
    code: str = excinfo.value.response["Error"]["Code"]
    return code


def raw_request(port: int, target: str, body: bytes) -> tuple[int, dict[str, Any]]:
    """A request no SDK would send (botocore validates its parameters first)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(
            "POST",
            "/",
            body,
            {"X-Amz-Target": target, "Content-Type": "application/x-amz-json-1.0"},
        )
        response = connection.getresponse()
        answer: dict[str, Any] = json.loads(response.read())
        return response.status, answer
    finally:
        connection.close()


# --- conformance: the same requests to moto and to the model ------------------------------


def test_full_scan_has_every_item(pair: Pair) -> None:
    for _, client in pair.both():
        assert_same_items(items_of(pages(client, TableName=pair.table)), ITEMS)


@pytest.mark.parametrize("total", [1, 3, 8, 64])
def test_segments_are_disjoint_and_cover_the_table(pair: Pair, total: int) -> None:
    for name, client in pair.both():
        seen: list[str] = []
        for segment in range(total):
            found = pages(client, TableName=pair.table, Segment=segment, TotalSegments=total)
            seen += as_multiset(items_of(found))
        assert len(seen) == len(set(seen)), f"{name}: an item in two segments"
        assert sorted(seen) == as_multiset(ITEMS), name


@pytest.mark.parametrize(
    ("limit", "filters"),
    [
        (3, {}),
        (7, {}),
        (N_ITEMS, {}),
        (500, {}),
        (
            20,
            {"FilterExpression": "flag = :t", "ExpressionAttributeValues": {":t": {"BOOL": True}}},
        ),
    ],
)
def test_limit_pages_the_same_way(pair: Pair, limit: int, filters: dict[str, Any]) -> None:
    answers = {
        name: pages(client, TableName=pair.table, Limit=limit, **filters)
        for name, client in pair.both()
    }
    # Items are in a different order on each server, so Count per page differs with a
    # filter; what is read per page (Limit before the filter) does not.
    scanned = {name: [page["ScannedCount"] for page in found] for name, found in answers.items()}
    assert scanned["model"] == scanned["moto"]
    assert sum(scanned["model"]) == N_ITEMS
    assert all(count <= limit for count in scanned["model"])
    counts = {name: sum(page["Count"] for page in found) for name, found in answers.items()}
    assert counts["model"] == counts["moto"]
    assert_same_items(items_of(answers["model"]), items_of(answers["moto"]))


FILTERS: list[tuple[str, dict[str, str], dict[str, Any]]] = [
    ("n > :v", {}, {":v": {"N": "50"}}),
    ("n BETWEEN :lo AND :hi", {}, {":lo": {"N": "10"}, ":hi": {"N": "30"}}),
    ("s = :s", {}, {":s": {"S": "word 2 xx"}}),
    ("s <> :s", {}, {":s": {"S": "word 2 xx"}}),  # items without s count as "not equal"
    ("s < :s", {}, {":s": {"S": "word 2"}}),
    ("frac = :f", {}, {":f": {"N": "1.5"}}),  # 1.50 = 1.5: numbers compare as numbers
    ("#m.#i.deep >= :v", {"#m": "m", "#i": "child"}, {":v": {"N": "7"}}),
    ("l[1] = :v", {}, {":v": {"N": "2"}}),
    ("l[2][1] = :v", {}, {":v": {"S": "deep1"}}),
    ("attribute_exists(grp)", {}, {}),
    ("attribute_not_exists(#s)", {"#s": "s"}, {}),
    ("attribute_exists(m.extra)", {}, {}),
    ("attribute_type(nothing, :t)", {}, {":t": {"S": "NULL"}}),
    ("attribute_type(grp, :t)", {}, {":t": {"S": "S"}}),
    ("begins_with(pk, :p)", {}, {":p": {"S": "p-1"}}),
    ("contains(s, :x)", {}, {":x": {"S": "xx"}}),
    ("contains(tags, :t)", {}, {":t": {"S": "t4"}}),
    ("contains(nums, :n)", {}, {":n": {"N": "3"}}),
    ("size(tags) = :n", {}, {":n": {"N": "3"}}),
    ("size(m) > :n", {}, {":n": {"N": "2"}}),
    ("n IN (:a, :b, :c)", {}, {":a": {"N": "0"}, ":b": {"N": "37"}, ":c": {"N": "74"}}),
    ("pk IN (:a, :b)", {}, {":a": {"S": "p-03"}, ":b": {"S": "p-04"}}),
    ("NOT flag = :t", {}, {":t": {"BOOL": True}}),
    # NOT binds tighter than AND, AND tighter than OR.
    (
        "NOT flag = :t AND n < :a OR n > :b",
        {},
        {":t": {"BOOL": True}, ":a": {"N": "20"}, ":b": {"N": "90"}},
    ),
    (
        "n < :a OR n > :b AND flag = :t",
        {},
        {":t": {"BOOL": True}, ":a": {"N": "20"}, ":b": {"N": "90"}},
    ),
    (
        "(n < :a OR n > :b) AND flag = :t",
        {},
        {":t": {"BOOL": True}, ":a": {"N": "20"}, ":b": {"N": "90"}},
    ),
    ("pk = :pk AND sk >= :sk", {}, {":pk": {"S": "p-05"}, ":sk": {"N": "100"}}),
    ("#flag = :f", {"#flag": "flag"}, {":f": {"BOOL": False}}),
]


@pytest.mark.parametrize(("expression", "names", "values"), FILTERS, ids=[f[0] for f in FILTERS])
def test_filter_expression(
    pair: Pair, expression: str, names: dict[str, str], values: dict[str, Any]
) -> None:
    params: dict[str, Any] = {"TableName": pair.table, "FilterExpression": expression}
    if names:
        params["ExpressionAttributeNames"] = names
    if values:
        params["ExpressionAttributeValues"] = values
    found = {name: pages(client, Limit=50, **params) for name, client in pair.both()}
    assert_same_items(items_of(found["model"]), items_of(found["moto"]))
    for answer in found.values():
        assert sum(page["ScannedCount"] for page in answer) == N_ITEMS
    assert 0 < len(items_of(found["model"])) < N_ITEMS, "a case that tells nothing"


# Where moto is wrong (it fails on a comparison of mismatched types and on size() of a
# missing attribute, and orders binaries as signed bytes), the model is checked against
# DynamoDB's rules written out in Python.
DEVIATIONS: list[tuple[str, dict[str, Any], Callable[[dict[str, Any]], bool]]] = [
    (
        "n < :s OR flag = :t",  # a number is never less than a string
        {":s": {"S": "50"}, ":t": {"BOOL": True}},
        lambda item: bool(item["flag"]["BOOL"]),
    ),
    (
        "b < :b",  # bytes compare unsigned
        {":b": {"B": b"\x80\x00"}},
        lambda item: bool(item["b"]["B"] < b"\x80\x00"),
    ),
    (
        "size(s) > :n",  # a missing attribute has no size
        {":n": {"N": "8"}},
        lambda item: "s" in item and len(item["s"]["S"]) > 8,
    ),
]


@pytest.mark.parametrize(
    ("expression", "values", "rule"), DEVIATIONS, ids=[d[0] for d in DEVIATIONS]
)
def test_filter_expression_where_moto_deviates(
    pair: Pair,
    expression: str,
    values: dict[str, Any],
    rule: Callable[[dict[str, Any]], bool],
) -> None:
    found = pages(
        pair.model,
        TableName=pair.table,
        FilterExpression=expression,
        ExpressionAttributeValues=values,
    )
    expected = [item for item in ITEMS if rule(item)]
    assert 0 < len(expected) < N_ITEMS
    assert_same_items(items_of(found), expected)


PROJECTIONS: list[tuple[str, dict[str, str]]] = [
    ("s, n", {}),
    ("pk, sk, #m.child", {"#m": "m"}),
    ("m.child.deep, l[0]", {}),
    ("#n, nothing", {"#n": "n"}),
]


@pytest.mark.parametrize(("expression", "names"), PROJECTIONS, ids=[p[0] for p in PROJECTIONS])
def test_projection_expression(pair: Pair, expression: str, names: dict[str, str]) -> None:
    params: dict[str, Any] = {"TableName": pair.table, "ProjectionExpression": expression}
    if names:
        params["ExpressionAttributeNames"] = names
    found = {name: items_of(pages(client, **params)) for name, client in pair.both()}
    # Projections of different items can be equal: a multiset comparison.
    assert as_multiset(found["model"]) == as_multiset(found["moto"])
    assert len(found["model"]) == N_ITEMS


def test_projection_of_list_elements(pair: Pair) -> None:
    # Several elements of one list come back as a shorter list, in index order, and a
    # nested path keeps its nesting. (moto agrees on this only in part; DynamoDB's rule is
    # asserted on the model alone.)
    (item,) = items_of(
        pages(
            pair.model,
            TableName=pair.table,
            ProjectionExpression="l[3].k, l[1], m.child, l[2][1]",
            FilterExpression="sk = :sk",
            ExpressionAttributeValues={":sk": {"N": "5"}},
        )
    )
    assert item == {
        "l": {"L": [{"N": "2"}, {"L": [{"S": "deep1"}]}, {"M": {"k": {"S": "v"}}}]},
        "m": {"M": {"child": {"M": {"deep": {"N": "5"}}}}},
    }


def test_select_count(pair: Pair) -> None:
    params = {
        "TableName": pair.table,
        "Select": "COUNT",
        "FilterExpression": "flag = :t",
        "ExpressionAttributeValues": {":t": {"BOOL": True}},
    }
    found = {name: pages(client, **params) for name, client in pair.both()}
    counts = {name: sum(page["Count"] for page in answer) for name, answer in found.items()}
    assert counts["model"] == counts["moto"] == N_ITEMS // 2
    # DynamoDB answers COUNT without an Items key; moto sends the items anyway.
    assert all("Items" not in page for page in found["model"])
    assert sum(page["ScannedCount"] for page in found["model"]) == N_ITEMS


def test_index_scan(pair: Pair) -> None:
    found = {
        name: pages(client, TableName=pair.table, IndexName=INDEX, Limit=9)
        for name, client in pair.both()
    }
    model_items = items_of(found["model"])
    assert_same_items(model_items, items_of(found["moto"]))
    # Only the items with the index key, with the projected attributes only.
    assert len(model_items) == len([item for item in ITEMS if "grp" in item])
    assert all(set(item) <= {"pk", "sk", "grp", "s"} for item in model_items)
    projected = pages(
        pair.model, TableName=pair.table, IndexName=INDEX, Select="ALL_PROJECTED_ATTRIBUTES"
    )
    assert_same_items(items_of(projected), model_items)
    for answer in found.values():
        # LastEvaluatedKey of an index scan: the index keys and the table keys.
        assert {frozenset(page["LastEvaluatedKey"]) for page in answer[:-1]} == {
            frozenset({"grp", "sk", "pk"})
        }


def test_missing_table(pair: Pair) -> None:
    for _, client in pair.both():
        with pytest.raises(ClientError) as excinfo:
            client.scan(TableName=f"{pair.table}-absent")
        assert error_code(excinfo) == "ResourceNotFoundException"


@pytest.mark.parametrize(
    "params",
    [
        {"FilterExpression": "n >"},
        {"ProjectionExpression": "s", "ExpressionAttributeNames": {"#unused": "n"}},
        {"IndexName": INDEX, "ConsistentRead": True},
    ],
)
def test_bad_requests_are_validation_errors(pair: Pair, params: dict[str, Any]) -> None:
    for _, client in pair.both():
        with pytest.raises(ClientError) as excinfo:
            client.scan(TableName=pair.table, **params)
        assert error_code(excinfo) == "ValidationException"


# --- the model alone ----------------------------------------------------------------------


def test_pages_stop_at_one_megabyte(model: Any) -> None:
    table = f"big-{uuid.uuid4().hex[:8]}"
    model.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    for n in range(20):
        model.put_item(
            TableName=table, Item={"pk": {"S": f"big-{n:02d}"}, "blob": {"S": "x" * 200_000}}
        )
    found = pages(model, TableName=table)
    # 200,014 bytes an item: the sixth item read takes a page past 1 MB, and ends it.
    assert [page["ScannedCount"] for page in found] == [6, 6, 6, 2]
    assert len(items_of(found)) == 20
    # A filter that keeps nothing still reads (and pages) the same way.
    empty = pages(
        model,
        TableName=table,
        FilterExpression="pk = :none",
        ExpressionAttributeValues={":none": {"S": "nothing"}},
    )
    assert [(page["Count"], page["ScannedCount"]) for page in empty] == [
        (0, 6),
        (0, 6),
        (0, 6),
        (0, 2),
    ]
    assert all("LastEvaluatedKey" in page for page in empty[:-1])
    assert [page["ScannedCount"] for page in pages(model, TableName=table, Limit=4)] == [4] * 5
    model.delete_table(TableName=table)


def _size(item: dict[str, Any]) -> int:
    """DynamoDB's size of an item of strings only."""
    return sum(len(name) + len(value["S"]) for name, value in item.items())


def test_consumed_capacity(model: Any) -> None:
    table = f"capacity-{uuid.uuid4().hex[:8]}"
    model.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    empty = model.scan(TableName=table, ReturnConsumedCapacity="TOTAL")
    assert empty["ConsumedCapacity"] == {"TableName": table, "CapacityUnits": 0.5}
    items = [{"pk": {"S": f"k{n}"}, "text": {"S": "y" * 1000}} for n in range(10)]
    put_all(model, table, items)
    units = math.ceil(sum(_size(item) for item in items) / 4096)
    assert units == 3
    strong = model.scan(TableName=table, ConsistentRead=True, ReturnConsumedCapacity="TOTAL")
    assert strong["ConsumedCapacity"]["CapacityUnits"] == units
    weak = model.scan(TableName=table, ReturnConsumedCapacity="INDEXES")
    assert weak["ConsumedCapacity"] == {
        "TableName": table,
        "CapacityUnits": units / 2,
        "Table": {"CapacityUnits": units / 2},
    }
    # Capacity is what was read, not what the filter kept.
    filtered = model.scan(
        TableName=table,
        FilterExpression="pk = :k",
        ExpressionAttributeValues={":k": {"S": "k1"}},
        ReturnConsumedCapacity="TOTAL",
    )
    assert filtered["Count"] == 1
    assert filtered["ConsumedCapacity"]["CapacityUnits"] == units / 2
    assert "ConsumedCapacity" not in model.scan(TableName=table)


def test_index_capacity_is_reported_per_index(pair: Pair) -> None:
    answer = pair.model.scan(
        TableName=pair.table, IndexName=INDEX, ReturnConsumedCapacity="INDEXES"
    )
    consumed = answer["ConsumedCapacity"]
    assert consumed["GlobalSecondaryIndexes"] == {
        INDEX: {"CapacityUnits": consumed["CapacityUnits"]}
    }
    assert consumed["Table"] == {"CapacityUnits": 0.0}


def _create_simple(client: Any, table: str, **billing: Any) -> None:
    client.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        **billing,
    )
    put_all(client, table, [{"pk": {"S": f"k{n}"}} for n in range(50)])


def test_provisioned_capacity_throttles(model: Any) -> None:
    table = f"provisioned-{uuid.uuid4().hex[:8]}"
    _create_simple(
        model,
        table,
        BillingMode="PROVISIONED",
        ProvisionedThroughput={"ReadCapacityUnits": 5, "WriteCapacityUnits": 5},
    )
    served = 0
    with pytest.raises(ClientError) as excinfo:
        for _ in range(200):
            model.scan(TableName=table)
            served += 1
    assert error_code(excinfo) == "ProvisionedThroughputExceededException"
    # 5 RCU with a one-second burst: about ten half-unit pages, then refusals.
    assert 8 <= served <= 40
    time.sleep(0.5)  # the bucket refills at 5 RCU/s
    model.scan(TableName=table)


def test_on_demand_is_never_throttled(model: Any) -> None:
    table = f"ondemand-{uuid.uuid4().hex[:8]}"
    _create_simple(model, table, BillingMode="PAY_PER_REQUEST")
    for _ in range(200):
        assert model.scan(TableName=table)["Count"] == 50


def test_writes_deletes_and_gets(model: Any) -> None:
    table = f"writes-{uuid.uuid4().hex[:8]}"
    _create_simple(model, table, BillingMode="PAY_PER_REQUEST")
    model.batch_write_item(
        RequestItems={
            table: [
                {"DeleteRequest": {"Key": {"pk": {"S": "k1"}}}},
                {"PutRequest": {"Item": {"pk": {"S": "k2"}, "v": {"N": "1.50"}}}},
            ]
        }
    )
    assert "Item" not in model.get_item(TableName=table, Key={"pk": {"S": "k1"}})
    # Numbers come back as they were written.
    got = model.get_item(TableName=table, Key={"pk": {"S": "k2"}}, ProjectionExpression="v")
    assert got["Item"] == {"v": {"N": "1.50"}}
    assert model.describe_table(TableName=table)["Table"]["ItemCount"] == 49
    model.put_item(
        TableName=table, Item={"pk": {"S": "new"}}, ConditionExpression="attribute_not_exists(pk)"
    )
    with pytest.raises(ClientError) as excinfo:
        model.put_item(
            TableName=table,
            Item={"pk": {"S": "new"}},
            ConditionExpression="attribute_not_exists(pk)",
        )
    assert error_code(excinfo) == "ConditionalCheckFailedException"
    with pytest.raises(ClientError) as excinfo:
        model.batch_write_item(
            RequestItems={
                table: [
                    {"PutRequest": {"Item": {"pk": {"S": "same"}}}},
                    {"DeleteRequest": {"Key": {"pk": {"S": "same"}}}},
                ]
            }
        )
    assert error_code(excinfo) == "ValidationException"
    assert table in model.list_tables()["TableNames"]
    model.delete_table(TableName=table)
    assert table not in model.list_tables()["TableNames"]


def test_table_errors(model: Any, pair: Pair) -> None:
    with pytest.raises(ClientError) as excinfo:
        create_conformance_table(model, pair.table)
    assert error_code(excinfo) == "ResourceInUseException"
    with pytest.raises(ClientError) as excinfo:
        model.create_table(
            TableName=f"noprovision-{uuid.uuid4().hex[:8]}",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        )
    assert error_code(excinfo) == "ValidationException"
    with pytest.raises(ClientError) as excinfo:
        model.put_item(TableName=pair.table, Item={"pk": {"S": "x"}})  # no sort key
    assert error_code(excinfo) == "ValidationException"


MODEL_INVALID: list[dict[str, Any]] = [
    # moto answers these three with HTTP 500.
    {"FilterExpression": "n = :v AND", "ExpressionAttributeValues": {":v": {"N": "1"}}},
    {"FilterExpression": "n = :v", "ExpressionAttributeValues": {":w": {"N": "1"}}},
    {"FilterExpression": "#x = :v", "ExpressionAttributeValues": {":v": {"N": "1"}}},
    {"Segment": 1},
    {"TotalSegments": 2},
    {"Segment": 4, "TotalSegments": 4},
    {"IndexName": "no-such-index"},
    {"Select": "COUNT", "ProjectionExpression": "s"},
    {"Select": "SPECIFIC_ATTRIBUTES"},
    {"Select": "ALL_PROJECTED_ATTRIBUTES"},
    {"IndexName": INDEX, "Select": "ALL_ATTRIBUTES"},
    {"FilterExpression": "name = :v", "ExpressionAttributeValues": {":v": {"S": "x"}}},
    {
        "FilterExpression": "n BETWEEN :hi AND :lo",
        "ExpressionAttributeValues": {":hi": {"N": "9"}, ":lo": {"N": "1"}},
    },
    {"FilterExpression": "attribute_type(n, :t)", "ExpressionAttributeValues": {":t": {"S": "X"}}},
    {"FilterExpression": "n < :t", "ExpressionAttributeValues": {":t": {"BOOL": True}}},
    {"FilterExpression": "size(:v) = :v", "ExpressionAttributeValues": {":v": {"N": "1"}}},
    {"FilterExpression": "nosuch(n)"},
    {
        "FilterExpression": "attribute_exists(n) = :v",
        "ExpressionAttributeValues": {":v": {"N": "1"}},
    },
    {"ProjectionExpression": "m, m.inner"},
    {"ProjectionExpression": "l[0], l.x"},
    {"ProjectionExpression": ""},
    {"ExclusiveStartKey": {"pk": {"S": "p-01"}}},
    {"ExclusiveStartKey": {"pk": {"S": "p-01"}, "sk": {"S": "1"}}},
]


@pytest.mark.parametrize(
    "params", MODEL_INVALID, ids=lambda p: ",".join(f"{k}={v}" for k, v in p.items())[:60]
)
def test_model_validation_errors(pair: Pair, params: dict[str, Any]) -> None:
    with pytest.raises(ClientError) as excinfo:
        pair.model.scan(TableName=pair.table, **params)
    assert error_code(excinfo) == "ValidationException"


def test_start_key_must_lie_in_its_segment(pair: Pair) -> None:
    first = pair.model.scan(TableName=pair.table, Segment=0, TotalSegments=2, Limit=1)
    with pytest.raises(ClientError) as excinfo:
        pair.model.scan(
            TableName=pair.table,
            Segment=1,
            TotalSegments=2,
            ExclusiveStartKey=first["LastEvaluatedKey"],
        )
    assert error_code(excinfo) == "ValidationException"


@pytest.mark.parametrize(
    ("target", "body", "code"),
    [
        (SCAN, {"TotalSegments": 2_000_000, "Segment": 0}, "ValidationException"),
        (SCAN, {"TotalSegments": 0, "Segment": 0}, "ValidationException"),
        (SCAN, {"Limit": 0}, "ValidationException"),
        (SCAN, {"Limit": "ten"}, "SerializationException"),
        ("DynamoDB_20120810.Query", {}, "UnknownOperationException"),
    ],
)
def test_raw_requests(
    model_server: ModelServer, pair: Pair, target: str, body: dict[str, Any], code: str
) -> None:
    assert model_server.port is not None
    status, answer = raw_request(
        model_server.port, target, json.dumps({"TableName": pair.table, **body}).encode()
    )
    assert status == 400
    assert answer["__type"].rsplit("#", 1)[1] == code


def test_malformed_json(model_server: ModelServer) -> None:
    assert model_server.port is not None
    status, answer = raw_request(model_server.port, SCAN, b"{not json")
    assert (status, answer["__type"].rsplit("#", 1)[1]) == (400, "SerializationException")


def test_launcher_reports_a_failed_start(model_server: ModelServer) -> None:
    # The port is taken: the child fails, and the error carries its stderr.
    with pytest.raises(RuntimeError, match="exited with code") as excinfo:
        ModelServer(port=model_server.port, start_timeout=20).start()
    assert "Errno" in str(excinfo.value) or "address" in str(excinfo.value).lower()


def test_launcher_checks_the_server_is_its_own(model_server: ModelServer) -> None:
    # The child bound the port itself and the launcher read it; GET / names the instance.
    with urllib.request.urlopen(model_server.endpoint_url, timeout=10) as answer:
        body = answer.read()
    assert body.startswith(b"healthy: dynascan_async model server ")
    assert len(body.split()[-1]) == 32  # the instance id the launcher gave the child


def test_launcher_options_are_checked() -> None:
    with pytest.raises(ValueError, match="partitions"):
        ModelServer(partitions=0)
    with pytest.raises(ValueError, match="latency"):
        ModelServer(latency=-1.0)


# --- in-process, asynchronous -------------------------------------------------------------


async def _create_async(client: Any, table: str, n_items: int) -> None:
    await client.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    for start in range(0, n_items, 25):
        batch = [
            {"PutRequest": {"Item": {"pk": {"S": f"k{n}"}}}}
            for n in range(start, min(start + 25, n_items))
        ]
        await client.batch_write_item(RequestItems={table: batch})


@pytest.mark.anyio
async def test_latency_is_concurrent() -> None:
    async with serve_model(latency=0.2) as url, _async_client(url) as client:
        await _create_async(client, "latency", 40)
        started = time.perf_counter()
        answers = await asyncio.gather(
            *(client.scan(TableName="latency", Segment=s, TotalSegments=8) for s in range(8))
        )
        elapsed = time.perf_counter() - started
    assert sum(answer["Count"] for answer in answers) == 40
    # Eight requests waiting 0.2 s each, at the same time: about 0.2 s, not 1.6 s.
    assert 0.2 <= elapsed < 0.8


@pytest.mark.anyio
async def test_partitions_throttle_separately() -> None:
    async with serve_model(partitions=4, partition_rcu=2.0) as url, _async_client(url) as client:
        await _create_async(client, "partitioned", 400)
        # With as many segments as partitions, segment 0 reads partition 0 only.
        served = 0
        with pytest.raises(ClientError) as excinfo:
            for _ in range(100):
                await client.scan(TableName="partitioned", Segment=0, TotalSegments=4, Limit=5)
                served += 1
        assert error_code(excinfo) == "ProvisionedThroughputExceededException"
        assert 2 <= served <= 10  # 2 RCU a second, half a unit a page
        # The other partitions still have their whole budget.
        for segment in (1, 2, 3):
            await client.scan(TableName="partitioned", Segment=segment, TotalSegments=4, Limit=5)


@pytest.mark.anyio
async def test_leaving_serve_model_closes_kept_alive_connections() -> None:
    async with AsyncExitStack() as stack:
        async with serve_model() as url:
            # The client outlives the server, with a connection kept alive in its pool.
            client = await stack.enter_async_context(_async_client(url))
            await _create_async(client, "keepalive", 3)
            assert (await client.scan(TableName="keepalive"))["Count"] == 3
            started = time.perf_counter()
        assert time.perf_counter() - started < 2.0


@pytest.mark.anyio
async def test_the_library_reads_the_model() -> None:
    async with serve_model(partitions=4) as url, _async_client(url) as client:
        await _create_async(client, "library", 300)
        async with dynascan_async.scan(
            client, "library", segments=8, concurrency=4, deserialize=False, Limit=25
        ) as scan:
            items = [item async for item in scan]
    assert sorted(item["pk"]["S"] for item in items) == sorted(f"k{n}" for n in range(300))
    assert scan.stats.consumed_capacity > 0
