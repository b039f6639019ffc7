"""Throttling, 5xx, dropped connections and persistent errors, injected by a proxy.

The proxy sits between the client and a real moto server; see tests/support/faultproxy.py.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest
from botocore.exceptions import ClientError

import dynascan_async
from dynascan_async._capacity import Tuning
from tests.support import tables
from tests.support.faultproxy import FaultProxy
from tests.support.helpers import assert_same_items, async_client, other_tasks

# Every test here runs once with each transport (see conftest.every_transport).
pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("every_transport")]

FAST_RETRY = dynascan_async.RetryPolicy(max_attempts=30, base=0.001, cap=0.01)
# The proxy throttles at random, not because the scan reads too fast: adaptive control
# would rightly slow these scans to a crawl. It is tested against the model server's real
# throttling in test_capacity.py; here the subject is the retries.
STEADY = Tuning(adaptive=False)


@pytest.mark.parametrize(
    ("throttle", "error", "drop"),
    [(0.3, 0.0, 0.0), (0.0, 0.3, 0.0), (0.0, 0.0, 0.25), (0.2, 0.15, 0.15)],
)
async def test_transient_faults_lose_and_duplicate_nothing(
    proxied_client: Any,
    faults: FaultProxy,
    loaded: tables.Loaded,
    throttle: float,
    error: float,
    drop: float,
) -> None:
    faults.seed = 7
    faults.throttle_rate, faults.error_rate, faults.drop_rate = throttle, error, drop
    async with dynascan_async.scan(
        proxied_client,
        tables.WEBLOG,
        segments=6,
        concurrency=4,
        Limit=40,
        deserialize=False,
        retry=FAST_RETRY,
        _tuning=STEADY,
    ) as scan:
        items = [item async for item in scan]
    assert_same_items(items, loaded.weblog)
    injected = sum(faults.injected.values())
    assert injected > 0
    assert scan.stats.retries == injected
    assert scan.stats.throttles == faults.injected.get("throttle", 0)


async def test_persistent_error_surfaces_promptly_and_resume_completes(
    proxied_client: Any, faults: FaultProxy, loaded: tables.Loaded
) -> None:
    options: dict[str, Any] = {"segments": 5, "concurrency": 3, "Limit": 30, "deserialize": False}
    faults.fail_after = 9
    got: list[Any] = []
    scan = dynascan_async.scan(proxied_client, tables.WEBLOG, retry=FAST_RETRY, **options)
    with anyio.fail_after(20):  # a hang would be the bug
        with pytest.raises(ClientError) as info:
            async with scan:
                async for item in scan:
                    got.append(item)  # noqa: PERF401 - keep what was read before the error
    error = info.value
    assert error.response["Error"]["Code"] == "AccessDeniedException"
    notes = " ".join(getattr(error, "__notes__", []))
    assert tables.WEBLOG in notes
    assert "segment" in notes
    assert 0 < len(got) < len(loaded.weblog)
    assert other_tasks() == set()
    # Not retried: access denied is not transient.
    assert faults.injected["persistent"] <= options["concurrency"]
    state = json.loads(json.dumps(scan.checkpoint()))

    faults.reset()
    rest = [
        item
        async for item in dynascan_async.scan(
            proxied_client, tables.WEBLOG, resume_from=state, **options
        )
    ]
    assert_same_items(got + rest, loaded.weblog)


async def test_error_raised_from_the_bare_loop(
    proxied_client: Any, faults: FaultProxy, loaded: tables.Loaded
) -> None:
    faults.fail_after = 3
    faults.fail_code = "InternalServerError"
    faults.fail_status = 500
    scan = dynascan_async.scan(
        proxied_client,
        tables.WEBLOG,
        segments=4,
        concurrency=2,
        Limit=25,
        deserialize=False,
        retry=dynascan_async.RetryPolicy(max_attempts=3, base=0.001, cap=0.001),
    )
    got = []
    with pytest.raises(ClientError) as info:
        async for item in scan:
            got.append(item)  # noqa: PERF401 - keep what was read before the error
    assert info.value.response["Error"]["Code"] == "InternalServerError"
    assert scan.stats.retries >= 2  # a 5xx is retried before it is given up on
    assert other_tasks() == set()
    faults.reset()
    rest = [
        item
        async for item in dynascan_async.scan(
            proxied_client,
            tables.WEBLOG,
            segments=4,
            concurrency=2,
            Limit=25,
            deserialize=False,
            resume_from=scan.checkpoint(),
        )
    ]
    # The exact multiset: counts plus disjoint keys would pass one item twice and one lost.
    assert_same_items(got + rest, loaded.weblog)


async def test_missing_table_is_a_client_error(client: Any) -> None:
    with pytest.raises(ClientError) as info:
        async for _ in dynascan_async.scan(client, "no_such_table", segments=3):
            pass
    assert info.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert info.value.dynascan_table == "no_such_table"  # type: ignore[attr-defined]
    assert other_tasks() == set()


@pytest.mark.parametrize(("segments", "concurrency"), [(12, 3), (8, 1), (30, 7)])
async def test_never_more_in_flight_than_concurrency(
    proxied_client: Any, faults: FaultProxy, loaded: tables.Loaded, segments: int, concurrency: int
) -> None:
    faults.latency = 0.05
    faults.throttle_rate = 0.1  # retries must respect the limit too
    async with dynascan_async.scan(
        proxied_client,
        tables.WEBLOG,
        segments=segments,
        concurrency=concurrency,
        Limit=100,
        deserialize=False,
        retry=FAST_RETRY,
        _tuning=STEADY,
    ) as scan:
        items = [item async for item in scan]
    assert_same_items(items, loaded.weblog)
    assert faults.max_in_flight <= concurrency
    assert faults.max_in_flight == concurrency  # and the limit is actually used


async def settled_count(faults: FaultProxy, *, quiet: float, limit: float) -> int:
    """The proxy's Scan count once it has not moved for ``quiet`` seconds."""
    with anyio.fail_after(limit):
        while True:
            before = faults.scan_requests
            await anyio.sleep(quiet)
            if faults.scan_requests == before and faults.in_flight == 0:
                return before


