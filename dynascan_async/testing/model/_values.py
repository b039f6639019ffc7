"""Attribute values: what DynamoDB accepts, their canonical form, and their size.

A value is checked once, when it is written (or used as a key or an expression value): the
model then stores it as JSON bytes and never looks at it again unless a filter or projection
asks. Sizes follow DynamoDB's rules (attribute names count, numbers about one byte per two
digits), because capacity units and the 1 MB page are computed from them.
"""

from __future__ import annotations

__all__ = [
    "DIGITS",
    "MAX_ITEM_BYTES",
    "binary",
    "check_item",
    "check_names",
    "check_value",
    "check_values",
    "number",
    "number_size",
    "utf8_len",
]

import base64
import binascii
import re
from decimal import Context, Decimal
from typing import Any, Final

from ._errors import invalid, malformed
from ._expressions import AttributeValue

MAX_ITEM_BYTES: Final = 400 * 1024
MAX_NESTING: Final = 32
_NUMBER: Final = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\Z")
_PLAIN_INTEGER: Final = re.compile(r"-?[1-9][0-9]{0,37}\Z")
DIGITS: Final = Context(prec=100)  # wide enough that no number DynamoDB accepts is rounded


def utf8_len(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def number(text: object) -> Decimal:
    """A number as DynamoDB accepts it: at most 38 significant digits, 1E-130 to 1E+126."""
    if not isinstance(text, str):
        raise malformed("NUMBER_VALUE cannot be converted to String")
    if not _NUMBER.match(text):
        raise invalid("A value provided cannot be converted into a number")
    value = Decimal(text)
    if value:
        if len(value.normalize(DIGITS).as_tuple().digits) > 38:
            raise invalid("Attempting to store more than 38 significant digits in a Number")
        if value.adjusted() > 125:
            raise invalid(
                "Number overflow. Attempting to store a number with magnitude larger than "
                "supported range"
            )
        if value.adjusted() < -130:
            raise invalid(
                "Number underflow. Attempting to store a number with magnitude smaller than "
                "supported range"
            )
    return value


def number_size(value: Decimal) -> int:
    # DynamoDB: about one byte per two significant digits, plus one.
    digits = len(value.normalize(DIGITS).as_tuple().digits) if value else 1
    return (digits + 1) // 2 + 1


def binary(text: object) -> bytes:
    if not isinstance(text, str):
        raise malformed("Binary value must be base64 text")
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error:
        raise malformed("Base64 encoded length is expected a multiple of 4 bytes") from None


def _check_set(kind: str, inner: object) -> tuple[AttributeValue, int]:
    if not isinstance(inner, list):
        raise malformed(f"Unexpected value type for {kind}")
    if not inner:
        raise invalid(f"One or more parameter values were invalid: An {kind} set  may not be empty")
    if kind == "SS":
        if not all(isinstance(s, str) for s in inner):
            raise malformed("Unexpected value type in SS")
        distinct: set[Any] = set(inner)
        size = sum(utf8_len(s) for s in inner)
        value: AttributeValue = {kind: inner}
    elif kind == "NS":
        numbers = [number(n) for n in inner]
        distinct = set(numbers)
        size = sum(number_size(n) for n in numbers)
        value = {kind: inner}
    else:
        blobs = [binary(b) for b in inner]
        distinct = set(blobs)
        size = sum(len(b) for b in blobs)
        value = {kind: [base64.b64encode(b).decode("ascii") for b in blobs]}
    if len(distinct) != len(inner):
        raise invalid(
            "One or more parameter values were invalid: Input collection "
            f"{inner} contains duplicates."
        )
    return value, size


def check_value(value: object, depth: int = 0) -> tuple[AttributeValue, int]:
    """A valid AttributeValue in canonical form (binary re-encoded), and its size in bytes
    by DynamoDB's rules, without the attribute name."""
    if not isinstance(value, dict):
        raise malformed("Unexpected value type for an AttributeValue")
    if len(value) != 1:
        if value:
            raise invalid(
                "Supplied AttributeValue has more than one datatypes set, must contain exactly "
                "one of the supported datatypes"
            )
        raise invalid(
            "Supplied AttributeValue is empty, must contain exactly one of the supported datatypes"
        )
    ((kind, inner),) = value.items()
    if kind == "S":
        if not isinstance(inner, str):
            raise malformed("Unexpected value type for S")
        return value, utf8_len(inner)
    if kind == "N":
        if isinstance(inner, str) and _PLAIN_INTEGER.match(inner):
            # The common case without Decimal: an integer's trailing zeros are not
            # significant digits (1200 is 12E2), and 38 characters cannot overflow.
            return value, (len(inner.lstrip("-").rstrip("0")) + 1) // 2 + 1
        return value, number_size(number(inner))
    if kind == "B":
        blob = binary(inner)
        canonical = base64.b64encode(blob).decode("ascii")
        return (value if canonical == inner else {"B": canonical}), len(blob)
    if kind in ("SS", "NS", "BS"):
        return _check_set(kind, inner)
    if kind == "BOOL":
        if not isinstance(inner, bool):
            raise malformed("Unexpected value type for BOOL")
        return value, 1
    if kind == "NULL":
        if inner is not True:
            raise invalid(
                "One or more parameter values were invalid: Null attribute value types must "
                "have the value of true"
            )
        return value, 1
    if kind in ("L", "M"):
        if depth >= MAX_NESTING:
            raise invalid("Nesting Levels have exceeded supported limits")
        size = 3  # a list or map costs 3 bytes, plus 1 byte per element
        if kind == "L":
            if not isinstance(inner, list):
                raise malformed("Unexpected value type for L")
            elements = []
            for element in inner:
                checked, element_size = check_value(element, depth + 1)
                elements.append(checked)
                size += 1 + element_size
            return {"L": elements}, size
        if not isinstance(inner, dict):
            raise malformed("Unexpected value type for M")
        members = {}
        for name, member in inner.items():
            checked, member_size = check_value(member, depth + 1)
            members[name] = checked
            size += 1 + utf8_len(name) + member_size
        return {"M": members}, size
    raise invalid(
        "Supplied AttributeValue is empty, must contain exactly one of the supported datatypes"
    )


def check_item(item: object) -> tuple[dict[str, AttributeValue], dict[str, int]]:
    """A whole item checked: its canonical form, and the size of each attribute."""
    if not isinstance(item, dict):
        raise malformed("Unexpected value type for an item")
    checked: dict[str, AttributeValue] = {}
    sizes: dict[str, int] = {}
    for name, value in item.items():
        if not name:
            raise invalid("One or more parameter values were invalid: Empty attribute name")
        checked[name], value_size = check_value(value)
        sizes[name] = utf8_len(name) + value_size
    return checked, sizes


def check_values(values: object) -> dict[str, AttributeValue] | None:
    if values is None:
        return None
    if not isinstance(values, dict):
        raise malformed("Unexpected value type for ExpressionAttributeValues")
    return {key: check_value(value)[0] for key, value in values.items()}


def check_names(names: object) -> dict[str, str] | None:
    if names is None:
        return None
    if not isinstance(names, dict) or not all(isinstance(v, str) for v in names.values()):
        raise malformed("Unexpected value type for ExpressionAttributeNames")
    return names
