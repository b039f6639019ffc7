"""Tables and their global secondary indexes: schemas, key checks, capacity settings.

A table owns a :class:`~._store.Store` of its items and one per index (projected items,
kept as items change), each with its own read :class:`~._throughput.Capacity`. This module
answers what CreateTable, UpdateTable and DescribeTable are about: the definition, the
billing mode and the read limits the model enforces, reported as DynamoDB reports them.
"""

from __future__ import annotations

__all__ = ["TABLE_NAME", "Index", "Table"]

import base64
import re
import time
import uuid
from collections.abc import Mapping
from typing import Any, Final

from ._errors import invalid, malformed
from ._expressions import AttributeValue
from ._json import dumps
from ._keys import KeyAttr
from ._options import ModelOptions
from ._store import Entry, Store
from ._throughput import Capacity
from ._values import utf8_len

TABLE_NAME: Final = re.compile(r"[a-zA-Z0-9_.-]{3,255}\Z")
_ACCOUNT: Final = "123456789012"
_REGION: Final = "us-east-1"
_KEY_TYPES: Final = frozenset({"S", "N", "B"})
_MAX_PARTITION_KEY_BYTES: Final = 2048
_MAX_SORT_KEY_BYTES: Final = 1024
_PROVISIONED: Final = "PROVISIONED"
_ON_DEMAND: Final = "PAY_PER_REQUEST"
_NO_MAXIMUM: Final = (-1, -1)
_UPDATABLE: Final = frozenset(
    {
        "TableName",
        "AttributeDefinitions",
        "BillingMode",
        "ProvisionedThroughput",
        "OnDemandThroughput",
        "GlobalSecondaryIndexUpdates",
    }
)


def _key_schema(schema: object, definitions: Mapping[str, str], what: str) -> list[KeyAttr]:
    if not isinstance(schema, list) or not 1 <= len(schema) <= 2:
        raise invalid(
            f"1 validation error detected: Value at '{what}' failed to satisfy "
            "constraint: Member must have length between 1 and 2"
        )
    attrs = []
    for position, element in enumerate(schema):
        wanted = "HASH" if position == 0 else "RANGE"
        if not isinstance(element, dict) or element.get("KeyType") != wanted:
            raise invalid(
                f"Invalid KeySchema: The first KeySchema attribute must be a HASH key and the "
                f"second a RANGE key ({what})"
            )
        name = element.get("AttributeName")
        if not isinstance(name, str) or name not in definitions:
            raise invalid(
                "One or more parameter values were invalid: Some index key attributes are not "
                f"defined in AttributeDefinitions. Keys: [{name}], AttributeDefinitions: "
                f"[{', '.join(definitions)}]"
            )
        attrs.append(KeyAttr(name, definitions[name]))
    if len(attrs) == 2 and attrs[0].name == attrs[1].name:
        raise invalid(f"Invalid KeySchema: Both the Hash Key and the Range Key are {attrs[0].name}")
    return attrs


def _provisioned(value: object, what: str) -> tuple[int, int]:
    """A ``ProvisionedThroughput``: (read, write) capacity units, both at least 1."""
    if not isinstance(value, dict):
        raise invalid(
            "One or more parameter values were invalid: ReadCapacityUnits and "
            f"WriteCapacityUnits must both be specified when BillingMode is PROVISIONED ({what})"
        )
    units = value.get("ReadCapacityUnits"), value.get("WriteCapacityUnits")
    for unit in units:
        if isinstance(unit, bool) or not isinstance(unit, int) or unit < 1:
            raise invalid(
                "One or more parameter values were invalid: ReadCapacityUnits and "
                f"WriteCapacityUnits must both be at least 1 ({what})"
            )
    return units[0], units[1]  # type: ignore[return-value]


