"""A DynamoDB *model* server: the rules a Scan client can see, fast, with knobs no emulator has.

Why another server when moto exists: moto is an emulator, and a slow one for Scan (every
request costs time in proportion to the whole table), with no notion of network latency,
partitions or provisioned capacity. A parallel-scan library is about exactly those, so its
benchmarks and demo need a server that

* answers DynamoDB's JSON protocol to real, signing aiobotocore/boto3 clients (signatures
  are ignored), with DynamoDB's error shapes and codes;
* follows the documented Scan contract closely: disjoint segments covering the table,
  ``LastEvaluatedKey`` resumption, ``Limit`` and the 1 MB page counted *before* the filter,
  ``Count``/``ScannedCount``, ``Select``, filter and projection expressions, global secondary
  indexes, ``ConsumedCapacity`` computed from the bytes read;
* models what only the real service has: a round-trip ``latency`` slept concurrently,
  ``partitions`` each serving at most ``partition_rcu`` read units per second, and a
  table's provisioned read capacity as a token bucket;
* is never the bottleneck: items are kept serialized, so an unfiltered page is the
  concatenation of stored bytes, sliced out of a table kept in scan order.

The server is single-threaded asyncio on 127.0.0.1 (raw HTTP/1.1 with keep-alive). Use
:class:`ModelServer` to run it in a child process (what benchmarks want: the client measured
does not share the server's CPU), or :func:`serve_model` inside a running event loop.
"""

from __future__ import annotations

__all__ = ["ModelOptions", "ModelServer", "serve_model", "run_model"]

import asyncio
import base64
import binascii
import bisect
import contextlib
import hashlib
import importlib
import itertools
import json
import logging
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
import zlib
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Context, Decimal
from operator import attrgetter
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final

from ._expressions import (
    AttributeValue,
    Condition,
    ExpressionError,
    Placeholders,
    Projection,
    parse_condition,
    parse_projection,
)

if TYPE_CHECKING:
    from typing_extensions import Self

logger = logging.getLogger(__name__)

HOST: Final = "127.0.0.1"
_TARGET_PREFIX: Final = "DynamoDB_20120810."
_DYNAMODB: Final = "com.amazonaws.dynamodb.v20120810#"
_VALIDATE: Final = "com.amazon.coral.validate#"
_SERVICE: Final = "com.amazon.coral.service#"
_ACCOUNT: Final = "123456789012"
_REGION: Final = "us-east-1"

_PAGE_BYTES: Final = 1024 * 1024  # a Scan page stops once the items read reach 1 MB
_READ_UNIT_BYTES: Final = 4096
_MAX_ITEM_BYTES: Final = 400 * 1024
_MAX_PARTITION_KEY_BYTES: Final = 2048
_MAX_SORT_KEY_BYTES: Final = 1024
_MAX_NESTING: Final = 32
_MAX_BATCH_WRITES: Final = 25
_MAX_SEGMENTS: Final = 1_000_000
_HASH_SPACE: Final = 1 << 64
_MAX_BODY: Final = 32 * 1024 * 1024
_MAX_HEAD: Final = 64 * 1024
_TABLE_NAME: Final = re.compile(r"[a-zA-Z0-9_.-]{3,255}\Z")
_NUMBER: Final = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\Z")
_DIGITS: Final = Context(prec=100)  # wide enough that no number DynamoDB accepts is rounded
_KEY_TYPES: Final = frozenset({"S", "N", "B"})
_THROTTLED: Final = (
    "The level of configured provisioned throughput for the table was exceeded. "
    "Consider increasing your provisioning level with the UpdateTable API."
)


# --- JSON ---------------------------------------------------------------------------------


def _codec() -> tuple[Callable[[bytes], Any], Callable[[Any], bytes]]:
    """orjson when it is installed (several times faster on 1 MB pages), else ``json``.

    Imported by name: the package does not depend on orjson, nor does its type checking.
    """
    try:
        orjson = importlib.import_module("orjson")
    except ImportError:

        def dumps(value: Any) -> bytes:
            return json.dumps(value, separators=(",", ":")).encode()

        return json.loads, dumps
    return orjson.loads, orjson.dumps


_loads, _dumps = _codec()


# --- errors -------------------------------------------------------------------------------


class _Fault(Exception):
    """An answer in DynamoDB's JSON error form (HTTP 400), which botocore turns into a
    ``ClientError`` with ``code`` as its error code."""

    def __init__(self, code: str, message: str, *, namespace: str = _DYNAMODB) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.namespace = namespace

    def body(self) -> bytes:
        return _dumps({"__type": self.namespace + self.code, "message": self.message})


def _invalid(message: str) -> _Fault:
    return _Fault("ValidationException", message, namespace=_VALIDATE)


def _malformed(message: str) -> _Fault:
    return _Fault("SerializationException", message, namespace=_SERVICE)


def _not_found() -> _Fault:
    return _Fault("ResourceNotFoundException", "Requested resource not found")


def _throttled(message: str) -> _Fault:
    return _Fault("ProvisionedThroughputExceededException", message)


# --- attribute values: validation, canonical form, size -----------------------------------


