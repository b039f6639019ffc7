"""What ``transport="auto"`` must leave to botocore, and what the direct path must carry.

The direct path sends Scan requests itself, so anything that lives inside ``client.scan``
would silently see nothing: a botocore ``Stubber``, client-side monitoring, endpoint
discovery, instrumentation that wraps ``_make_api_call`` (ddtrace, the X-Ray SDK, both with
wrapt). Each must get ``transport="botocore"`` under ``auto``, and ``transport="direct"``
must refuse it. Each is checked with a real client whose Scan calls must really reach that
machinery (the stub's answers, the wrapper's count, the monitoring datagrams, the discovered
endpoint), against the real moto server.
"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from typing import Any, cast

import pytest
from aiobotocore.client import AioBaseClient
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.stub import Stubber

import dynascan_async
from dynascan_async.testing import MotoServer
from tests.support import tables
from tests.support.faultproxy import FaultProxy, _Request, _Response
from tests.support.helpers import assert_same_items, async_client

pytestmark = pytest.mark.anyio


def make_client(url: str | None, **config: Any) -> Any:
    config.setdefault("retries", {"total_max_attempts": 1})
    return get_session().create_client(
        "dynamodb",
        endpoint_url=url,
        region_name="us-east-1",
        config=AioConfig(**config),
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def scan_items(client: Any, table: str, **options: Any) -> Any:
    options.setdefault("deserialize", False)
    return dynascan_async.scan(client, table, **options)


# -- a plain client still goes direct -------------------------------------------------------


@pytest.mark.parametrize("mode", ["legacy", "standard", "adaptive"])
async def test_a_fresh_client_goes_direct_in_every_retry_mode(
    moto_server: MotoServer, loaded: tables.Loaded, mode: str
) -> None:
    """The allow-list holds every handler a fresh client has, whatever its retry mode."""
    async with make_client(moto_server.endpoint_url, retries={"mode": mode}) as client:
        scan = scan_items(client, tables.TINY, segments=2)
        assert scan.transport == "direct"
        assert_same_items([item async for item in scan], loaded.tiny)


async def test_an_endpoint_from_the_environment_goes_direct(
    faults: FaultProxy, loaded: tables.Loaded, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An endpoint from AWS_ENDPOINT_URL_DYNAMODB adds one harmless default handler."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", faults.url)
    async with make_client(None) as client:
        scan = scan_items(client, tables.TINY, segments=2)
        assert scan.transport == "direct"
        assert_same_items([item async for item in scan], loaded.tiny)
    assert faults.scan_requests == 2


# -- a Stubber ------------------------------------------------------------------------------


async def test_a_stubbed_client_is_answered_by_its_stubber(faults: FaultProxy) -> None:
    first = [{"pk": {"S": "stub-1"}}, {"pk": {"S": "stub-2"}}]
    second = [{"pk": {"S": "stub-3"}}]
    async with async_client(faults.url) as client:
        stubber = Stubber(client)
        base = {"TableName": tables.TINY, "ReturnConsumedCapacity": "TOTAL"}
        stubber.add_response(
            "scan",
            {"Items": first, "Count": 2, "LastEvaluatedKey": {"pk": {"S": "stub-2"}}},
            base,
        )
        stubber.add_response(
            "scan",
            {"Items": second, "Count": 1},
            {**base, "ExclusiveStartKey": {"pk": {"S": "stub-2"}}},
        )
        with stubber:
            with pytest.raises(ValueError, match="Stubber"):
                dynascan_async.scan(client, tables.TINY, transport="direct")
            scan = scan_items(client, tables.TINY, segments=1)
            assert scan.transport == "botocore"
            items = [item async for item in scan]
            stubber.assert_no_pending_responses()
    assert items == first + second
    assert faults.requests == 0  # nothing went on the wire


# -- instrumentation that wraps _make_api_call ------------------------------------------------


@pytest.fixture
def wrapped_make_api_call() -> Iterator[list[str]]:
    """``_make_api_call`` wrapped with wrapt on aiobotocore's class, as ddtrace and X-Ray do."""
    wrapt = pytest.importorskip("wrapt")
    calls: list[str] = []
    original = AioBaseClient.__dict__["_make_api_call"]

    async def trace(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        calls.append(args[0])
        return await wrapped(*args, **kwargs)

    wrapt.wrap_function_wrapper("aiobotocore.client", "AioBaseClient._make_api_call", trace)
    try:
        yield calls
    finally:
        cast(Any, AioBaseClient)._make_api_call = original


async def test_a_wrapped_make_api_call_sees_every_scan_call(
    faults: FaultProxy, loaded: tables.Loaded, wrapped_make_api_call: list[str]
) -> None:
    async with async_client(faults.url) as client:
        with pytest.raises(ValueError, match="_make_api_call is wrapped"):
            dynascan_async.scan(client, tables.WEBLOG, transport="direct")
        scan = scan_items(client, tables.WEBLOG, segments=3, Limit=100)
        assert scan.transport == "botocore"
        assert_same_items([item async for item in scan], loaded.weblog)
    assert wrapped_make_api_call.count("Scan") == scan.stats.pages == faults.scan_requests
    assert scan.stats.pages >= 8


async def test_a_scan_method_wrapped_on_one_client_sees_every_call(
    faults: FaultProxy, loaded: tables.Loaded
) -> None:
    wrapt = pytest.importorskip("wrapt")
    calls: list[dict[str, Any]] = []

    async def trace(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        calls.append(kwargs)
        return await wrapped(*args, **kwargs)

    async with async_client(faults.url) as client:
        wrapt.wrap_function_wrapper(client, "scan", trace)
        with pytest.raises(ValueError, match="scan method is wrapped"):
            dynascan_async.scan(client, tables.WEBLOG, transport="direct")
        scan = scan_items(client, tables.WEBLOG, segments=2, Limit=150)
        assert scan.transport == "botocore"
        assert_same_items([item async for item in scan], loaded.weblog)
    assert len(calls) == scan.stats.pages == faults.scan_requests


# -- client-side monitoring -----------------------------------------------------------------


@pytest.fixture
def csm_socket(monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    """Client-side monitoring switched on (by the environment) and sent to a local socket."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(2.0)
    monkeypatch.setenv("AWS_CSM_ENABLED", "true")
    monkeypatch.setenv("AWS_CSM_HOST", "127.0.0.1")
    monkeypatch.setenv("AWS_CSM_PORT", str(sock.getsockname()[1]))
    try:
        yield sock
    finally:
        sock.close()


def scan_calls_reported(sock: socket.socket) -> int:
    sock.settimeout(0.5)
    n = 0
    try:
        while True:
            event = json.loads(sock.recv(65536))
            if event.get("Type") == "ApiCall" and event.get("Api") == "Scan":
                n += 1
    except TimeoutError:
        return n
    except OSError:  # socket.timeout on Python 3.10
        return n


async def test_client_side_monitoring_sees_every_scan_call(
    faults: FaultProxy, loaded: tables.Loaded, csm_socket: socket.socket
) -> None:
    session: Any = get_session()  # Any: _get_internal_component below is not in the stubs
    try:
        async with session.create_client(
            "dynamodb",
            endpoint_url=faults.url,
            region_name="us-east-1",
            config=AioConfig(retries={"total_max_attempts": 1}),
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        ) as client:
            with pytest.raises(ValueError, match="client-side monitoring"):
                dynascan_async.scan(client, tables.WEBLOG, transport="direct")
            scan = scan_items(client, tables.WEBLOG, segments=2, Limit=150)
            assert scan.transport == "botocore"
            assert_same_items([item async for item in scan], loaded.weblog)
    finally:
        # botocore never closes the session's monitoring socket (a ResourceWarning here).
        monitor = session._get_internal_component("monitor")
        monitor._publisher._socket.close()
    assert scan_calls_reported(csm_socket) == scan.stats.pages == faults.scan_requests


# -- endpoint discovery ---------------------------------------------------------------------


class DiscoveryProxy(FaultProxy):
    """The fault proxy, answering DescribeEndpoints itself with its own (loopback) address.

    moto answers it with the real AWS endpoint, where no test may send anything.
    """

    described = 0

    async def _forward(self, request: _Request, *, scan: bool = False) -> _Response:
        if request.header("x-amz-target") != "DynamoDB_20120810.DescribeEndpoints":
            return await super()._forward(request, scan=scan)
        self.described += 1
        body = json.dumps({"Endpoints": [{"Address": self.url, "CachePeriodInMinutes": 5}]})
        headers = [("Content-Type", "application/x-amz-json-1.0"), ("x-amzn-RequestId", "d")]
        return _Response(200, "OK", headers, body.encode())


async def test_endpoint_discovery_is_used_for_every_scan_call(
    moto_server: MotoServer, loaded: tables.Loaded, monkeypatch: pytest.MonkeyPatch
) -> None:
    with DiscoveryProxy("127.0.0.1", moto_server.port) as proxy:
        # botocore discovers endpoints only for a client whose endpoint is not an argument.
        monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", proxy.url)
        async with make_client(None, endpoint_discovery_enabled=True) as client:
            with pytest.raises(ValueError, match="endpoint discovery"):
                dynascan_async.scan(client, tables.TINY, transport="direct")
            scan = scan_items(client, tables.TINY, segments=2)
            assert scan.transport == "botocore"
            assert_same_items([item async for item in scan], loaded.tiny)
        assert proxy.described >= 1
        assert proxy.scan_requests == 2


# -- what the direct path puts in the User-Agent ----------------------------------------------


def _sent_user_agent(proxy: FaultProxy) -> str:
    assert proxy.last_scan is not None
    return dict(proxy.last_scan[0])["User-Agent"]


def _without_features(user_agent: str) -> str:
    # "m/..." lists the features botocore used in that call: not the same for both paths.
    return re.sub(r" m/\S+", "", user_agent)


@pytest.mark.parametrize("appid_from", ["config", "environment"])
async def test_user_agent_carries_the_clients_appid_and_extra(
    faults: FaultProxy, loaded: tables.Loaded, monkeypatch: pytest.MonkeyPatch, appid_from: str
) -> None:
    config: dict[str, Any] = {"user_agent_extra": "my-extra/1.2"}
    if appid_from == "config":
        config["user_agent_appid"] = "my-app"
    else:
        monkeypatch.setenv("AWS_SDK_UA_APP_ID", "my-app")
    async with make_client(faults.url, **config) as client:
        await client.scan(TableName=tables.TINY)
        botocores = _sent_user_agent(faults)
        scan = scan_items(client, tables.TINY, segments=1)
        assert_same_items([item async for item in scan], loaded.tiny)
        assert scan.transport == "direct"
    ours = _sent_user_agent(faults)
    assert "app/my-app" in botocores
    assert "app/my-app" in ours
    assert "my-extra/1.2" in ours
    assert re.fullmatch(r".* lib/dynascan-async#\S+", ours)
    assert _without_features(ours).rsplit(" lib/dynascan-async#", 1)[0] == _without_features(
        botocores
    )


# -- an endpoint URL with a query string ------------------------------------------------------


async def test_an_endpoint_with_a_query_string_is_left_to_botocore(
    faults: FaultProxy, loaded: tables.Loaded
) -> None:
    async with make_client(faults.url + "/?x=1") as client:
        with pytest.raises(ValueError, match="query string"):
            dynascan_async.scan(client, tables.TINY, transport="direct")
        scan = scan_items(client, tables.TINY, segments=2)
        assert scan.transport == "botocore"
        assert_same_items([item async for item in scan], loaded.tiny)
    assert faults.scan_requests == 2
