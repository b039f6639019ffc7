"""The Scan rules a client can see, in one place.

* Segments are disjoint slices of the key-hash space that together cover the table
  (``Segment``/``TotalSegments``, checked as DynamoDB checks them).
* A page reads items in scan order from where ``ExclusiveStartKey`` left off, and stops at
  ``Limit`` items or once the items *read* reach 1 MB, both counted before the filter; so a
  filtered page may return nothing and still have a ``LastEvaluatedKey``.
* ``Count`` is what the page returns and ``ScannedCount`` what it read; ``Select`` chooses
  items, projected attributes or only the count (with DynamoDB's rules for indexes).
* A page costs the 4 KB units of what it read (half when eventually consistent); the read is
  refused before it starts while its table, index or starting partition is out of capacity.
* ``LastEvaluatedKey`` is present exactly when the segment has items after the page.
"""

from __future__ import annotations

__all__ = ["scan"]

import bisect
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from ._errors import invalid
from ._expressions import Condition, ExpressionError, Projection, parse_condition, parse_projection
from ._json import dumps, loads
from ._keys import MAX_SEGMENTS, segment_hashes
from ._requests import capacity_mode, consumed, expression, optional, placeholders_of, refuse_legacy
from ._tables import Index, Table
from ._throughput import read_units

_PAGE_BYTES: Final = 1024 * 1024  # a Scan page stops once the items read reach 1 MB


def _segments(request: Mapping[str, Any]) -> tuple[int, int]:
    segment = optional(request, "Segment", int)
    total = optional(request, "TotalSegments", int)
    if segment is None and total is None:
        return 0, 1
    if total is None:
        raise invalid(
            "The TotalSegments parameter is required but was not present in the request when "
            "Segment parameter is present"
        )
    if segment is None:
        raise invalid(
            "The Segment parameter is required but was not present in the request when "
            "parameter TotalSegments is present"
        )
    if not 1 <= total <= MAX_SEGMENTS:
        raise invalid(
            f"1 validation error detected: Value '{total}' at 'totalSegments' failed to satisfy "
            f"constraint: Member must have value between 1 and {MAX_SEGMENTS}"
        )
    if segment < 0:
        raise invalid(
            f"1 validation error detected: Value '{segment}' at 'segment' failed to satisfy "
            "constraint: Member must have value greater than or equal to 0"
        )
    if segment >= total:
        raise invalid(
            "The Segment parameter is zero-based and must be less than parameter "
            f"TotalSegments: Segment: {segment} is not less than TotalSegments: {total}"
        )
    return segment, total


def _limit(request: Mapping[str, Any]) -> int | None:
    limit = optional(request, "Limit", int)
    if limit is not None and limit < 1:
        raise invalid(
            f"1 validation error detected: Value '{limit}' at 'limit' failed to satisfy "
            "constraint: Member must have value greater than or equal to 1"
        )
    return limit  # type: ignore[no-any-return]


@dataclass(frozen=True, slots=True)
class _Reading:
    """What a read returns: all of each item, a projection of it, or only a count."""

    count_only: bool
    condition: Condition | None
    projection: Projection | None


_SELECTS: Final = ("ALL_ATTRIBUTES", "ALL_PROJECTED_ATTRIBUTES", "SPECIFIC_ATTRIBUTES", "COUNT")