def _on_demand(value: object, old: tuple[int, int], what: str) -> tuple[int, int]:
    """An ``OnDemandThroughput``: (max read, max write) request units, each at least 1, or -1
    for no maximum; a member left out keeps its ``old`` value."""
    if not isinstance(value, dict) or not (
        "MaxReadRequestUnits" in value or "MaxWriteRequestUnits" in value
    ):
        raise invalid(
            "One or more parameter values were invalid: OnDemandThroughput must specify "
            f"MaxReadRequestUnits, MaxWriteRequestUnits or both ({what})"
        )
    units = []
    for name, kept in zip(("MaxReadRequestUnits", "MaxWriteRequestUnits"), old, strict=True):
        unit = value.get(name, kept)
        if isinstance(unit, bool) or not isinstance(unit, int) or not (unit >= 1 or unit == -1):
            raise invalid(
                f"One or more parameter values were invalid: {name} must be at least 1, or -1 "
                f"for no maximum ({what})"
            )
        units.append(unit)
    return units[0], units[1]


def _read_limit(provisioned: tuple[int, int] | None, maximum: tuple[int, int]) -> float | None:
    """The read units per second the model holds a table or index to (None: no limit)."""
    if provisioned is not None:
        return float(provisioned[0])
    return float(maximum[0]) if maximum[0] > 0 else None


class _Throughput:
    """What a table or index is allowed to read: provisioned units, or an on-demand maximum
    (-1: none), and the :class:`Capacity` that enforces it."""

    def __init__(
        self,
        provisioned: tuple[int, int] | None,
        maximum: tuple[int, int],
        *,
        resource: str,
        arn: str,
        options: ModelOptions,
        now: float,
    ) -> None:
        self.provisioned = provisioned
        self.maximum = maximum
        self.capacity = Capacity(
            resource=resource,
            arn=arn,
            rcu=_read_limit(provisioned, maximum),
            on_demand=provisioned is None,
            partitions=options.partitions,
            partition_rcu=options.partition_rcu,
            burst_seconds=options.burst_seconds,
            now=now,
        )

    def change(
        self, provisioned: tuple[int, int] | None, maximum: tuple[int, int], now: float
    ) -> None:
        """UpdateTable: new settings, which the capacity enforces from now on."""
        self.provisioned, self.maximum = provisioned, maximum
        limit = _read_limit(provisioned, maximum)
        self.capacity.set_limit(limit, on_demand=provisioned is None, now=now)

    def describe(self) -> dict[str, Any]:
        read, write = self.provisioned or (0, 0)
        fields: dict[str, Any] = {
            "ProvisionedThroughput": {
                "NumberOfDecreasesToday": 0,
                "ReadCapacityUnits": read,
                "WriteCapacityUnits": write,
            }
        }
        if self.provisioned is None:
            fields["OnDemandThroughput"] = {
                "MaxReadRequestUnits": self.maximum[0],
                "MaxWriteRequestUnits": self.maximum[1],
            }
        return fields


def _throughput(
    spec: Mapping[str, Any],
    provisioned: bool,
    what: str,
    *,
    resource: str,
    arn: str,
    options: ModelOptions,
    now: float,
) -> _Throughput:
    """The throughput settings of a CreateTable request or one of its indexes."""
    if provisioned:
        units: tuple[int, int] | None = _provisioned(spec.get("ProvisionedThroughput"), what)
        if spec.get("OnDemandThroughput") is not None:
            raise invalid(
                "One or more parameter values were invalid: OnDemandThroughput can only be "
                f"specified when BillingMode is PAY_PER_REQUEST ({what})"
            )
        maximum = _NO_MAXIMUM
    else:
        if spec.get("ProvisionedThroughput") is not None:
            raise invalid(
                "One or more parameter values were invalid: Neither ReadCapacityUnits nor "
                f"WriteCapacityUnits can be specified when BillingMode is PAY_PER_REQUEST ({what})"
            )
        units = None
        given = spec.get("OnDemandThroughput")
        maximum = _NO_MAXIMUM if given is None else _on_demand(given, _NO_MAXIMUM, what)
    return _Throughput(units, maximum, resource=resource, arn=arn, options=options, now=now)


