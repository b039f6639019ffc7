"""The FastAPI example under a real ASGI server (uvicorn) on 127.0.0.1, with a real client."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any
from urllib.parse import quote

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


SERVED = f"{tables.WEBLOG},{tables.TINY}"


@pytest.fixture
async def service(
    faults: FaultProxy, loaded: tables.Loaded, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[str]:
    """The example app served by uvicorn in this event loop, talking to moto via the proxy.

    uvicorn binds port 0 itself and the test reads the port it got: no window in which
    another process could take a port picked in advance.
    """
    monkeypatch.setenv("DYNAMODB_ENDPOINT", faults.url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("DYNASCAN_TABLES", SERVED)
    from examples.fastapi_app import app

    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    with anyio.fail_after(20):
        while not server.started:  # noqa: ASYNC110 - a flag of uvicorn's, with no event
            await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
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
    # 10 items a page: the whole table takes 600 / 10 + 8 = 68 requests, far above the
    # bound below, so a scan that ran on after the disconnect would fail this test.
    whole_table = tables.WEBLOG_ROWS // 10 + 8
    async with aiohttp.ClientSession() as http:
        response = await http.get(
            f"{service}/tables/{tables.WEBLOG}/items",
            params={"segments": "8", "concurrency": "4", "page_size": "10"},
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
    assert faults.scan_requests < whole_table // 2  # far from the whole table


async def test_a_table_not_allowed_is_a_404_and_never_scanned(
    service: str, faults: FaultProxy, loaded: tables.Loaded
) -> None:
    async with aiohttp.ClientSession() as http:
        # all_types exists and the process's credentials can read it, but it is not in
        # DYNASCAN_TABLES; neither is a name that differs only in case.
        for table in (tables.TYPES, tables.TINY.upper()):
            async with http.get(f"{service}/tables/{table}/items") as response:
                assert response.status == 404
                assert (await response.json())["detail"] == f"table {table!r} is not served here"
        # An ARN (of an allowed table, even) is not a name in the list.
        arn = quote(f"arn:aws:dynamodb:us-east-1:123456789012:table/{tables.TINY}", safe="")
        async with http.get(f"{service}/tables/{arn}/items") as response:
            assert response.status == 404
        async with http.get(f"{service}/tables/{tables.TINY}/items") as response:
            assert response.status == 200
            assert len((await response.text()).splitlines()) == len(loaded.tiny)
    assert faults.scan_requests == 8  # only the allowed table's 8 segments were read


@pytest.mark.parametrize(
    ("name", "value"), [("segments", "65"), ("concurrency", "17"), ("page_size", "1001")]
)
async def test_options_above_the_ceilings_are_refused(
    service: str, faults: FaultProxy, name: str, value: str
) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{service}/tables/{tables.WEBLOG}/items", params={name: value}) as response,
    ):
        assert response.status == 422  # FastAPI's own validation of the Query bounds
        assert name in await response.text()
    assert faults.scan_requests == 0


async def test_what_the_library_refuses_is_a_400_with_its_reason(
    service: str, faults: FaultProxy
) -> None:
    # "ab" passes the route's own check (at most 255 characters) but not the library's:
    # an index name has at least 3 characters. The answer carries the library's message.
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{service}/tables/{tables.WEBLOG}/items", params={"index": "ab"}) as response,
    ):
        assert response.status == 400
        detail = (await response.json())["detail"]
    assert detail == (
        "invalid Scan parameter: Invalid length for parameter IndexName, value: 2, "
        "valid min length: 3"
    )
    assert faults.scan_requests == 0  # refused before any request


async def test_an_index_of_an_allowed_table(
    service: str, sync_client: Any, loaded: tables.Loaded
) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            f"{service}/tables/{tables.WEBLOG}/items",
            params={"index": tables.WEBLOG_INDEX, "page_size": "50"},
        ) as response,
    ):
        assert response.status == 200
        body = await response.text()
    got = [json.loads(line, parse_float=Decimal, parse_int=Decimal) for line in body.splitlines()]
    expected = tables.reference_scan(sync_client, tables.WEBLOG, IndexName=tables.WEBLOG_INDEX)
    assert_same_items(
        got,
        [
            json.loads(dumps_item(item), parse_float=Decimal, parse_int=Decimal)
            for item in decode_items(expected)
        ],
    )
