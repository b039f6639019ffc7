"""A fault-injecting HTTP/1.1 proxy to put between a DynamoDB client and a moto server.

The proxy runs in its own thread with its own asyncio event loop, so one instance can serve
the many per-test event loops of the suite (and synchronous clients too). It listens on
127.0.0.1 on an ephemeral port and forwards every request to the one upstream address it was
given, over a fresh ``Connection: close`` upstream connection, keeping the client connection
alive across requests.

Faults are injected only into ``DynamoDB_20120810.Scan`` requests; every other operation
(CreateTable, BatchWriteItem, DescribeTable, ...) always passes through untouched. The knobs
are plain attributes that the test thread may set at any time; they are read once per Scan
request::

    with FaultProxy("127.0.0.1", moto_port, seed=7) as proxy:
        proxy.throttle_rate = 0.3
        client = make_client(endpoint_url=proxy.url)
        ...
        assert proxy.injected["throttle"] > 0

Request headers carry SigV4 signatures and credentials: this module never logs or prints
them (it does not log at all; failures are counted, by exception class name only).
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import http
import ipaddress
import json
import random
import re
import threading
import time
import uuid
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Literal

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["SCAN_TARGET", "FAULT_KINDS", "FaultKind", "FaultProxy", "ScanRecord"]

SCAN_TARGET: Final = "DynamoDB_20120810.Scan"

FaultKind = Literal["throttle", "error", "drop", "persistent"]
FAULT_KINDS: Final[tuple[FaultKind, ...]] = ("throttle", "error", "drop", "persistent")

_ERROR_PREFIX: Final = "com.amazonaws.dynamodb.v20120810#"
_THROTTLE_MESSAGE: Final = (
    "The level of configured provisioned throughput for the table was exceeded."
)
_JSON_CONTENT_TYPE: Final = "application/x-amz-json-1.0"

# Headers that describe one hop, not the message: never copied from one side to the other.
_HOP_BY_HOP: Final = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
        "expect",
    }
)

_SINGLE_VALUED: Final = frozenset({"server", "date", "content-type"})

_MAX_HEAD: Final = 256 * 1024  # request/response line plus headers
_MAX_BODY: Final = 64 * 1024 * 1024
_UPSTREAM_TIMEOUT: Final = 60.0
_THREAD_JOIN_TIMEOUT: Final = 10.0
_MAX_ERRORS_KEPT: Final = 100
_MAX_RECORDS: Final = 100_000

Headers = list[tuple[str, str]]
_STRING_VALUE = re.compile(rb'"S":\s*"')


class _BadMessage(Exception):
    """An HTTP message this proxy cannot parse."""


@dataclass(frozen=True, slots=True)
class ScanRecord:
    """One Scan request as the proxy received it, and what it was answered.

    Times are ``time.monotonic()`` in the proxy's process (the test's own, for the suite).
    """

    received: float
    """When the request had been read in full (before any injected latency)."""
    answered: float
    """When its answer was ready to be written back (or the connection dropped)."""
    request: Mapping[str, Any]
    """The request body, parsed: what the server was asked, whatever the client's stats say."""
    status: int | None
    """The HTTP status of the answer; None for a dropped connection."""
    fault: FaultKind | None
    """The fault injected into this request, if any (then upstream never saw it)."""
    consumed: float | None
    """``ConsumedCapacity.CapacityUnits`` of a 200 answer from upstream, where it has one."""


def _parse_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:  # includes UnicodeDecodeError
        return None


def _capacity_units(body: bytes) -> float | None:
    answer = _parse_json(body)
    if not isinstance(answer, dict):
        return None
    consumed = answer.get("ConsumedCapacity")
    if not isinstance(consumed, dict):
        return None
    units = consumed.get("CapacityUnits")
    return float(units) if isinstance(units, int | float) else None


@dataclass(slots=True)
class _Request:
    method: str
    target: str
    version: str
    headers: Headers
    body: bytes

    def header(self, name: str) -> str | None:
        return _header(self.headers, name)

    @property
    def keep_alive(self) -> bool:
        tokens = _connection_tokens(self.headers)
        if self.version == "HTTP/1.0":
            return "keep-alive" in tokens
        return "close" not in tokens


@dataclass(slots=True)
class _Response:
    status: int
    reason: str
    headers: Headers
    body: bytes


def _header(headers: Headers, name: str) -> str | None:
    wanted = name.lower()
    for key, value in headers:
        if key.lower() == wanted:
            return value
    return None


