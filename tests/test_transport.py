"""The direct transport: what it puts on the wire, what it raises, and when "auto" picks it.

Requests go to the real moto server, through the fault proxy where a test needs to see
them. The signature is checked the way DynamoDB checks it: from the headers the server
received, with botocore's own SigV4 code (see test_sigv4.sign_like_botocore).
"""

from __future__ import annotations

from typing import Any

import aiobotocore
import anyio
import boto3
import pytest
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore import UNSIGNED
from botocore.credentials import Credentials
from botocore.exceptions import ClientError, NoCredentialsError

import dynascan_async
from dynascan_async._direct import DirectTransport
from dynascan_async.testing import ModelServer
from tests.support import tables
from tests.support.faultproxy import FaultProxy
from tests.support.helpers import assert_same_items, async_client, other_tasks
from tests.test_sigv4 import sign_like_botocore

pytestmark = pytest.mark.anyio

ACCESS_KEY, SECRET_KEY = "AKIDTRANSPORTTEST", "transport/test+secret"


def client_for(url: str, **kwargs: Any) -> Any:
    options: dict[str, Any] = {
        "region_name": "us-east-1",
        "aws_access_key_id": ACCESS_KEY,
        "aws_secret_access_key": SECRET_KEY,
        "config": AioConfig(retries={"total_max_attempts": 1}),
    }
    options.update(kwargs)
    return get_session().create_client("dynamodb", endpoint_url=url, **options)


def assert_signed(headers: list[tuple[str, str]], body: bytes, token: str | None = None) -> None:
    """Verify a received request's signature as the server would: same headers, same key."""
    received = {name.lower(): value for name, value in headers}
    authorization = received["authorization"]
    signed = authorization.split("SignedHeaders=")[1].split(",")[0].split(";")
    assert {"host", "x-amz-date", "x-amz-target", "content-type"} <= set(signed)
    kept = {name: received[name] for name in signed if name != "host"}
    url = f"http://{received['host']}/"
    credentials = Credentials(ACCESS_KEY, SECRET_KEY, token)
    expected = sign_like_botocore(url, kept, body, credentials, "us-east-1", kept["x-amz-date"])
    assert authorization == expected["Authorization"]
    assert all(SECRET_KEY not in value for _, value in headers)


async def test_auto_takes_the_direct_path_for_a_plain_client(
    client: Any, loaded: tables.Loaded
) -> None:
    async with dynascan_async.scan(client, tables.TYPES, segments=3, Limit=4) as scan:
        items = [item async for item in scan]
    assert scan.transport == "direct"
    assert "transport=direct" in repr(scan)
    reference = dynascan_async.scan(client, tables.TYPES, segments=3, transport="botocore")
    assert reference.transport == "botocore"
    assert_same_items(items, [item async for item in reference])


async def test_requests_are_signed_for_the_host_they_reach(
    faults: FaultProxy, loaded: tables.Loaded
) -> None:
    async with client_for(faults.url) as client:
        scan = dynascan_async.scan(client, tables.TINY, segments=1, deserialize=False)
        items = [item async for item in scan]
    assert scan.transport == "direct"
    assert_same_items(items, loaded.tiny)
    assert faults.last_scan is not None
    headers, body = faults.last_scan
    assert_signed(headers, body)
    sent = dict(headers)
    assert sent["X-Amz-Target"] == "DynamoDB_20120810.Scan"
    assert " lib/dynascan-async#" in sent["User-Agent"]


async def test_temporary_credentials_send_their_token(
    faults: FaultProxy, loaded: tables.Loaded
) -> None:
    token = "IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQ=="
    async with client_for(faults.url, aws_session_token=token) as client:
        scan = dynascan_async.scan(client, tables.TINY, segments=1, deserialize=False)
        items = [item async for item in scan]
    assert scan.transport == "direct"
    assert_same_items(items, loaded.tiny)
    assert faults.last_scan is not None
    headers, body = faults.last_scan
    assert dict(headers)["X-Amz-Security-Token"] == token
    assert_signed(headers, body, token)


