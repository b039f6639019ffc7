"""No task outlives the scan that made it, however the consumer leaves.

Each test leaves the scan a different way while requests are in flight (the proxy adds
latency), then looks for any task still running. pytest runs with warnings as errors,
so a "Task was destroyed but it is pending" or an unclosed session fails the test too.
"""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import anyio
import pytest

import dynascan_async
from tests.support import tables
from tests.support.faultproxy import FaultProxy
from tests.support.helpers import other_tasks

pytestmark = pytest.mark.anyio

OPTIONS: dict[str, Any] = {"segments": 8, "concurrency": 4, "Limit": 20}


class Boom(Exception):
    pass


@pytest.fixture
def slow(faults: FaultProxy) -> FaultProxy:
    faults.latency = 0.05
    return faults


async def test_break_in_bare_loop(proxied_client: Any, slow: FaultProxy) -> None:
    async for _ in dynascan_async.scan(proxied_client, tables.WEBLOG, **OPTIONS):
        assert other_tasks()  # the workers are running
        break
    await asyncio.sleep(0)  # the consumer's next await
    assert other_tasks() == set()


async def test_break_with_the_scan_kept_in_a_variable(
    proxied_client: Any, slow: FaultProxy
) -> None:
    scan = dynascan_async.scan(proxied_client, tables.WEBLOG, **OPTIONS)
    async for _ in scan:
        break
    await asyncio.sleep(0)
    assert other_tasks() == set()
    assert scan.stats.items == 1
    with pytest.raises(RuntimeError, match="resume_from"):
        async for _ in scan:
            pass


async def test_exception_in_bare_loop_body(proxied_client: Any, slow: FaultProxy) -> None:
    with pytest.raises(Boom):
        async for _ in dynascan_async.scan(proxied_client, tables.WEBLOG, **OPTIONS):
            raise Boom
    await asyncio.sleep(0)
    assert other_tasks() == set()


async def test_timeout_around_bare_loop(proxied_client: Any, slow: FaultProxy) -> None:
    slow.latency = 0.5
    with anyio.move_on_after(0.2) as scope:
        async for _ in dynascan_async.scan(proxied_client, tables.WEBLOG, **OPTIONS):
            pass
    assert scope.cancelled_caught
    await asyncio.sleep(0)
    assert other_tasks() == set()


async def test_asyncio_timeout_around_bare_loop(proxied_client: Any, slow: FaultProxy) -> None:
    slow.latency = 0.5
    # asyncio.TimeoutError: on 3.10 it is not yet the builtin TimeoutError.
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(consume(proxied_client), timeout=0.2)
    await asyncio.sleep(0)
    assert other_tasks() == set()


async def consume(client: Any) -> int:
    n = 0
    async for _ in dynascan_async.scan(client, tables.WEBLOG, **OPTIONS):
        n += 1
    return n


async def test_break_in_async_with(proxied_client: Any, slow: FaultProxy) -> None:
    async with dynascan_async.scan(proxied_client, tables.WEBLOG, **OPTIONS) as scan:
        async for _ in scan:
            break
        assert other_tasks()  # still running until the block ends: it is the scan's scope
    assert other_tasks() == set()
    assert scan.stats.items == 1


async def test_exception_in_async_with(proxied_client: Any, slow: FaultProxy) -> None:
    with pytest.raises(Boom):
        async with dynascan_async.scan(proxied_client, tables.WEBLOG, **OPTIONS) as scan:
            async for _ in scan:
                raise Boom
    assert other_tasks() == set()


async def test_timeout_around_async_with(proxied_client: Any, slow: FaultProxy) -> None:
    slow.latency = 0.5
    with anyio.move_on_after(0.2) as scope:
        async with dynascan_async.scan(proxied_client, tables.WEBLOG, **OPTIONS) as scan:
            async for _ in scan:
                pass
    assert scope.cancelled_caught
    assert other_tasks() == set()


async def test_cancelled_from_outside(proxied_client: Any, slow: FaultProxy) -> None:
    slow.latency = 0.3
    started = anyio.Event()

    async def consumer() -> None:
        async with dynascan_async.scan(proxied_client, tables.WEBLOG, **OPTIONS) as scan:
            started.set()
            async for _ in scan:
                pass

    async with anyio.create_task_group() as tg:
        tg.start_soon(consumer)
        await started.wait()
        await anyio.sleep(0.05)
        tg.cancel_scope.cancel()
    assert other_tasks() == set()


