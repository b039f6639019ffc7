"""HTTP/1.1 for the model server: keep-alive connections on 127.0.0.1, one request at a time
each, answered by a :class:`~._operations.Model`.

Hand-written rather than aiohttp's server because it was measured (README, "The model
server's capacity, and other traffic"): in its place aiohttp's low-level server cost about
30 % more CPU per Scan request of 50 to 100 items, and a dynascan scan through it (direct
transport, no latency, pages of 50) ran at a fifth of the items per second. So the few lines
below (no routing, no middleware, a body read in one call) are kept. ``GET`` answers the
server's identity, which a launcher checks so that it never mistakes another process on the
port for its own server.
"""

from __future__ import annotations

__all__ = ["HOST", "identity_of", "serve", "serve_model"]

import asyncio
import contextlib
import itertools
import zlib
from collections.abc import AsyncIterator
from typing import Any, Final

from ._operations import Model
from ._options import ModelOptions

HOST: Final = "127.0.0.1"
_MAX_BODY: Final = 32 * 1024 * 1024
_MAX_HEAD: Final = 64 * 1024


def identity_of(instance: str) -> bytes:
    """What ``GET /`` answers: the model server's name, and the instance the launcher named."""
    return f"healthy: dynascan_async model server {instance}".strip().encode()


_REASONS: Final = {
    200: b"OK",
    400: b"Bad Request",
    405: b"Method Not Allowed",
    413: b"Payload Too Large",
    431: b"Request Header Fields Too Large",
    500: b"Internal Server Error",
    501: b"Not Implemented",
}


class _Http:
    """Keep-alive HTTP/1.1 connections, one request at a time each, answered by a model.

    Connections are tracked so that shutting down closes them: since Python 3.12 a server's
    ``wait_closed()`` waits for every connection, and a client pool keeps them open.
    """

    def __init__(self, model: Model, identity: bytes) -> None:
        self.model = model
        self.identity = identity
        self._request_ids = itertools.count(1)
        self._connections: dict[asyncio.Task[Any], asyncio.StreamWriter] = {}

    async def connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections[task] = writer
        try:
            while await self._exchange(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away
        finally:
            del self._connections[task]
            writer.close()

    async def _exchange(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Answer one request; whether the connection stays open."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return False
        except asyncio.LimitOverrunError:
            await self._send(writer, 431, b"", keep_alive=False)
            return False
        request_line, *lines = head[:-4].split(b"\r\n")
        parts = request_line.split(b" ")
        headers: dict[bytes, bytes] = {}
        for line in lines:
            name, colon, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
            if not colon:
                parts = []
        length_text = headers.get(b"content-length", b"0")
        if len(parts) != 3 or not length_text.isdigit():
            await self._send(writer, 400, b"", keep_alive=False)
            return False
        method, _, version = parts
        if b"transfer-encoding" in headers:
            await self._send(writer, 501, b"", keep_alive=False)
            return False
        length = int(length_text)
        if length > _MAX_BODY:
            await self._send(writer, 413, b"", keep_alive=False)
            return False
        if headers.get(b"expect", b"").lower() == b"100-continue":
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        body = await reader.readexactly(length) if length else b""
        connection = headers.get(b"connection", b"").lower()
        if version == b"HTTP/1.1":
            keep_alive = b"close" not in connection
        else:
            keep_alive = b"keep-alive" in connection
        if method == b"POST":
            target = headers.get(b"x-amz-target", b"").decode("latin-1")
            status, payload = await self.model.answer(target, body)
        elif method == b"GET":
            status, payload = 200, self.identity
        else:
            status, payload = 405, b""
        await self._send(writer, status, payload, keep_alive=keep_alive)
        return keep_alive

    async def _send(
        self, writer: asyncio.StreamWriter, status: int, payload: bytes, *, keep_alive: bool
    ) -> None:
        head = (
            b"HTTP/1.1 %d %s\r\n"
            b"Content-Type: application/x-amz-json-1.0\r\n"
            b"Content-Length: %d\r\n"
            b"x-amzn-RequestId: MODEL%027d\r\n"
            b"x-amz-crc32: %d\r\n"
            b"%s\r\n"
        ) % (
            status,
            _REASONS.get(status, b"Error"),
            len(payload),
            next(self._request_ids),
            zlib.crc32(payload),
            b"" if keep_alive else b"Connection: close\r\n",
        )
        writer.writelines((head, payload))
        await writer.drain()

    async def close_all(self) -> None:
        """Drop every connection and wait until their handlers have finished."""
        tasks = list(self._connections)
        for task, writer in self._connections.items():
            writer.transport.abort()
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


@contextlib.asynccontextmanager
async def serve(options: ModelOptions, *, port: int = 0, instance: str = "") -> AsyncIterator[str]:
    """Serve a new model on 127.0.0.1:``port`` (0: a free one) until exit; yields the URL.
    Every connection is closed on exit."""
    http = _Http(Model(options), identity_of(instance))
    server = await asyncio.start_server(http.connection, HOST, port, limit=_MAX_HEAD)
    try:
        bound: int = server.sockets[0].getsockname()[1]
        yield f"http://{HOST}:{bound}"
    finally:
        server.close()
        await http.close_all()
        await server.wait_closed()


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
