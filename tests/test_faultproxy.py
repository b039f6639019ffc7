"""The fault-injecting proxy itself, against a real moto server, with synchronous boto3 clients.

These tests do not use dynascan_async at all: they prove the tool the library's tests rely on.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import http.client
import socket
import socketserver
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import boto3  # type: ignore[import-untyped, unused-ignore]
import pytest
from botocore.config import Config  # type: ignore[import-untyped, unused-ignore]
from botocore.exceptions import (  # type: ignore[import-untyped, unused-ignore]
    ClientError,
    ConnectionClosedError,
    EndpointConnectionError,
)

from dynascan_async.testing import MotoServer
from tests.support.faultproxy import SCAN_TARGET, FaultProxy

MakeClient = Callable[[str], Any]

_MOTO_START_TIMEOUT = 20.0
_N_ITEMS = 12


@pytest.fixture(scope="module")
def moto_port(moto_server: MotoServer) -> int:
    """The session's moto server (tests/conftest.py)."""
    return moto_server.port


@pytest.fixture(scope="module")
def shared_proxy(moto_port: int) -> Iterator[FaultProxy]:
    with FaultProxy("127.0.0.1", moto_port) as proxy:
        yield proxy


@pytest.fixture
def proxy(shared_proxy: FaultProxy) -> Iterator[FaultProxy]:
    shared_proxy.reset()
    yield shared_proxy
    shared_proxy.reset()


