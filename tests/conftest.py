"""Fixtures: a real moto server on 127.0.0.1, tables loaded once, and clients per test.

Everything here talks to a real server process; nothing mocks the client. The tables
are small (moto's Scan costs time in proportion to the whole table on every request)
and ``Limit`` makes many pages out of them.
"""

from __future__ import annotations

import functools
import signal
from collections.abc import AsyncIterator, Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config

import dynascan_async
from dynascan_async.testing import MotoServer
from tests.support import tables
from tests.support.faultproxy import FaultProxy
from tests.support.helpers import async_client


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    # aiobotocore runs on asyncio only.
    return "asyncio"


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server


@pytest.fixture(scope="session")
def sync_client(moto_server: MotoServer) -> Any:
    return boto3.client(
        "dynamodb",
        endpoint_url=moto_server.endpoint_url,
        region_name="us-east-1",
        config=Config(retries={"total_max_attempts": 1}),
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture(scope="session")
def loaded(sync_client: Any) -> tables.Loaded:
    """Every test table, created and filled once for the session."""
    return tables.load_all(sync_client)


@pytest.fixture(scope="session")
def proxy(moto_server: MotoServer) -> Iterator[FaultProxy]:
    with FaultProxy("127.0.0.1", moto_server.port) as fault_proxy:
        yield fault_proxy


@pytest.fixture
def faults(proxy: FaultProxy) -> Iterator[FaultProxy]:
    """The fault proxy, reset before and after the test.

    Each reset waits for the proxy to go quiet first: requests an earlier test had written
    before it closed its client (a scan cancelled by a failing segment) must not be counted
    as this test's.
    """
    proxy.wait_quiet()
    proxy.reset()
    yield proxy
    if not proxy.wait_quiet(timeout=30):
        pytest.fail(f"{proxy.open_connections} client connection(s) to the proxy outlived the test")
    proxy.reset()


@pytest.fixture
async def client(moto_server: MotoServer, loaded: tables.Loaded) -> AsyncIterator[Any]:
    async with async_client(moto_server.endpoint_url) as made:
        yield made


@pytest.fixture
async def proxied_client(faults: FaultProxy, loaded: tables.Loaded) -> AsyncIterator[Any]:
    async with async_client(faults.url, max_pool_connections=64) as made:
        yield made


_scan = dynascan_async.scan


@pytest.fixture(params=["direct", "botocore"])
def every_transport(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test once per transport: ``dynascan_async.scan`` with each as its default.

    A test that names a transport itself still gets the one it names.
    """
    transport: Any = request.param
    monkeypatch.setattr(dynascan_async, "scan", functools.partial(_scan, transport=transport))
    return str(transport)


def _do_nothing(signum: int, frame: object) -> None:
    """A handler of our own: a child's exec resets it to the default, unlike SIG_IGN."""


@pytest.fixture(autouse=True)
def _children_start_with_default_signals() -> Iterator[None]:
    """Processes a test starts get SIGINT and SIGHUP at their defaults, even when this run
    ignores them (under ``nohup``, or as a shell's background job): an ignored signal stays
    ignored across exec, and the commands keep ignoring what they were started ignoring,
    so tests that send those signals would otherwise test the run's environment."""
    names = ("SIGINT", "SIGHUP")
    saved = {
        s: signal.getsignal(s) for s in (getattr(signal, n) for n in names if hasattr(signal, n))
    }
    for signum, handler in saved.items():
        if handler == signal.SIG_IGN:
            signal.signal(signum, _do_nothing)
    yield
    for signum, handler in saved.items():
        if handler == signal.SIG_IGN:
            signal.signal(signum, handler)
