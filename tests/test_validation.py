"""Bad options raise from ``scan(...)`` itself, before any request is sent.

The client here points at a fault proxy that counts requests: zero must reach it.
"""

from __future__ import annotations

import subprocess
import sys
import types
from typing import Any

import boto3
import pytest

import dynascan_async
from tests.support import tables
from tests.support.faultproxy import FaultProxy

pytestmark = pytest.mark.anyio

BAD: list[tuple[dict[str, Any], type[Exception], str]] = [
    ({"segments": 0}, ValueError, "segments"),
    ({"segments": 1_000_001}, ValueError, "segments"),
    ({"segments": -3}, ValueError, "segments"),
    ({"segments": 2.0}, TypeError, "segments"),
    ({"segments": True}, TypeError, "segments"),
    ({"segments": "8"}, TypeError, "segments"),
    ({"concurrency": 0}, ValueError, "concurrency"),
    ({"concurrency": 1.5}, TypeError, "concurrency"),
    ({"rate_limit": 0}, ValueError, "rate_limit"),
    ({"rate_limit": -1.0}, ValueError, "rate_limit"),
    ({"rate_limit": float("nan")}, ValueError, "rate_limit"),
    ({"rate_limit": float("inf")}, ValueError, "rate_limit"),
    ({"rate_limit": "10"}, ValueError, "rate_limit"),
    ({"rate_limit": "0%"}, ValueError, "rate_limit"),
    ({"rate_limit": "100.5%"}, ValueError, "rate_limit"),
    ({"rate_limit": "-5%"}, ValueError, "rate_limit"),
    ({"rate_limit": "fifty%"}, ValueError, "rate_limit"),
    ({"rate_limit": b"50%"}, TypeError, "rate_limit"),
    ({"rate_limit": "50%", "ReturnConsumedCapacity": "NONE"}, ValueError, "ReturnConsumedCapacity"),
    ({"deserialize": "yes"}, TypeError, "deserialize"),
    ({"buffer_pages": 0}, ValueError, "buffer_pages"),
    ({"TableName": "other"}, TypeError, "TableName"),
    ({"Segment": 1}, TypeError, "Segment"),
    ({"TotalSegments": 4}, TypeError, "TotalSegments"),
    ({"ExclusiveStartKey": {"pk": {"S": "x"}}}, TypeError, "ExclusiveStartKey"),
    ({"Limit": "10"}, TypeError, "Limit"),
    ({"Limit": 0}, ValueError, "Limit"),
    ({"ConsistentRead": "yes"}, TypeError, "ConsistentRead"),
    ({"FilterExpresion": "a = :b"}, TypeError, "FilterExpresion"),
    ({"page_size": 10}, TypeError, "page_size"),
    ({"rate_limit": 5, "ReturnConsumedCapacity": "NONE"}, ValueError, "ReturnConsumedCapacity"),
    ({"resume_from": {"something": "else"}}, ValueError, "checkpoint"),
    ({"resume_from": "not a checkpoint"}, ValueError, "checkpoint"),
]


@pytest.mark.parametrize(("kwargs", "error", "mentions"), BAD)
async def test_bad_option_raises_before_any_request(
    proxied_client: Any,
    faults: FaultProxy,
    kwargs: dict[str, Any],
    error: type[Exception],
    mentions: str,
) -> None:
    with pytest.raises(error, match=mentions):
        dynascan_async.scan(proxied_client, tables.WEBLOG, **kwargs)
    assert faults.scan_requests == 0


async def test_bad_table_name(client: Any) -> None:
    with pytest.raises(TypeError, match="table"):
        dynascan_async.scan(client, 42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="table"):
        dynascan_async.scan(client, "")


async def test_synchronous_client_is_refused(moto_server: Any) -> None:
    sync = boto3.client(
        "dynamodb",
        endpoint_url=moto_server.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
    )
    with pytest.raises(TypeError, match="synchronous"):
        dynascan_async.scan(sync, tables.WEBLOG)
    with pytest.raises(TypeError, match="client"):
        dynascan_async.scan(object(), tables.WEBLOG)


async def test_options_are_keyword_only(client: Any) -> None:
    with pytest.raises(TypeError):
        dynascan_async.scan(client, tables.WEBLOG, 8)  # type: ignore[call-arg]


def test_public_names_match_all() -> None:
    public = {
        name
        for name, value in vars(dynascan_async).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert public == set(dynascan_async.__all__)
    assert isinstance(dynascan_async.__version__, str)


def test_importing_the_library_imports_anyios_backend() -> None:
    """So that the first scan of a service does not import a dozen modules in its event loop."""
    code = "import sys, dynascan_async; print('anyio._backends._asyncio' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "True"
