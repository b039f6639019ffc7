"""The FastAPI example under a real ASGI server (uvicorn) on 127.0.0.1, with a real client."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import aiohttp
import anyio
import pytest
import uvicorn

from dynascan_async._decode import decode_items
from dynascan_async._encode import dumps_item
from tests.support import tables
from tests.support.faultproxy import FaultProxy
from tests.support.helpers import assert_same_items

pytestmark = pytest.mark.anyio


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
async def service(
    faults: FaultProxy, loaded: tables.Loaded, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[str]:
    """The example app served by uvicorn in this event loop, talking to moto via the proxy."""
    monkeypatch.setenv("DYNAMODB_ENDPOINT", faults.url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    from examples.fastapi_app import app

    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    with anyio.fail_after(20):
        while not server.started:  # noqa: ASYNC110 - a flag of uvicorn's, with no event
            await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


def scan_workers() -> list[asyncio.Task[Any]]:
    return [
        task
        for task in asyncio.all_tasks()
        if not task.done() and "Engine._worker" in repr(task.get_coro())
    ]


async def test_streams_the_whole_table(service: str, loaded: tables.Loaded) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{service}/tables/{tables.WEBLOG}/items", params={"segments": "5"}) as response,
    ):
        assert response.status == 200
        assert response.headers["content-type"].startswith("application/x-ndjson")
        body = await response.text()
    got = [json.loads(line, parse_float=Decimal, parse_int=Decimal) for line in body.splitlines()]
    expected = [
        json.loads(dumps_item(item), parse_float=Decimal, parse_int=Decimal)
        for item in decode_items(loaded.weblog)
    ]
    assert_same_items(got, expected)
    assert scan_workers() == []


async def test_client_disconnect_stops_the_scan(service: str, faults: FaultProxy) -> None:
    faults.latency = 0.05  # a slow table, so the scan is mid-way when the client leaves
    async with aiohttp.ClientSession() as http:
        response = await http.get(
            f"{service}/tables/{tables.WEBLOG}/items",
            params={"segments": "8", "concurrency": "4"},
        )
        first = await response.content.readline()
        assert json.loads(first)["requestid"].startswith("req-")
        assert scan_workers()  # the scan is running for this client
        response.close()  # the client goes away mid-stream
    requests_then = faults.scan_requests
    with anyio.fail_after(10):
        while scan_workers():  # noqa: ASYNC110 - watching other tasks end, no event to wait on
            await asyncio.sleep(0.02)
    await asyncio.sleep(0.3)
    assert faults.scan_requests - requests_then <= 4  # at most the ones already in flight
    assert faults.scan_requests < 600 // 20  # far from the whole table


async def test_bad_option_is_a_400(service: str) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{service}/tables/x/items", params={"segments": "0"}) as response,
    ):
        assert response.status in (400, 422)
        assert "segments" in await response.text()
