"""Stream a DynamoDB table as NDJSON from a FastAPI endpoint, to callers you have let in.

    DYNASCAN_TABLES=logfile_scan DYNAMODB_ENDPOINT=http://127.0.0.1:8000 \\
        uvicorn examples.fastapi_app:app

``GET /tables/{table}/items?segments=8`` streams one JSON item per line while the scan
runs; memory stays bounded (the scan's page queue is the only buffer) and a client that
disconnects stops the scan: Starlette closes the response's generator, which drops the
scan's iterator, which cancels its workers.

An example gets copied into production, so this one is closed by default:

* only the tables named in ``DYNASCAN_TABLES`` (comma-separated) are served; any other
  name, or an ARN, is a 404 whatever the process's IAM role could read. With the
  variable unset, nothing is served;
* ``segments``, ``concurrency`` and ``page_size`` have ceilings (FastAPI answers 422
  above them), so one request cannot open a million segments or hold every connection;
* it has no authentication of its own: see the comment on the route for where it goes.

The bare ``async for`` form is used on purpose: an async generator must not hold a task
group across a ``yield`` (an error in a worker would surface as a cancellation in
whatever the generator is suspended in), and the bare form owns no task group.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from aiobotocore.session import get_session
from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import StreamingResponse

import dynascan_async
from dynascan_async._encode import dumps_item

# Ceilings for what a caller may ask for. Eight concurrent requests already read a table
# several times faster than one; more mostly takes capacity from the table's other users.
MAX_SEGMENTS = 64
MAX_CONCURRENCY = 16
MAX_PAGE_SIZE = 1000


def allowed_tables() -> frozenset[str]:
    """The tables this service may stream: ``DYNASCAN_TABLES``, comma-separated."""
    names = os.environ.get("DYNASCAN_TABLES", "")
    return frozenset(name.strip() for name in names.split(",") if name.strip())


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.tables = allowed_tables()
    # One client for the whole service: its connection pool is shared by every scan.
    async with AsyncExitStack() as stack:
        app.state.dynamodb = await stack.enter_async_context(
            get_session().create_client(
                "dynamodb",
                endpoint_url=os.environ.get("DYNAMODB_ENDPOINT"),
                region_name=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
            )
        )
        yield


app = FastAPI(lifespan=lifespan)


# Authentication goes here, before anything else runs for the request: add a dependency
# to the route, e.g. ``@app.get(..., dependencies=[Depends(require_reader)])``, where
# ``require_reader`` checks the caller's token (OAuth2 / OIDC, an API gateway's verified
# header, mTLS identity) and raises ``HTTPException(401)`` or ``403``. Check per table
# if different callers may read different tables. The allow-list below is a second wall,
# not a replacement: without authentication, anyone who reaches the port reads those
# tables.
@app.get("/tables/{table}/items")
async def items(
    request: Request,
    table: str,
    segments: int = Query(8, ge=1, le=MAX_SEGMENTS),
    concurrency: int = Query(8, ge=1, le=MAX_CONCURRENCY),
    page_size: int | None = Query(None, ge=1, le=MAX_PAGE_SIZE),
    index: str | None = Query(None, max_length=255),
) -> StreamingResponse:
    if table not in request.app.state.tables:
        # The same answer whether or not the table exists: the caller learns nothing.
        raise HTTPException(status_code=404, detail=f"table {table!r} is not served here")
    client: Any = request.app.state.dynamodb
    params: dict[str, Any] = {}
    if page_size is not None:
        params["Limit"] = page_size
    if index is not None:
        params["IndexName"] = index
    try:
        # Built (and validated by the library) before the response starts, so what
        # FastAPI's bounds let through but the scan refuses is still a 400 with its reason.
        scan = dynascan_async.scan(
            client, table, segments=segments, concurrency=concurrency, **params
        )
    except (TypeError, ValueError) as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from None

    async def lines() -> AsyncIterator[str]:
        async for item in scan:
            yield dumps_item(item)

    return StreamingResponse(lines(), media_type="application/x-ndjson")
