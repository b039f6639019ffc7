"""Decode DynamoDB low-level attribute values into plain Python values.

The result is what ``boto3.dynamodb.types.TypeDeserializer`` returns, so code written against
boto3's resource layer keeps working, with one deliberate difference: numbers are parsed with the
plain ``Decimal(str)`` constructor, not with boto3's ``DYNAMODB_CONTEXT``. That context counts
every digit of the string as significant and traps on rounding, so it rejects numbers DynamoDB
stores and returns, e.g. ``1E+100`` (sent back in positional notation, 101 digits long) or a
38-digit number just above ``1E-130`` (below the context's smallest exponent); see
boto/boto3#2500 and #4693. A scan must not die on a valid item, and ``Decimal(str)`` is exact: for
every string the context accepts it builds the identical value with the identical exponent
(tests/test_decode.py checks this), and for the rest it gives the exact value.

This runs for every attribute of every scanned item, hence the unusual shape: "S" and "N", by far
the most common tags, are tested for before anything else (and in the item loop itself, saving a
call), and everything else goes through one dict lookup.

Measured on CPython 3.11 (4,000-item pages of the benchmark's web log, and whole scans), and
kept out for that reason: decoding into the raw dicts in place, or into ``item.copy()``, leaves
every decoded item a GC-tracked dict (a fresh dict holding only str and Decimal values is not
tracked), and whole scans got slower with the extra gen-2 work; ``dict.fromkeys`` templates,
``dict(zip(...))``, ``av.get("S")`` and inlining decode_item into decode_items were no faster.

Binary values are wrapped in boto3's ``Binary`` when boto3 is installed, so they compare, hash and
``isinstance``-check like boto3's. The library depends on aiobotocore only, so without boto3 a
small look-alike class is used instead.
"""

from __future__ import annotations

from base64 import b64decode
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

__all__ = ["binary_to_bytes", "decode_value", "decode_item", "decode_items"]


def decode_value(av: Mapping[str, Any]) -> Any:
    """Decode one attribute value, e.g. ``{"N": "1.5"}`` to ``Decimal("1.5")``.

    Tags are case-sensitive (TypeDeserializer also takes "s" or "Null"): DynamoDB only sends the
    upper-case ones, so anything else means the input is not what it should be. For the same
    reason a map with no tag or several raises ``TypeError``, unless the "S"/"N" fast path has
    already taken it.
    """
    if "S" in av:
        return av["S"]
    if "N" in av:
        return Decimal(av["N"])
    try:
        ((tag, value),) = av.items()
    except ValueError:
        raise TypeError(
            f"a DynamoDB attribute value has exactly one type tag, got {list(av)!r}"
        ) from None
    try:
        decoder = _DECODERS[tag]
    except KeyError:
        raise TypeError(f"unsupported DynamoDB type tag {tag!r}") from None
    return decoder(value)


def decode_item(item: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Decode one item (attribute name to attribute value), as found in a Scan's ``Items``."""
    # The "S"/"N" tests are repeated here rather than left to decode_value because skipping the
    # call for the common case is most of the speed-up over TypeDeserializer.
    out: dict[str, Any] = {}
    for name, av in item.items():
        if "S" in av:
            out[name] = av["S"]
        elif "N" in av:
            out[name] = Decimal(av["N"])
        else:
            out[name] = decode_value(av)
    return out


def decode_items(items: Sequence[Mapping[str, Mapping[str, Any]]]) -> list[dict[str, Any]]:
    """Decode a Scan page's ``Items``."""
    decode = decode_item
    return [decode(item) for item in items]


def _identity(value: Any) -> Any:
    return value


def _null(value: Any) -> None:
    return None


def _number_set(values: Sequence[str]) -> set[Decimal]:
    return set(map(Decimal, values))


def _list(values: Sequence[Mapping[str, Any]]) -> list[Any]:
    decode = decode_value
    return [decode(av) for av in values]


class _FallbackBinary:
    """Stands in for ``boto3.dynamodb.types.Binary`` when boto3 is not installed.

    It behaves the same where it matters: ``.value``, equality with bytes and with other Binary
    values, a hash (binary sets decode to sets of these), ``bytes()`` and the ``repr``.
    """

    __slots__ = ("value",)

    def __init__(self, value: bytes | bytearray) -> None:
        if not isinstance(value, (bytes, bytearray)):
            raise TypeError(f"Binary value must be bytes or bytearray, not {type(value).__name__}")
        self.value = value

    def __eq__(self, other: object) -> bool:
        if isinstance(other, _FallbackBinary):
            return self.value == other.value
        return self.value == other

    def __hash__(self) -> int:
        return hash(self.value)

    def __bytes__(self) -> bytes:
        return bytes(self.value)

    def __repr__(self) -> str:
        return f"Binary({self.value!r})"


def _binary_type() -> type[Any]:
    try:
        from boto3.dynamodb.types import Binary  # type: ignore[import-untyped, unused-ignore]
    except ImportError:
        return _FallbackBinary
    binary: type[Any] = Binary
    return binary


# Chosen once, at import: importing boto3 inside the event loop, on the first binary value
# of some scan, would block every other task of a service for as long as the import takes.
_Binary = _binary_type()


def _binary(value: bytes | str) -> Any:
    # Text is the wire form (base64), as the library's own fast path hands it over;
    # bytes is what botocore's parser makes of it.
    return _Binary(b64decode(value) if value.__class__ is str else value)


def _binary_set(values: Sequence[bytes | str]) -> set[Any]:
    return set(map(_binary, values))


def _raw_value(av: dict[str, Any]) -> None:
    if "B" in av:
        value = av["B"]
        if value.__class__ is str:
            av["B"] = b64decode(value)
    elif "BS" in av:
        av["BS"] = [b64decode(v) if v.__class__ is str else v for v in av["BS"]]
    elif "M" in av:
        for inner in av["M"].values():
            _raw_value(inner)
    elif "L" in av:
        for inner in av["L"]:
            _raw_value(inner)


def binary_to_bytes(items: Iterable[dict[str, dict[str, Any]]]) -> None:
    """Turn base64 text of "B"/"BS" values into bytes, in place, at any depth.

    For raw items from the wire, so that they are exactly what the low-level API (botocore's
    parser) returns. Only called for pages whose body mentions a binary value at all.
    """
    for item in items:
        for av in item.values():
            _raw_value(av)


# No "S" or "N": decode_value and decode_item deal with those before they look here.
_DECODERS: dict[str, Callable[[Any], Any]] = {
    "B": _binary,
    "BOOL": _identity,
    "NULL": _null,
    "M": decode_item,
    "L": _list,
    "SS": set,
    "NS": _number_set,
    "BS": _binary_set,
}
