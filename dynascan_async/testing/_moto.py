"""moto's server in a child process, bound to loopback only.

A child process rather than moto's threaded server: moto's Scan is CPU-bound, and in
the same process it would compete for the GIL with the client being measured.

The child binds port 0 itself and reports the port it got on its stdout: the port is
never picked here, closed and bound again later (another process can take it in
between), and no probe has to guess whether what answers on a port is this server.
"""

from __future__ import annotations

__all__ = ["MotoServer"]

import os
import selectors
import subprocess
import sys
import time
from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing_extensions import Self

# What ``python -m moto.server`` runs, with ``make_server`` on the requested port (0 by
# default) instead of ``run_simple``, so that the bound port can be told to the parent.
# Once the port is written, stdout is pointed at /dev/null: nothing else goes to the pipe.
_CHILD = """\
import os, signal, sys
from werkzeug.serving import make_server
from moto.server import DomainDispatcherApplication, create_backend_app

def stop(signum, frame):
    sys.exit(0)

signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGINT, stop)
app = DomainDispatcherApplication(create_backend_app)
app.debug = True
server = make_server(sys.argv[1], int(sys.argv[2]), app, threaded=True)
os.environ["MOTO_PORT"] = str(server.port)
sys.stdout.write(f"{server.port}\\n")
sys.stdout.flush()
devnull = os.open(os.devnull, os.O_WRONLY)
os.dup2(devnull, 1)
server.serve_forever()
"""


class MotoServer:
    """``with MotoServer() as server: ... server.endpoint_url ...``

    ``port=None`` (the default): the child binds a free port of its choosing, and
    ``port`` is that port once started.
    """

    host = "127.0.0.1"

    def __init__(self, *, port: int | None = None, start_timeout: float = 30.0) -> None:
        self._requested_port = port or 0
        self._port: int | None = port
        self.start_timeout = start_timeout
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def port(self) -> int:
        """The port the server listens on (known once started, unless one was asked for)."""
        if self._port is None:
            raise RuntimeError("MotoServer is not running: its port is chosen when it starts")
        return self._port

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> Self:
        if self._process is not None:
            return self
        env = {**os.environ, "MOTO_ALLOW_NONEXISTENT_REGION": "true"}
        process = subprocess.Popen(
            [sys.executable, "-c", _CHILD, self.host, str(self._requested_port)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        self._process = process
        try:
            self._port = self._read_port(process)
        except BaseException:
            self.stop()
            raise
        return self

    def _read_port(self, process: subprocess.Popen[bytes]) -> int:
        """The port the child reports once it listens; a clear error if it does not."""
        assert process.stdout is not None
        line = b""
        deadline = time.monotonic() + self.start_timeout
        with process.stdout, selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            while not line.endswith(b"\n"):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError(f"moto server did not start within {self.start_timeout} s")
                if not selector.select(left):
                    continue
                chunk = os.read(process.stdout.fileno(), 64)
                if not chunk:  # the child closed its stdout: it exited before listening
                    code = process.wait(timeout=10)
                    raise RuntimeError(
                        f"moto server exited with code {code}; is moto[server] installed? "
                        "(pip install 'dynascan-async[server]')"
                    )
                line += chunk
        text = line.decode("ascii", "replace").strip()
        if not text.isdigit() or not 0 < int(text) < 65536:
            raise RuntimeError(f"moto server reported no port, but {text[:80]!r}")
        return int(text)

    def stop(self) -> None:
        process, self._process = self._process, None
        self._port = self._requested_port or None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()

    def reset(self) -> None:
        """Drop every table (moto's reset endpoint)."""
        import urllib.request

        request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