def _utf8_len(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def _number(text: object) -> Decimal:
    """A number as DynamoDB accepts it: at most 38 significant digits, 1E-130 to 1E+126."""
    if not isinstance(text, str):
        raise _malformed("NUMBER_VALUE cannot be converted to String")
    if not _NUMBER.match(text):
        raise _invalid("A value provided cannot be converted into a number")
    value = Decimal(text)
    if value:
        if len(value.normalize(_DIGITS).as_tuple().digits) > 38:
            raise _invalid("Attempting to store more than 38 significant digits in a Number")
        if value.adjusted() > 125:
            raise _invalid(
                "Number overflow. Attempting to store a number with magnitude larger than "
                "supported range"
            )
        if value.adjusted() < -130:
            raise _invalid(
                "Number underflow. Attempting to store a number with magnitude smaller than "
                "supported range"
            )
    return value


def _number_size(value: Decimal) -> int:
    # DynamoDB: about one byte per two significant digits, plus one.
    digits = len(value.normalize(_DIGITS).as_tuple().digits) if value else 1
    return (digits + 1) // 2 + 1


def _binary(text: object) -> bytes:
    if not isinstance(text, str):
        raise _malformed("Binary value must be base64 text")
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error:
        raise _malformed("Base64 encoded length is expected a multiple of 4 bytes") from None


def _check_set(kind: str, inner: object) -> tuple[AttributeValue, int]:
    if not isinstance(inner, list):
        raise _malformed(f"Unexpected value type for {kind}")
    if not inner:
        raise _invalid(
            f"One or more parameter values were invalid: An {kind} set  may not be empty"
        )
    if kind == "SS":
        if not all(isinstance(s, str) for s in inner):
            raise _malformed("Unexpected value type in SS")
        distinct: set[Any] = set(inner)
        size = sum(_utf8_len(s) for s in inner)
        value: AttributeValue = {kind: inner}
    elif kind == "NS":
        numbers = [_number(n) for n in inner]
        distinct = set(numbers)
        size = sum(_number_size(n) for n in numbers)
        value = {kind: inner}
    else:
        blobs = [_binary(b) for b in inner]
        distinct = set(blobs)
        size = sum(len(b) for b in blobs)
        value = {kind: [base64.b64encode(b).decode("ascii") for b in blobs]}
    if len(distinct) != len(inner):
        raise _invalid(
            "One or more parameter values were invalid: Input collection "
            f"{inner} contains duplicates."
        )
    return value, size


def _check(value: object, depth: int = 0) -> tuple[AttributeValue, int]:
    """A valid AttributeValue in canonical form (binary re-encoded), and its size in bytes
    by DynamoDB's rules, without the attribute name."""
    if not isinstance(value, dict):
        raise _malformed("Unexpected value type for an AttributeValue")
    if len(value) != 1:
        if value:
            raise _invalid(
                "Supplied AttributeValue has more than one datatypes set, must contain exactly "
                "one of the supported datatypes"
            )
        raise _invalid(
            "Supplied AttributeValue is empty, must contain exactly one of the supported datatypes"
        )
    ((kind, inner),) = value.items()
    if kind == "S":
        if not isinstance(inner, str):
            raise _malformed("Unexpected value type for S")
        return value, _utf8_len(inner)
    if kind == "N":
        return value, _number_size(_number(inner))
    if kind == "B":
        blob = _binary(inner)
        canonical = base64.b64encode(blob).decode("ascii")
        return (value if canonical == inner else {"B": canonical}), len(blob)
    if kind in ("SS", "NS", "BS"):
        return _check_set(kind, inner)
    if kind == "BOOL":
        if not isinstance(inner, bool):
            raise _malformed("Unexpected value type for BOOL")
        return value, 1
    if kind == "NULL":
        if inner is not True:
            raise _invalid(
                "One or more parameter values were invalid: Null attribute value types must "
                "have the value of true"
            )
        return value, 1
    if kind in ("L", "M"):
        if depth >= _MAX_NESTING:
            raise _invalid("Nesting Levels have exceeded supported limits")
        size = 3  # a list or map costs 3 bytes, plus 1 byte per element
        if kind == "L":
            if not isinstance(inner, list):
                raise _malformed("Unexpected value type for L")
            elements = []
            for element in inner:
                checked, element_size = _check(element, depth + 1)
                elements.append(checked)
                size += 1 + element_size
            return {"L": elements}, size
        if not isinstance(inner, dict):
            raise _malformed("Unexpected value type for M")
        members = {}
        for name, member in inner.items():
            checked, member_size = _check(member, depth + 1)
            members[name] = checked
            size += 1 + _utf8_len(name) + member_size
        return {"M": members}, size
    raise _invalid(
        "Supplied AttributeValue is empty, must contain exactly one of the supported datatypes"
    )


def _check_item(item: object) -> tuple[dict[str, AttributeValue], dict[str, int]]:
    """A whole item checked: its canonical form, and the size of each attribute."""
    if not isinstance(item, dict):
        raise _malformed("Unexpected value type for an item")
    checked: dict[str, AttributeValue] = {}
    sizes: dict[str, int] = {}
    for name, value in item.items():
        if not name:
            raise _invalid("One or more parameter values were invalid: Empty attribute name")
        checked[name], value_size = _check(value)
        sizes[name] = _utf8_len(name) + value_size
    return checked, sizes


def _check_values(values: object) -> dict[str, AttributeValue] | None:
    if values is None:
        return None
    if not isinstance(values, dict):
        raise _malformed("Unexpected value type for ExpressionAttributeValues")
    return {key: _check(value)[0] for key, value in values.items()}


def _check_names(names: object) -> dict[str, str] | None:
    if names is None:
        return None
    if not isinstance(names, dict) or not all(isinstance(v, str) for v in names.values()):
        raise _malformed("Unexpected value type for ExpressionAttributeNames")
    return names


# --- keys ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _KeyAttr:
    """One key attribute, and how its values sort: strings and binaries by their bytes
    (code point order is UTF-8 byte order), numbers by value."""

    name: str
    type: str  # S, N or B

    def sortable(self, value: AttributeValue) -> Any:
        inner = value[self.type]
        if self.type == "S":
            return inner
        if self.type == "N":
            return Decimal(inner)
        return base64.b64decode(inner)


def _key_hash(kind: str, sortable: Any) -> int:
    """A stable 64-bit hash of a partition key value: where the item sits in the key space,
    hence its segment and partition. Equal keys (``1`` and ``1.0``) hash the same."""
    if kind == "S":
        data = b"S" + sortable.encode("utf-8", "surrogatepass")
    elif kind == "N":
        text = "0" if not sortable else str(sortable.normalize(_DIGITS))
        data = b"N" + text.encode("ascii")
    else:
        data = b"B" + sortable
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


def _segment_hashes(segment: int, total: int) -> tuple[int, int]:
    """The hash range ``[low, high)`` of one segment: segments are contiguous slices of the
    key space, so with as many segments as partitions each segment is one partition."""
    return -(-(segment * _HASH_SPACE) // total), -(-((segment + 1) * _HASH_SPACE) // total)


def _partition_of(key_hash: int, partitions: int) -> int:
    return (key_hash * partitions) >> 64


# --- stored items -------------------------------------------------------------------------


@dataclass(slots=True)
class _Entry:
    """One stored item: its place in scan order, its JSON bytes, its DynamoDB size."""

    order: tuple[Any, ...]
    raw: bytes
    size: int


class _View:
    """A store's items in scan order, as parallel lists a Scan page is sliced out of.

    ``cum[i]`` is the size of the first ``i`` items, so where a 1 MB page ends is one
    bisection, and an unfiltered page is ``b",".join(raws[start:end])``.
    """

    __slots__ = ("cum", "hashes", "keys", "raws")

    def __init__(self, entries: Iterable[_Entry]) -> None:
        ordered = sorted(entries, key=attrgetter("order"))
        self.keys = [entry.order for entry in ordered]
        self.hashes = [key[0] for key in self.keys]
        self.raws = [entry.raw for entry in ordered]
        self.cum = [0, *itertools.accumulate(entry.size for entry in ordered)]


class _Bucket:
    """Read capacity as a token bucket: a request is refused while the balance is not
    positive, and a page is charged what it cost once it has been read (debt allowed)."""

    __slots__ = ("burst", "level", "rate", "stamp")

    def __init__(self, rate: float, burst_seconds: float, now: float) -> None:
        self.rate = rate
        self.burst = rate * burst_seconds
        self.level = self.burst
        self.stamp = now

    def _refill(self, now: float) -> None:
        self.level = min(self.burst, self.level + (now - self.stamp) * self.rate)
        self.stamp = now

    def has_credit(self, now: float) -> bool:
        self._refill(now)
        return self.level > 0

    def charge(self, units: float, now: float) -> None:
        self._refill(now)
        self.level -= units


class _Store:
    """The items of a table, or of one of its indexes, with their read-capacity buckets.

    ``key_attrs`` are the attributes of the scan order: the store's partition key (hashed
    first), then its sort key, then (for an index) the table's keys. Entries are kept by the
    *table's* order key, so an index entry is replaced or dropped with its item; the sorted
    view is rebuilt lazily after writes.
    """

    def __init__(
        self,
        key_attrs: tuple[_KeyAttr, ...],
        *,
        bucket: _Bucket | None,
        partition_buckets: list[_Bucket] | None,
    ) -> None:
        self.key_attrs = key_attrs
        self.bucket = bucket
        self.partition_buckets = partition_buckets
        self.entries: dict[tuple[Any, ...], _Entry] = {}
        self.bytes = 0
        self._view: _View | None = None

    def order_of(self, item: Mapping[str, AttributeValue]) -> tuple[Any, ...] | None:
        """The item's place in scan order, or None if it lacks a key attribute."""
        parts = []
        for attr in self.key_attrs:
            value = item.get(attr.name)
            if value is None or attr.type not in value:
                return None
            parts.append(attr.sortable(value))
        return (_key_hash(self.key_attrs[0].type, parts[0]), *parts)

    def order_of_key(self, key: object, message: str) -> tuple[Any, ...]:
        """The place of a ``Key``/``ExclusiveStartKey``, which must name exactly the keys."""
        names = {attr.name for attr in self.key_attrs}
        if not isinstance(key, dict) or set(key) != names:
            raise _invalid(message)
        checked = {name: _check(value)[0] for name, value in key.items()}
        order = self.order_of(checked)
        if order is None:
            raise _invalid(message)
        return order

    def key_of(self, raw: bytes) -> dict[str, AttributeValue]:
        item = _loads(raw)
        return {attr.name: item[attr.name] for attr in self.key_attrs}

    def put(self, table_order: tuple[Any, ...], entry: _Entry) -> None:
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

    def view(self) -> _View:
        if self._view is None:
            self._view = _View(self.entries.values())
        return self._view


# --- tables -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ModelOptions:
    """How the model server behaves beyond DynamoDB's API rules.

    Attributes:
        latency: seconds added to every Scan answer, slept without blocking (a round trip).
        partitions: how many partitions each table and index is cut into, by key hash.
        partition_rcu: read capacity units per second each partition serves; a Scan
            starting in a partition that is over it is refused with
            ProvisionedThroughputExceededException. None: no partition limit.
        burst_seconds: how many seconds of capacity a bucket (provisioned table or
            partition) can save up; also its starting balance.
    """

    latency: float = 0.0
    partitions: int = 1
    partition_rcu: float | None = None
    burst_seconds: float = 1.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.latency) and self.latency >= 0):
            raise ValueError(f"latency must be a finite number >= 0, not {self.latency!r}")
        if isinstance(self.partitions, bool) or not isinstance(self.partitions, int):
            raise TypeError(f"partitions must be an int, not {self.partitions!r}")
        if not 1 <= self.partitions <= _MAX_SEGMENTS:
            raise ValueError(f"partitions must be 1 to {_MAX_SEGMENTS}, not {self.partitions}")
        if self.partition_rcu is not None and not (
            math.isfinite(self.partition_rcu) and self.partition_rcu > 0
        ):
            raise ValueError(f"partition_rcu must be > 0 or None, not {self.partition_rcu!r}")
        if not (math.isfinite(self.burst_seconds) and self.burst_seconds > 0):
            raise ValueError(f"burst_seconds must be > 0, not {self.burst_seconds!r}")

    def to_args(self) -> list[str]:
        """The command-line flags of ``python -m dynascan_async.testing.model`` for these."""
        args = [
            f"--latency={self.latency!r}",
            f"--partitions={self.partitions}",
            f"--burst-seconds={self.burst_seconds!r}",
        ]
        if self.partition_rcu is not None:
            args.append(f"--partition-rcu={self.partition_rcu!r}")
        return args