class Index:
    """A global secondary index: its own store of projected items, kept as items change."""

    def __init__(
        self,
        spec: object,
        definitions: Mapping[str, str],
        table_keys: list[KeyAttr],
        table_arn: str,
        provisioned: bool,
        options: ModelOptions,
        now: float,
    ) -> None:
        if not isinstance(spec, dict):
            raise malformed("Unexpected value type for a GlobalSecondaryIndex")
        name = spec.get("IndexName")
        if not isinstance(name, str) or not TABLE_NAME.match(name):
            raise invalid(f"Invalid index name: {name!r}")
        self.name = name
        self.arn = f"{table_arn}/index/{name}"
        self.key_attrs = _key_schema(spec.get("KeySchema"), definitions, "KeySchema")
        projection = spec.get("Projection")
        kind = projection.get("ProjectionType") if isinstance(projection, dict) else None
        non_key = projection.get("NonKeyAttributes") if isinstance(projection, dict) else None
        if kind not in ("ALL", "KEYS_ONLY", "INCLUDE"):
            raise invalid(f"Unknown ProjectionType for index {name}: {kind!r}")
        if (kind == "INCLUDE") != (non_key is not None):
            raise invalid(
                "One or more parameter values were invalid: NonKeyAttributes must be specified "
                "if and only if ProjectionType is INCLUDE"
            )
        assert isinstance(projection, dict)
        self.projection: dict[str, Any] = projection
        self.projection_type: str = kind
        keys = {attr.name for attr in (*self.key_attrs, *table_keys)}
        self.attributes = keys | set(non_key or ())
        self.throughput = _throughput(
            spec,
            provisioned,
            f"index {name}",
            resource="Index",
            arn=self.arn,
            options=options,
            now=now,
        )
        self.store = Store((*self.key_attrs, *table_keys), capacity=self.throughput.capacity)

    def describe(self) -> dict[str, Any]:
        return {
            "IndexName": self.name,
            "KeySchema": [
                {"AttributeName": attr.name, "KeyType": "HASH" if n == 0 else "RANGE"}
                for n, attr in enumerate(self.key_attrs)
            ],
            "Projection": self.projection,
            "IndexStatus": "ACTIVE",
            **self.throughput.describe(),
            "IndexSizeBytes": self.store.bytes,
            "ItemCount": len(self.store.entries),
            "IndexArn": self.arn,
        }


