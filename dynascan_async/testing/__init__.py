"""Servers to test a scan against, on 127.0.0.1, started and stopped by your code.

``MotoServer`` runs moto's DynamoDB-compatible server in a subprocess (install the
``server`` extra). It is an emulator, not DynamoDB: good for correctness, slow for
speed (each Scan request costs time in proportion to the whole table).

``ModelServer`` runs this package's own *model* of DynamoDB in a subprocess
(``serve_model`` runs it inside your event loop): in-memory tables that follow the Scan
rules a client can see, fast, with what no emulator has — a round-trip latency,
per-partition throughput, provisioned capacity and on-demand maxima that throttle (and
that UpdateTable changes at once). A model, not DynamoDB. ``bulk_load`` fills one of its
tables in a few requests.

``BackgroundReader`` is other traffic on a table: an application reading at a fixed rate in
read units, through a real client, counting the throttles it meets (against any server).
"""

from __future__ import annotations

__all__ = [
    "BackgroundReader",
    "ModelOptions",
    "ModelServer",
    "MotoServer",
    "ReaderStats",
    "bulk_load",
    "serve_model",
]

from ._moto import MotoServer
from ._traffic import BackgroundReader, ReaderStats
from .model import ModelOptions, ModelServer, bulk_load, serve_model
