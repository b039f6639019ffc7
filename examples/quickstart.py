"""The quick start: the seeds' web-log workload on a local server this script starts.

Starts moto's DynamoDB-compatible server on 127.0.0.1, loads a ``logfile_scan`` table of
web-log rows, then runs the seed workload, "total bytessent where responsecode <> 200",
as a sequential scan and as a parallel one, and checks both against the loaded data.

    python examples/quickstart.py [--rows N] [--segments S]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from typing import Any

import boto3
from aiobotocore.session import get_session

import dynascan_async
from dynascan_async.testing import MotoServer

TABLE = "logfile_scan"
CREDENTIALS = {"aws_access_key_id": "local", "aws_secret_access_key": "local"}


def load(endpoint_url: str, rows: int) -> int:
    """Create and fill the table; return the expected answer."""
    client = boto3.client(
        "dynamodb", endpoint_url=endpoint_url, region_name="us-east-1", **CREDENTIALS
    )
    client.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "requestid", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "requestid", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    rng = random.Random(1)
    expected = 0
    batch: list[dict[str, Any]] = []
    for n in range(rows):
        code = rng.choice([200, 200, 200, 200, 301, 404, 500])
        sent = rng.randrange(200, 50_000)
        if code != 200:
            expected += sent
        batch.append(
            {
                "PutRequest": {
                    "Item": {
                        "requestid": {"S": f"req-{n:08d}"},
                        "host": {"S": f"web-{n % 16}.example.com"},
                        "timestamp": {"S": f"2026-11-23T{n % 24:02d}:{n % 60:02d}:{n % 59:02d}Z"},
                        "method": {"S": rng.choice(["GET", "GET", "POST", "PUT"])},
                        "url": {"S": f"/catalog/item/{rng.randrange(10_000)}"},
                        "responsecode": {"N": str(code)},
                        "bytessent": {"N": str(sent)},
                        "useragent": {"S": "Mozilla/5.0 (X11; Linux x86_64)"},
                    }
                }
            }
        )
        if len(batch) == 25 or n == rows - 1:
            client.batch_write_item(RequestItems={TABLE: batch})
            batch = []
    return expected


async def total_bytes(client: Any, segments: int) -> int:
    total = 0
    async with dynascan_async.scan(
        client,
        TABLE,
        segments=segments,
        FilterExpression="responsecode <> :f",
        ExpressionAttributeValues={":f": {"N": "200"}},
        ProjectionExpression="bytessent",
        Limit=200,
    ) as scan:
        async for item in scan:
            total += int(item["bytessent"])
    print(f"  segments={segments:<3} total bytessent {total:,}  ({scan.stats})")
    return total


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--segments", type=int, default=8)
    args = parser.parse_args()
    with MotoServer() as server:
        print(f"moto server on {server.endpoint_url}; loading {args.rows:,} web-log rows ...")
        started = time.perf_counter()
        expected = load(server.endpoint_url, args.rows)
        print(f"  loaded in {time.perf_counter() - started:.1f} s; expected total {expected:,}")
        async with get_session().create_client(
            "dynamodb", endpoint_url=server.endpoint_url, region_name="us-east-1", **CREDENTIALS
        ) as client:
            print("sequential scan:")
            sequential = await total_bytes(client, 1)
            print("parallel scan:")
            parallel = await total_bytes(client, args.segments)
    if sequential != expected or parallel != expected:
        raise SystemExit(f"MISMATCH: expected {expected:,}")
    print(f"both scans match the loaded data ({expected:,} bytes).")
    print(
        "(moto answers one request at a time, so on it parallel is not faster; on DynamoDB "
        "each segment is read by a different partition.)"
    )


if __name__ == "__main__":
    asyncio.run(main())
