"""Arrow columns back to the Python values ``TypeDeserializer`` gives (the way back).

What ``read_table`` loses nothing of, shown by giving it back: each column read by its
DynamoDB kind (``_arrow_types``), then the item's ``_rest`` decoded on top. Used by the
tests to compare with ``TypeDeserializer`` on the raw items, and by users who want Python
items from a Parquet export.
"""

from __future__ import annotations

__all__ = ["to_items"]

import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pyarrow as pa

from ._arrow_types import REST, kind_of
from ._decode import _binary, decode_item

Reader = Callable[[Any], Any]


def _number(value: Any) -> Decimal:
    # int64 columns give int, decimal128 ones Decimal, number-text ones str: all exact.
    return value if isinstance(value, Decimal) else Decimal(value)


def _reader(field: pa.Field) -> Reader:
    kind = kind_of(field)
    if kind == "N":
        return _number
    if kind == "B":
        return _binary
    if kind == "SS":
        return set
    if kind == "NS":
        return lambda values: {_number(v) for v in values}
    if kind == "BS":
        return lambda values: {_binary(v) for v in values}
    if kind == "L":
        read = _reader(field.type.value_field)
        return lambda values: [None if v is None else read(v) for v in values]
    if kind == "M":
        readers = {child.name: _reader(child) for child in field.type}
        return lambda value: {k: readers[k](v) for k, v in value.items() if v is not None}
    return lambda value: value  # S, BOOL (NULL columns hold only nulls)


def to_items(data: pa.RecordBatch | pa.Table) -> list[dict[str, Any]]:
    """Every row as an item of plain Python values, as ``scan()`` would have yielded it."""
    readers = [(field.name, _reader(field)) for field in data.schema if field.name != REST]
    has_rest = REST in data.schema.names
    items = []
    for row in data.to_pylist():
        item = {name: read(row[name]) for name, read in readers if row[name] is not None}
        if has_rest and row[REST] is not None:
            item.update(decode_item(json.loads(row[REST])))
        items.append(item)
    return items
