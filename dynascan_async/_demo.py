"""``dynascan demo``: the seeds' workloads on a local server the command starts itself.

A local server has no network, so on its own a parallel scan has nothing to hide; the
model server therefore adds a round trip to every Scan answer (printed), which is what a
parallel scan overlaps on DynamoDB. moto (``--server moto``) is the real emulator but
costs time in proportion to the whole table on every request, so it runs at a small size.
"""

from __future__ import annotations

__all__ = ["run_demo"]

import argparse
import asyncio
import random
import sys
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any, TextIO

import dynascan_async

TABLE = "logfile_scan"
PAGE_SIZE = 250  # the seeds pass Limit as the page size
HOSTS = [f"web-{n:02d}.example.com" for n in range(24)]
CODES = [200] * 14 + [301, 304, 403, 404, 404, 500]
AGENTS = [
    "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Safari/605.1.15",
    "curl/8.9.1",
]


def _row(n: int, rng: random.Random) -> dict[str, Any]:
    return {
        "requestid": {"S": f"{n:08d}-{rng.getrandbits(48):012x}"},
        "host": {"S": rng.choice(HOSTS)},
        "timestamp": {"S": f"2026-11-{1 + n % 28:02d}T{n % 24:02d}:{n % 60:02d}:{n % 59:02d}Z"},
        "method": {"S": rng.choice(["GET", "GET", "GET", "POST", "PUT", "DELETE"])},
        "url": {"S": f"/catalog/{rng.randrange(500)}/item/{rng.randrange(100_000)}"},
        "responsecode": {"N": str(rng.choice(CODES))},
        "bytessent": {"N": str(rng.randrange(120, 80_000))},
        "useragent": {"S": rng.choice(AGENTS)},
    }


