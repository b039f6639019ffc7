"""Small helpers the tests share: comparing item sets, finding leftover tasks."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterable
from decimal import Decimal
from typing import Any, cast

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from boto3.dynamodb.types import Binary


def _default(value: object) -> object:
    if isinstance(value, bytes | bytearray):
        return {"<bytes>": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, Binary):
        # boto3-stubs types Binary.__bytes__ as returning str; .value is the bytes.
        return {"<Binary>": base64.b64encode(cast(Any, value).value).decode()}
    if isinstance(value, Decimal):
        return {"<Decimal>": str(value)}
    if isinstance(value, set | frozenset):
        return {"<set>": sorted(json.dumps(v, sort_keys=True, default=_default) for v in value)}
    raise TypeError(type(value))


def canon(item: Any) -> str:
    """A text form of an item in which equal items, and only they, are equal."""
    return json.dumps(item, sort_keys=True, default=_default)


def as_multiset(items: Iterable[Any]) -> list[str]:
    return sorted(canon(item) for item in items)


def assert_same_items(got: Iterable[Any], expected: Iterable[Any]) -> None:
    """Exactly the same items, each as often: nothing lost, nothing duplicated."""
    got_list = as_multiset(got)
    expected_list = as_multiset(expected)
    assert len(got_list) == len(expected_list), (len(got_list), len(expected_list))
    assert len(set(got_list)) == len(got_list), "an item was delivered twice"
    assert got_list == expected_list


def async_client(endpoint_url: str, *, retries: dict[str, Any] | None = None, **config: Any) -> Any:
    """An aiobotocore DynamoDB client (an async context manager) for the local servers.

    By default botocore's own retries are off (one attempt), so that the tests see exactly
    what the library does; pass ``retries`` to test the two layers together.
    """
    return get_session().create_client(
        "dynamodb",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        config=AioConfig(retries=retries or {"total_max_attempts": 1}, **config),
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def other_tasks() -> set[asyncio.Task[Any]]:
    """Tasks still running on this loop besides the current one and the test runner's."""
    current = asyncio.current_task()
    return {
        task
        for task in asyncio.all_tasks()
        if task is not current
        and not task.done()
        # anyio's pytest plugin drives each test from a runner task of its own.
        and not getattr(task.get_coro(), "__qualname__", "").startswith("TestRunner.")
    }
