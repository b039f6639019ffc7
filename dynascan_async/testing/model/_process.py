"""Running the model server as a process: the command line's loop, and the launcher.

:class:`ModelServer` starts ``python -m dynascan_async.testing.model`` in a child process
(what benchmarks want: the client measured does not share the server's CPU). The child binds
port 0 itself (or the port asked for) and writes the port it got to a ready file, so there
is no window between choosing a free port and binding it; the launcher then asks ``GET /``
and accepts only the identity it gave the child, so another process on that port is never
taken for its server.
"""

from __future__ import annotations

__all__ = ["ModelServer", "run_model"]

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING

from ..._durable import write_atomic
from ._http import HOST, identity_of, serve
from ._options import ModelOptions

if TYPE_CHECKING:
    from typing_extensions import Self


async def run_model(
    options: ModelOptions,
    *,
    port: int = 0,
    ready_file: str | None = None,
    announce: Callable[[str], object] | None = None,
    instance: str = "",
) -> None:
    """Serve until SIGTERM or SIGINT (the command line's loop).

    Once listening, writes the port it really got to ``ready_file`` (atomically, for a
    launcher that polls for it) and passes the URL to ``announce``; ``GET /`` answers with
    ``instance`` in the server's identity.
    """
    async with serve(options, port=port, instance=instance) as url:
        if ready_file is not None:
            write_atomic(ready_file, url.rsplit(":", 1)[1].encode("ascii"))
        if announce is not None:
            announce(url)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signum, stop.set)
        await stop.wait()


class ModelServer:
    """The model server in a child process: ``with ModelServer(latency=0.02) as server:``.

    Like :class:`~dynascan_async.testing.MotoServer`: starts the process, waits until it
    listens, gives ``endpoint_url``, and terminates it on exit. Quiet unless it fails to
    start, in which case the error carries the child's stderr.
    """

    host = HOST

    def __init__(
        self,
        *,
        port: int | None = None,
        latency: float = 0.0,
        partitions: int = 1,
        partition_rcu: float | None = None,
        burst_seconds: float = 1.0,
        start_timeout: float = 30.0,
    ) -> None:
        self.options = ModelOptions(latency, partitions, partition_rcu, burst_seconds)
        self.port = port
        self.start_timeout = start_timeout
        self._requested_port = port or 0
        self._process: subprocess.Popen[bytes] | None = None
        self._directory: str | None = None

    @property
    def endpoint_url(self) -> str:
        if self.port is None:
            raise RuntimeError("the model server is not started; use `with ModelServer() as s:`")
        return f"http://{self.host}:{self.port}"

    def start(self) -> Self:
        if self._process is not None:
            return self
        self._directory = tempfile.mkdtemp(prefix="dynascan-model-")
        ready = os.path.join(self._directory, "ready")
        log_path = os.path.join(self._directory, "stderr")
        instance = uuid.uuid4().hex
        # The child imports this very copy of the package, installed or not.
        package_root = os.path.dirname(
            os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        )
        path = os.environ.get("PYTHONPATH")
        env = {**os.environ, "PYTHONPATH": package_root + (os.pathsep + path if path else "")}
        command = [
            sys.executable,
            "-m",
            "dynascan_async.testing.model",
            f"--port={self._requested_port}",
            f"--ready-file={ready}",
            f"--instance={instance}",
            "--quiet",
            *self.options.to_args(),
        ]
        with open(log_path, "wb") as log:
            self._process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log, env=env
            )
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                code = self._process.returncode
                message = self._log_tail()
                self.stop()
                raise RuntimeError(f"the model server exited with code {code}:\n{message}")
            if os.path.exists(ready):
                with open(ready, encoding="ascii") as handle:
                    port = int(handle.read())
                answer = self._probe(port)
                if answer == identity_of(instance):
                    self.port = port
                    return self
                if answer is not None:
                    self.stop()
                    raise RuntimeError(
                        f"another server answers on {self.host}:{port} ({answer[:200]!r}), "
                        "not the model server this launcher started"
                    )
            time.sleep(0.02)
        message = self._log_tail()
        self.stop()
        raise RuntimeError(
            f"the model server did not start within {self.start_timeout} s:\n{message}"
        )

    def _probe(self, port: int) -> bytes | None:
        """What ``GET /`` on ``port`` answers, or None while nothing does."""
        try:
            with urllib.request.urlopen(f"http://{self.host}:{port}/", timeout=2) as answer:
                body: bytes = answer.read(1024)
        except urllib.error.HTTPError as error:
            return f"HTTP {error.code}".encode()
        except (urllib.error.URLError, OSError):
            return None
        return body

    def _log_tail(self) -> str:
        assert self._directory is not None
        with open(os.path.join(self._directory, "stderr"), "rb") as log:
            return log.read()[-4000:].decode("utf-8", "replace")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        directory, self._directory = self._directory, None
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)
        if self._requested_port == 0:
            self.port = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