async def test_paused_consumer_stops_the_requests(
    proxied_client: Any, faults: FaultProxy, loaded: tables.Loaded
) -> None:
    concurrency, buffer_pages = 3, 2
    async with dynascan_async.scan(
        proxied_client,
        tables.WEBLOG,
        segments=10,
        concurrency=concurrency,
        buffer_pages=buffer_pages,
        Limit=10,
        deserialize=False,
    ) as scan:
        iterator = aiter(scan)
        first = await anext(iterator)
        # The consumer pauses; the workers fill the buffer and stop. Wait until the
        # request count has been still for a while (bounded, so a bug fails, not hangs).
        paused_at = await settled_count(faults, quiet=0.3, limit=10.0)
        await anyio.sleep(0.5)
        assert faults.scan_requests == paused_at
        # One page with the consumer, buffer_pages queued, one blocked per worker.
        assert scan.stats.pages <= 1 + buffer_pages + concurrency
        assert paused_at <= 1 + buffer_pages + concurrency
        rest = [item async for item in iterator]
    assert_same_items([first, *rest], loaded.weblog)
    assert faults.scan_requests > paused_at


async def test_botocore_retries_are_counted_not_multiplied(
    faults: FaultProxy, loaded: tables.Loaded
) -> None:
    """A client left with botocore's own retries: both layers share one attempt budget."""
    faults.seed = 11
    faults.throttle_rate = 0.3
    retries = {"mode": "standard", "max_attempts": 3}
    async with (
        async_client(faults.url, retries=retries) as client,
        dynascan_async.scan(
            client,
            tables.WEBLOG,
            segments=4,
            Limit=50,
            deserialize=False,
            retry=FAST_RETRY,
            _tuning=STEADY,
        ) as scan,
    ):
        items = [item async for item in scan]
    assert_same_items(items, loaded.weblog)
    # Every injected throttle was followed by exactly one retry, by botocore or by us.
    assert scan.stats.retries == faults.injected["throttle"] > 0


async def test_attempt_budget_includes_botocore_attempts(faults: FaultProxy) -> None:
    faults.throttle_rate = 1.0
    retries = {"mode": "standard", "total_max_attempts": 4}
    async with async_client(faults.url, retries=retries) as client:
        policy = dynascan_async.RetryPolicy(max_attempts=6, base=0.001, cap=0.001)
        with pytest.raises(ClientError) as info:
            async for _ in dynascan_async.scan(
                client, tables.TINY, segments=1, retry=policy, transport="botocore"
            ):
                pass
    assert info.value.response["Error"]["Code"] == "ProvisionedThroughputExceededException"
    # botocore made 4 attempts in its first call; the library one more call of 4: 8 >= 6.
    # Without the shared budget it would have been 6 calls of 4 attempts, 24 requests.
    assert faults.scan_requests == 8


async def test_direct_transport_is_the_only_retry_layer(faults: FaultProxy) -> None:
    """botocore's retry settings do not apply to requests the library sends itself."""
    faults.throttle_rate = 1.0
    retries = {"mode": "standard", "total_max_attempts": 4}
    async with async_client(faults.url, retries=retries) as client:
        policy = dynascan_async.RetryPolicy(max_attempts=6, base=0.001, cap=0.001)
        scan = dynascan_async.scan(
            client, tables.TINY, segments=1, retry=policy, transport="direct"
        )
        with pytest.raises(client.exceptions.ProvisionedThroughputExceededException) as info:
            async for _ in scan:
                pass
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert faults.scan_requests == 6
    assert (scan.stats.throttles, scan.stats.retries) == (6, 5)
