"""Scan one large web-log table on a local moto server and report the client's figures.

    python benchmarks/large_scan.py --rows 50000 --segments 8

moto costs time in proportion to the whole table on every Scan request, so this measures
that the library copes with a large table (1 MB pages, many segments), not its speed:
see the ``bench`` session for speed. The client's CPU is this process's own; the server
runs in a child process.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import time
from typing import Any

import boto3
from aiobotocore.session import get_session

import dynascan_async
from dynascan_async.testing import MotoServer

TABLE = "logfile_scan"


def load(endpoint_url: str, rows: int) -> None:
    client = boto3.client(
        "dynamodb",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )
    client.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "requestid", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "requestid", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    for start in range(0, rows, 25):
        batch: list[Any] = [
            {
                "PutRequest": {
                    "Item": {
                        "requestid": {"S": f"req-{n:09d}"},
                        "host": {"S": f"web-{n % 16}.example.com"},
                        "timestamp": {"S": f"2026-11-23T{n % 24:02d}:{n % 60:02d}:00Z"},
                        "method": {"S": "GET"},
                        "url": {"S": f"/catalog/item/{n % 10_000}?session={n * 7919 % 10**9}"},
                        "responsecode": {"N": "200" if n % 5 else "404"},
                        "bytessent": {"N": str(200 + n % 50_000)},
                        "useragent": {"S": "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0"},
                    }
                }
            }
            for n in range(start, min(start + 25, rows))
        ]
        client.batch_write_item(RequestItems={TABLE: batch})


async def scan(endpoint_url: str, segments: int, concurrency: int) -> None:
    async with get_session().create_client(
        "dynamodb",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    ) as client:
        cpu = time.process_time()
        n = 0
        async with dynascan_async.scan(
            client, TABLE, segments=segments, concurrency=concurrency
        ) as s:
            async for _ in s:
                n += 1
        cpu = time.process_time() - cpu
    stats = s.stats
    print(f"scan: {stats}")
    print(
        f"items {n:,}, pages {stats.pages:,}, wall {stats.elapsed:.1f} s, "
        f"{stats.items_per_second:,.0f} items/s, client CPU {cpu:.2f} s "
        f"({cpu / max(n, 1) * 1e6:.1f} us/item), "
        f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--segments", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    with MotoServer() as server:
        started = time.perf_counter()
        load(server.endpoint_url, args.rows)
        print(f"loaded {args.rows:,} rows in {time.perf_counter() - started:.1f} s")
        asyncio.run(scan(server.endpoint_url, args.segments, args.concurrency))


if __name__ == "__main__":
    main()
