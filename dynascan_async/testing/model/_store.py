"""Stored items: a table's (or an index's) entries, and the sorted view a Scan page is cut from.

Items are kept as the JSON bytes they will be sent as, so an unfiltered page is the
concatenation of stored bytes: the model server's speed comes from here.
"""

from __future__ import annotations

__all__ = ["Entry", "Store", "View"]

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

from ._errors import invalid
from ._expressions import AttributeValue
from ._json import loads
from ._keys import KeyAttr, key_hash
from ._throughput import Capacity
from ._values import check_value


@dataclass(slots=True)
class Entry:
    """One stored item: its place in scan order, its JSON bytes, its DynamoDB size."""

    order: tuple[Any, ...]
    raw: bytes
    size: int


class View:
    """A store's items in scan order, as parallel lists a Scan page is sliced out of.

    ``cum[i]`` is the size of the first ``i`` items, so where a 1 MB page ends is one
    bisection, and an unfiltered page is ``b",".join(raws[start:end])``.
    """

    __slots__ = ("cum", "hashes", "keys", "raws")

    def __init__(self, entries: Iterable[Entry]) -> None:
        ordered = sorted(entries, key=attrgetter("order"))
        self.keys = [entry.order for entry in ordered]
        self.hashes = [key[0] for key in self.keys]
        self.raws = [entry.raw for entry in ordered]
        self.cum = [0, *itertools.accumulate(entry.size for entry in ordered)]


class Store:
    """The items of a table, or of one of its indexes, with its read capacity.

    ``key_attrs`` are the attributes of the scan order: the store's partition key (hashed
    first), then its sort key, then (for an index) the table's keys. Entries are kept by the
    *table's* order key, so an index entry is replaced or dropped with its item; the sorted
    view is rebuilt lazily after writes.
    """

    def __init__(self, key_attrs: tuple[KeyAttr, ...], *, capacity: Capacity) -> None:
        self.key_attrs = key_attrs
        self.capacity = capacity
        self.entries: dict[tuple[Any, ...], Entry] = {}
        self.bytes = 0
        self._view: View | None = None

    def order_of(self, item: Mapping[str, AttributeValue]) -> tuple[Any, ...] | None:
        """The item's place in scan order, or None if it lacks a key attribute."""
        parts = []
        for attr in self.key_attrs:
            value = item.get(attr.name)
            if value is None or attr.type not in value:
                return None
            parts.append(attr.sortable(value))
        return (key_hash(self.key_attrs[0].type, parts[0]), *parts)

    def order_of_key(self, key: object, message: str) -> tuple[Any, ...]:
        """The place of a ``Key``/``ExclusiveStartKey``, which must name exactly the keys."""
        names = {attr.name for attr in self.key_attrs}
        if not isinstance(key, dict) or set(key) != names:
            raise invalid(message)
        checked = {name: check_value(value)[0] for name, value in key.items()}
        order = self.order_of(checked)
        if order is None:
            raise invalid(message)
        return order

    def key_of(self, raw: bytes) -> dict[str, AttributeValue]:
        item = loads(raw)
        return {attr.name: item[attr.name] for attr in self.key_attrs}

    def put(self, table_order: tuple[Any, ...], entry: Entry) -> None:
        old = self.entries.get(table_order)
        if old is not None:
            self.bytes -= old.size
        self.entries[table_order] = entry
        self.bytes += entry.size
        self._view = None

    def remove(self, table_order: tuple[Any, ...]) -> None:
        old = self.entries.pop(table_order, None)
        if old is not None:
            self.bytes -= old.size
            self._view = None

    def view(self) -> View:
        if self._view is None:
            self._view = View(self.entries.values())
        return self._view