async def test_abandoned_without_iterating_warns_nothing(proxied_client: Any) -> None:
    scan = dynascan_async.scan(proxied_client, tables.WEBLOG, **OPTIONS)
    del scan
    gc.collect()
    assert other_tasks() == set()


# -- leaving before the workers have run (issue 8, item 1) -------------------------------
#
# Leaving the block right after entering it gives the task group no chance to start its
# workers before ``__aexit__``; they must not start afterwards, fill the queue and wait on
# it forever. WEBLOG at Limit=10 is 60+ pages: far more than the queue holds.

LEAVE_EARLY: dict[str, Any] = {"segments": 8, "concurrency": 4, "Limit": 10}


async def _settled_requests(faults: FaultProxy) -> int:
    """Scan requests the proxy has read, once those already on the wire have arrived.

    A request written just before the scan was left reaches the proxy a moment later (more
    on a loaded machine): wait until the count holds still for a while, at most ~3 s.
    """
    seen = faults.scan_requests
    for _ in range(30):
        await anyio.sleep(0.1)
        now = faults.scan_requests
        if now == seen:
            return now
        seen = now
    return seen


async def _assert_no_request_after(faults: FaultProxy, seen: int) -> None:
    await anyio.sleep(0.3)  # time for a late worker to send something, were one left
    assert faults.scan_requests == seen, "a request was sent after the scan was left"


async def test_block_left_without_iterating_returns_and_sends_nothing(
    proxied_client: Any, faults: FaultProxy
) -> None:
    with anyio.fail_after(5):
        async with dynascan_async.scan(proxied_client, tables.WEBLOG, **LEAVE_EARLY):
            pass
    assert other_tasks() == set()
    seen = await _settled_requests(faults)
    assert seen == 0  # no worker ran before the block was left
    await _assert_no_request_after(faults, seen)


async def test_block_left_via_return_after_an_await(
    proxied_client: Any, faults: FaultProxy
) -> None:
    async def wanted() -> bool:
        await asyncio.sleep(0)  # some workers start here, others not yet
        return False

    async def export() -> int:
        async with dynascan_async.scan(proxied_client, tables.WEBLOG, **LEAVE_EARLY) as scan:
            if not await wanted():
                return 0
            n = sum([1 async for _ in scan])
        return n  # (mypy: Scan.__aexit__ may swallow an exception, so a return after it)

    with anyio.fail_after(5):
        assert await export() == 0
    assert other_tasks() == set()
    seen = await _settled_requests(faults)
    await _assert_no_request_after(faults, seen)


async def test_block_left_after_one_item(proxied_client: Any, faults: FaultProxy) -> None:
    with anyio.fail_after(5):
        async with dynascan_async.scan(proxied_client, tables.WEBLOG, **LEAVE_EARLY) as scan:
            async for _ in scan:
                break
    assert scan.stats.items == 1
    assert other_tasks() == set()
    seen = await _settled_requests(faults)
    assert 1 <= seen < 40  # the whole table is 60+ pages: the scan did stop
    await _assert_no_request_after(faults, seen)


async def test_block_left_by_exception_before_iterating(
    proxied_client: Any, faults: FaultProxy
) -> None:
    with anyio.fail_after(5), pytest.raises(Boom):
        async with dynascan_async.scan(proxied_client, tables.WEBLOG, **LEAVE_EARLY):
            raise Boom
    assert other_tasks() == set()
    seen = await _settled_requests(faults)
    await _assert_no_request_after(faults, seen)


async def test_bare_scan_dropped_after_its_workers_started(
    proxied_client: Any, faults: FaultProxy
) -> None:
    faults.latency = 0.05
    scan = dynascan_async.scan(proxied_client, tables.WEBLOG, **LEAVE_EARLY)
    items = aiter(scan)
    await anext(items)  # starts the workers
    assert other_tasks()  # ... which are running
    del items, scan
    gc.collect()
    await asyncio.sleep(0)
    assert other_tasks() == set()
    seen = await _settled_requests(faults)
    await _assert_no_request_after(faults, seen)
