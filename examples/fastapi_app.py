"""Stream a whole DynamoDB table as NDJSON from a FastAPI endpoint.

    DYNAMODB_ENDPOINT=http://127.0.0.1:8000 uvicorn examples.fastapi_app:app

``GET /tables/{table}/items?segments=8`` streams one JSON item per line while the scan
runs; memory stays bounded (the scan's page queue is the only buffer) and a client that
disconnects stops the scan: Starlette closes the response's generator, which drops the
scan's iterator, which cancels its workers.

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


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
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


@app.get("/tables/{table}/items")
async def items(
    request: Request,
    table: str,
    segments: int = Query(8, ge=1, le=1_000_000),
    concurrency: int = Query(8, ge=1, le=64),
) -> StreamingResponse:
    client: Any = request.app.state.dynamodb
    try:
        # Built (and validated) before the response starts, so a bad option is a 400.
        scan = dynascan_async.scan(client, table, segments=segments, concurrency=concurrency)
    except (TypeError, ValueError) as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from None

    async def lines() -> AsyncIterator[str]:
        async for item in scan:
            yield dumps_item(item)

    return StreamingResponse(lines(), media_type="application/x-ndjson")
