"""Servers to test a scan against, on 127.0.0.1, started and stopped by your code.

``MotoServer`` runs moto's DynamoDB-compatible server in a subprocess (install the
``server`` extra). It is an emulator, not DynamoDB: good for correctness, slow for
speed (each Scan request costs time in proportion to the whole table).
"""

from __future__ import annotations

__all__ = ["MotoServer"]

from ._moto import MotoServer