class Table:
    """A table: its definition, its items in a :class:`Store`, and its indexes."""

    def __init__(self, request: dict[str, Any], options: ModelOptions, now: float) -> None:
        name = request.get("TableName")
        if not isinstance(name, str) or not TABLE_NAME.match(name):
            raise invalid(
                f"1 validation error detected: Value '{name}' at 'tableName' failed to satisfy "
                "constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+ "
                "and have length between 3 and 255"
            )
        self.name = name
        self.arn = f"arn:aws:dynamodb:{_REGION}:{_ACCOUNT}:table/{name}"
        if request.get("LocalSecondaryIndexes"):
            raise invalid("The model server does not implement LocalSecondaryIndexes")
        definitions = self._definitions(request.get("AttributeDefinitions"))
        self.key_attrs = _key_schema(request.get("KeySchema"), definitions, "KeySchema")
        billing = request.get("BillingMode", _PROVISIONED)
        if billing not in (_PROVISIONED, _ON_DEMAND):
            raise invalid(f"Invalid BillingMode: {billing!r}")
        self.billing_mode: str = billing
        provisioned = billing == _PROVISIONED
        self.throughput = _throughput(
            request,
            provisioned,
            "table",
            resource="Table",
            arn=self.arn,
            options=options,
            now=now,
        )
        specs = request.get("GlobalSecondaryIndexes") or []
        if not isinstance(specs, list):
            raise malformed("Unexpected value type for GlobalSecondaryIndexes")
        indexes = [
            Index(s, definitions, self.key_attrs, self.arn, provisioned, options, now)
            for s in specs
        ]
        self.indexes = {index.name: index for index in indexes}
        if len(self.indexes) != len(indexes):
            raise invalid("One or more parameter values were invalid: Duplicate index name")
        used = {a.name for a in self.key_attrs} | {
            a.name for index in indexes for a in index.key_attrs
        }
        if set(definitions) != used:
            raise invalid(
                "One or more parameter values were invalid: Some AttributeDefinitions are not "
                f"used. AttributeDefinitions: [{', '.join(definitions)}], keys used: "
                f"[{', '.join(sorted(used))}]"
            )
        self.definitions = definitions
        self.created = time.time()
        self.table_id = str(uuid.uuid4())
        self.store = Store(tuple(self.key_attrs), capacity=self.throughput.capacity)

    @staticmethod
    def _definitions(value: object) -> dict[str, str]:
        if not isinstance(value, list) or not value:
            raise invalid("AttributeDefinitions must be given")
        definitions: dict[str, str] = {}
        for element in value:
            if not isinstance(element, dict):
                raise malformed("Unexpected value type in AttributeDefinitions")
            name, kind = element.get("AttributeName"), element.get("AttributeType")
            if not isinstance(name, str) or kind not in _KEY_TYPES:
                raise invalid(f"Invalid AttributeDefinition: {element}")
            if name in definitions:
                raise invalid(
                    f"Cannot have two attributes with the same name: AttributeDefinitions: {value}"
                )
            definitions[name] = kind
        return definitions

    def check_keys(self, item: Mapping[str, AttributeValue]) -> None:
        """DynamoDB's checks of an item's table and index keys on a write."""
        for position, attr in enumerate(self.key_attrs):
            value = item.get(attr.name)
            if value is None:
                raise invalid(
                    "One or more parameter values were invalid: Missing the key "
                    f"{attr.name} in the item"
                )
            if attr.type not in value:
                raise invalid(
                    "One or more parameter values were invalid: Type mismatch for key "
                    f"{attr.name} expected: {attr.type} actual: {next(iter(value))}"
                )
            inner = value[attr.type]
            if attr.type != "N" and not inner:
                empty = "string" if attr.type == "S" else "binary"
                raise invalid(
                    "One or more parameter values are not valid. The AttributeValue for a key "
                    f"attribute cannot contain an empty {empty} value. Key: {attr.name}"
                )
            limit = _MAX_PARTITION_KEY_BYTES if position == 0 else _MAX_SORT_KEY_BYTES
            length = len(base64.b64decode(inner)) if attr.type == "B" else utf8_len(inner)
            if length > limit:
                raise invalid(
                    "One or more parameter values were invalid: Size of hashkey has exceeded "
                    f"the maximum size limit of {limit} bytes"
                    if position == 0
                    else "One or more parameter values were invalid: Aggregated size of all "
                    f"range keys has exceeded the size limit of {limit} bytes"
                )
        for index in self.indexes.values():
            for attr in index.key_attrs:
                value = item.get(attr.name)
                if value is None:
                    continue
                if attr.type not in value:
                    raise invalid(
                        "One or more parameter values were invalid: Type mismatch for Index Key "
                        f"{attr.name} Expected: {attr.type} Actual: {next(iter(value))} "
                        f"IndexName: {index.name}"
                    )
                if attr.type != "N" and not value[attr.type]:
                    raise invalid(
                        "One or more parameter values are not valid. A value specified for a "
                        "secondary index key is not supported. The AttributeValue for a key "
                        "attribute cannot contain an empty string value. IndexName: "
                        f"{index.name}, IndexKey: {attr.name}"
                    )

    def order_of(self, item: Mapping[str, AttributeValue]) -> tuple[Any, ...]:
        order = self.store.order_of(item)
        assert order is not None, "keys are checked before"
        return order

    def put(
        self, order: tuple[Any, ...], item: dict[str, AttributeValue], sizes: dict[str, int]
    ) -> None:
        raw = dumps(item)
        size = sum(sizes.values())
        self.store.put(order, Entry(order, raw, size))
        for index in self.indexes.values():
            index_order = index.store.order_of(item)
            if index_order is None:
                index.store.remove(order)
            elif index.projection_type == "ALL":
                index.store.put(order, Entry(index_order, raw, size))
            else:
                projected = {k: v for k, v in item.items() if k in index.attributes}
                projected_size = sum(sizes[k] for k in projected)
                index.store.put(order, Entry(index_order, dumps(projected), projected_size))

    def delete(self, order: tuple[Any, ...]) -> None:
        self.store.remove(order)
        for index in self.indexes.values():
            index.store.remove(order)

    def update(self, request: Mapping[str, Any], now: float) -> None:
        """UpdateTable's capacity changes (billing mode, provisioned units, on-demand maximum,
        of the table and of its indexes), all checked first, then in force at once."""
        billing = request.get("BillingMode", self.billing_mode)
        if billing not in (_PROVISIONED, _ON_DEMAND):
            raise invalid(f"Invalid BillingMode: {billing!r}")
        provisioned = billing == _PROVISIONED
        unsupported = set(request) - _UPDATABLE
        if unsupported:
            raise invalid(
                "The model server implements UpdateTable for BillingMode, ProvisionedThroughput, "
                "OnDemandThroughput and GlobalSecondaryIndexUpdates only, not "
                f"{sorted(unsupported)}"
            )
        changes = [(self.throughput, _new_settings(self.throughput, request, provisioned, "table"))]
        updates = request.get("GlobalSecondaryIndexUpdates") or []
        if not isinstance(updates, list):
            raise malformed("Unexpected value type for GlobalSecondaryIndexUpdates")
        specs: dict[str, Mapping[str, Any]] = {}
        for update in updates:
            if not isinstance(update, dict) or set(update) != {"Update"}:
                raise invalid(
                    "The model server implements only Update in GlobalSecondaryIndexUpdates "
                    "(no Create or Delete)"
                )
            spec = update["Update"]
            name = spec.get("IndexName") if isinstance(spec, dict) else None
            index = self.indexes.get(name) if isinstance(name, str) else None
            if index is None:
                raise _index_not_found(spec)
            specs[index.name] = spec
        for index in self.indexes.values():
            spec = specs.get(index.name, {})
            after = _new_settings(index.throughput, spec, provisioned, f"index {index.name}")
            changes.append((index.throughput, after))
        self.billing_mode = billing
        for throughput, (units, maximum) in changes:
            throughput.change(units, maximum, now)

    def describe(self, status: str = "ACTIVE") -> dict[str, Any]:
        description: dict[str, Any] = {
            "TableName": self.name,
            "TableStatus": status,
            "KeySchema": [
                {"AttributeName": attr.name, "KeyType": "HASH" if n == 0 else "RANGE"}
                for n, attr in enumerate(self.key_attrs)
            ],
            "AttributeDefinitions": [
                {"AttributeName": name, "AttributeType": kind}
                for name, kind in self.definitions.items()
            ],
            "CreationDateTime": self.created,
            **self.throughput.describe(),
            "BillingModeSummary": {"BillingMode": self.billing_mode},
            "TableSizeBytes": self.store.bytes,
            "ItemCount": len(self.store.entries),
            "TableArn": self.arn,
            "TableId": self.table_id,
            "DeletionProtectionEnabled": False,
        }
        if self.indexes:
            description["GlobalSecondaryIndexes"] = [
                index.describe() for index in self.indexes.values()
            ]
        return description


