"""Servers to test a scan against, on 127.0.0.1, started and stopped by your code.

``MotoServer`` runs moto's DynamoDB-compatible server in a subprocess (install the
``server`` extra). It is an emulator, not DynamoDB: good for correctness, slow for
speed (each Scan request costs time in proportion to the whole table).

``ModelServer`` runs this package's own *model* of DynamoDB in a subprocess
(``serve_model`` runs it inside your event loop): in-memory tables that follow the Scan
rules a client can see, fast, with what no emulator has — a round-trip latency,
per-partition throughput and provisioned capacity that throttles. A model, not DynamoDB.
"""

from __future__ import annotations

__all__ = ["ModelOptions", "ModelServer", "MotoServer", "serve_model"]

from ._moto import MotoServer
from .model import ModelOptions, ModelServer, serve_model