def _reading(request: Mapping[str, Any], index: Index | None) -> _Reading:
    placeholders = placeholders_of(request)
    filter_text = expression(request, "FilterExpression")
    projection_text = expression(request, "ProjectionExpression")
    try:
        condition = (
            None
            if filter_text is None
            else parse_condition(filter_text, placeholders, "FilterExpression")
        )
        projection = (
            None if projection_text is None else parse_projection(projection_text, placeholders)
        )
        placeholders.check_all_used()
    except ExpressionError as error:
        raise invalid(str(error)) from None
    select = request.get("Select")
    if select is None:
        if projection is not None:
            select = "SPECIFIC_ATTRIBUTES"
        else:
            select = "ALL_PROJECTED_ATTRIBUTES" if index else "ALL_ATTRIBUTES"
    if select not in _SELECTS:
        raise invalid(
            f"1 validation error detected: Value '{select}' at 'select' failed to satisfy "
            f"constraint: Member must satisfy enum value set: [{', '.join(_SELECTS)}]"
        )
    if select == "SPECIFIC_ATTRIBUTES" and projection is None:
        raise invalid(
            "One or more parameter values were invalid: Must specify the AttributesToGet or "
            "ProjectionExpression when choosing to get SPECIFIC_ATTRIBUTES"
        )
    if select != "SPECIFIC_ATTRIBUTES" and projection is not None:
        raise invalid(
            "One or more parameter values were invalid: Cannot specify the ProjectionExpression "
            f"when choosing to get {select}"
        )
    if select == "ALL_PROJECTED_ATTRIBUTES" and index is None:
        raise invalid(
            "One or more parameter values were invalid: Select type ALL_PROJECTED_ATTRIBUTES "
            "is supported only for an index"
        )
    if select == "ALL_ATTRIBUTES" and index is not None and index.projection_type != "ALL":
        raise invalid(
            "One or more parameter values were invalid: Select type ALL_ATTRIBUTES is not "
            f"supported for global secondary index {index.name} because its projection type "
            "is not ALL"
        )
    return _Reading(select == "COUNT", condition, projection)


def scan(table: Table, request: Mapping[str, Any], now: float) -> bytes:
    """One Scan page of ``table`` as the JSON body of the answer (built from stored bytes)."""
    refuse_legacy(request, "AttributesToGet", "ScanFilter", "ConditionalOperator")
    index_name = optional(request, "IndexName", str)
    consistent = bool(optional(request, "ConsistentRead", bool))
    index = None
    if index_name is not None:
        index = table.indexes.get(index_name)
        if index is None:
            raise invalid(f"The table does not have the specified index: {index_name}")
        if consistent:
            raise invalid("Consistent reads are not supported on global secondary indexes")
    store = index.store if index is not None else table.store
    segment, total = _segments(request)
    limit = _limit(request)
    mode = capacity_mode(request)
    reading = _reading(request, index)
    view = store.view()
    low_hash, high_hash = segment_hashes(segment, total)
    low = bisect.bisect_left(view.hashes, low_hash)
    high = bisect.bisect_left(view.hashes, high_hash)
    start = low
    start_key = request.get("ExclusiveStartKey")
    if start_key is not None:
        order = store.order_of_key(
            start_key,
            "The provided starting key is invalid: The provided key element does not match "
            "the schema",
        )
        if not low_hash <= order[0] < high_hash:
            raise invalid("The provided Exclusive start key does not map to the provided segment")
        start = bisect.bisect_right(view.keys, order, low, high)

    first_hash = view.hashes[start] if start < high else low_hash
    store.capacity.admit(first_hash, now)
    end = high if limit is None else min(high, start + limit)
    end = min(end, bisect.bisect_left(view.cum, view.cum[start] + _PAGE_BYTES, start + 1))
    read = view.cum[end] - view.cum[start]
    units = read_units(read, consistent)
    shares = store.capacity.page_shares(view.hashes, view.cum, start, end, units, first_hash)
    store.capacity.charge(units, shares, now)

    raws = view.raws[start:end]
    if reading.condition is None and reading.projection is None:
        count, chosen = len(raws), raws
    else:
        chosen = []
        condition, projection = reading.condition, reading.projection
        for raw in raws:
            item = loads(raw)
            if condition is not None and not condition(item):
                continue
            chosen.append(raw if projection is None else dumps(projection.apply(item)))
        count = len(chosen)
    parts = [] if reading.count_only else [b'"Items":[' + b",".join(chosen) + b"]"]
    parts.append(b'"Count":%d,"ScannedCount":%d' % (count, end - start))
    if end < high:
        parts.append(b'"LastEvaluatedKey":' + dumps(store.key_of(view.raws[end - 1])))
    if mode != "NONE":
        spent = consumed(mode, table.name, units, index_name)
        parts.append(b'"ConsumedCapacity":' + dumps(spent))
    return b"{" + b",".join(parts) + b"}"