def _index_not_found(spec: object) -> Exception:
    name = spec.get("IndexName") if isinstance(spec, dict) else None
    return invalid(
        "One or more parameter values were invalid: Index does not exist: "
        f"{name if isinstance(name, str) else spec!r}"
    )


def _new_settings(
    current: _Throughput, spec: Mapping[str, Any], provisioned: bool, what: str
) -> tuple[tuple[int, int] | None, tuple[int, int]]:
    """The (provisioned, on-demand maximum) a table or index has after an update."""
    if provisioned:
        if spec.get("OnDemandThroughput") is not None:
            raise invalid(
                "One or more parameter values were invalid: OnDemandThroughput can only be "
                f"specified when BillingMode is PAY_PER_REQUEST ({what})"
            )
        given = spec.get("ProvisionedThroughput")
        if given is None and current.provisioned is None:
            raise invalid(
                "One or more parameter values were invalid: ProvisionedThroughput must be "
                f"specified when switching to BillingMode PROVISIONED ({what})"
            )
        units = current.provisioned if given is None else _provisioned(given, what)
        return units, _NO_MAXIMUM
    if spec.get("ProvisionedThroughput") is not None:
        raise invalid(
            "One or more parameter values were invalid: ProvisionedThroughput cannot be "
            f"specified when BillingMode is PAY_PER_REQUEST ({what})"
        )
    given = spec.get("OnDemandThroughput")
    maximum = current.maximum if current.provisioned is None else _NO_MAXIMUM
    return None, maximum if given is None else _on_demand(given, maximum, what)
