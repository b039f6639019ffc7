"""A certificate that fails verification is a permanent error: raised at once, never retried.

A real TLS server on 127.0.0.1 with a self-signed certificate made for the test, in front of
the moto server. A client that does not trust the certificate must see one connection
attempt per segment at most, and one clear error (botocore's ``SSLError``, with the table
and segment named); a client told to trust it (``verify=`` the certificate) scans the
table through the same server, which shows the server itself works.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import SSLError

import dynascan_async
from dynascan_async.testing import MotoServer
from tests.support import tables
from tests.support.helpers import assert_same_items, other_tasks

if TYPE_CHECKING:
    from typing_extensions import Self

pytestmark = pytest.mark.anyio


def make_certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (and its key), as PEM files in ``folder``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dynascan test server")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "server.pem", folder / "server.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class TLSFront:
    """A TLS server on 127.0.0.1, in a thread of its own, that pipes each connection to moto.

    ``accepted`` counts TCP connections (so every attempt, whether or not its handshake
    succeeds), ``handshakes`` the ones whose handshake succeeded.
    """

    def __init__(self, cert: Path, key: Path, upstream_port: int) -> None:
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._context.load_cert_chain(cert, key)
        self._upstream_port = upstream_port
        self._lock = threading.Lock()
        self._accepted = 0
        self._handshakes = 0
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="TLSFront", daemon=True)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    @property
    def accepted(self) -> int:
        with self._lock:
            return self._accepted

    @property
    def handshakes(self) -> int:
        with self._lock:
            return self._handshakes

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def __enter__(self) -> Self:
        self._thread.start()
        if not self._ready.wait(10) or not self.port:
            raise RuntimeError("the TLS server did not start")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        finally:
            self._ready.set()

    async def _main(self) -> None:
        loop = asyncio.get_running_loop()
        self._loop, self._stop = loop, asyncio.Event()

        def protocol() -> asyncio.StreamReaderProtocol:
            # Made when the TCP connection is accepted, before the handshake.
            with self._lock:
                self._accepted += 1
            reader = asyncio.StreamReader()
            return asyncio.StreamReaderProtocol(reader, self._on_handshake)

        server = await loop.create_server(protocol, "127.0.0.1", 0, ssl=self._context)
        self.port = int(server.sockets[0].getsockname()[1])
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await server.wait_closed()

    def _on_handshake(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with self._lock:
            self._handshakes += 1
        task = asyncio.get_running_loop().create_task(self._pipe(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._upstream_port)

        async def copy(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            finally:
                sink.close()

        try:
            await asyncio.gather(
                copy(reader, up_writer), copy(up_reader, writer), return_exceptions=True
            )
        finally:
            up_writer.close()
            writer.close()


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    return make_certificate(tmp_path)


@pytest.fixture
def tls_front(moto_server: MotoServer, certificate: tuple[Path, Path]) -> Iterator[TLSFront]:
    with TLSFront(*certificate, moto_server.port) as front:
        yield front


def tls_client(url: str, verify: str | None = None) -> Any:
    return get_session().create_client(
        "dynamodb",
        endpoint_url=url,
        region_name="us-east-1",
        verify=verify,
        config=AioConfig(retries={"total_max_attempts": 1}),
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


# Quick retries, so that a regression shows as extra connections, not as a slow test.
QUICK = dynascan_async.RetryPolicy(max_attempts=6, base=0.01, cap=0.02)


@pytest.mark.parametrize("transport", ["direct", "botocore"])
async def test_a_certificate_that_fails_verification_is_not_retried(
    tls_front: TLSFront, loaded: tables.Loaded, transport: Any
) -> None:
    async with tls_client(tls_front.url) as client:
        scan = dynascan_async.scan(
            client, tables.TINY, segments=1, retry=QUICK, transport=transport
        )
        with anyio.fail_after(10), pytest.raises(SSLError) as caught:
            async for _ in scan:
                pass
    assert tls_front.accepted == 1  # one attempt: no retry
    assert tls_front.handshakes == 0
    assert scan.stats.retries == 0
    assert "CERTIFICATE_VERIFY_FAILED" in str(caught.value)
    notes = getattr(caught.value, "__notes__", [])
    assert any(f"table {tables.TINY!r}, segment 0 of 1" in note for note in notes), notes
    assert other_tasks() == set()


async def test_several_segments_raise_one_error_without_retries(
    tls_front: TLSFront, loaded: tables.Loaded
) -> None:
    async with tls_client(tls_front.url) as client:
        scan = dynascan_async.scan(client, tables.WEBLOG, segments=4, concurrency=4, retry=QUICK)
        with anyio.fail_after(10), pytest.raises(SSLError):
            async for _ in scan:
                pass
    assert 1 <= tls_front.accepted <= 4  # at most one attempt per segment
    assert scan.stats.retries == 0


@pytest.mark.parametrize("transport", ["direct", "botocore"])
async def test_the_same_server_trusted_scans_the_table(
    tls_front: TLSFront, certificate: tuple[Path, Path], loaded: tables.Loaded, transport: Any
) -> None:
    async with tls_client(tls_front.url, verify=str(certificate[0])) as client:
        scan = dynascan_async.scan(
            client, tables.TINY, segments=2, deserialize=False, transport=transport
        )
        assert_same_items([item async for item in scan], loaded.tiny)
    # aiohttp closes a TLS connection in the background (the TLS close_notify goes out on
    # later loop turns); without a moment for that, aiobotocore 2.x's session sometimes
    # leaves the socket to the garbage collector, an "unclosed transport" warning.
    await anyio.sleep(0.25)
    assert tls_front.handshakes >= 1


async def test_an_httpx_session_fails_at_once_as_well(tls_front: TLSFront) -> None:
    """aiobotocore 3 can send with httpx, which chains the ssl module's error differently."""
    pytest.importorskip("httpx2", reason="httpx2 needs Python 3.11")
    import aiobotocore

    if int(aiobotocore.__version__.split(".")[0]) < 3:
        pytest.skip("aiobotocore 2.x's httpx backend wants the legacy httpx package")
    from aiobotocore import httpxsession

    session_cls: Any = httpxsession.HttpxSession  # the stubs know only aiohttp's session
    config = AioConfig(http_session_cls=session_cls, retries={"total_max_attempts": 1})
    async with get_session().create_client(
        "dynamodb",
        endpoint_url=tls_front.url,
        region_name="us-east-1",
        config=config,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ) as client:
        scan = dynascan_async.scan(client, tables.TINY, segments=1, retry=QUICK)
        assert scan.transport == "direct"
        with anyio.fail_after(10), pytest.raises(SSLError):
            async for _ in scan:
                pass
    assert tls_front.accepted == 1
    assert scan.stats.retries == 0
