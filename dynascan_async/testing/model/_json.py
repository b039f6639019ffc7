"""The JSON codec of the model server: orjson when it is installed, else ``json``.

orjson is several times faster on 1 MB pages, and the model server must never be the
bottleneck of a benchmark; imported by name, so the package neither depends on orjson nor
type-checks against it.
"""

from __future__ import annotations

__all__ = ["dumps", "loads"]

import importlib
import json
from collections.abc import Callable
from typing import Any


def _codec() -> tuple[Callable[[bytes], Any], Callable[[Any], bytes]]:
    try:
        orjson = importlib.import_module("orjson")
    except ImportError:

        def dumps(value: Any) -> bytes:
            return json.dumps(value, separators=(",", ":")).encode()

        return json.loads, dumps
    return orjson.loads, orjson.dumps


loads, dumps = _codec()
