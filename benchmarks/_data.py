"""The web-log table every client scans, like ``logfile_scan`` of AWS's parallel-scan workshop.

Items are made from their number alone, so the expected count and checksum (the sum of
``bytessent``) are known without reading the table back: a client that skips or repeats
a page is caught. An item is about 240 bytes by DynamoDB's size rules (names plus values).
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import orjson
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

REGION = "us-east-1"
# Dummy credentials: every server here is local, and the requests are still signed.
ACCESS_KEY = "local"
SECRET_KEY = "local"

_METHODS = ("GET", "GET", "GET", "POST", "GET", "PUT", "GET")
_CODES = ("200", "200", "200", "304", "200", "404", "200", "200", "500", "200", "301")
_AGENTS = (
    "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Safari/605.1.15",
    "curl/8.11.1",
)


def bytessent(n: int) -> int:
    return 200 + n * 7919 % 50_000


def item(n: int) -> dict[str, dict[str, str]]:
    """Item number ``n`` in DynamoDB's AttributeValue form."""
    return {
        "requestid": {"S": f"req-{n:09d}-{n * 2654435761 % 2**32:08x}"},
        "host": {"S": f"web-{n % 16:02d}.example.com"},
        "timestamp": {
            "S": f"2026-11-23T{n // 3600 % 24:02d}:{n // 60 % 60:02d}:{n % 60:02d}.{n % 997:03d}Z"
        },
        "method": {"S": _METHODS[n % 7]},
        "url": {"S": f"/catalog/item/{n * 7919 % 100_000}?ref=search&page={n % 17}"},
        "responsecode": {"N": _CODES[n % 11]},
        "bytessent": {"N": str(bytessent(n))},
        "useragent": {"S": _AGENTS[n % 3]},
    }


def expected_checksum(items: int) -> int:
    """What every client must report: the sum of ``bytessent`` over the whole table."""
    return sum(bytessent(n) for n in range(items))


def client_kwargs(endpoint: str) -> dict[str, Any]:
    return {
        "endpoint_url": endpoint,
        "region_name": REGION,
        "aws_access_key_id": ACCESS_KEY,
        "aws_secret_access_key": SECRET_KEY,
    }


class _Signed:
    """Signed DynamoDB JSON requests over aiohttp: the loader's fast path.

    botocore validates and serializes every attribute of every item it sends (about 5 ms
    per 25-item BatchWriteItem), which would make loading a million items take longer
    than every scan together; here a request is one ``orjson.dumps`` and one SigV4
    signature (botocore's own signer), so the servers, not the loader, set the pace.
    """

    def __init__(self, session: aiohttp.ClientSession, endpoint: str) -> None:
        self.session = session
        self.url = endpoint.rstrip("/") + "/"
        self.signer = SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "dynamodb", REGION)

    async def __call__(self, operation: str, payload: dict[str, Any]) -> dict[str, Any]:
        body = orjson.dumps(payload)
        request = AWSRequest(
            method="POST",
            url=self.url,
            data=body,
            headers={
                "Content-Type": "application/x-amz-json-1.0",
                "X-Amz-Target": f"DynamoDB_20120810.{operation}",
            },
        )
        self.signer.add_auth(request)
        for attempt in range(10):
            async with self.session.post(
                self.url, data=body, headers=dict(request.headers.items())
            ) as response:
                text = await response.read()
                status = response.status
            if status == 200:
                answer: dict[str, Any] = orjson.loads(text)
                return answer
            if status < 500 and b"Throughput" not in text and b"Throttl" not in text:
                break
            await asyncio.sleep(min(1.0, 0.01 * 2**attempt))
        raise RuntimeError(f"{operation} failed: HTTP {status}: {text[:500]!r}")


async def _create(call: _Signed, table: str, provisioned_rcu: int | None) -> None:
    capacity: dict[str, Any]
    if provisioned_rcu is None:
        capacity = {"BillingMode": "PAY_PER_REQUEST"}
    else:
        capacity = {
            "BillingMode": "PROVISIONED",
            "ProvisionedThroughput": {
                "ReadCapacityUnits": provisioned_rcu,
                "WriteCapacityUnits": 100_000,
            },
        }
    await call(
        "CreateTable",
        {
            "TableName": table,
            "KeySchema": [{"AttributeName": "requestid", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "requestid", "AttributeType": "S"}],
            **capacity,
        },
    )
    for _ in range(600):
        described = await call("DescribeTable", {"TableName": table})
        if described["Table"]["TableStatus"] == "ACTIVE":
            return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"table {table} did not become ACTIVE")


async def _load(
    endpoint: str, table: str, items: int, provisioned_rcu: int | None, in_flight: int
) -> None:
    connector = aiohttp.TCPConnector(limit=in_flight)
    async with aiohttp.ClientSession(connector=connector) as session:
        call = _Signed(session, endpoint)
        await _create(call, table, provisioned_rcu)
        starts = iter(range(0, items, 25))

        async def writer() -> None:
            for start in starts:
                writes: dict[str, list[Any]] = {
                    table: [
                        {"PutRequest": {"Item": item(n)}}
                        for n in range(start, min(start + 25, items))
                    ]
                }
                for attempt in range(20):
                    answer = await call("BatchWriteItem", {"RequestItems": writes})
                    writes = answer.get("UnprocessedItems") or {}
                    if not writes:
                        break
                    await asyncio.sleep(min(1.0, 0.01 * 2**attempt))
                else:
                    raise RuntimeError("BatchWriteItem kept leaving items unprocessed")

        await asyncio.gather(*(writer() for _ in range(in_flight)))


def load(
    endpoint: str,
    table: str,
    items: int,
    *,
    provisioned_rcu: int | None = None,
    in_flight: int = 8,
) -> None:
    """Create ``table`` (on-demand, or provisioned with ``provisioned_rcu``) and write
    items ``0 .. items-1`` with BatchWriteItem, ``in_flight`` requests at a time."""
    asyncio.run(_load(endpoint, table, items, provisioned_rcu, in_flight))
