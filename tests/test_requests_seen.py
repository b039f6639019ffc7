"""What the server was really asked and really charged, seen from a recording proxy.

The library's own stats cannot prove that it passed an option through, kept to a rate or
chose the defaults the README states: a bug in the library can be a bug in its stats too.
Here the fault proxy (tests/support/faultproxy.py) records every Scan request's body and
the capacity the server charged for it, and the tests check those records.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest

import dynascan_async
from tests.support import tables
from tests.support.faultproxy import FaultProxy, ScanRecord
from tests.support.helpers import assert_same_items, async_client

pytestmark = pytest.mark.anyio

ENV = {
    **os.environ,
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "PYTHONWARNINGS": "error",
}


@pytest.fixture
def recording(faults: FaultProxy, loaded: tables.Loaded) -> FaultProxy:
    """The fault proxy (reset), recording every Scan request and its answer."""
    faults.record = True
    return faults


def answered(scans: list[ScanRecord]) -> list[ScanRecord]:
    """The Scan requests upstream answered with 200."""
    good = [scan for scan in scans if scan.status == 200]
    assert good, "no Scan request reached the server through the proxy"
    return good


async def test_the_recorder_records_what_it_is_asked_to(
    faults: FaultProxy, loaded: tables.Loaded
) -> None:
    """The tool first: off by default, one record per Scan, faults marked, reset clears."""
    async with async_client(faults.url) as client:
        await client.scan(TableName=tables.TINY)
        assert faults.scans == []
        faults.record = True
        faults.throttle_rate = 1.0
        with pytest.raises(client.exceptions.ProvisionedThroughputExceededException):
            await client.scan(TableName=tables.TINY, Limit=2)
        faults.throttle_rate = 0.0
        await client.scan(TableName=tables.TINY, Limit=3, ReturnConsumedCapacity="TOTAL")
    throttled, good = faults.scans
    assert (throttled.fault, throttled.status, throttled.consumed) == ("throttle", 400, None)
    assert throttled.request == {"TableName": tables.TINY, "Limit": 2}
    assert (good.fault, good.status) == (None, 200)
    assert good.request["Limit"] == 3
    assert good.consumed is not None
    assert good.consumed > 0
    assert throttled.received <= throttled.answered <= good.received <= good.answered
    faults.reset()
    assert faults.scans == []
    assert faults.record is False


# --- ConsistentRead reaches the server ---------------------------------------------------------


@pytest.mark.usefixtures("every_transport")
async def test_consistent_read_is_in_every_request(
    recording: FaultProxy, loaded: tables.Loaded
) -> None:
    async with async_client(recording.url) as client:
        scan = dynascan_async.scan(
            client, tables.WEBLOG, segments=3, ConsistentRead=True, Limit=100, deserialize=False
        )
        assert_same_items([item async for item in scan], loaded.weblog)
        strong = answered(recording.scans)
        recording.reset()
        recording.record = True
        scan = dynascan_async.scan(client, tables.WEBLOG, segments=3, Limit=100, deserialize=False)
        assert_same_items([item async for item in scan], loaded.weblog)
        eventual = answered(recording.scans)
    # Every page was asked for with ConsistentRead, not just the first of each segment.
    assert len(strong) >= len(loaded.weblog) // 100
    assert [scan.request.get("ConsistentRead") for scan in strong] == [True] * len(strong)
    # The control: without the option, no request carries it (so the check above can tell).
    assert not any(scan.request.get("ConsistentRead") for scan in eventual)


def cli_scan(endpoint: str, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "dynascan_async",
            "scan",
            "--table-name",
            tables.WEBLOG,
            "--endpoint-url",
            endpoint,
            "--total-segments",
            "2",
            "--page-size",
            "150",
            *flags,
        ],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("transport", ["auto", "botocore"])
def test_cli_consistent_read_is_in_every_request(
    recording: FaultProxy, loaded: tables.Loaded, transport: str
) -> None:
    result = cli_scan(recording.url, "--consistent-read", "--transport", transport)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == len(loaded.weblog)
    strong = answered(recording.scans)
    assert len(strong) >= len(loaded.weblog) // 150
    assert [scan.request.get("ConsistentRead") for scan in strong] == [True] * len(strong)
    assert {scan.request["TableName"] for scan in strong} == {tables.WEBLOG}

    recording.reset()
    recording.record = True
    result = cli_scan(recording.url, "--transport", transport)
    assert result.returncode == 0, result.stderr
    assert not any(scan.request.get("ConsistentRead") for scan in answered(recording.scans))


# --- the README's defaults: concurrency = the client's pool, segments = 4 x that ----------------


@pytest.mark.parametrize("pool", [None, 3])
@pytest.mark.usefixtures("every_transport")
async def test_defaults_seen_by_the_server(
    recording: FaultProxy, loaded: tables.Loaded, pool: int | None
) -> None:
    # Latency per page keeps requests in flight long enough to overlap, so the proxy sees
    # the scan reach its concurrency, not only stay under it (even on a loaded machine).
    recording.latency = 0.2
    config: dict[str, Any] = {} if pool is None else {"max_pool_connections": pool}
    expected_concurrency = 10 if pool is None else pool  # botocore's default pool is 10
    async with (
        async_client(recording.url, **config) as client,
        dynascan_async.scan(client, tables.WEBLOG, Limit=60, deserialize=False) as scan,
    ):
        items = [item async for item in scan]
    assert_same_items(items, loaded.weblog)
    seen = answered(recording.scans)
    total = 4 * expected_concurrency
    assert {scan.request["TotalSegments"] for scan in seen} == {total}
    assert {scan.request["Segment"] for scan in seen} == set(range(total))
    assert recording.max_in_flight == expected_concurrency


# --- rate_limit, measured at the server --------------------------------------------------------


@pytest.mark.usefixtures("every_transport")
async def test_rate_limit_holds_at_the_server(recording: FaultProxy, loaded: tables.Loaded) -> None:
    """The capacity the server charged, over time, stays within the bucket and keeps up.

    moto charges 1 RCU per page here, so ``Limit=8`` over 600 items is about 80 RCU: one
    second's burst (20) and then about 3 s at 20 RCU/s.

    Upper bound, at every answer: what the server had charged by then is at most the
    burst, plus the rate times the time since the first request arrived (and a quarter of a
    second), plus one page per request in flight (a request goes while the balance is
    positive and is charged only once its answer is in). A limiter that lets pages through
    faster than the rate (even half again as fast) breaks it within the first second.

    Lower bound: the whole scan takes no longer than the rate requires (after the burst)
    by more than half again plus a second. A limiter that waits too long (a rate halved,
    a sleep too long, debt repaid twice) takes at least twice that and fails it. Time
    lost to a slow server only helps the upper bound; the lower bound leaves room for
    a loaded machine (the unlimited scan of this table takes about 0.5 s).
    """
    rate, concurrency = 20.0, 4
    # The bucket starts counting when the first request is let through, a moment before the
    # proxy has read it: a quarter of a second of that is allowed for, on a loaded machine.
    skew = 0.25
    async with async_client(recording.url) as client:
        scan = dynascan_async.scan(
            client,
            tables.WEBLOG,
            segments=4,
            concurrency=concurrency,
            rate_limit=rate,
            Limit=8,
            deserialize=False,
        )
        items = [item async for item in scan]
    assert_same_items(items, loaded.weblog)
    seen = sorted(answered(recording.scans), key=lambda page: page.answered)
    assert all(page.request.get("ReturnConsumedCapacity") in ("TOTAL", "INDEXES") for page in seen)
    charged = [page.consumed for page in seen]
    assert None not in charged, "an answer without ConsumedCapacity"
    per_page = max(c for c in charged if c is not None)
    total = sum(c for c in charged if c is not None)
    burst = max(rate, 1.0)  # the bucket's default: one second's worth
    assert total > burst + 2 * rate, "too little capacity for the rate to matter"
    assert scan.stats.consumed_capacity == pytest.approx(total)  # its stats agree with the server

    start = min(page.received for page in seen)
    so_far = 0.0
    for page in seen:
        so_far += page.consumed or 0.0
        allowed = burst + rate * (page.answered - start + skew) + concurrency * per_page
        assert so_far <= allowed, (
            f"{so_far:.1f} RCU charged {page.answered - start:.2f} s into the scan, "
            f"more than the {allowed:.1f} a {rate} RCU/s bucket allows"
        )

    elapsed = max(page.answered for page in seen) - start
    needed = (total - burst - concurrency * per_page) / rate
    assert elapsed <= 1.5 * needed + 1.0, (
        f"{total:.0f} RCU took {elapsed:.2f} s: a {rate} RCU/s limit needs about {needed:.2f} s"
    )
