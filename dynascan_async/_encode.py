"""Items as one line of JSON each, losing nothing.

JSON has one number type and no bytes, so: a ``Decimal`` is written as the number text
itself (``1E+39`` and 38-digit fractions survive, where ``float`` would round them), binary
values are written as base64 text (as ``aws dynamodb scan`` shows them), and sets become
sorted lists. Read a line back with ``json.loads(line, parse_float=Decimal,
parse_int=Decimal)`` to get the numbers exactly.
"""

from __future__ import annotations

__all__ = ["dumps_item"]

import base64
import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

_escape: Callable[[str], str] = json.encoder.encode_basestring


def _b64(value: bytes | bytearray) -> str:
    return base64.b64encode(value).decode("ascii")


def _raw_bytes(value: Any) -> bytes | None:
    """The bytes of a bytes object or of a boto3-style ``Binary``; None for anything else."""
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    inner = getattr(value, "value", None)
    if isinstance(inner, bytes | bytearray) and type(value).__name__.endswith("Binary"):
        return bytes(inner)
    return None


def _sort_key(value: Any) -> Any:
    raw = _raw_bytes(value)
    return raw if raw is not None else value


def _encode(value: Any, parts: list[str]) -> None:
    if isinstance(value, str):
        parts.append(_escape(value))
    elif isinstance(value, bool):
        parts.append("true" if value else "false")
    elif isinstance(value, Decimal):
        parts.append(str(value))
    elif value is None:
        parts.append("null")
    elif isinstance(value, dict):
        parts.append("{")
        first = True
        for key, inner in value.items():
            if not first:
                parts.append(",")
            first = False
            parts.append(_escape(key))
            parts.append(":")
            _encode(inner, parts)
        parts.append("}")
    elif isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=_sort_key) if isinstance(value, set | frozenset) else value
        parts.append("[")
        for i, inner in enumerate(items):
            if i:
                parts.append(",")
            _encode(inner, parts)
        parts.append("]")
    elif isinstance(value, int | float):
        parts.append(json.dumps(value))
    else:
        raw = _raw_bytes(value)
        if raw is None:
            raise TypeError(f"cannot write a {type(value).__name__} as JSON")
        parts.append(_escape(_b64(raw)))


def _dumps_plain(item: Any) -> str:
    parts: list[str] = []
    _encode(item, parts)
    parts.append("\n")
    return "".join(parts)


def _make_orjson() -> Callable[[Any], str] | None:
    try:
        import orjson
    except ImportError:
        return None
    fragment = getattr(orjson, "Fragment", None)
    if fragment is None:  # orjson < 3.9 cannot write a number from its text
        return None

    def default(value: Any) -> Any:
        if isinstance(value, Decimal):
            return fragment(str(value))
        if isinstance(value, set | frozenset):
            return sorted(value, key=_sort_key)
        raw = _raw_bytes(value)
        if raw is not None:
            return _b64(raw)
        raise TypeError(f"cannot write a {type(value).__name__} as JSON")

    dumps = orjson.dumps
    option = orjson.OPT_APPEND_NEWLINE

    def dumps_orjson(item: Any) -> str:
        return dumps(item, default=default, option=option).decode()

    return dumps_orjson


dumps_item: Callable[[Any], str] = _make_orjson() or _dumps_plain