@pytest.fixture
def make_client() -> Iterator[MakeClient]:
    """boto3 DynamoDB clients that do not retry, closed at the end of the test."""
    clients: list[Any] = []

    def make(endpoint_url: str) -> Any:
        client = boto3.client(
            "dynamodb",
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            endpoint_url=endpoint_url,
            config=Config(retries={"total_max_attempts": 1}),
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def _moto_url(port: int) -> str:
    return f"http://127.0.0.1:{port}"


def _create_table(client: Any, n_items: int = _N_ITEMS) -> str:
    name = f"faultproxy-{uuid.uuid4().hex[:12]}"
    client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    items = [{"pk": {"S": f"k{i:03d}"}, "n": {"N": str(i)}} for i in range(n_items)]
    for start in range(0, n_items, 25):
        batch = [{"PutRequest": {"Item": item}} for item in items[start : start + 25]]
        client.batch_write_item(RequestItems={name: batch})
    return name


def _scan_all(client: Any, table: str, **kwargs: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    page: dict[str, Any] = client.scan(TableName=table, **kwargs)
    items.extend(page["Items"])
    while "LastEvaluatedKey" in page:
        page = client.scan(TableName=table, ExclusiveStartKey=page["LastEvaluatedKey"], **kwargs)
        items.extend(page["Items"])
    return sorted(items, key=lambda item: str(item["pk"]["S"]))


def _error(excinfo: pytest.ExceptionInfo[Any]) -> tuple[str, int]:
    response = excinfo.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


def test_pass_through_scan_equals_direct_scan(
    proxy: FaultProxy, moto_port: int, make_client: MakeClient
) -> None:
    via_proxy = make_client(proxy.url)
    direct = make_client(_moto_url(moto_port))
    table = _create_table(via_proxy)

    proxied_items = _scan_all(via_proxy, table, Limit=5)
    assert proxied_items == _scan_all(direct, table, Limit=5)
    assert len(proxied_items) == _N_ITEMS
    assert {item["n"]["N"] for item in proxied_items} == {str(i) for i in range(_N_ITEMS)}
    # 12 items in pages of 5: 3 pages (moto omits LastEvaluatedKey on the short last page).
    assert proxy.scan_requests == 3
    assert proxy.forwarded == 3
    assert sum(proxy.injected.values()) == 0
    assert proxy.in_flight == 0
    assert proxy.upstream_errors == 0
    assert proxy.errors == []


def test_throttle_only_hits_scan(proxy: FaultProxy, make_client: MakeClient) -> None:
    client = make_client(proxy.url)
    proxy.throttle_rate = 1.0
    proxy.error_rate = 1.0
    proxy.drop_rate = 1.0
    # Non-Scan operations pass through whatever the knobs say.
    table = _create_table(client, n_items=3)
    assert client.describe_table(TableName=table)["Table"]["TableName"] == table
    assert client.get_item(TableName=table, Key={"pk": {"S": "k001"}})["Item"]["n"] == {"N": "1"}

    with pytest.raises(ClientError) as excinfo:
        client.scan(TableName=table)
    assert _error(excinfo) == ("ProvisionedThroughputExceededException", 400)
    response = excinfo.value.response
    assert response["Error"]["Message"] == (
        "The level of configured provisioned throughput for the table was exceeded."
    )
    assert response["ResponseMetadata"]["RequestId"]
    assert response["ResponseMetadata"]["HTTPHeaders"]["content-type"] == (
        "application/x-amz-json-1.0"
    )
    assert proxy.injected["throttle"] == 1
    assert proxy.scan_requests == 1
    assert proxy.forwarded == 0
    assert proxy.requests >= 5  # CreateTable, BatchWriteItem, DescribeTable, GetItem, Scan


def test_internal_server_error(proxy: FaultProxy, make_client: MakeClient) -> None:
    client = make_client(proxy.url)
    table = _create_table(client, n_items=1)
    proxy.error_rate = 1.0
    with pytest.raises(ClientError) as excinfo:
        client.scan(TableName=table)
    assert _error(excinfo) == ("InternalServerError", 500)
    assert proxy.injected["error"] == 1
    assert proxy.injected["throttle"] == 0
    assert proxy.forwarded == 0


def test_drop_closes_connection_without_response(
    proxy: FaultProxy, make_client: MakeClient
) -> None:
    client = make_client(proxy.url)
    table = _create_table(client, n_items=2)
    proxy.drop_rate = 1.0
    with pytest.raises(ConnectionClosedError):
        client.scan(TableName=table)
    assert proxy.injected["drop"] == 1
    assert proxy.scan_requests == 1
    assert proxy.forwarded == 0
    assert proxy.wait_idle()
    # The proxy keeps serving, and the same client recovers on a new connection.
    proxy.drop_rate = 0.0
    assert len(client.scan(TableName=table)["Items"]) == 2
    assert proxy.forwarded == 1


def test_fail_after_gives_persistent_error(proxy: FaultProxy, make_client: MakeClient) -> None:
    client = make_client(proxy.url)
    table = _create_table(client, n_items=5)
    proxy.fail_after = 2

    first = client.scan(TableName=table, Limit=1)
    second = client.scan(TableName=table, Limit=1, ExclusiveStartKey=first["LastEvaluatedKey"])
    assert len(first["Items"]) == len(second["Items"]) == 1
    assert first["Items"] != second["Items"]
    for _ in range(2):  # persistent: every further Scan fails
        with pytest.raises(ClientError) as excinfo:
            client.scan(TableName=table, Limit=1, ExclusiveStartKey=second["LastEvaluatedKey"])
        assert _error(excinfo) == ("AccessDeniedException", 400)
        assert excinfo.value.response["Error"]["Message"] == "injected persistent error"
    assert proxy.forwarded == 2
    assert proxy.injected["persistent"] == 2
    assert proxy.scan_requests == 4

    proxy.fail_code = "ResourceNotFoundException"
    with pytest.raises(ClientError) as excinfo:
        client.scan(TableName=table)
    assert _error(excinfo) == ("ResourceNotFoundException", 400)


def test_latency_delays_scans(proxy: FaultProxy, make_client: MakeClient) -> None:
    client = make_client(proxy.url)
    table = _create_table(client, n_items=1)
    proxy.latency = 0.3
    started = time.monotonic()
    assert len(client.scan(TableName=table)["Items"]) == 1
    assert time.monotonic() - started >= 0.3
    started = time.monotonic()
    client.describe_table(TableName=table)  # not a Scan: no delay
    assert time.monotonic() - started < 0.3


def test_in_flight_counts_concurrent_scans(proxy: FaultProxy, make_client: MakeClient) -> None:
    setup = make_client(proxy.url)
    table = _create_table(setup, n_items=3)
    clients = [make_client(proxy.url) for _ in range(4)]
    proxy.latency = 0.3
    barrier = threading.Barrier(len(clients))

    def scan(client: Any) -> int:
        barrier.wait(timeout=10)
        return len(client.scan(TableName=table)["Items"])

    with concurrent.futures.ThreadPoolExecutor(max_workers=len(clients)) as pool:
        results = list(pool.map(scan, clients))
    assert results == [3, 3, 3, 3]
    assert proxy.max_in_flight == 4
    assert proxy.max_in_flight > 1
    assert proxy.in_flight == 0
    assert proxy.forwarded == 4


def test_in_flight_sequential_is_one(proxy: FaultProxy, make_client: MakeClient) -> None:
    client = make_client(proxy.url)
    table = _create_table(client, n_items=3)
    proxy.latency = 0.05
    for _ in range(3):
        client.scan(TableName=table)
    assert proxy.scan_requests == 3
    assert proxy.max_in_flight == 1
    assert proxy.in_flight == 0


def test_keep_alive_reuses_one_connection(proxy: FaultProxy, make_client: MakeClient) -> None:
    client = make_client(proxy.url)
    table = _create_table(client, n_items=2)  # CreateTable + one BatchWriteItem
    for _ in range(4):
        assert len(client.scan(TableName=table)["Items"]) == 2
        client.describe_table(TableName=table)
    assert proxy.requests == 10
    assert proxy.connections == 1


def test_seed_makes_faults_reproducible(proxy: FaultProxy, make_client: MakeClient) -> None:
    client = make_client(proxy.url)
    table = _create_table(client, n_items=1)

    def throttled() -> bool:
        try:
            client.scan(TableName=table)
        except ClientError:
            return True
        return False

    def pattern() -> list[bool]:
        proxy.throttle_rate = 0.5
        return [throttled() for _ in range(16)]

    proxy.seed = 1234
    first = pattern()
    assert True in first
    assert False in first
    assert proxy.injected["throttle"] == first.count(True)
    proxy.reset()  # re-seeds with the same seed
    assert pattern() == first


def _raw_scan_request(port: int, body: bytes, *, content_length: int | None = None) -> bytes:
    length = len(body) if content_length is None else content_length
    head = (
        "POST / HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{port}\r\n"
        f"X-Amz-Target: {SCAN_TARGET}\r\n"
        "Content-Type: application/x-amz-json-1.0\r\n"
        "Authorization: AWS4-HMAC-SHA256 Credential=testing/20240101/us-east-1/dynamodb/"
        "aws4_request, SignedHeaders=host, Signature=0\r\n"
        f"Content-Length: {length}\r\n"
        "\r\n"
    )
    return head.encode() + body


def test_client_disconnects_do_not_break_the_proxy(
    proxy: FaultProxy, make_client: MakeClient
) -> None:
    client = make_client(proxy.url)
    table = _create_table(client, n_items=2)
    body = f'{{"TableName": "{table}"}}'.encode()
    address = ("127.0.0.1", proxy.port)

    # Mid-headers.
    with socket.create_connection(address, timeout=5) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Tar")
    # Mid-body: fewer bytes than Content-Length.
    with socket.create_connection(address, timeout=5) as sock:
        sock.sendall(_raw_scan_request(proxy.port, body[:5], content_length=len(body)))
    # Whole request, then gone before the (delayed) response.
    proxy.latency = 0.2
    with socket.create_connection(address, timeout=5) as sock:
        sock.sendall(_raw_scan_request(proxy.port, body))
        deadline = time.monotonic() + 5
        while proxy.scan_requests < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert proxy.in_flight == 1
    # Not HTTP at all: a 400, then the connection is closed.
    with socket.create_connection(address, timeout=5) as sock:
        sock.sendall(b"HELLO\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 400 ")
        assert sock.recv(4096) == b""

    assert proxy.wait_idle(timeout=5)
    assert proxy.in_flight == 0
    assert proxy.scan_requests == 1  # only the complete request counts
    proxy.latency = 0.0
    assert len(client.scan(TableName=table)["Items"]) == 2
    assert proxy.errors == []
    assert proxy.upstream_errors == 0


def test_requests_written_before_a_close_are_counted_once_quiet(
    moto_port: int, make_client: MakeClient
) -> None:
    """What a closed client had already written is still read: wait_quiet() waits for it."""
    table = _create_table(make_client(_moto_url(moto_port)), n_items=2)
    body = f'{{"TableName": "{table}"}}'.encode()
    with FaultProxy("127.0.0.1", moto_port, latency=0.05) as proxy:  # no earlier test's traffic
        address = ("127.0.0.1", proxy.port)
        for _ in range(5):
            with socket.create_connection(address, timeout=5) as sock:
                sock.sendall(_raw_scan_request(proxy.port, body))
        assert proxy.wait_quiet(timeout=30), f"{proxy.open_connections} connection(s) open"
        assert proxy.scan_requests == 5
        assert proxy.in_flight == 0

        idle = socket.create_connection(address, timeout=5)
        try:
            assert not proxy.wait_quiet(timeout=0.3)
            assert proxy.open_connections == 1
        finally:
            idle.close()
        assert proxy.wait_quiet(timeout=30), f"{proxy.open_connections} connection(s) open"
        assert proxy.errors == []


def test_close_with_live_connections(moto_port: int, make_client: MakeClient) -> None:
    threads_before = set(threading.enumerate())
    proxy = FaultProxy("127.0.0.1", moto_port).start()
    try:
        client = make_client(proxy.url)
        client.list_tables()  # leaves an idle keep-alive connection to the proxy
        port = proxy.port
        idle = socket.create_connection(("127.0.0.1", port), timeout=5)
    finally:
        proxy.close()
    with idle:
        try:
            data = idle.recv(1)
        except ConnectionResetError:  # closed while still in the listening socket's backlog
            data = b""
        assert data == b""  # the proxy closed its side, nothing hangs
    assert set(threading.enumerate()) <= threads_before
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port)):
        pass
    with pytest.raises(EndpointConnectionError):
        client.list_tables()
    proxy.close()  # idempotent
    with pytest.raises(RuntimeError):
        _ = proxy.url