def test_an_unsigned_client_sends_no_signature() -> None:
    # moto routes requests by their signature, so this one runs on the model server.
    with ModelServer() as server, FaultProxy("127.0.0.1", server.port or 0) as proxy:
        setup = boto3.client(
            "dynamodb",
            endpoint_url=server.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        )
        setup.create_table(
            TableName="unsigned",
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "N"}],
            BillingMode="PAY_PER_REQUEST",
        )
        for n in range(5):
            setup.put_item(TableName="unsigned", Item={"id": {"N": str(n)}})
        setup.close()

        async def scan_unsigned() -> tuple[str, list[Any]]:
            config = AioConfig(signature_version=UNSIGNED, retries={"total_max_attempts": 1})
            async with client_for(proxy.url, config=config) as client:
                scan = dynascan_async.scan(client, "unsigned", segments=2)
                return scan.transport, [item async for item in scan]

        transport, items = anyio.run(scan_unsigned)
        assert transport == "direct"
        assert sorted(item["id"] for item in items) == list(range(5))
        assert proxy.last_scan is not None
        assert "authorization" not in {name.lower() for name, _ in proxy.last_scan[0]}


@pytest.fixture
def no_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """An environment where botocore finds no credentials, and never asks the network."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", raising=False)
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", raising=False)
    monkeypatch.delenv("AWS_WEB_IDENTITY_TOKEN_FILE", raising=False)


@pytest.mark.parametrize("transport", ["direct", "botocore"])
@pytest.mark.usefixtures("no_credentials")
async def test_no_credentials_is_botocores_error(faults: FaultProxy, transport: Any) -> None:
    async with get_session().create_client(
        "dynamodb", endpoint_url=faults.url, region_name="us-east-1"
    ) as client:
        with pytest.raises(NoCredentialsError):
            async for _ in dynascan_async.scan(client, tables.TINY, transport=transport):
                pass
    assert faults.scan_requests == 0
    assert other_tasks() == set()


@pytest.mark.parametrize(
    ("table", "params"),
    [
        ("no_such_table", {}),
        (tables.WEBLOG, {"FilterExpression": "attribute_exists("}),
        (tables.WEBLOG, {"FilterExpression": "#missing = :v", "ExpressionAttributeValues": {}}),
        (tables.WEBLOG, {"IndexName": "no-such-index"}),
    ],
)
async def test_errors_are_what_client_scan_raises(
    client: Any, loaded: tables.Loaded, table: str, params: dict[str, Any]
) -> None:
    with pytest.raises(ClientError) as direct:
        async for _ in dynascan_async.scan(client, table, segments=1, **params):
            pass
    with pytest.raises(ClientError) as own:
        await client.scan(TableName=table, **params)
    assert type(direct.value) is type(own.value)
    assert direct.value.response["Error"] == own.value.response["Error"]
    status = direct.value.response["ResponseMetadata"]["HTTPStatusCode"]
    assert status == own.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert str(direct.value) == str(own.value)


async def test_binary_values_and_keys_serialize_as_botocore_does(
    client: Any, sync_client: Any, loaded: tables.Loaded
) -> None:
    """Binary filter values (bytes, bytearray and text, which botocore encodes as UTF-8)
    and binary ExclusiveStartKeys, page after page."""
    values = {
        ":a": {"B": b"\x00\x07\xff\x00"},
        ":b": {"B": bytearray(b"\x00\x09\xff\x00")},
        ":c": {"BS": [b"\x00\x0b\xff\x00", "text"]},
    }
    params: dict[str, Any] = {
        "FilterExpression": "id <> :a AND id <> :b AND NOT contains(:c, id)",
        "ExpressionAttributeValues": values,
        "Limit": 7,
    }
    expected = tables.reference_scan(sync_client, tables.BINARY_KEYS, **params)
    assert len(expected) == len(loaded.binary_keys) - 3
    for transport in ("direct", "botocore"):
        scan = dynascan_async.scan(
            client, tables.BINARY_KEYS, segments=3, deserialize=False, transport=transport, **params
        )
        assert_same_items([item async for item in scan], expected)
        assert scan.stats.pages > len(loaded.binary_keys) // 7


async def test_a_body_damaged_in_transit_is_read_again(
    faults: FaultProxy, loaded: tables.Loaded
) -> None:
    """DynamoDB's x-amz-crc32 is checked; a mismatch is retried, never yielded."""
    faults.corrupt_next = 2
    async with async_client(faults.url) as client:
        scan = dynascan_async.scan(
            client, tables.WEBLOG, segments=2, Limit=100, deserialize=False, transport="direct"
        )
        items = [item async for item in scan]
    assert faults.corrupt_next == 0
    assert_same_items(items, loaded.weblog)
    assert scan.stats.retries == 2


