"""The model: its tables, and one handler per DynamoDB operation it answers.

Handlers take the decoded request and return the answer (a dict, or JSON bytes already
built); a refusal is a :class:`~._errors.Fault`. The Scan rules live in :mod:`._scan`, the
table definitions in :mod:`._tables`, the capacity limits in :mod:`._throughput`; HTTP is
:mod:`._http`'s business.

Beside DynamoDB's operations there is one of the model's own, ``BulkLoad`` (target
``DynascanModel.BulkLoad``): many items into a table in one request, checked as PutItem
checks them and charged nothing, so that a demo or benchmark table of 100,000 items is
there in a second or two instead of half a minute of BatchWriteItem.
"""

from __future__ import annotations

__all__ = ["BULK_LOAD_TARGET", "Model"]

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

from ._errors import SERVICE, Fault, invalid, malformed, not_found
from ._expressions import AttributeValue, ExpressionError, parse_condition, parse_projection
from ._json import dumps, loads
from ._options import ModelOptions
from ._requests import capacity_mode, consumed, expression, optional, placeholders_of, refuse_legacy
from ._scan import scan
from ._tables import Table
from ._throughput import read_units
from ._values import MAX_ITEM_BYTES, check_item

logger = logging.getLogger("dynascan_async.testing.model")

_TARGET_PREFIX: Final = "DynamoDB_20120810."
BULK_LOAD_TARGET: Final = "DynascanModel.BulkLoad"
_MAX_BATCH_WRITES: Final = 25