def _key_schema(schema: object, definitions: Mapping[str, str], what: str) -> list[_KeyAttr]:
    if not isinstance(schema, list) or not 1 <= len(schema) <= 2:
        raise _invalid(
            f"1 validation error detected: Value at '{what}' failed to satisfy "
            "constraint: Member must have length between 1 and 2"
        )
    attrs = []
    for position, element in enumerate(schema):
        wanted = "HASH" if position == 0 else "RANGE"
        if not isinstance(element, dict) or element.get("KeyType") != wanted:
            raise _invalid(
                f"Invalid KeySchema: The first KeySchema attribute must be a HASH key and the "
                f"second a RANGE key ({what})"
            )
        name = element.get("AttributeName")
        if not isinstance(name, str) or name not in definitions:
            raise _invalid(
                "One or more parameter values were invalid: Some index key attributes are not "
                f"defined in AttributeDefinitions. Keys: [{name}], AttributeDefinitions: "
                f"[{', '.join(definitions)}]"
            )
        attrs.append(_KeyAttr(name, definitions[name]))
    if len(attrs) == 2 and attrs[0].name == attrs[1].name:
        raise _invalid(
            f"Invalid KeySchema: Both the Hash Key and the Range Key are {attrs[0].name}"
        )
    return attrs


def _throughput(value: object, what: str) -> tuple[int, int]:
    if not isinstance(value, dict):
        raise _invalid(
            "One or more parameter values were invalid: ReadCapacityUnits and "
            f"WriteCapacityUnits must both be specified when BillingMode is PROVISIONED ({what})"
        )
    units = value.get("ReadCapacityUnits"), value.get("WriteCapacityUnits")
    for unit in units:
        if isinstance(unit, bool) or not isinstance(unit, int) or unit < 1:
            raise _invalid(
                "One or more parameter values were invalid: ReadCapacityUnits and "
                f"WriteCapacityUnits must both be at least 1 ({what})"
            )
    return units[0], units[1]  # type: ignore[return-value]


