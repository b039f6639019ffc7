"""One scan of the whole table by one client, in this process alone; prints one JSON line.

    python benchmarks/clients.py dynascan --endpoint http://127.0.0.1:8000 --table logfile_scan

Run by ``run.py`` in a fresh subprocess per client and repetition, so that each figure is
this process's own: the CPU time (``getrusage(RUSAGE_SELF)``, user + system, every thread
included -- the boto3 recipe works in threads) is taken around the scan only, after the
imports and the client's construction, and the peak RSS is the process's own ``VmHWM``
(not ``ru_maxrss``, which on Linux includes the RSS of the runner it was forked from).

Every client consumes every item the same way: it counts it and adds up ``bytessent``
(so the values are touched, as a real consumer would), and reports that sum as the
checksum the parent compares with the loaded data. Clients that give Python values
convert with ``int()``; raw clients parse the ``N`` string.

This file imports nothing from the rest of ``benchmarks`` on purpose: what a client costs
to import and set up is not measured, but it must not depend on the runner either.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import importlib
import json
import resource
import sys
import time
from collections import deque
from collections.abc import Callable, Coroutine, Iterator
from decimal import Decimal
from typing import Any

REGION = "us-east-1"
ACCESS_KEY = "local"
SECRET_KEY = "local"
CLIENTS: dict[str, str] = {
    "paginator": "aiobotocore get_paginator('scan'), sequential, raw items",
    "aioboto3_table": "aioboto3 Table.scan, own pagination, sequential, Python values",
    "recipe": "ThreadPoolExecutor recipe of a blog post, verbatim: boto3, Python values",
    "recipe_fixed": "ThreadPoolExecutor recipe, lost-pages bug fixed (a deque), Python values",
    "aiodynamo": "aiodynamo Client.scan over aiohttp, sequential, numbers as float",
    "lowerbound": "aiohttp + orjson + SigV4Auth + S/N decode, parallel segments",
    "dynascan": "dynascan_async.scan, Python values",
    "dynascan_raw": "dynascan_async.scan(deserialize=False), raw items",
    "dynascan_arrow": "dynascan_async.arrow.scan_batches, pyarrow record batches",
}
# Clients with a segments/concurrency knob; the others read one page at a time.
PARALLEL = frozenset(
    {"recipe", "recipe_fixed", "lowerbound", "dynascan", "dynascan_raw", "dynascan_arrow"}
)


class Meter:
    """Wall and CPU time of a block; CPU is the whole process's, threads included."""

    wall = 0.0
    cpu = 0.0

    @staticmethod
    def _cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    def __enter__(self) -> None:
        self._wall0 = time.perf_counter()
        self._cpu0 = self._cpu()

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self._wall0
        self.cpu = self._cpu() - self._cpu0


class Result:
    """What the parent needs, filled in by each client."""

    def __init__(self) -> None:
        self.items = 0
        self.checksum = 0
        self.meter = Meter()
        self.extra: dict[str, Any] = {}


def _optional(module: str) -> Any:
    """A package of the ``bench`` dependency group, imported by name.

    The project's type check runs without that group (aioboto3 would pin aiobotocore
    2.25 there), so these imports must not be visible to mypy; at run time a missing
    package fails this one client, and the runner reports it.
    """
    return importlib.import_module(module)


def _profiled(args: argparse.Namespace) -> cProfile.Profile | None:
    return cProfile.Profile() if args.profile else None


class _Measure:
    """The meter, plus the profiler when ``--profile`` asks for one, around the scan."""

    def __init__(self, result: Result, args: argparse.Namespace) -> None:
        self.result = result
        self.profile = _profiled(args)
        self.path: str | None = args.profile

    def __enter__(self) -> None:
        self.result.meter.__enter__()
        if self.profile is not None:
            self.profile.enable()

    def __exit__(self, *exc: object) -> None:
        if self.profile is not None:
            self.profile.disable()
        self.result.meter.__exit__(*exc)
        if self.profile is not None and self.path:
            self.profile.dump_stats(self.path)


def _scan_params(args: argparse.Namespace) -> dict[str, Any]:
    """Scan parameters every client passes: only ``Limit`` (the page size) when asked."""
    return {"Limit": args.page_limit} if args.page_limit else {}