class Model:
    """The tables and the operations on them; one instance per server."""

    def __init__(self, options: ModelOptions, clock: Callable[[], float] = time.monotonic) -> None:
        self.options = options
        self.clock = clock
        self.tables: dict[str, Table] = {}
        self._handlers: dict[str, Callable[[dict[str, Any]], dict[str, Any] | bytes]] = {
            "CreateTable": self.create_table,
            "DescribeTable": self.describe_table,
            "UpdateTable": self.update_table,
            "ListTables": self.list_tables,
            "DeleteTable": self.delete_table,
            "PutItem": self.put_item,
            "BatchWriteItem": self.batch_write_item,
            "GetItem": self.get_item,
            "Scan": self.scan,
        }

    async def answer(self, target: str, body: bytes) -> tuple[int, bytes]:
        """The HTTP status and JSON body answering one request."""
        if target == BULK_LOAD_TARGET:
            operation = "BulkLoad"
            handler: Callable[[dict[str, Any]], dict[str, Any] | bytes] | None = self.bulk_load
        else:
            operation = target[len(_TARGET_PREFIX) :] if target.startswith(_TARGET_PREFIX) else ""
            handler = self._handlers.get(operation)
        try:
            if handler is None:
                raise Fault(
                    "UnknownOperationException",
                    f"The model server does not implement {target or 'this operation'}",
                    namespace=SERVICE,
                )
            try:
                request = loads(body) if body else {}
            except ValueError:
                raise malformed("Start of structure or map found where not expected") from None
            if not isinstance(request, dict):
                raise malformed("Start of structure or map found where not expected")
            if operation == "Scan" and self.options.latency:
                await asyncio.sleep(self.options.latency)
            result = handler(request)
            return 200, result if isinstance(result, bytes) else dumps(result)
        except Fault as fault:
            return fault.status, fault.body()
        except Exception:
            logger.exception("model server: %s failed", operation)
            failure = Fault(
                "InternalServerError", "The model server failed; see its log", status=500
            )
            return 500, failure.body()

    def _table(self, request: Mapping[str, Any]) -> Table:
        name = request.get("TableName")
        if not isinstance(name, str):
            raise invalid(
                "1 validation error detected: Value null at 'tableName' failed to satisfy "
                "constraint: Member must not be null"
            )
        table = self.tables.get(name)
        if table is None:
            raise not_found()
        return table

    # tables

    def create_table(self, request: dict[str, Any]) -> dict[str, Any]:
        table = Table(request, self.options, self.clock())
        if table.name in self.tables:
            raise Fault("ResourceInUseException", f"Table already exists: {table.name}")
        self.tables[table.name] = table
        return {"TableDescription": table.describe()}

    def describe_table(self, request: dict[str, Any]) -> dict[str, Any]:
        return {"Table": self._table(request).describe()}

    def update_table(self, request: dict[str, Any]) -> dict[str, Any]:
        """Capacity changes only (billing mode, provisioned units, on-demand maximum, of the
        table and its indexes), in force at once: the table stays ACTIVE."""
        table = self._table(request)
        table.update(request, self.clock())
        return {"TableDescription": table.describe()}

    def list_tables(self, request: dict[str, Any]) -> dict[str, Any]:
        start = optional(request, "ExclusiveStartTableName", str)
        limit = optional(request, "Limit", int) or 100
        names = sorted(name for name in self.tables if start is None or name > start)
        answer: dict[str, Any] = {"TableNames": names[:limit]}
        if len(names) > limit:
            answer["LastEvaluatedTableName"] = names[limit - 1]
        return answer

    def delete_table(self, request: dict[str, Any]) -> dict[str, Any]:
        table = self._table(request)
        del self.tables[table.name]
        return {"TableDescription": table.describe("DELETING")}

    # writes

    def _checked_item(
        self, table: Table, item: object
    ) -> tuple[dict[str, AttributeValue], dict[str, int]]:
        checked, sizes = check_item(item)
        table.check_keys(checked)
        if sum(sizes.values()) > MAX_ITEM_BYTES:
            raise invalid("Item size has exceeded the maximum allowed size")
        return checked, sizes

    def put_item(self, request: dict[str, Any]) -> dict[str, Any]:
        refuse_legacy(request, "Expected", "ConditionalOperator")
        table = self._table(request)
        item, sizes = self._checked_item(table, request.get("Item"))
        returns = request.get("ReturnValues", "NONE")
        if returns not in ("NONE", "ALL_OLD"):
            raise invalid(f"ReturnValues can only be ALL_OLD or NONE for PutItem, not {returns}")
        placeholders = placeholders_of(request)
        text = expression(request, "ConditionExpression")
        try:
            condition = (
                None if text is None else parse_condition(text, placeholders, "ConditionExpression")
            )
            placeholders.check_all_used()
        except ExpressionError as error:
            raise invalid(str(error)) from None
        order = table.order_of(item)
        old = table.store.entries.get(order)
        old_item = loads(old.raw) if old is not None else None
        if condition is not None and not condition(old_item or {}):
            raise Fault("ConditionalCheckFailedException", "The conditional request failed")
        table.put(order, item, sizes)
        if returns == "ALL_OLD" and old_item is not None:
            return {"Attributes": old_item}
        return {}

    def batch_write_item(self, request: dict[str, Any]) -> dict[str, Any]:
        requests = request.get("RequestItems")
        if not isinstance(requests, dict) or not requests:
            raise invalid(
                "1 validation error detected: Value at 'requestItems' failed to satisfy "
                "constraint: Member must have length greater than or equal to 1"
            )
        count = sum(len(writes) if isinstance(writes, list) else 0 for writes in requests.values())
        if count > _MAX_BATCH_WRITES:
            raise invalid("Too many items requested for the BatchWriteItem call")
        plan: list[
            tuple[Table, tuple[Any, ...], dict[str, AttributeValue] | None, dict[str, int]]
        ] = []
        for name, writes in requests.items():
            table = self._table({"TableName": name})
            if not isinstance(writes, list) or not writes:
                raise invalid("1 validation error detected: The list of writes must not be empty")
            seen: set[tuple[Any, ...]] = set()
            for write in writes:
                if not isinstance(write, dict) or len(write) != 1:
                    raise invalid(
                        "Supplied AttributeValue has more than one datatypes set, must contain "
                        "exactly one of the supported datatypes"
                    )
                if isinstance(write.get("PutRequest"), dict):
                    item, sizes = self._checked_item(table, write["PutRequest"].get("Item"))
                    order = table.order_of(item)
                    plan.append((table, order, item, sizes))
                elif isinstance(write.get("DeleteRequest"), dict):
                    order = table.store.order_of_key(
                        write["DeleteRequest"].get("Key"),
                        "The provided key element does not match the schema",
                    )
                    plan.append((table, order, None, {}))
                else:
                    raise malformed("A write request must be a PutRequest or a DeleteRequest")
                if order in seen:
                    raise invalid("Provided list of item keys contains duplicates")
                seen.add(order)
        for target, key, new_item, new_sizes in plan:
            if new_item is None:
                target.delete(key)
            else:
                target.put(key, new_item, new_sizes)
        return {"UnprocessedItems": {}}

    def bulk_load(self, request: dict[str, Any]) -> dict[str, Any]:
        """The model's own operation: ``{"TableName": ..., "Items": [...]}`` put in one go,
        each item checked as PutItem checks it, all or nothing, no capacity charged."""
        table = self._table(request)
        items = request.get("Items")
        if not isinstance(items, list):
            raise malformed("BulkLoad takes a list of Items")
        plan = []
        for item in items:
            checked, sizes = self._checked_item(table, item)
            plan.append((table.order_of(checked), checked, sizes))
        for order, checked, sizes in plan:
            table.put(order, checked, sizes)
        return {"Loaded": len(plan), "ItemCount": len(table.store.entries)}

    # reads

    def get_item(self, request: dict[str, Any]) -> bytes:
        refuse_legacy(request, "AttributesToGet")
        table = self._table(request)
        order = table.store.order_of_key(
            request.get("Key"), "The provided key element does not match the schema"
        )
        placeholders = placeholders_of(request)
        text = expression(request, "ProjectionExpression")
        try:
            projection = None if text is None else parse_projection(text, placeholders)
            placeholders.check_all_used()
        except ExpressionError as error:
            raise invalid(str(error)) from None
        consistent = bool(optional(request, "ConsistentRead", bool))
        mode = capacity_mode(request)
        now = self.clock()
        table.store.capacity.admit(order[0], now)
        entry = table.store.entries.get(order)
        units = read_units(entry.size if entry else 0, consistent)
        table.store.capacity.charge(units, [(order[0], units)], now)
        parts = []
        if entry is not None:
            raw = entry.raw if projection is None else dumps(projection.apply(loads(entry.raw)))
            parts.append(b'"Item":' + raw)
        if mode != "NONE":
            parts.append(b'"ConsumedCapacity":' + dumps(consumed(mode, table.name, units, None)))
        return b"{" + b",".join(parts) + b"}"

    def scan(self, request: dict[str, Any]) -> bytes:
        return scan(self._table(request), request, self.clock())