def _connection_tokens(headers: Headers) -> set[str]:
    tokens: set[str] = set()
    for key, value in headers:
        if key.lower() == "connection":
            tokens.update(t.strip().lower() for t in value.split(",") if t.strip())
    return tokens


def _is_chunked(headers: Headers) -> bool:
    for key, value in headers:
        if key.lower() == "transfer-encoding":
            codings = [c.strip().lower() for c in value.split(",")]
            if codings and codings[-1] == "chunked":
                return True
    return False


def _content_length(headers: Headers) -> int | None:
    value = _header(headers, "content-length")
    if value is None:
        return None
    value = value.strip()
    if not value.isdigit():
        raise _BadMessage("bad Content-Length")
    length = int(value)
    if length > _MAX_BODY:
        raise _BadMessage("body too large")
    return length


def _parse_head(head: bytes) -> tuple[str, Headers]:
    """Split a message head (without the final blank line) into its first line and headers."""
    lines = head.split(b"\r\n")
    first = lines[0].decode("latin-1")
    headers: Headers = []
    for raw in lines[1:]:
        name, sep, value = raw.partition(b":")
        if not sep or not name or name != name.strip():
            raise _BadMessage("bad header line")
        headers.append((name.decode("latin-1"), value.strip().decode("latin-1")))
    return first, headers


async def _read_head(reader: asyncio.StreamReader) -> bytes | None:
    """Read up to and including the blank line; None on EOF before any byte of a message."""
    head = b""
    # Tolerate (and skip) empty lines before a message, as RFC 9112 asks servers to.
    while not head:
        try:
            line = await reader.readuntil(b"\r\n")
        except asyncio.IncompleteReadError as exc:
            if exc.partial.strip():
                raise
            return None
        if line != b"\r\n":
            head = line
    while not head.endswith(b"\r\n\r\n"):
        head += await reader.readuntil(b"\r\n")
        if len(head) > _MAX_HEAD:
            raise _BadMessage("head too large")
    return head[:-4]


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    total = 0
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size_text = size_line.split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise _BadMessage("bad chunk size") from None
        if size < 0:
            raise _BadMessage("bad chunk size")
        if size == 0:
            # Trailer section: header lines up to a blank line. Trailers are dropped.
            while (await reader.readuntil(b"\r\n")) != b"\r\n":
                pass
            return b"".join(parts)
        total += size
        if total > _MAX_BODY:
            raise _BadMessage("body too large")
        parts.append(await reader.readexactly(size))
        if await reader.readexactly(2) != b"\r\n":
            raise _BadMessage("bad chunk terminator")


def _end_to_end(headers: Headers) -> Headers:
    """Drop hop-by-hop headers, and repeats of single-valued ones (keeping the last).

    moto's server sends two ``Server`` headers (Werkzeug's and its own), which aiohttp's strict
    parser (used under ``python -X dev``) rejects.
    """
    kept: Headers = []
    for index, (name, value) in enumerate(headers):
        lower = name.lower()
        if lower in _HOP_BY_HOP:
            continue
        if lower in _SINGLE_VALUED and any(n.lower() == lower for n, _ in headers[index + 1 :]):
            continue
        kept.append((name, value))
    return kept


def _serialize(first_line: str, headers: Headers, body: bytes) -> bytes:
    head = "".join(f"{name}: {value}\r\n" for name, value in headers)
    return f"{first_line}\r\n{head}\r\n".encode("latin-1") + body


