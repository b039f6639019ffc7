"""The test tables: created and filled once per session, with their reference scans.

A reference is what a plain boto3 paginator returns for the same table and parameters;
every scan in the suite is compared with one.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

WEBLOG = "logfile_scan"  # the seeds' web-log table, with a global secondary index
WEBLOG_INDEX = "host-index"
WEBLOG_ROWS = 600
TYPES = "all_types"  # every attribute type, composite key
BIG = "big_items"  # ~150 KB items: pages end at 1 MB, not at Limit
TINY = "tiny"  # fewer items than segments
BINARY_KEYS = "binary_keys"  # binary hash key, for checkpoints of binary keys

HOSTS = [f"host-{n}.example.com" for n in range(8)]
METHODS = ["GET", "POST", "PUT", "DELETE"]
CODES = [200, 200, 200, 200, 301, 304, 404, 500]


@dataclass(frozen=True)
class Loaded:
    weblog: list[dict[str, Any]]
    types: list[dict[str, Any]]
    big: list[dict[str, Any]]
    tiny: list[dict[str, Any]]
    binary_keys: list[dict[str, Any]]


def weblog_item(n: int, rng: random.Random) -> dict[str, Any]:
    return {
        "requestid": {"S": f"req-{n:07d}"},
        "host": {"S": rng.choice(HOSTS)},
        "timestamp": {"S": f"2026-11-{1 + n % 28:02d}T{n % 24:02d}:{n % 60:02d}:00Z"},
        "method": {"S": rng.choice(METHODS)},
        "url": {"S": f"/page/{rng.randrange(1000)}?q={rng.randrange(10**6)}"},
        "responsecode": {"N": str(rng.choice(CODES))},
        "bytessent": {"N": str(rng.randrange(100, 100_000))},
        "useragent": {"S": "Mozilla/5.0 (X11; Linux x86_64) dynascan-test/1.0"},
    }


def types_item(n: int) -> dict[str, Any]:
    item: dict[str, Any] = {
        "pk": {"S": f"t-{n % 7}"},
        "sk": {"N": str(n)},
        "s": {"S": f"text {n} ünïcödé ✓"},
        "n_int": {"N": str(n * 1_000_003)},
        "n_frac": {"N": f"-{n}.{n:03d}50"},
        "n_big": {"N": "9" * 38},
        "n_tiny": {"N": "1E-130"},
        # 40 digits: DynamoDB stores it, boto3's TypeDeserializer raises Rounded on it.
        "n_wide": {"N": "1" + "0" * 39},
        "b": {"B": bytes([n % 256, 0, 255, 10])},
        "ss": {"SS": [f"a{n}", f"b{n}", "c"]},
        "ns": {"NS": ["1", str(n), "2.5"] if n not in (1, 2) else ["1", "2.5"]},
        "bs": {"BS": [b"\x00", bytes([n % 256 or 1, 1])]},
        "yes": {"BOOL": n % 2 == 0},
        "nothing": {"NULL": True},
        "list": {"L": [{"S": "x"}, {"N": "1"}, {"L": [{"BOOL": False}]}, {"M": {"k": {"S": "v"}}}]},
        "map": {"M": {"inner": {"M": {"deep": {"N": str(n)}}}, "b": {"B": b"\x01\x02"}}},
        "empty_list": {"L": []},
        "empty_map": {"M": {}},
    }
    return item


def _create(client: Any, name: str, keys: list[tuple[str, str, str]], **extra: Any) -> None:
    client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": a, "KeyType": k} for a, _, k in keys],
        AttributeDefinitions=[
            {"AttributeName": a, "AttributeType": t}
            for a, t in {(a, t) for a, t, _ in keys} | set(extra.pop("more_attributes", []))
        ],
        BillingMode="PAY_PER_REQUEST",
        **extra,
    )


def _put_all(client: Any, name: str, items: list[dict[str, Any]]) -> None:
    for start in range(0, len(items), 25):
        batch = [{"PutRequest": {"Item": item}} for item in items[start : start + 25]]
        response = client.batch_write_item(RequestItems={name: batch})
        assert not response.get("UnprocessedItems"), response["UnprocessedItems"]


def reference_scan(client: Any, table: str, **params: Any) -> list[dict[str, Any]]:
    """Every item, the plain boto3 way: one sequential paginator."""
    paginator = client.get_paginator("scan")
    return [
        item for page in paginator.paginate(TableName=table, **params) for item in page["Items"]
    ]


def load_all(client: Any) -> Loaded:
    rng = random.Random(2026)
    weblog = [weblog_item(n, rng) for n in range(WEBLOG_ROWS)]
    _create(
        client,
        WEBLOG,
        [("requestid", "S", "HASH")],
        more_attributes=[("host", "S")],
        GlobalSecondaryIndexes=[
            {
                "IndexName": WEBLOG_INDEX,
                "KeySchema": [
                    {"AttributeName": "host", "KeyType": "HASH"},
                    {"AttributeName": "requestid", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["bytessent"]},
            }
        ],
    )
    _put_all(client, WEBLOG, weblog)

    types = [types_item(n) for n in range(60)]
    _create(client, TYPES, [("pk", "S", "HASH"), ("sk", "N", "RANGE")])
    _put_all(client, TYPES, types)

    big = [
        {"pk": {"S": f"big-{n:03d}"}, "blob": {"S": chr(65 + n % 26) * 150_000}} for n in range(24)
    ]
    _create(client, BIG, [("pk", "S", "HASH")])
    _put_all(client, BIG, big)

    tiny = [{"pk": {"S": f"tiny-{n}"}, "v": {"N": str(n)}} for n in range(5)]
    _create(client, TINY, [("pk", "S", "HASH")])
    _put_all(client, TINY, tiny)

    binary_keys = [
        {"id": {"B": n.to_bytes(2, "big") + b"\xff\x00"}, "v": {"N": str(n)}} for n in range(300)
    ]
    _create(client, BINARY_KEYS, [("id", "B", "HASH")])
    _put_all(client, BINARY_KEYS, binary_keys)

    return Loaded(
        weblog=reference_scan(client, WEBLOG),
        types=reference_scan(client, TYPES),
        big=reference_scan(client, BIG),
        tiny=reference_scan(client, TINY),
        binary_keys=reference_scan(client, BINARY_KEYS),
    )