# --- aiobotocore's paginator: the baseline ------------------------------------------------


async def paginator(args: argparse.Namespace, result: Result) -> None:
    from aiobotocore.session import get_session

    async with get_session().create_client(
        "dynamodb",
        endpoint_url=args.endpoint,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
    ) as client:
        pages = client.get_paginator("scan").paginate(TableName=args.table, **_scan_params(args))
        items = total = 0
        with _Measure(result, args):
            async for page in pages:
                for item in page["Items"]:
                    items += 1
                    if not args.drop:
                        total += int(item["bytessent"]["N"])
        result.items, result.checksum = items, total


# --- aioboto3's Table resource ------------------------------------------------------------


async def aioboto3_table(args: argparse.Namespace, result: Result) -> None:
    aioboto3 = _optional("aioboto3")
    session = aioboto3.Session(
        region_name=REGION, aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY
    )
    async with session.resource("dynamodb", endpoint_url=args.endpoint) as dynamodb:
        table = await dynamodb.Table(args.table)
        params = _scan_params(args)
        items = total = 0
        with _Measure(result, args):
            while True:
                page = await table.scan(**params)
                for item in page["Items"]:
                    items += 1
                    if not args.drop:
                        total += int(item["bytessent"])
                if "LastEvaluatedKey" not in page:
                    break
                params["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        result.items, result.checksum = items, total


# --- the ThreadPoolExecutor recipe: boto3 in a thread pool, from a blog post ---------------
#
# Copied from a widely copied blog post on parallel scans, as published, but for the two
# constants, which are parameters here (their defaults are the post's) so that the recipe
# can be run at the same parallelism as the others, and for the thread pool's size: the
# post relies on ThreadPoolExecutor()'s default (min(32, CPUs + 4) threads: 6 on 2 cores)
# being at least ``max_scans_in_parallel``, which holds for its 5 but not for 16.
#
# The post's loop has a bug that loses pages: ``scans_to_run`` is an iterator over the list
# ``tasks_to_do``, and segments are re-queued by appending to that list. Once the iterator
# has been asked for a task while the list had none waiting (every unfinished segment in
# flight, and one finishes), a list iterator is exhausted for good: segments re-queued
# after that are never scanned again. With 25 segments and 5 in flight it strikes at the
# tail of the scan; with as many segments as scans in flight, on the first finished segment.
# ``recipe`` runs it as published (the runner reports its wrong counts); ``recipe_fixed``
# is the same loop over a deque, the smallest change that reads every page.


def parallel_scan_table(
    dynamo_client: Any,
    *,
    TableName: str,
    total_segments: int = 25,
    max_scans_in_parallel: int = 5,
    **kwargs: Any,
) -> Iterator[dict[str, Any]]:
    import concurrent.futures
    import itertools

    # How many segments to divide the table into?  As long as this is >= to the
    # number of threads used by the ThreadPoolExecutor, the exact number doesn't
    # seem to matter.
    # total_segments = 25   (a parameter here)

    # How many scans to run in parallel?  If you set this really high you could
    # overwhelm the table read capacity, but otherwise I don't change this much.
    # max_scans_in_parallel = 5   (a parameter here)

    # Schedule an initial scan for each segment of the table.  We read each
    # segment in a separate thread, then look to see if there are more rows to
    # read -- and if so, we schedule another scan.
    tasks_to_do = [
        {
            **kwargs,
            "TableName": TableName,
            "Segment": segment,
            "TotalSegments": total_segments,
        }
        for segment in range(total_segments)
    ]

    # Make the list an iterator, so the same tasks don't get run repeatedly.
    scans_to_run = iter(tasks_to_do)

    workers = max(min(32, (_cpus() or 1) + 4), max_scans_in_parallel)
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as executor:
        # Schedule the initial batch of futures.  Here we assume that
        # max_scans_in_parallel < total_segments, so there's no risk that
        # the queue will throw an Empty exception.
        futures = {
            executor.submit(dynamo_client.scan, **scan_params): scan_params
            for scan_params in itertools.islice(scans_to_run, max_scans_in_parallel)
        }

        while futures:
            # Wait for the first future to complete.
            done, _ = concurrent.futures.wait(
                futures, return_when=concurrent.futures.FIRST_COMPLETED
            )

            for fut in done:
                yield from fut.result()["Items"]

                scan_params = futures.pop(fut)

                # A Scan reads up to N items, and tells you where it got to in
                # the LastEvaluatedKey.  You pass this key to the next Scan operation,
                # and it continues where it left off.
                try:
                    scan_params["ExclusiveStartKey"] = fut.result()["LastEvaluatedKey"]
                except KeyError:
                    break
                tasks_to_do.append(scan_params)

            # Schedule the next batch of futures.  At some point we might run out
            # of entries in the queue if we've finished scanning the table, so
            # we need to spot that and not throw.
            for scan_params in itertools.islice(scans_to_run, len(done)):
                futures[executor.submit(dynamo_client.scan, **scan_params)] = scan_params


def parallel_scan_table_fixed(
    dynamo_client: Any,
    *,
    TableName: str,
    total_segments: int = 25,
    max_scans_in_parallel: int = 5,
    **kwargs: Any,
) -> Iterator[dict[str, Any]]:
    """The post's loop with a deque for the queue: a segment re-queued is always read."""
    import concurrent.futures

    tasks_to_do = deque(
        {**kwargs, "TableName": TableName, "Segment": segment, "TotalSegments": total_segments}
        for segment in range(total_segments)
    )
    workers = max(min(32, (_cpus() or 1) + 4), max_scans_in_parallel)
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as executor:
        futures: dict[concurrent.futures.Future[Any], dict[str, Any]] = {}
        while tasks_to_do and len(futures) < max_scans_in_parallel:
            scan_params = tasks_to_do.popleft()
            futures[executor.submit(dynamo_client.scan, **scan_params)] = scan_params
        while futures:
            done, _ = concurrent.futures.wait(
                futures, return_when=concurrent.futures.FIRST_COMPLETED
            )
            for fut in done:
                yield from fut.result()["Items"]
                scan_params = futures.pop(fut)
                if "LastEvaluatedKey" in fut.result():
                    scan_params["ExclusiveStartKey"] = fut.result()["LastEvaluatedKey"]
                    tasks_to_do.append(scan_params)
            while tasks_to_do and len(futures) < max_scans_in_parallel:
                scan_params = tasks_to_do.popleft()
                futures[executor.submit(dynamo_client.scan, **scan_params)] = scan_params


def _cpus() -> int | None:
    import os

    return os.cpu_count()


def _recipe(args: argparse.Namespace, result: Result, generator: Any) -> None:
    import boto3
    from botocore.config import Config

    # The post's client: a resource's client, which turns items into Python values.
    dynamo_client = boto3.resource(
        "dynamodb",
        endpoint_url=args.endpoint,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        # One pooled connection per scan in flight (botocore's default pool is 10).
        config=Config(max_pool_connections=max(10, args.concurrency)),
    ).meta.client
    items = total = 0
    with _Measure(result, args):
        for item in generator(
            dynamo_client,
            TableName=args.table,
            total_segments=args.segments,
            max_scans_in_parallel=args.concurrency,
            **_scan_params(args),
        ):
            items += 1
            if not args.drop:
                total += int(item["bytessent"])
    result.items, result.checksum = items, total


def recipe(args: argparse.Namespace, result: Result) -> None:
    _recipe(args, result, parallel_scan_table)


def recipe_fixed(args: argparse.Namespace, result: Result) -> None:
    _recipe(args, result, parallel_scan_table_fixed)


# --- aiodynamo ------------------------------------------------------------------------------


async def aiodynamo(args: argparse.Namespace, result: Result) -> None:
    import aiohttp
    from yarl import URL

    client_module = _optional("aiodynamo.client")
    credentials = _optional("aiodynamo.credentials")
    http = _optional("aiodynamo.http.aiohttp")
    async with aiohttp.ClientSession() as session:
        # numeric_type left at aiodynamo's default, float: cheaper than Decimal, not exact.
        client = client_module.Client(
            http.AIOHTTP(session),
            credentials.StaticCredentials(credentials.Key(ACCESS_KEY, SECRET_KEY)),
            REGION,
            endpoint=URL(args.endpoint),
        )
        items = total = 0
        with _Measure(result, args):
            async for item in client.scan(args.table, limit=None):
                items += 1
                if not args.drop:
                    total += int(item["bytessent"])
        result.items, result.checksum = items, total
        if args.page_limit:
            result.extra["note"] = "aiodynamo has no page-size knob; default pages"


# --- the lower bound: what any Python scan client must at least do ------------------------


def _decode(item: dict[str, dict[str, str]]) -> dict[str, Any]:
    """The least a Python-values client can do for this table: S as str, N as Decimal."""
    return {name: (v["S"] if "S" in v else Decimal(v["N"])) for name, v in item.items()}


async def lowerbound(args: argparse.Namespace, result: Result) -> None:
    """Signed requests (botocore's SigV4Auth, every request), aiohttp, orjson, the decode
    above, and nothing else: no validation, no retries, no buffering between the HTTP
    answer and the consumer (each worker consumes its own page in place).

    ``concurrency`` workers share one line of ``segments`` segments, one page a turn,
    as dynascan does; with ``--segments 1 --concurrency 1`` it is a sequential scan.
    """
    import aiohttp
    import orjson
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    url = args.endpoint.rstrip("/") + "/"
    signer = SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "dynamodb", REGION)
    base = {"TableName": args.table, "TotalSegments": args.segments, **_scan_params(args)}
    line = deque(range(args.segments))
    starts: dict[int, Any] = {}
    counts = [0, 0]  # items, checksum
    drop = args.drop

    async def worker(session: aiohttp.ClientSession) -> None:
        while line:
            segment = line.popleft()
            payload = {**base, "Segment": segment}
            if segment in starts:
                payload["ExclusiveStartKey"] = starts[segment]
            body = orjson.dumps(payload)
            request = AWSRequest(
                method="POST",
                url=url,
                data=body,
                headers={
                    "Content-Type": "application/x-amz-json-1.0",
                    "X-Amz-Target": "DynamoDB_20120810.Scan",
                },
            )
            signer.add_auth(request)
            async with session.post(url, data=body, headers=dict(request.headers)) as response:
                raw = await response.read()
                if response.status != 200:
                    raise RuntimeError(f"Scan failed: HTTP {response.status}: {raw[:300]!r}")
            page = orjson.loads(raw)
            items = total = 0
            for item in page["Items"]:
                value = _decode(item)
                items += 1
                if not drop:
                    total += int(value["bytessent"])
            counts[0] += items
            counts[1] += total
            if "LastEvaluatedKey" in page:
                starts[segment] = page["LastEvaluatedKey"]
                line.append(segment)

    connector = aiohttp.TCPConnector(limit=args.concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        with _Measure(result, args):
            await asyncio.gather(*(worker(session) for _ in range(args.concurrency)))
    result.items, result.checksum = counts


# --- dynascan_async -------------------------------------------------------------------------


async def _dynascan(args: argparse.Namespace, result: Result, *, deserialize: bool) -> None:
    from aiobotocore.config import AioConfig
    from aiobotocore.session import get_session

    import dynascan_async

    retries: dict[str, Any] = {}
    if args.rate_limit:
        # Exact throttle counts: botocore's own retries off, the library's in charge.
        retries = {"retries": {"total_max_attempts": 1}}
    config = AioConfig(max_pool_connections=args.concurrency, **retries)
    options: dict[str, Any] = {"transport": args.transport}
    if args.rate_limit:
        options["rate_limit"] = args.rate_limit
    async with get_session().create_client(
        "dynamodb",
        endpoint_url=args.endpoint,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        config=config,
    ) as client:
        items = total = 0
        samples: list[tuple[float, float]] = []
        deadline = time.perf_counter() + args.seconds if args.seconds else None
        next_sample = time.perf_counter()
        with _Measure(result, args):
            async with dynascan_async.scan(
                client,
                args.table,
                segments=args.segments,
                concurrency=args.concurrency,
                deserialize=deserialize,
                **options,
                **_scan_params(args),
            ) as scan:
                if args.drop:
                    async for _ in scan:
                        items += 1
                elif deadline is not None:
                    # The rate scenario: sample consumed capacity, stop after ``seconds``.
                    async for item in scan:
                        items += 1
                        total += int(item["bytessent"])
                        now = time.perf_counter()
                        if now >= next_sample:
                            stats = scan.stats
                            samples.append((stats.elapsed, stats.consumed_capacity))
                            next_sample = now + 0.25
                            if now >= deadline:
                                break
                elif deserialize:
                    async for item in scan:
                        items += 1
                        total += int(item["bytessent"])
                else:
                    async for item in scan:
                        items += 1
                        total += int(item["bytessent"]["N"])
        stats = scan.stats
        result.items, result.checksum = items, total
        result.extra.update(
            pages=stats.pages,
            consumed_capacity=stats.consumed_capacity,
            elapsed=stats.elapsed,
            retries=stats.retries,
            throttles=stats.throttles,
            samples=samples,
        )


async def dynascan(args: argparse.Namespace, result: Result) -> None:
    await _dynascan(args, result, deserialize=True)


async def dynascan_raw(args: argparse.Namespace, result: Result) -> None:
    await _dynascan(args, result, deserialize=False)


async def dynascan_arrow(args: argparse.Namespace, result: Result) -> None:
    """Record batches, consumed as columnar code does: a column's sum per batch."""
    from aiobotocore.config import AioConfig
    from aiobotocore.session import get_session

    pc = _optional("pyarrow.compute")
    arrow = _optional("dynascan_async.arrow")

    async with get_session().create_client(
        "dynamodb",
        endpoint_url=args.endpoint,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        config=AioConfig(max_pool_connections=args.concurrency),
    ) as client:
        items = total = 0
        with _Measure(result, args):
            async with arrow.scan_batches(
                client,
                args.table,
                segments=args.segments,
                concurrency=args.concurrency,
                transport=args.transport,
                **_scan_params(args),
            ) as batches:
                async for batch in batches:
                    items += batch.num_rows
                    if not args.drop:
                        total += pc.sum(batch.column("bytessent")).as_py() or 0
        stats = batches.stats
        result.items, result.checksum = items, total
        result.extra.update(pages=stats.pages, elapsed=stats.elapsed, retries=stats.retries)


# The recipe is synchronous (threads), and runs without an event loop.
RUNNERS: dict[str, Callable[[argparse.Namespace, Result], Coroutine[Any, Any, None] | None]] = {
    "paginator": paginator,
    "aioboto3_table": aioboto3_table,
    "recipe": recipe,
    "recipe_fixed": recipe_fixed,
    "aiodynamo": aiodynamo,
    "lowerbound": lowerbound,
    "dynascan": dynascan,
    "dynascan_raw": dynascan_raw,
    "dynascan_arrow": dynascan_arrow,
}


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("client", choices=sorted(RUNNERS))
    parser.add_argument("--endpoint", required=True, help="http://127.0.0.1:PORT")
    parser.add_argument("--table", default="logfile_scan")
    parser.add_argument("--segments", type=int, default=25, help="parallel clients only")
    parser.add_argument("--concurrency", type=int, default=5, help="parallel clients only")
    parser.add_argument("--page-limit", type=int, default=0, help="Scan Limit (0: 1 MB pages)")
    parser.add_argument("--drop", action="store_true", help="count items, touch nothing")
    parser.add_argument("--rate-limit", type=float, default=0.0, help="dynascan: RCU/s")
    parser.add_argument("--seconds", type=float, default=0.0, help="dynascan: stop after")
    parser.add_argument("--profile", default="", help="write cProfile stats of the scan here")
    parser.add_argument(
        "--transport", default="auto", choices=["auto", "direct", "botocore"], help="dynascan"
    )
    return parser


def _own_peak_rss_kib() -> int:
    """VmHWM: the peak of this address space, made at exec (``_peak`` says why not
    ``ru_maxrss``); ``ru_maxrss`` off Linux."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if not args.endpoint.startswith(("http://127.0.0.1:", "http://localhost:")):
        raise SystemExit("benchmark clients only talk to a server on 127.0.0.1")
    result = Result()
    outcome = RUNNERS[args.client](args, result)
    if outcome is not None:
        asyncio.run(outcome)
    print(
        json.dumps(
            {
                "client": args.client,
                "items": result.items,
                "checksum": result.checksum,
                "wall": result.meter.wall,
                "cpu": result.meter.cpu,
                "max_rss_kib": _own_peak_rss_kib(),
                **result.extra,
            }
        ),
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