def _reason(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def _close_writer(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()


class FaultProxy:
    """A fault-injecting HTTP/1.1 proxy in front of a (loopback) DynamoDB endpoint.

    Knobs (plain attributes, set from any thread; read once per Scan request):

    * ``throttle_rate``, ``error_rate``, ``drop_rate`` -- probabilities of answering a Scan with
      ``ProvisionedThroughputExceededException`` (HTTP 400), ``InternalServerError`` (HTTP 500),
      or of closing the client connection without any response. One random draw per Scan
      request decides among them (cumulatively, in that order), so their sum should stay <= 1.
    * ``fail_after`` / ``fail_code`` / ``fail_status`` -- once ``fail_after`` Scan requests have
      been let through to upstream, every further Scan gets ``fail_status`` with error code
      ``fail_code`` (``injected["persistent"]``). None disables it.
    * ``latency`` -- seconds of delay added to every Scan request (injected faults included)
      before it is answered / forwarded.
    * ``corrupt_next`` -- how many of the next successful Scan answers get one character of
      a string value changed in transit, headers (and so ``x-amz-crc32``) left as they were.
    * ``seed`` -- seed of the proxy's ``random.Random``; assigning it re-seeds the generator.

    Counters (read-only properties, each read under the lock):

    * ``scan_requests`` -- Scan requests fully read; ``forwarded`` -- Scan requests whose
      upstream response was received (whatever its status); ``injected`` -- a ``Counter`` copy
      with every kind of ``FAULT_KINDS``, counted when the fault is decided.
    * ``in_flight`` -- Scan requests between "fully read" and "answered / dropped"; it drops
      just *before* the response is written, so a client holding its answer never sees its own
      request still counted. ``max_in_flight`` -- the highest ``in_flight`` seen.
      ``wait_idle()`` waits for ``in_flight == 0``; ``wait_quiet()`` waits until no client
      connection is open at all (``open_connections == 0``), so that requests a finished
      test had already sent are counted before the next test zeroes the counters, not after.
    * ``requests`` (all requests), ``connections`` (client connections accepted),
      ``upstream_errors`` (answered 502) and ``errors`` (class names of unexpected exceptions
      in the proxy; client disconnects are not errors).
    * ``last_scan`` -- the headers (as sent, in order) and body of the latest Scan request,
      for tests of what the client put on the wire (its signature, its headers).
    * ``scans`` -- with ``record = True``: a ``ScanRecord`` per Scan request since recording
      was turned on (or since ``reset()``), in the order they were answered: the parsed
      request body, the times it arrived and was answered, and the capacity upstream
      charged for it. What the server was really asked and really charged, for tests that
      must not take the library's own word (its stats) for it. Off by default: parsing
      every answer costs time.
    """

    def __init__(
        self,
        upstream_host: str,
        upstream_port: int,
        *,
        seed: int | None = 0,
        throttle_rate: float = 0.0,
        error_rate: float = 0.0,
        drop_rate: float = 0.0,
        fail_after: int | None = None,
        fail_code: str = "AccessDeniedException",
        fail_status: int = 400,
        latency: float = 0.0,
    ) -> None:
        if not _is_loopback(upstream_host):
            raise ValueError(f"upstream must be a loopback address, not {upstream_host!r}")
        self.upstream_host: Final = upstream_host
        self.upstream_port: Final = upstream_port

        self.throttle_rate = throttle_rate
        self.error_rate = error_rate
        self.drop_rate = drop_rate
        self.fail_after = fail_after
        self.fail_code = fail_code
        self.fail_status = fail_status
        self.latency = latency
        self.corrupt_next = 0
        self.record = False

        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._seed = seed
        self._rng = random.Random(seed)
        self._zero_counters_locked()
        self._in_flight = 0
        self._max_in_flight = 0
        self._open = 0  # client connections accepted and not yet closed

        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._port: int | None = None
        # Only touched from the proxy's loop thread.
        self._client_tasks: set[asyncio.Task[None]] = set()
        self._client_writers: set[asyncio.StreamWriter] = set()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> Self:
        """Start the proxy thread and wait until it listens. Returns self."""
        if self._thread is not None:
            raise RuntimeError("FaultProxy already started")
        self._ready.clear()
        self._startup_error = None
        thread = threading.Thread(target=self._run, name="FaultProxy", daemon=True)
        self._thread = thread
        thread.start()
        ready = self._ready.wait(_THREAD_JOIN_TIMEOUT)
        if not ready or self._port is None:
            error = self._startup_error
            self.close()
            raise RuntimeError("FaultProxy failed to start") from error
        return self

    def close(self) -> None:
        """Stop the loop, close every socket and join the thread. Idempotent."""
        thread = self._thread
        if thread is None:
            return
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None:
            with contextlib.suppress(RuntimeError):  # loop already closed
                loop.call_soon_threadsafe(stop.set)
        thread.join(_THREAD_JOIN_TIMEOUT)
        if thread.is_alive():
            raise RuntimeError("FaultProxy thread did not stop")
        self._thread = None
        self._loop = None
        self._stop = None
        self._port = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("FaultProxy is not running")
        return self._port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # ------------------------------------------------------------------ knobs and counters

    @property
    def seed(self) -> int | None:
        return self._seed

    @seed.setter
    def seed(self, value: int | None) -> None:
        with self._lock:
            self._seed = value
            self._rng.seed(value)

    def reset(self) -> None:
        """Zero the counters and the fault knobs, and re-seed the generator with ``seed``.

        ``seed`` itself is kept. ``in_flight`` is live state and is kept too; ``max_in_flight``
        restarts from it.
        """
        with self._lock:
            self.throttle_rate = 0.0
            self.error_rate = 0.0
            self.drop_rate = 0.0
            self.fail_after = None
            self.fail_code = "AccessDeniedException"
            self.fail_status = 400
            self.latency = 0.0
            self.corrupt_next = 0
            self.record = False
            self._rng.seed(self._seed)
            self._zero_counters_locked()
            self._max_in_flight = self._in_flight

    def _zero_counters_locked(self) -> None:
        self._requests = 0
        self._connections = 0
        self._scan_requests = 0
        self._admitted = 0  # Scan requests let through towards upstream (for fail_after)
        self._forwarded = 0
        self._upstream_errors = 0
        self._injected: collections.Counter[str] = collections.Counter(
            dict.fromkeys(FAULT_KINDS, 0)
        )
        self._errors: list[str] = []
        self._last_scan: tuple[Headers, bytes] | None = None
        self._scans: list[ScanRecord] = []

    def _note_error_locked(self, exc: BaseException) -> None:
        if len(self._errors) < _MAX_ERRORS_KEPT:
            self._errors.append(type(exc).__name__)

    @property
    def requests(self) -> int:
        with self._lock:
            return self._requests

    @property
    def connections(self) -> int:
        with self._lock:
            return self._connections

    @property
    def last_scan(self) -> tuple[Headers, bytes] | None:
        with self._lock:
            return self._last_scan

    @property
    def scans(self) -> list[ScanRecord]:
        with self._lock:
            return list(self._scans)

    @property
    def scan_requests(self) -> int:
        with self._lock:
            return self._scan_requests

    @property
    def forwarded(self) -> int:
        with self._lock:
            return self._forwarded

    @property
    def injected(self) -> collections.Counter[str]:
        with self._lock:
            return collections.Counter(self._injected)

    @property
    def in_flight(self) -> int:
        with self._lock:
            return self._in_flight

    @property
    def max_in_flight(self) -> int:
        with self._lock:
            return self._max_in_flight

    @property
    def open_connections(self) -> int:
        with self._lock:
            return self._open

    @property
    def upstream_errors(self) -> int:
        with self._lock:
            return self._upstream_errors

    @property
    def errors(self) -> list[str]:
        with self._lock:
            return list(self._errors)

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Wait until no Scan request is in flight; False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout)

    def wait_quiet(self, timeout: float = 10.0) -> bool:
        """Wait until every client connection is closed; False on timeout.

        A client that closed its connections may still have requests in this proxy's socket
        buffers (a scan cancelled after its requests were written): they are read, counted and
        answered only when the loop gets to them. Waiting for the open connections to drain,
        then letting the loop run once more so that connections still in the accept backlog are
        taken too, keeps those late requests out of the next test's counters.
        """
        deadline = time.monotonic() + timeout
        if not self._wait_closed(deadline):
            return False
        loop = self._loop
        if loop is not None:
            barrier = asyncio.run_coroutine_threadsafe(asyncio.sleep(0.01), loop)
            try:
                barrier.result(max(0.0, deadline - time.monotonic()))
            except (concurrent.futures.TimeoutError, concurrent.futures.CancelledError):
                return False
        return self._wait_closed(deadline)

    def _wait_closed(self, deadline: float) -> bool:
        with self._idle:
            left = max(0.0, deadline - time.monotonic())
            return self._idle.wait_for(lambda: self._open == 0, left)

    # ------------------------------------------------------------------ the loop thread

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        finally:
            self._ready.set()  # start() sees _port is None if _main never got to listen

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            server = await asyncio.start_server(self._on_connect, "127.0.0.1", 0, limit=_MAX_HEAD)
        except OSError as exc:
            self._startup_error = exc
            return
        try:
            self._port = int(server.sockets[0].getsockname()[1])
            self._ready.set()
            await self._stop.wait()
        finally:
            # Stop accepting, then let connections already accepted get their transports and
            # handlers before closing the server: closing it while asyncio (3.11) is still
            # setting up an accepted connection leaks that socket (AssertionError in _attach).
            loop = asyncio.get_running_loop()
            for sock in server.sockets:
                with contextlib.suppress(NotImplementedError, ValueError):
                    loop.remove_reader(sock.fileno())
            for _ in range(10):
                await asyncio.sleep(0)
            server.close()
            for writer in list(self._client_writers):
                writer.transport.abort()
            tasks = list(self._client_tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await server.wait_closed()

    def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # A plain callback, not a coroutine: the connection runs in a task of our own, which
        # close() can cancel without asyncio (3.11) logging the cancellation as an error.
        task = asyncio.get_running_loop().create_task(self._connection(reader, writer))
        self._client_tasks.add(task)
        task.add_done_callback(self._client_tasks.discard)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._client_writers.add(writer)
        with self._lock:
            self._connections += 1
            self._open += 1
        try:
            while await self._serve_one(reader, writer):
                pass
        except (OSError, asyncio.IncompleteReadError):
            pass  # the client went away mid-request or mid-response
        except (asyncio.LimitOverrunError, _BadMessage, ValueError, RuntimeError) as exc:
            with self._lock:
                self._note_error_locked(exc)
        finally:
            self._client_writers.discard(writer)
            try:
                await _close_writer(writer)
            finally:
                with self._idle:
                    self._open -= 1
                    self._idle.notify_all()

    async def _serve_one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Read and answer one request. Returns whether to keep the connection open."""
        try:
            request = await self._read_request(reader, writer)
        except (_BadMessage, asyncio.LimitOverrunError, ValueError):
            await self._write(writer, self._plain_response(400, "bad request"), keep_alive=False)
            return False
        if request is None:
            return False
        with self._lock:
            self._requests += 1
        if request.header("x-amz-target") != SCAN_TARGET:
            response = await self._forward(request)
            await self._write(writer, response, keep_alive=request.keep_alive)
            return request.keep_alive

        received = time.monotonic()
        with self._lock:
            self._last_scan = (list(request.headers), request.body)
        kind = self._admit_scan()
        record = self.record
        seen: _Response | None = None  # the answer as it came, for the record
        # in_flight drops just before the response goes out, so that a client which has its
        # answer (or saw its connection close) never reads a stale in_flight from this proxy.
        try:
            latency = self.latency
            if latency > 0:
                await asyncio.sleep(latency)
            if kind == "drop":
                return False  # _connection closes the connection without a response
            if kind is not None:
                response = seen = self._fault_response(kind)
            else:
                seen = await self._forward(request, scan=True)
                response = self._maybe_corrupt(seen)
        finally:
            if record:
                self._note_scan(received, request, seen, kind)
            with self._idle:
                self._in_flight -= 1
                self._idle.notify_all()
        await self._write(writer, response, keep_alive=request.keep_alive)
        return request.keep_alive

    def _note_scan(
        self,
        received: float,
        request: _Request,
        response: _Response | None,
        kind: FaultKind | None,
    ) -> None:
        body = _parse_json(request.body)
        consumed = None
        if response is not None and kind is None and response.status == 200:
            consumed = _capacity_units(response.body)
        scan = ScanRecord(
            received=received,
            answered=time.monotonic(),
            request=body if isinstance(body, dict) else {},
            status=None if response is None else response.status,
            fault=kind,
            consumed=consumed,
        )
        with self._lock:
            if len(self._scans) < _MAX_RECORDS:
                self._scans.append(scan)

    def _maybe_corrupt(self, response: _Response) -> _Response:
        with self._lock:
            if self.corrupt_next <= 0 or response.status != 200:
                return response
            found = _STRING_VALUE.search(response.body)
            start = found.end() if found else -1
            if start < 0 or not response.body[start : start + 1].isalnum():
                return response
            self.corrupt_next -= 1
        body = bytearray(response.body)
        body[start] ^= 0x01  # alphanumeric stays printable, never a quote or a backslash
        return _Response(response.status, response.reason, response.headers, bytes(body))

    def _admit_scan(self) -> FaultKind | None:
        """Count a fully read Scan request and decide its fate (under the lock)."""
        with self._lock:
            self._scan_requests += 1
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
            draw = self._rng.random()  # one draw per Scan, whatever the knobs: reproducible
            kind: FaultKind | None = None
            fail_after = self.fail_after
            if fail_after is not None and self._admitted >= fail_after:
                kind = "persistent"
            else:
                threshold = 0.0
                candidates: tuple[tuple[FaultKind, float], ...] = (
                    ("throttle", self.throttle_rate),
                    ("error", self.error_rate),
                    ("drop", self.drop_rate),
                )
                for candidate, rate in candidates:
                    threshold += max(0.0, rate)
                    if draw < threshold:
                        kind = candidate
                        break
            if kind is None:
                self._admitted += 1
            else:
                self._injected[kind] += 1
            return kind

    async def _read_request(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> _Request | None:
        head = await _read_head(reader)
        if head is None:
            return None
        first, headers = _parse_head(head)
        parts = first.split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise _BadMessage("bad request line")
        method, target, version = parts
        expect = _header(headers, "expect")
        if expect is not None and expect.lower() == "100-continue":
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            await writer.drain()
        if _is_chunked(headers):
            body = await _read_chunked(reader)
        else:
            length = _content_length(headers)
            body = await reader.readexactly(length) if length else b""
        return _Request(method, target, version, headers, body)

    async def _forward(self, request: _Request, *, scan: bool = False) -> _Response:
        """Send the request upstream on a fresh connection; a 502 if that fails."""
        try:
            response = await asyncio.wait_for(self._exchange(request), _UPSTREAM_TIMEOUT)
        except (
            OSError,
            ValueError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
            asyncio.TimeoutError,
            _BadMessage,
        ) as exc:
            with self._lock:
                self._upstream_errors += 1
                self._note_error_locked(exc)
            return self._plain_response(502, f"upstream failed: {type(exc).__name__}")
        if scan:
            with self._lock:
                self._forwarded += 1
        return response

    async def _exchange(self, request: _Request) -> _Response:
        reader, writer = await asyncio.open_connection(
            self.upstream_host, self.upstream_port, limit=_MAX_HEAD
        )
        try:
            headers = [(k, v) for k, v in request.headers if k.lower() not in _HOP_BY_HOP]
            if request.body or request.method not in ("GET", "HEAD"):
                headers.append(("Content-Length", str(len(request.body))))
            headers.append(("Connection", "close"))
            first = f"{request.method} {request.target} HTTP/1.1"
            writer.write(_serialize(first, headers, request.body))
            await writer.drain()
            return await self._read_response(reader, request.method)
        finally:
            await _close_writer(writer)

    async def _read_response(self, reader: asyncio.StreamReader, method: str) -> _Response:
        status, reason, headers = await self._read_status(reader)
        while 100 <= status < 200:  # interim responses; the real one follows
            status, reason, headers = await self._read_status(reader)
        if method == "HEAD" or status in (204, 304):
            body = b""
        elif _is_chunked(headers):
            body = await _read_chunked(reader)
        else:
            length = _content_length(headers)
            # No framing: the body runs to EOF (we asked for Connection: close).
            body = await reader.read() if length is None else await reader.readexactly(length)
        return _Response(status, reason, _end_to_end(headers), body)

    @staticmethod
    async def _read_status(reader: asyncio.StreamReader) -> tuple[int, str, Headers]:
        head = await _read_head(reader)
        if head is None:
            raise _BadMessage("upstream closed without a response")
        first, headers = _parse_head(head)
        parts = first.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
            raise _BadMessage("bad status line")
        status = int(parts[1])
        reason = parts[2] if len(parts) == 3 else _reason(status)
        return status, reason, headers

    def _fault_response(self, kind: FaultKind) -> _Response:
        if kind == "throttle":
            status = 400
            payload = {
                "__type": _ERROR_PREFIX + "ProvisionedThroughputExceededException",
                "message": _THROTTLE_MESSAGE,
            }
        elif kind == "error":
            status = 500
            payload = {
                "__type": _ERROR_PREFIX + "InternalServerError",
                "message": "Internal server error",
            }
        else:
            status = self.fail_status
            payload = {
                "__type": _ERROR_PREFIX + self.fail_code,
                "message": "injected persistent error",
            }
        return self._json_response(status, payload)

    @staticmethod
    def _json_response(status: int, payload: Mapping[str, str]) -> _Response:
        body = json.dumps(payload, separators=(",", ":")).encode()
        headers = [
            ("Content-Type", _JSON_CONTENT_TYPE),
            ("x-amzn-RequestId", uuid.uuid4().hex.upper()),
            ("x-amz-crc32", str(zlib.crc32(body))),
        ]
        return _Response(status, _reason(status), headers, body)

    @staticmethod
    def _plain_response(status: int, text: str) -> _Response:
        headers = [("Content-Type", "text/plain; charset=utf-8")]
        return _Response(status, _reason(status), headers, text.encode())

    @staticmethod
    async def _write(
        writer: asyncio.StreamWriter, response: _Response, *, keep_alive: bool
    ) -> None:
        headers = [
            *response.headers,
            ("Content-Length", str(len(response.body))),
            ("Connection", "keep-alive" if keep_alive else "close"),
        ]
        writer.write(
            _serialize(f"HTTP/1.1 {response.status} {response.reason}", headers, response.body)
        )
        await writer.drain()
