"""The client side of the model server's own ``BulkLoad``: many items in a few requests.

BatchWriteItem takes 25 items a request, and through botocore a demo's 100,000 rows take
half a minute to load, longer than the scans they are there for. The model server checks
bulk-loaded items exactly as PutItem checks them, so the table is the same; only the loading
is quicker. Not a DynamoDB operation: use it only against the model server.
"""

from __future__ import annotations

__all__ = ["bulk_load"]

import asyncio
import contextlib
import itertools
from collections.abc import Iterable, Mapping
from typing import Any

from ._json import dumps, loads
from ._operations import BULK_LOAD_TARGET


async def bulk_load(
    endpoint_url: str,
    table_name: str,
    items: Iterable[Mapping[str, Any]],
    *,
    per_request: int = 2_000,
) -> int:
    """Put ``items`` (DynamoDB JSON, as for PutItem) into ``table_name`` on the model server
    at ``endpoint_url``, ``per_request`` at a time; the number put. A refused request raises
    ``RuntimeError`` with the server's answer (its items are not put; earlier ones are).

    ``items`` is consumed lazily, and the next request is prepared while the server checks
    the one before (two in flight), so a generator of rows costs about what the slower of
    the two sides costs, not their sum.
    """
    import aiohttp  # aiobotocore's HTTP client, always installed with it

    if per_request < 1:
        raise ValueError(f"per_request must be at least 1, not {per_request!r}")
    headers = {"X-Amz-Target": BULK_LOAD_TARGET, "Content-Type": "application/x-amz-json-1.0"}

    async def send(session: aiohttp.ClientSession, body: bytes) -> int:
        async with session.post(endpoint_url, data=body, headers=headers) as response:
            answer = await response.read()
        if response.status != 200:
            raise RuntimeError(
                f"BulkLoad into {table_name} refused (HTTP {response.status}): "
                f"{answer[:500].decode('utf-8', 'replace')}"
            )
        return int(loads(answer)["Loaded"])

    loaded = 0
    iterator = iter(items)
    async with aiohttp.ClientSession() as session:
        pending: asyncio.Task[int] | None = None
        try:
            while chunk := list(itertools.islice(iterator, per_request)):
                body = dumps({"TableName": table_name, "Items": chunk})
                if pending is not None:
                    loaded += await pending
                pending = asyncio.create_task(send(session, body))
                await asyncio.sleep(0)  # let it start writing before the next chunk is made
            if pending is not None:
                loaded += await pending
                pending = None
        finally:
            if pending is not None:
                pending.cancel()
                with contextlib.suppress(asyncio.CancelledError, RuntimeError, aiohttp.ClientError):
                    await pending
    return loaded