def _spy(request: Any, **_: Any) -> None:
    """A user's own hook on Scan requests (instrumentation, custom headers...)."""
    _spy.calls += 1  # type: ignore[attr-defined]


async def test_auto_leaves_a_client_with_its_own_hooks_to_botocore(
    client: Any, loaded: tables.Loaded
) -> None:
    _spy.calls = 0  # type: ignore[attr-defined]
    client.meta.events.register("before-send.dynamodb.Scan", _spy)
    try:
        scan = dynascan_async.scan(client, tables.WEBLOG, segments=2, Limit=200, deserialize=False)
        assert scan.transport == "botocore"
        items = [item async for item in scan]
        assert_same_items(items, loaded.weblog)
        assert _spy.calls == scan.stats.pages  # type: ignore[attr-defined]
        with pytest.raises(ValueError, match=r"before-send: tests\.test_transport\._spy"):
            dynascan_async.scan(client, tables.WEBLOG, transport="direct")
    finally:
        client.meta.events.unregister("before-send.dynamodb.Scan", _spy)
    assert dynascan_async.scan(client, tables.WEBLOG).transport == "direct"


@pytest.mark.parametrize("transport", ["fast", "", None, 1])
async def test_transport_must_be_known(client: Any, transport: Any) -> None:
    with pytest.raises(ValueError, match="transport must be one of"):
        dynascan_async.scan(client, tables.WEBLOG, transport=transport)


async def test_endpoint_path_is_left_to_botocore(moto_server: Any) -> None:
    async with client_for(moto_server.endpoint_url.rstrip("/") + "/prefix") as client:
        assert dynascan_async.scan(client, tables.WEBLOG).transport == "botocore"
        with pytest.raises(ValueError, match="endpoint URL has a path"):
            dynascan_async.scan(client, tables.WEBLOG, transport="direct")


@pytest.mark.parametrize(
    ("region", "kwargs", "url"),
    [
        ("eu-west-1", {}, "https://dynamodb.eu-west-1.amazonaws.com/"),
        ("us-gov-west-1", {}, "https://dynamodb.us-gov-west-1.amazonaws.com/"),
        (
            "us-east-1",
            {"config": AioConfig(use_fips_endpoint=True)},
            "https://dynamodb-fips.us-east-1.amazonaws.com/",
        ),
        ("cn-north-1", {}, "https://dynamodb.cn-north-1.amazonaws.com.cn/"),
    ],
)
async def test_endpoint_comes_from_the_clients_rules(
    region: str, kwargs: dict[str, Any], url: str
) -> None:
    """Resolved the way client.scan resolves it; nothing is sent anywhere."""
    async with get_session().create_client(
        "dynamodb",
        region_name=region,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        **kwargs,
    ) as client:
        transport = DirectTransport(client)
        resolved = await transport._endpoint({"TableName": "t"})
    assert resolved == (url, region, "dynamodb")


async def test_an_httpx_session_works_as_well(faults: FaultProxy, loaded: tables.Loaded) -> None:
    """aiobotocore 3 can send with httpx instead of aiohttp; the direct path uses either."""
    pytest.importorskip("httpx2", reason="httpx2 needs Python 3.11")
    if int(aiobotocore.__version__.split(".")[0]) < 3:
        pytest.skip("aiobotocore 2.x's httpx backend wants the legacy httpx package")
    from aiobotocore import httpxsession

    # The stubs know only the aiohttp session class.
    session_cls: Any = httpxsession.HttpxSession
    config = AioConfig(http_session_cls=session_cls, retries={"total_max_attempts": 1})
    async with client_for(faults.url, config=config) as client:
        scan = dynascan_async.scan(client, tables.WEBLOG, segments=3, Limit=100, deserialize=False)
        assert_same_items([item async for item in scan], loaded.weblog)
        assert scan.transport == "direct"
        assert faults.last_scan is not None
        assert_signed(*faults.last_scan)
        with pytest.raises(client.exceptions.ResourceNotFoundException):
            async for _ in dynascan_async.scan(client, "no_such_table"):
                pass
