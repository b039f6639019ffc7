"""The direct path's SigV4 signer against botocore's own, byte for byte.

botocore's ``SigV4Auth`` reads the clock inside ``add_auth``; these tests run the same
steps with a timestamp of their own (``sign_like_botocore``), so both signers see one
instant. Everything else is botocore's code.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from dynascan_async._sigv4 import Signer, canonical_host

JSON_HEADERS = {
    "X-Amz-Target": "DynamoDB_20120810.Scan",
    "Content-Type": "application/x-amz-json-1.0",
}
NOW = datetime(2026, 11, 23, 12, 34, 56, tzinfo=timezone.utc)


def sign_like_botocore(
    url: str,
    headers: dict[str, str],
    body: bytes,
    credentials: Credentials,
    region: str,
    stamp: str,
) -> dict[str, str]:
    """botocore's SigV4Auth.add_auth, with the timestamp given instead of read."""
    request = AWSRequest(method="POST", url=url, data=body, headers=dict(headers))
    # The untyped steps of add_auth (the stubs only know the public method).
    signer: Any = SigV4Auth(credentials, "dynamodb", region)
    request.context["timestamp"] = stamp
    signer._modify_request_before_signing(request)
    canonical = signer.canonical_request(request)
    signature = signer.signature(signer.string_to_sign(request, canonical), request)
    signer._inject_signature_to_request(request, signature)
    return dict(request.headers.items())


def sign_ours(
    url: str,
    headers: dict[str, str],
    body: bytes,
    credentials: Credentials,
    region: str,
    now: datetime,
    signer: Signer | None = None,
) -> dict[str, str]:
    signer = signer or Signer(url=url, region=region, service="dynamodb")
    out = dict(headers)
    signer.sign(
        out,
        body,
        access_key=credentials.access_key,
        secret_key=credentials.secret_key,
        token=credentials.token,
        now=now,
    )
    return out


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/",
        "http://localhost:8000",
        "https://dynamodb.eu-west-1.amazonaws.com/",
        "https://dynamodb.eu-west-1.amazonaws.com:443/",
        "http://DynamoDB.Example.com:80/",
        "http://[::1]:8000/",
        "https://123456789012.ddb.us-east-1.amazonaws.com",
    ],
)
@pytest.mark.parametrize("token", [None, "FwoGZXIvYXdzEJr//////////token+with/slashes=="])
@pytest.mark.parametrize(
    "body",
    [
        b"{}",
        b'{"TableName":"t","Segment":3,"TotalSegments":16,"Limit":50}',
        '{"TableName":"t","ExpressionAttributeValues":{":v":{"S":"caf\u00e9 \u2603"}}}'.encode(),
    ],
)
def test_same_headers_as_botocore(url: str, token: str | None, body: bytes) -> None:
    credentials = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token)
    stamp = NOW.strftime("%Y%m%dT%H%M%SZ")
    expected = sign_like_botocore(url, JSON_HEADERS, body, credentials, "eu-west-1", stamp)
    got = sign_ours(url, JSON_HEADERS, body, credentials, "eu-west-1", NOW)
    assert got == expected
    assert ("X-Amz-Security-Token" in got) == bool(token)


def test_unsigned_headers_are_left_out_like_botocore() -> None:
    # botocore leaves User-Agent and the trace header unsigned (proxies rewrite them).
    headers = {
        **JSON_HEADERS,
        "User-Agent": "dynascan-async/0 botocore/1",
        "X-Amzn-Trace-Id": "Root=1-abc",
        "amz-sdk-invocation-id": "c0ffee",
        "X-Spaced": "  a   b  ",
    }
    credentials = Credentials("AKID", "secret")
    stamp = NOW.strftime("%Y%m%dT%H%M%SZ")
    url = "http://127.0.0.1:9/"
    expected = sign_like_botocore(url, headers, b"{}", credentials, "us-east-1", stamp)
    got = sign_ours(url, headers, b"{}", credentials, "us-east-1", NOW)
    assert got == expected
    signed = "SignedHeaders=amz-sdk-invocation-id;content-type;host;x-amz-date;"
    assert signed in got["Authorization"]
    assert "user-agent" not in got["Authorization"]


def test_signing_key_follows_the_day_and_the_secret() -> None:
    url = "http://127.0.0.1:9/"
    signer = Signer(url=url, region="us-east-1", service="dynamodb")
    for now, secret in [
        (NOW, "first"),
        (NOW + timedelta(minutes=1), "first"),
        (NOW + timedelta(days=1), "first"),  # a new day: a new key
        (NOW + timedelta(days=1), "rotated"),  # refreshed credentials: a new key at once
        (NOW, "first"),
    ]:
        credentials = Credentials("AKID", secret)
        stamp = now.strftime("%Y%m%dT%H%M%SZ")
        expected = sign_like_botocore(url, JSON_HEADERS, b"{}", credentials, "us-east-1", stamp)
        got = sign_ours(url, JSON_HEADERS, b"{}", credentials, "us-east-1", now, signer)
        assert got == expected, (now, secret)


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("http://127.0.0.1:8000/", "127.0.0.1:8000"),
        ("https://Example.COM:443/", "example.com"),
        ("http://example.com:443/", "example.com:443"),
        ("http://user:pw@example.com/", "example.com"),
        ("http://[::1]:8000/", "[::1]:8000"),
    ],
)
def test_canonical_host(url: str, host: str) -> None:
    assert canonical_host(url) == host