class _Index:
    """A global secondary index: its own store of projected items, kept as items change."""

    def __init__(
        self,
        spec: object,
        definitions: Mapping[str, str],
        table_keys: list[_KeyAttr],
        provisioned: bool,
        options: ModelOptions,
        now: float,
    ) -> None:
        if not isinstance(spec, dict):
            raise _malformed("Unexpected value type for a GlobalSecondaryIndex")
        name = spec.get("IndexName")
        if not isinstance(name, str) or not _TABLE_NAME.match(name):
            raise _invalid(f"Invalid index name: {name!r}")
        self.name = name
        self.key_attrs = _key_schema(spec.get("KeySchema"), definitions, "KeySchema")
        projection = spec.get("Projection")
        kind = projection.get("ProjectionType") if isinstance(projection, dict) else None
        non_key = projection.get("NonKeyAttributes") if isinstance(projection, dict) else None
        if kind not in ("ALL", "KEYS_ONLY", "INCLUDE"):
            raise _invalid(f"Unknown ProjectionType for index {name}: {kind!r}")
        if (kind == "INCLUDE") != (non_key is not None):
            raise _invalid(
                "One or more parameter values were invalid: NonKeyAttributes must be specified "
                "if and only if ProjectionType is INCLUDE"
            )
        assert isinstance(projection, dict)
        self.projection: dict[str, Any] = projection
        self.projection_type: str = kind
        keys = {attr.name for attr in (*self.key_attrs, *table_keys)}
        self.attributes = keys | set(non_key or ())
        self.throughput: tuple[int, int] | None = None
        if provisioned:
            self.throughput = _throughput(spec.get("ProvisionedThroughput"), f"index {name}")
        elif spec.get("ProvisionedThroughput") is not None:
            raise _invalid(
                "One or more parameter values were invalid: ProvisionedThroughput should not be "
                f"specified for index: {name} when BillingMode is PAY_PER_REQUEST"
            )
        self.store = _Store(
            (*self.key_attrs, *table_keys),
            bucket=_Bucket(self.throughput[0], options.burst_seconds, now)
            if self.throughput
            else None,
            partition_buckets=_partition_buckets(options, now),
        )

    def describe(self, table_arn: str) -> dict[str, Any]:
        read, write = self.throughput or (0, 0)
        return {
            "IndexName": self.name,
            "KeySchema": [
                {"AttributeName": attr.name, "KeyType": "HASH" if n == 0 else "RANGE"}
                for n, attr in enumerate(self.key_attrs)
            ],
            "Projection": self.projection,
            "IndexStatus": "ACTIVE",
            "ProvisionedThroughput": {
                "NumberOfDecreasesToday": 0,
                "ReadCapacityUnits": read,
                "WriteCapacityUnits": write,
            },
            "IndexSizeBytes": self.store.bytes,
            "ItemCount": len(self.store.entries),
            "IndexArn": f"{table_arn}/index/{self.name}",
        }


def _partition_buckets(options: ModelOptions, now: float) -> list[_Bucket] | None:
    if options.partition_rcu is None:
        return None
    return [
        _Bucket(options.partition_rcu, options.burst_seconds, now)
        for _ in range(options.partitions)
    ]


