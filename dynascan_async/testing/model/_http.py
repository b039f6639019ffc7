"""HTTP for the model server: aiohttp's low-level server on 127.0.0.1, each POST answered by
a :class:`~._operations.Model`.

aiohttp's rather than hand-written HTTP: it is maintained, its parser is llhttp (C), and
aiobotocore already brings it. Measured against the hand-written HTTP/1.1 server this
replaced (server CPU per Scan request of 50 to 250 items, 16 keep-alive connections; README,
"The model server"): about 30 % more CPU per small page, less per large page, which leaves
the server at about a fifth of one core at the 70,000 items/s the benchmarks drive; never
the bottleneck. ``GET`` answers the server's identity, which a launcher checks so that it
never mistakes another process on the port for its own server.
"""

from __future__ import annotations

__all__ = ["HOST", "identity_of", "serve", "serve_model"]

import contextlib
import itertools
import zlib
from collections.abc import AsyncIterator
from typing import Final

from aiohttp import web

from ._operations import Model
from ._options import ModelOptions

HOST: Final = "127.0.0.1"
_MAX_BODY: Final = 32 * 1024 * 1024
_JSON: Final = "application/x-amz-json-1.0"


def identity_of(instance: str) -> bytes:
    """What ``GET /`` answers: the model server's name, and the instance the launcher named."""
    return f"healthy: dynascan_async model server {instance}".strip().encode()


class _Handler:
    """Answers one request: POST to the model, GET with the identity, anything else 405."""

    def __init__(self, model: Model, identity: bytes) -> None:
        self.model = model
        self.identity = identity
        self._request_ids = itertools.count(1)

    async def __call__(self, request: web.BaseRequest) -> web.StreamResponse:
        if request.method == "GET":
            return web.Response(body=self.identity, content_type="text/plain")
        if request.method != "POST":
            return web.Response(status=405)
        length = request.content_length
        if length is not None and length > _MAX_BODY:
            return web.Response(status=413)
        # Read through the stream, not request.read(): that one stops at 1 MB by default.
        body = await request.content.read()
        if len(body) > _MAX_BODY:
            return web.Response(status=413)
        status, payload = await self.model.answer(request.headers.get("X-Amz-Target", ""), body)
        return web.Response(
            status=status,
            body=payload,
            headers={
                "Content-Type": _JSON,
                "x-amzn-RequestId": f"MODEL{next(self._request_ids):027d}",
                "x-amz-crc32": str(zlib.crc32(payload)),
            },
        )


@contextlib.asynccontextmanager
async def serve(options: ModelOptions, *, port: int = 0, instance: str = "") -> AsyncIterator[str]:
    """Serve a new model on 127.0.0.1:``port`` (0: a free one) until exit; yields the URL.
    Every connection, kept-alive ones included, is closed on exit."""
    server = web.Server(_Handler(Model(options), identity_of(instance)), access_log=None)
    # shutdown_timeout bounds how long leaving waits for requests still being answered.
    runner = web.ServerRunner(server, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, HOST, port)
        await site.start()
        bound = runner.addresses[0][1]
        yield f"http://{HOST}:{bound}"
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def serve_model(
    *,
    port: int = 0,
    latency: float = 0.0,
    partitions: int = 1,
    partition_rcu: float | None = None,
    burst_seconds: float = 1.0,
) -> AsyncIterator[str]:
    """Run a model server in the running event loop; yields its endpoint URL.

    ``async with serve_model(latency=0.02) as url: ...`` -- for tests that want the server
    in-process. Port 0 (the default) picks a free port. Every connection is closed on exit.
    Benchmarks should use :class:`ModelServer` instead, so that the server does not share the
    measured client's CPU.
    """
    options = ModelOptions(latency, partitions, partition_rcu, burst_seconds)
    async with serve(options, port=port) as url:
        yield url
