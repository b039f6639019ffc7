"""The servers the tests and the benchmark start: each listens where it says, and only it.

A port picked by binding port 0, closing it and letting the server bind it later can be
taken in between; a readiness probe that accepts any answer on the port then takes the
other process for the server. The servers bind port 0 themselves and report the port.
"""

from __future__ import annotations

import socket

import pytest

from dynascan_async.testing import MotoServer


def test_moto_server_is_not_fooled_by_another_listener() -> None:
    """A port someone else holds: the old probe connected to that listener and called
    moto started; now the child cannot bind it, and start() says so."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        server = MotoServer(port=port, start_timeout=30)
        with pytest.raises(RuntimeError, match="moto server exited"):
            server.start()
        server.stop()


def test_moto_server_port_is_unknown_before_it_starts() -> None:
    server = MotoServer()
    with pytest.raises(RuntimeError, match="not running"):
        _ = server.port