class _Line:
    """A progress line on stderr, redrawn in place on a terminal, printed once otherwise."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self._last = 0.0

    def show(self, text: str, *, final: bool = False) -> None:
        now = time.monotonic()
        if self.tty and (final or now - self._last > 0.1):
            self._last = now
            self.stream.write(f"\r  {text}\x1b[K" + ("\n" if final else ""))
            self.stream.flush()
        elif final:
            self.stream.write(f"  {text}\n")


async def _load(
    client: Any, rows: int, line: _Line, *, bulk_url: str | None = None
) -> tuple[int, int]:
    """Create and fill the table; return (rows, total bytessent where responsecode <> 200).

    With ``bulk_url`` (the model server) the rows go in through the model's own BulkLoad, in
    requests of 2,000 rows checked as PutItem checks them, instead of 4,000 BatchWriteItem
    calls: the same table in a couple of seconds instead of half a minute,
    so the comparison is on screen sooner. The rows and the expected aggregate come from
    the same seeded generator either way.
    """
    await client.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "requestid", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "requestid", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    rng = random.Random(2019)
    expected = 0
    loaded = 0
    started = time.perf_counter()
    if bulk_url is not None:
        from .testing import bulk_load

        line.show(f"loading {rows:,} rows ...")

        def generate() -> Iterator[dict[str, Any]]:
            nonlocal expected
            for n in range(rows):
                row = _row(n, rng)
                if row["responsecode"]["N"] != "200":
                    expected += int(row["bytessent"]["N"])
                yield row

        loaded = await bulk_load(bulk_url, TABLE, generate())
        line.show(f"loaded {loaded:,} rows in {time.perf_counter() - started:.1f} s", final=True)
        return loaded, expected
    queue: asyncio.Queue[list[dict[str, Any]] | None] = asyncio.Queue(maxsize=32)

    async def writer() -> None:
        nonlocal loaded
        while (batch := await queue.get()) is not None:
            request: dict[str, Any] = {TABLE: [{"PutRequest": {"Item": i}} for i in batch]}
            while request:
                answer = await client.batch_write_item(RequestItems=request)
                request = answer.get("UnprocessedItems") or {}
            loaded += len(batch)
            line.show(f"loading {loaded:,}/{rows:,} rows ...")

    writers = [asyncio.create_task(writer()) for _ in range(8)]
    try:
        batch: list[dict[str, Any]] = []
        for n in range(rows):
            row = _row(n, rng)
            if row["responsecode"]["N"] != "200":
                expected += int(row["bytessent"]["N"])
            batch.append(row)
            if len(batch) == 25:
                await queue.put(batch)
                batch = []
        if batch:
            await queue.put(batch)
        for _ in writers:
            await queue.put(None)
        await asyncio.gather(*writers)
    finally:
        for task in writers:
            task.cancel()
    line.show(f"loaded {rows:,} rows in {time.perf_counter() - started:.1f} s", final=True)
    return rows, expected


async def _timed_scan(
    client: Any, label: str, line: _Line, **options: Any
) -> tuple[dynascan_async.ScanStats, int]:
    total = 0
    seen = 0
    async with dynascan_async.scan(client, TABLE, **options) as scan:
        async for item in scan:
            if "bytessent" in item:
                total += int(item["bytessent"])
            seen += 1
            if not seen % 2000:  # a stats snapshot per item would cost more than the item
                s = scan.stats
                line.show(f"{label}: {s.items:,} items, {s.items_per_second:,.0f} items/s ...")
    line.show(f"{label}: done in {scan.stats.elapsed:.2f} s", final=True)
    return scan.stats, total


def _server(args: argparse.Namespace) -> AbstractContextManager[Any]:
    if args.server == "moto":
        from .testing import MotoServer

        return MotoServer()
    from .testing import ModelServer

    return ModelServer(latency=args.latency)


async def _demo(args: argparse.Namespace, endpoint_url: str, out: TextIO) -> int:
    from aiobotocore.session import get_session

    line = _Line(sys.stderr)
    rows = args.rows or (100_000 if args.server == "model" else 3_000)
    async with get_session().create_client(
        "dynamodb",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="demo",
        aws_secret_access_key="demo",
    ) as client:
        bulk_url = endpoint_url if args.server == "model" else None
        rows, expected = await _load(client, rows, line, bulk_url=bulk_url)
        sequential, _ = await _timed_scan(
            client, "sequential scan", line, segments=1, concurrency=1, Limit=PAGE_SIZE
        )
        parallel, _ = await _timed_scan(
            client,
            f"parallel scan ({args.segments} segments)",
            line,
            segments=args.segments,
            concurrency=args.segments,
            Limit=PAGE_SIZE,
        )
        aggregate, total = await _timed_scan(
            client,
            "filtered aggregate",
            line,
            segments=args.segments,
            concurrency=args.segments,
            Limit=PAGE_SIZE,
            FilterExpression="responsecode <> :f",
            ExpressionAttributeValues={":f": {"N": "200"}},
            ProjectionExpression="bytessent",
        )
    width = 34
    out.write(f"\n{'':<{width}} {'time':>9} {'items/s':>10} {'items':>9} {'RCU':>9}\n")
    out.writelines(
        f"{label:<{width}} {stats.elapsed:>8.2f}s {stats.items_per_second:>10,.0f} "
        f"{stats.items:>9,} {stats.consumed_capacity:>9,.1f}\n"
        for label, stats in (
            ("sequential scan (1 segment)", sequential),
            (f"parallel scan ({args.segments} segments)", parallel),
            ("responsecode <> 200, bytessent", aggregate),
        )
    )
    speedup = sequential.elapsed / parallel.elapsed if parallel.elapsed else float("inf")
    out.write(f"\nparallel is {speedup:.1f}x faster than sequential on {rows:,} rows\n")
    ok = total == expected and sequential.items == parallel.items == rows
    verdict = "matches" if ok else "DOES NOT MATCH"
    out.write(
        f"total bytessent where responsecode <> 200: {total:,} ({verdict} the loaded data: "
        f"{expected:,}; {aggregate.scanned:,} scanned, {aggregate.count:,} returned)\n"
    )
    return 0 if ok else 1


def run_demo(args: argparse.Namespace) -> int:
    with _server(args) as server:
        if args.server == "model":
            print(
                f"model server (a model of DynamoDB, not DynamoDB) on {server.endpoint_url}, "
                f"round trip {args.latency * 1000:.0f} ms per Scan request",
                flush=True,
            )
        else:
            print(f"moto server on {server.endpoint_url}", flush=True)
        return asyncio.run(_demo(args, server.endpoint_url, sys.stdout))