def test_upstream_must_be_loopback() -> None:
    with pytest.raises(ValueError, match="loopback"):
        FaultProxy("192.0.2.1", 8000)


class _ChunkedUpstream(socketserver.StreamRequestHandler):
    """Answers one request with a chunked body, then closes (no Content-Length)."""

    seen: list[bytes]

    def handle(self) -> None:
        head = b""
        while not head.endswith(b"\r\n\r\n"):
            line = self.rfile.readline()
            if not line:
                return
            head += line
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        self.seen.append(head + self.rfile.read(length))
        self.wfile.write(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/plain\r\n\r\n"
            b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"
        )


def test_chunked_upstream_response_is_reframed() -> None:
    seen: list[bytes] = []
    handler = type("Handler", (_ChunkedUpstream,), {"seen": seen})
    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler) as upstream:
        upstream.daemon_threads = True
        serving = threading.Thread(target=upstream.serve_forever, kwargs={"poll_interval": 0.05})
        serving.start()
        try:
            with FaultProxy("127.0.0.1", upstream.server_address[1]) as proxy:
                conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)
                with contextlib.closing(conn):
                    for payload in (b"{}", b'{"a": 1}'):
                        conn.request(
                            "POST", "/", body=payload, headers={"Connection": "keep-alive"}
                        )
                        response = conn.getresponse()
                        assert response.read() == b"hello world"
                        assert response.getheader("Content-Length") == "11"
                        assert response.getheader("Transfer-Encoding") is None
                        assert response.getheader("Connection") == "keep-alive"
                assert proxy.connections == 1
                assert proxy.requests == 2
        finally:
            upstream.shutdown()
            serving.join(timeout=5)
    assert len(seen) == 2
    assert b"\r\nConnection: close\r\n" in seen[0]
    assert seen[1].endswith(b'\r\n\r\n{"a": 1}')
    assert b"\r\nContent-Length: 8\r\n" in seen[1]