class _Table:
    """A table: its definition, its items in a :class:`_Store`, and its indexes."""

    def __init__(self, request: dict[str, Any], options: ModelOptions, now: float) -> None:
        name = request.get("TableName")
        if not isinstance(name, str) or not _TABLE_NAME.match(name):
            raise _invalid(
                f"1 validation error detected: Value '{name}' at 'tableName' failed to satisfy "
                "constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+ "
                "and have length between 3 and 255"
            )
        self.name = name
        if request.get("LocalSecondaryIndexes"):
            raise _invalid("The model server does not implement LocalSecondaryIndexes")
        definitions = self._definitions(request.get("AttributeDefinitions"))
        self.key_attrs = _key_schema(request.get("KeySchema"), definitions, "KeySchema")
        billing = request.get("BillingMode", "PROVISIONED")
        if billing not in ("PROVISIONED", "PAY_PER_REQUEST"):
            raise _invalid(f"Invalid BillingMode: {billing!r}")
        self.billing_mode: str = billing
        self.throughput: tuple[int, int] | None = None
        if billing == "PROVISIONED":
            self.throughput = _throughput(request.get("ProvisionedThroughput"), "table")
        elif request.get("ProvisionedThroughput") is not None:
            raise _invalid(
                "One or more parameter values were invalid: Neither ReadCapacityUnits nor "
                "WriteCapacityUnits can be specified when BillingMode is PAY_PER_REQUEST"
            )
        specs = request.get("GlobalSecondaryIndexes") or []
        if not isinstance(specs, list):
            raise _malformed("Unexpected value type for GlobalSecondaryIndexes")
        provisioned = self.throughput is not None
        indexes = [_Index(s, definitions, self.key_attrs, provisioned, options, now) for s in specs]
        self.indexes = {index.name: index for index in indexes}
        if len(self.indexes) != len(indexes):
            raise _invalid("One or more parameter values were invalid: Duplicate index name")
        used = {a.name for a in self.key_attrs} | {
            a.name for index in indexes for a in index.key_attrs
        }
        if set(definitions) != used:
            raise _invalid(
                "One or more parameter values were invalid: Some AttributeDefinitions are not "
                f"used. AttributeDefinitions: [{', '.join(definitions)}], keys used: "
                f"[{', '.join(sorted(used))}]"
            )
        self.definitions = definitions
        self.created = time.time()
        self.arn = f"arn:aws:dynamodb:{_REGION}:{_ACCOUNT}:table/{name}"
        self.table_id = str(uuid.uuid4())
        self.store = _Store(
            tuple(self.key_attrs),
            bucket=_Bucket(self.throughput[0], options.burst_seconds, now)
            if self.throughput
            else None,
            partition_buckets=_partition_buckets(options, now),
        )

    @staticmethod
    def _definitions(value: object) -> dict[str, str]:
        if not isinstance(value, list) or not value:
            raise _invalid("AttributeDefinitions must be given")
        definitions: dict[str, str] = {}
        for element in value:
            if not isinstance(element, dict):
                raise _malformed("Unexpected value type in AttributeDefinitions")
            name, kind = element.get("AttributeName"), element.get("AttributeType")
            if not isinstance(name, str) or kind not in _KEY_TYPES:
                raise _invalid(f"Invalid AttributeDefinition: {element}")
            if name in definitions:
                raise _invalid(
                    f"Cannot have two attributes with the same name: AttributeDefinitions: {value}"
                )
            definitions[name] = kind
        return definitions

    def check_keys(self, item: Mapping[str, AttributeValue]) -> None:
        """DynamoDB's checks of an item's table and index keys on a write."""
        for position, attr in enumerate(self.key_attrs):
            value = item.get(attr.name)
            if value is None:
                raise _invalid(
                    "One or more parameter values were invalid: Missing the key "
                    f"{attr.name} in the item"
                )
            if attr.type not in value:
                raise _invalid(
                    "One or more parameter values were invalid: Type mismatch for key "
                    f"{attr.name} expected: {attr.type} actual: {next(iter(value))}"
                )
            inner = value[attr.type]
            if attr.type != "N" and not inner:
                empty = "string" if attr.type == "S" else "binary"
                raise _invalid(
                    "One or more parameter values are not valid. The AttributeValue for a key "
                    f"attribute cannot contain an empty {empty} value. Key: {attr.name}"
                )
            limit = _MAX_PARTITION_KEY_BYTES if position == 0 else _MAX_SORT_KEY_BYTES
            length = len(base64.b64decode(inner)) if attr.type == "B" else _utf8_len(inner)
            if length > limit:
                raise _invalid(
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
                    raise _invalid(
                        "One or more parameter values were invalid: Type mismatch for Index Key "
                        f"{attr.name} Expected: {attr.type} Actual: {next(iter(value))} "
                        f"IndexName: {index.name}"
                    )
                if attr.type != "N" and not value[attr.type]:
                    raise _invalid(
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
        raw = _dumps(item)
        size = sum(sizes.values())
        self.store.put(order, _Entry(order, raw, size))
        for index in self.indexes.values():
            index_order = index.store.order_of(item)
            if index_order is None:
                index.store.remove(order)
            elif index.projection_type == "ALL":
                index.store.put(order, _Entry(index_order, raw, size))
            else:
                projected = {k: v for k, v in item.items() if k in index.attributes}
                projected_size = sum(sizes[k] for k in projected)
                index.store.put(order, _Entry(index_order, _dumps(projected), projected_size))

    def delete(self, order: tuple[Any, ...]) -> None:
        self.store.remove(order)
        for index in self.indexes.values():
            index.store.remove(order)

    def describe(self, status: str = "ACTIVE") -> dict[str, Any]:
        read, write = self.throughput or (0, 0)
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
            "ProvisionedThroughput": {
                "NumberOfDecreasesToday": 0,
                "ReadCapacityUnits": read,
                "WriteCapacityUnits": write,
            },
            "BillingModeSummary": {"BillingMode": self.billing_mode},
            "TableSizeBytes": self.store.bytes,
            "ItemCount": len(self.store.entries),
            "TableArn": self.arn,
            "TableId": self.table_id,
            "DeletionProtectionEnabled": False,
        }
        if self.indexes:
            description["GlobalSecondaryIndexes"] = [
                index.describe(self.arn) for index in self.indexes.values()
            ]
        return description


# --- request parameters -------------------------------------------------------------------


def _optional(request: Mapping[str, Any], name: str, kind: type[Any]) -> Any:
    value = request.get(name)
    if value is not None and (
        not isinstance(value, kind) or isinstance(value, bool) != (kind is bool)
    ):
        raise _malformed(f"Unexpected value type for {name}")
    return value


def _segments(request: Mapping[str, Any]) -> tuple[int, int]:
    segment = _optional(request, "Segment", int)
    total = _optional(request, "TotalSegments", int)
    if segment is None and total is None:
        return 0, 1
    if total is None:
        raise _invalid(
            "The TotalSegments parameter is required but was not present in the request when "
            "Segment parameter is present"
        )
    if segment is None:
        raise _invalid(
            "The Segment parameter is required but was not present in the request when "
            "parameter TotalSegments is present"
        )
    if not 1 <= total <= _MAX_SEGMENTS:
        raise _invalid(
            f"1 validation error detected: Value '{total}' at 'totalSegments' failed to satisfy "
            f"constraint: Member must have value between 1 and {_MAX_SEGMENTS}"
        )
    if segment < 0:
        raise _invalid(
            f"1 validation error detected: Value '{segment}' at 'segment' failed to satisfy "
            "constraint: Member must have value greater than or equal to 0"
        )
    if segment >= total:
        raise _invalid(
            "The Segment parameter is zero-based and must be less than parameter "
            f"TotalSegments: Segment: {segment} is not less than TotalSegments: {total}"
        )
    return segment, total


def _limit(request: Mapping[str, Any]) -> int | None:
    limit = _optional(request, "Limit", int)
    if limit is not None and limit < 1:
        raise _invalid(
            f"1 validation error detected: Value '{limit}' at 'limit' failed to satisfy "
            "constraint: Member must have value greater than or equal to 1"
        )
    return limit  # type: ignore[no-any-return]


def _capacity_mode(request: Mapping[str, Any]) -> str:
    mode = request.get("ReturnConsumedCapacity", "NONE")
    if mode not in ("NONE", "TOTAL", "INDEXES"):
        raise _invalid(
            f"1 validation error detected: Value '{mode}' at 'returnConsumedCapacity' failed to "
            "satisfy constraint: Member must satisfy enum value set: [INDEXES, TOTAL, NONE]"
        )
    return mode  # type: ignore[no-any-return]


def _refuse_legacy(request: Mapping[str, Any], *names: str) -> None:
    for name in names:
        if request.get(name) is not None:
            raise _invalid(
                f"The model server does not implement the legacy parameter {name}; use the "
                "expression parameters"
            )


def _placeholders(request: Mapping[str, Any]) -> Placeholders:
    try:
        return Placeholders(
            _check_names(request.get("ExpressionAttributeNames")),
            _check_values(request.get("ExpressionAttributeValues")),
        )
    except ExpressionError as error:
        raise _invalid(str(error)) from None


def _expression(request: Mapping[str, Any], name: str) -> str | None:
    text = _optional(request, name, str)
    return text  # type: ignore[no-any-return]


@dataclass(frozen=True, slots=True)
class _Reading:
    """What a read returns: all of each item, a projection of it, or only a count."""

    count_only: bool
    condition: Condition | None
    projection: Projection | None


_SELECTS: Final = ("ALL_ATTRIBUTES", "ALL_PROJECTED_ATTRIBUTES", "SPECIFIC_ATTRIBUTES", "COUNT")


def _reading(request: Mapping[str, Any], index: _Index | None) -> _Reading:
    placeholders = _placeholders(request)
    filter_text = _expression(request, "FilterExpression")
    projection_text = _expression(request, "ProjectionExpression")
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
        raise _invalid(str(error)) from None
    select = request.get("Select")
    if select is None:
        if projection is not None:
            select = "SPECIFIC_ATTRIBUTES"
        else:
            select = "ALL_PROJECTED_ATTRIBUTES" if index else "ALL_ATTRIBUTES"
    if select not in _SELECTS:
        raise _invalid(
            f"1 validation error detected: Value '{select}' at 'select' failed to satisfy "
            f"constraint: Member must satisfy enum value set: [{', '.join(_SELECTS)}]"
        )
    if select == "SPECIFIC_ATTRIBUTES" and projection is None:
        raise _invalid(
            "One or more parameter values were invalid: Must specify the AttributesToGet or "
            "ProjectionExpression when choosing to get SPECIFIC_ATTRIBUTES"
        )
    if select != "SPECIFIC_ATTRIBUTES" and projection is not None:
        raise _invalid(
            "One or more parameter values were invalid: Cannot specify the ProjectionExpression "
            f"when choosing to get {select}"
        )
    if select == "ALL_PROJECTED_ATTRIBUTES" and index is None:
        raise _invalid(
            "One or more parameter values were invalid: Select type ALL_PROJECTED_ATTRIBUTES "
            "is supported only for an index"
        )
    if select == "ALL_ATTRIBUTES" and index is not None and index.projection_type != "ALL":
        raise _invalid(
            "One or more parameter values were invalid: Select type ALL_ATTRIBUTES is not "
            f"supported for global secondary index {index.name} because its projection type "
            "is not ALL"
        )
    return _Reading(select == "COUNT", condition, projection)


def _read_units(size: int, consistent: bool) -> float:
    """What reading ``size`` bytes costs: 4 KB units, half price when eventually consistent,
    never less than one unit's worth per request."""
    units = max(1, math.ceil(size / _READ_UNIT_BYTES))
    return units * (1.0 if consistent else 0.5)


def _consumed(mode: str, table: str, units: float, index: str | None) -> dict[str, Any]:
    consumed: dict[str, Any] = {"TableName": table, "CapacityUnits": units}
    if mode == "INDEXES":
        if index is None:
            consumed["Table"] = {"CapacityUnits": units}
        else:
            consumed["Table"] = {"CapacityUnits": 0.0}
            consumed["GlobalSecondaryIndexes"] = {index: {"CapacityUnits": units}}
    return consumed


# --- the model: one handler per operation -------------------------------------------------


class _Model:
    """The tables and the operations on them; one instance per server."""

    def __init__(self, options: ModelOptions, clock: Callable[[], float] = time.monotonic) -> None:
        self.options = options
        self.clock = clock
        self.tables: dict[str, _Table] = {}
        self._handlers: dict[str, Callable[[dict[str, Any]], dict[str, Any] | bytes]] = {
            "CreateTable": self.create_table,
            "DescribeTable": self.describe_table,
            "ListTables": self.list_tables,
            "DeleteTable": self.delete_table,
            "PutItem": self.put_item,
            "BatchWriteItem": self.batch_write_item,
            "GetItem": self.get_item,
            "Scan": self.scan,
        }

    async def answer(self, target: str, body: bytes) -> tuple[int, bytes]:
        """The HTTP status and JSON body answering one request."""
        operation = target[len(_TARGET_PREFIX) :] if target.startswith(_TARGET_PREFIX) else ""
        handler = self._handlers.get(operation)
        try:
            if handler is None:
                raise _Fault(
                    "UnknownOperationException",
                    f"The model server does not implement {target or 'this operation'}",
                    namespace=_SERVICE,
                )
            try:
                request = _loads(body) if body else {}
            except ValueError:
                raise _malformed("Start of structure or map found where not expected") from None
            if not isinstance(request, dict):
                raise _malformed("Start of structure or map found where not expected")
            if operation == "Scan" and self.options.latency:
                await asyncio.sleep(self.options.latency)
            result = handler(request)
            return 200, result if isinstance(result, bytes) else _dumps(result)
        except _Fault as fault:
            return 400, fault.body()
        except Exception:
            logger.exception("model server: %s failed", operation)
            failure = _Fault("InternalServerError", "The model server failed; see its log")
            return 500, failure.body()

    def _table(self, request: Mapping[str, Any]) -> _Table:
        name = request.get("TableName")
        if not isinstance(name, str):
            raise _invalid(
                "1 validation error detected: Value null at 'tableName' failed to satisfy "
                "constraint: Member must not be null"
            )
        table = self.tables.get(name)
        if table is None:
            raise _not_found()
        return table

    # tables

    def create_table(self, request: dict[str, Any]) -> dict[str, Any]:
        table = _Table(request, self.options, self.clock())
        if table.name in self.tables:
            raise _Fault("ResourceInUseException", f"Table already exists: {table.name}")
        self.tables[table.name] = table
        return {"TableDescription": table.describe()}

    def describe_table(self, request: dict[str, Any]) -> dict[str, Any]:
        return {"Table": self._table(request).describe()}

    def list_tables(self, request: dict[str, Any]) -> dict[str, Any]:
        start = _optional(request, "ExclusiveStartTableName", str)
        limit = _optional(request, "Limit", int) or 100
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
        self, table: _Table, item: object
    ) -> tuple[dict[str, AttributeValue], dict[str, int]]:
        checked, sizes = _check_item(item)
        table.check_keys(checked)
        if sum(sizes.values()) > _MAX_ITEM_BYTES:
            raise _invalid("Item size has exceeded the maximum allowed size")
        return checked, sizes

    def put_item(self, request: dict[str, Any]) -> dict[str, Any]:
        _refuse_legacy(request, "Expected", "ConditionalOperator")
        table = self._table(request)
        item, sizes = self._checked_item(table, request.get("Item"))
        returns = request.get("ReturnValues", "NONE")
        if returns not in ("NONE", "ALL_OLD"):
            raise _invalid(f"ReturnValues can only be ALL_OLD or NONE for PutItem, not {returns}")
        placeholders = _placeholders(request)
        text = _expression(request, "ConditionExpression")
        try:
            condition = (
                None if text is None else parse_condition(text, placeholders, "ConditionExpression")
            )
            placeholders.check_all_used()
        except ExpressionError as error:
            raise _invalid(str(error)) from None
        order = table.order_of(item)
        old = table.store.entries.get(order)
        old_item = _loads(old.raw) if old is not None else None
        if condition is not None and not condition(old_item or {}):
            raise _Fault("ConditionalCheckFailedException", "The conditional request failed")
        table.put(order, item, sizes)
        if returns == "ALL_OLD" and old_item is not None:
            return {"Attributes": old_item}
        return {}

    def batch_write_item(self, request: dict[str, Any]) -> dict[str, Any]:
        requests = request.get("RequestItems")
        if not isinstance(requests, dict) or not requests:
            raise _invalid(
                "1 validation error detected: Value at 'requestItems' failed to satisfy "
                "constraint: Member must have length greater than or equal to 1"
            )
        count = sum(len(writes) if isinstance(writes, list) else 0 for writes in requests.values())
        if count > _MAX_BATCH_WRITES:
            raise _invalid("Too many items requested for the BatchWriteItem call")
        plan: list[
            tuple[_Table, tuple[Any, ...], dict[str, AttributeValue] | None, dict[str, int]]
        ] = []
        for name, writes in requests.items():
            table = self._table({"TableName": name})
            if not isinstance(writes, list) or not writes:
                raise _invalid("1 validation error detected: The list of writes must not be empty")
            seen: set[tuple[Any, ...]] = set()
            for write in writes:
                if not isinstance(write, dict) or len(write) != 1:
                    raise _invalid(
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
                    raise _malformed("A write request must be a PutRequest or a DeleteRequest")
                if order in seen:
                    raise _invalid("Provided list of item keys contains duplicates")
                seen.add(order)
        for target, key, new_item, new_sizes in plan:
            if new_item is None:
                target.delete(key)
            else:
                target.put(key, new_item, new_sizes)
        return {"UnprocessedItems": {}}

    # reads

    def _admit(self, store: _Store, key_hash: int, now: float) -> None:
        """Refuse a read, before it reads anything, if its table or partition is in debt."""
        if store.bucket is not None and not store.bucket.has_credit(now):
            raise _throttled(_THROTTLED)
        buckets = store.partition_buckets
        if buckets is not None:
            partition = _partition_of(key_hash, len(buckets))
            if not buckets[partition].has_credit(now):
                raise _throttled(f"{_THROTTLED} (partition {partition} is over its capacity)")

    def get_item(self, request: dict[str, Any]) -> bytes:
        _refuse_legacy(request, "AttributesToGet")
        table = self._table(request)
        order = table.store.order_of_key(
            request.get("Key"), "The provided key element does not match the schema"
        )
        placeholders = _placeholders(request)
        text = _expression(request, "ProjectionExpression")
        try:
            projection = None if text is None else parse_projection(text, placeholders)
            placeholders.check_all_used()
        except ExpressionError as error:
            raise _invalid(str(error)) from None
        consistent = bool(_optional(request, "ConsistentRead", bool))
        mode = _capacity_mode(request)
        now = self.clock()
        self._admit(table.store, order[0], now)
        entry = table.store.entries.get(order)
        units = _read_units(entry.size if entry else 0, consistent)
        self._charge(table.store, [(order[0], units)], units, now)
        parts = []
        if entry is not None:
            raw = entry.raw if projection is None else _dumps(projection.apply(_loads(entry.raw)))
            parts.append(b'"Item":' + raw)
        if mode != "NONE":
            parts.append(b'"ConsumedCapacity":' + _dumps(_consumed(mode, table.name, units, None)))
        return b"{" + b",".join(parts) + b"}"

    def _charge(
        self, store: _Store, shares: list[tuple[int, float]], units: float, now: float
    ) -> None:
        if store.bucket is not None:
            store.bucket.charge(units, now)
        buckets = store.partition_buckets
        if buckets is not None:
            for key_hash, share in shares:
                buckets[_partition_of(key_hash, len(buckets))].charge(share, now)

    def scan(self, request: dict[str, Any]) -> bytes:
        _refuse_legacy(request, "AttributesToGet", "ScanFilter", "ConditionalOperator")
        table = self._table(request)
        index_name = _optional(request, "IndexName", str)
        consistent = bool(_optional(request, "ConsistentRead", bool))
        index = None
        if index_name is not None:
            index = table.indexes.get(index_name)
            if index is None:
                raise _invalid(f"The table does not have the specified index: {index_name}")
            if consistent:
                raise _invalid("Consistent reads are not supported on global secondary indexes")
        store = index.store if index is not None else table.store
        segment, total = _segments(request)
        limit = _limit(request)
        mode = _capacity_mode(request)
        reading = _reading(request, index)
        view = store.view()
        low_hash, high_hash = _segment_hashes(segment, total)
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
                raise _invalid(
                    "The provided Exclusive start key does not map to the provided segment"
                )
            start = bisect.bisect_right(view.keys, order, low, high)

        now = self.clock()
        first_hash = view.hashes[start] if start < high else low_hash
        self._admit(store, first_hash, now)
        end = high if limit is None else min(high, start + limit)
        end = min(end, bisect.bisect_left(view.cum, view.cum[start] + _PAGE_BYTES, start + 1))
        read = view.cum[end] - view.cum[start]
        units = _read_units(read, consistent)
        self._charge(store, self._shares(store, view, start, end, units, first_hash), units, now)

        raws = view.raws[start:end]
        if reading.condition is None and reading.projection is None:
            count, chosen = len(raws), raws
        else:
            chosen = []
            condition, projection = reading.condition, reading.projection
            for raw in raws:
                item = _loads(raw)
                if condition is not None and not condition(item):
                    continue
                chosen.append(raw if projection is None else _dumps(projection.apply(item)))
            count = len(chosen)
        parts = [] if reading.count_only else [b'"Items":[' + b",".join(chosen) + b"]"]
        parts.append(b'"Count":%d,"ScannedCount":%d' % (count, end - start))
        if end < high:
            parts.append(b'"LastEvaluatedKey":' + _dumps(store.key_of(view.raws[end - 1])))
        if mode != "NONE":
            consumed = _consumed(mode, table.name, units, index_name)
            parts.append(b'"ConsumedCapacity":' + _dumps(consumed))
        return b"{" + b",".join(parts) + b"}"

    @staticmethod
    def _shares(
        store: _Store, view: _View, start: int, end: int, units: float, first_hash: int
    ) -> list[tuple[int, float]]:
        """A page's cost split over the partitions its items came from, by bytes."""
        buckets = store.partition_buckets
        if buckets is None:
            return []
        read = view.cum[end] - view.cum[start]
        if start == end or read == 0:
            return [(first_hash, units)]
        partitions = len(buckets)
        shares = []
        first = _partition_of(view.hashes[start], partitions)
        last = _partition_of(view.hashes[end - 1], partitions)
        for partition in range(first, last + 1):
            low_hash, high_hash = _segment_hashes(partition, partitions)  # same slicing
            low = bisect.bisect_left(view.hashes, low_hash, start, end)
            high = bisect.bisect_left(view.hashes, high_hash, start, end)
            if high > low:
                share = units * (view.cum[high] - view.cum[low]) / read
                shares.append((view.hashes[low], share))
        return shares


# --- HTTP/1.1 -----------------------------------------------------------------------------

_REASONS: Final = {
    200: b"OK",
    400: b"Bad Request",
    405: b"Method Not Allowed",
    413: b"Payload Too Large",
    431: b"Request Header Fields Too Large",
    500: b"Internal Server Error",
    501: b"Not Implemented",
}


class _Http:
    """Keep-alive HTTP/1.1 connections, one request at a time each, answered by a model.

    Connections are tracked so that shutting down closes them: since Python 3.12 a server's
    ``wait_closed()`` waits for every connection, and a client pool keeps them open.
    """

    def __init__(self, model: _Model) -> None:
        self.model = model
        self._request_ids = itertools.count(1)
        self._connections: dict[asyncio.Task[Any], asyncio.StreamWriter] = {}

    async def connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections[task] = writer
        try:
            while await self._exchange(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away
        finally:
            del self._connections[task]
            writer.close()

    async def _exchange(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Answer one request; whether the connection stays open."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return False
        except asyncio.LimitOverrunError:
            await self._send(writer, 431, b"", keep_alive=False)
            return False
        request_line, *lines = head[:-4].split(b"\r\n")
        parts = request_line.split(b" ")
        headers: dict[bytes, bytes] = {}
        for line in lines:
            name, colon, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
            if not colon:
                parts = []
        length_text = headers.get(b"content-length", b"0")
        if len(parts) != 3 or not length_text.isdigit():
            await self._send(writer, 400, b"", keep_alive=False)
            return False
        method, _, version = parts
        if b"transfer-encoding" in headers:
            await self._send(writer, 501, b"", keep_alive=False)
            return False
        length = int(length_text)
        if length > _MAX_BODY:
            await self._send(writer, 413, b"", keep_alive=False)
            return False
        if headers.get(b"expect", b"").lower() == b"100-continue":
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        body = await reader.readexactly(length) if length else b""
        connection = headers.get(b"connection", b"").lower()
        if version == b"HTTP/1.1":
            keep_alive = b"close" not in connection
        else:
            keep_alive = b"keep-alive" in connection
        if method == b"POST":
            target = headers.get(b"x-amz-target", b"").decode("latin-1")
            status, payload = await self.model.answer(target, body)
        elif method == b"GET":
            status, payload = 200, b"healthy: dynascan_async model server"
        else:
            status, payload = 405, b""
        await self._send(writer, status, payload, keep_alive=keep_alive)
        return keep_alive

    async def _send(
        self, writer: asyncio.StreamWriter, status: int, payload: bytes, *, keep_alive: bool
    ) -> None:
        head = (
            b"HTTP/1.1 %d %s\r\n"
            b"Content-Type: application/x-amz-json-1.0\r\n"
            b"Content-Length: %d\r\n"
            b"x-amzn-RequestId: MODEL%027d\r\n"
            b"x-amz-crc32: %d\r\n"
            b"%s\r\n"
        ) % (
            status,
            _REASONS.get(status, b"Error"),
            len(payload),
            next(self._request_ids),
            zlib.crc32(payload),
            b"" if keep_alive else b"Connection: close\r\n",
        )
        writer.writelines((head, payload))
        await writer.drain()

    async def close_all(self) -> None:
        """Drop every connection and wait until their handlers have finished."""
        tasks = list(self._connections)
        for task, writer in self._connections.items():
            writer.transport.abort()
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


@contextlib.asynccontextmanager
async def serve_model(
    *,
    port: int = 0,
    latency: float = 0.0,
    partitions: int = 1,
    partition_rcu: float | None = None,
    burst_seconds: float = 1.0,
) -> AsyncIterator[str]:
    """Run a model server in the running event loop; yields its endpoint URL.

    ``async with serve_model(latency=0.02) as url: ...`` -- for tests that want the server
    in-process. Port 0 (the default) picks a free port. Every connection is closed on exit.
    Benchmarks should use :class:`ModelServer` instead, so that the server does not share the
    measured client's CPU.
    """
    options = ModelOptions(latency, partitions, partition_rcu, burst_seconds)
    http = _Http(_Model(options))
    server = await asyncio.start_server(http.connection, HOST, port, limit=_MAX_HEAD)
    try:
        bound: int = server.sockets[0].getsockname()[1]
        yield f"http://{HOST}:{bound}"
    finally:
        server.close()
        await http.close_all()
        await server.wait_closed()


def _write_ready_file(path: str, port: str) -> None:
    partial = path + ".partial"
    with open(partial, "w", encoding="ascii") as handle:
        handle.write(port)
    os.replace(partial, path)


async def run_model(
    options: ModelOptions,
    *,
    port: int = 0,
    ready_file: str | None = None,
    announce: Callable[[str], object] | None = None,
) -> None:
    """Serve until SIGTERM or SIGINT (the command line's loop).

    Once listening, writes the port to ``ready_file`` (atomically, for a launcher that polls
    for it) and passes the URL to ``announce``.
    """
    async with serve_model(
        port=port,
        latency=options.latency,
        partitions=options.partitions,
        partition_rcu=options.partition_rcu,
        burst_seconds=options.burst_seconds,
    ) as url:
        if ready_file is not None:
            _write_ready_file(ready_file, url.rsplit(":", 1)[1])
        if announce is not None:
            announce(url)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signum, stop.set)
        await stop.wait()


# --- the child-process launcher -----------------------------------------------------------


class ModelServer:
    """The model server in a child process: ``with ModelServer(latency=0.02) as server:``.

    Like :class:`~dynascan_async.testing.MotoServer`: starts the process, waits until it
    listens, gives ``endpoint_url``, and terminates it on exit. Quiet unless it fails to
    start, in which case the error carries the child's stderr.
    """

    host = HOST

    def __init__(
        self,
        *,
        port: int | None = None,
        latency: float = 0.0,
        partitions: int = 1,
        partition_rcu: float | None = None,
        burst_seconds: float = 1.0,
        start_timeout: float = 30.0,
    ) -> None:
        self.options = ModelOptions(latency, partitions, partition_rcu, burst_seconds)
        self.port = port
        self.start_timeout = start_timeout
        self._requested_port = port or 0
        self._process: subprocess.Popen[bytes] | None = None
        self._directory: str | None = None

    @property
    def endpoint_url(self) -> str:
        if self.port is None:
            raise RuntimeError("the model server is not started; use `with ModelServer() as s:`")
        return f"http://{self.host}:{self.port}"

    def start(self) -> Self:
        if self._process is not None:
            return self
        self._directory = tempfile.mkdtemp(prefix="dynascan-model-")
        ready = os.path.join(self._directory, "ready")
        log_path = os.path.join(self._directory, "stderr")
        # The child imports this very copy of the package, installed or not.
        package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        path = os.environ.get("PYTHONPATH")
        env = {**os.environ, "PYTHONPATH": package_root + (os.pathsep + path if path else "")}
        command = [
            sys.executable,
            "-m",
            "dynascan_async.testing.model",
            f"--port={self._requested_port}",
            f"--ready-file={ready}",
            "--quiet",
            *self.options.to_args(),
        ]
        with open(log_path, "wb") as log:
            self._process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log, env=env
            )
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if os.path.exists(ready):
                with open(ready, encoding="ascii") as handle:
                    self.port = int(handle.read())
                return self
            if self._process.poll() is not None:
                code = self._process.returncode
                message = self._log_tail()
                self.stop()
                raise RuntimeError(f"the model server exited with code {code}:\n{message}")
            time.sleep(0.02)
        message = self._log_tail()
        self.stop()
        raise RuntimeError(
            f"the model server did not start within {self.start_timeout} s:\n{message}"
        )

    def _log_tail(self) -> str:
        assert self._directory is not None
        with open(os.path.join(self._directory, "stderr"), "rb") as log:
            return log.read()[-4000:].decode("utf-8", "replace")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        directory, self._directory = self._directory, None
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)
        if self._requested_port == 0:
            self.port = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
