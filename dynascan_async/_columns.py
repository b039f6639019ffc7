"""Scan pages to Arrow columns, without a Python object per item.

Two steps, both in C for the common case:

1. ``PageParser``: Arrow's JSON reader parses the whole page body. DynamoDB's JSON has a
   fixed shape (every attribute value is one object with one tag: ``{"S": "x"}``,
   ``{"N": "1.5"}``, ``{"L": [...]}``...), and every tag always holds the same JSON type,
   so the reader's own inference gives, per attribute, a ``struct`` of the tags it saw
   (``struct<S: string, N: string>``): the raw items. The one thing the reader does that
   would change a value is turning strings that look like timestamps into timestamps; so
   the parser keeps the types it has seen with every such type turned back into ``string``,
   hands them to the reader as the explicit schema of the next pages, and parses again the
   rare page on which something new looked like a timestamp. Exact text, always.
2. ``to_batch``: the raw items to a record batch of a fixed schema (``_arrow_types``): a
   tag's child taken as it is (strings, booleans), numbers cast from their text (int64 and
   decimal128 in C, after a check that rules out overflow; anything odd goes through
   ``Decimal`` one by one), binary decoded from base64, lists and maps rebuilt from their
   children. A value that does not fit its column (another tag, a number out of range, a
   map with a key the schema lacks, a ``NULL`` outside a list) is null in its column and
   kept, as DynamoDB JSON text, in ``_rest``, with every attribute the schema has no column
   for.

Neither step looks at an item on its own unless something does not fit.
"""

from __future__ import annotations

__all__ = ["PageColumns", "PageParser", "items_body", "to_batch"]

import json
from base64 import b64decode, b64encode
from decimal import Context, Decimal, InvalidOperation
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

from ._arrow_types import REST, infer_schema, kind_of, with_rest
from ._decode import binary_to_bytes

_WIDE = Context(prec=1000)  # DynamoDB's numbers have at most 38 digits, positional 170


# -- 1. the page body to raw items -----------------------------------------------------------


def _guessed(type_: pa.DataType) -> bool:
    """Whether the JSON reader made something of a string that is not a string."""
    if pa.types.is_struct(type_):
        return any(_guessed(field.type) for field in type_)
    if pa.types.is_list(type_):
        return _guessed(type_.value_type)
    return bool(pa.types.is_temporal(type_))


def _as_text(type_: pa.DataType) -> pa.DataType:
    if pa.types.is_struct(type_):
        return pa.struct([field.with_type(_as_text(field.type)) for field in type_])
    if pa.types.is_list(type_):
        return pa.list_(type_.value_field.with_type(_as_text(type_.value_type)))
    return pa.string() if pa.types.is_temporal(type_) else type_


def _merge(old: pa.DataType, new: pa.DataType) -> pa.DataType:
    """Both types' fields (the raw shapes of two pages): keys and tags seen on either."""
    if pa.types.is_struct(old) and pa.types.is_struct(new):
        fields = {field.name: field for field in old}
        for field in new:
            known = fields.get(field.name)
            fields[field.name] = (
                field if known is None else known.with_type(_merge(known.type, field.type))
            )
        return pa.struct(list(fields.values()))
    if pa.types.is_list(old) and pa.types.is_list(new):
        if pa.types.is_null(old.value_type):
            return new
        if pa.types.is_null(new.value_type):
            return old
        return pa.list_(old.value_field.with_type(_merge(old.value_type, new.value_type)))
    return new if pa.types.is_null(old) else old


def _known(type_: pa.DataType) -> pa.DataType | None:
    """``type_`` without the parts the reader only saw empty (``null``: an empty list), which
    as an explicit type would refuse the values a later page has there."""
    if pa.types.is_null(type_):
        return None
    if pa.types.is_struct(type_):
        fields = []
        for field in type_:
            known = _known(field.type)
            if known is not None:
                fields.append(field.with_type(known))
        return pa.struct(fields)
    if pa.types.is_list(type_):
        inner = _known(type_.value_type)
        return None if inner is None else pa.list_(type_.value_field.with_type(inner))
    return type_


def _capacity_as_double(schema: pa.StructType) -> pa.StructType:
    """Capacity figures as doubles: a page may say ``1`` where the next says ``0.5``, and an
    explicit int64 would refuse the ``0.5``. (Attribute values hold no JSON numbers; the
    answer's only other ones, ``Count`` and ``ScannedCount``, are whole.)"""

    def doubles(type_: pa.DataType) -> pa.DataType:
        if pa.types.is_struct(type_):
            return pa.struct([field.with_type(doubles(field.type)) for field in type_])
        return pa.float64() if pa.types.is_integer(type_) else type_

    return pa.struct(
        [
            field.with_type(doubles(field.type)) if field.name == "ConsumedCapacity" else field
            for field in schema
        ]
    )


def _strip(value: Any) -> Any:
    """A parsed attribute value back to its DynamoDB JSON form (one tag, no ``None``s)."""
    for tag, inner in value.items():
        if inner is None:
            continue
        if tag == "M":
            return {"M": {k: _strip(v) for k, v in inner.items() if v is not None}}
        if tag == "L":
            return {"L": [_strip(v) for v in inner]}
        return {tag: inner}
    raise ValueError(f"an attribute value with no type tag: {value!r}")


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if v is not None}
    return value


def _wire_default(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return b64encode(value).decode("ascii")
    if isinstance(value, set | frozenset):
        return list(value)
    raise TypeError(f"not a DynamoDB JSON value: {type(value).__name__}")


def items_body(items: Any, **rest: Any) -> bytes:
    """Raw items (AttributeValue dicts, binary as bytes or base64) as a page body."""
    return json.dumps(
        {"Items": list(items), **rest}, default=_wire_default, separators=(",", ":")
    ).encode()


def _read_options(block: int) -> pa_json.ReadOptions:
    # One thread: pages are parsed where they arrive, as the Python decoder would be.
    return pa_json.ReadOptions(use_threads=False, block_size=block)


# Bodies are about 1 MB (DynamoDB's page size, plus JSON around it); one block holds them.
_BLOCK = 8 << 20
_READ = _read_options(_BLOCK)


class PageParser:
    """Page bodies to the answer's shape with ``Items`` as raw items (a ``StructArray``).

    One per scan: it carries the shapes seen so far (see the module docstring).
    """

    __slots__ = ("_explicit", "_options")

    def __init__(self) -> None:
        self._explicit: pa.Schema | None = None
        # The reader's options, made once per shape (a few per scan), not once per page.
        self._options: dict[bool, pa_json.ParseOptions] = {}

    def _read(self, body: bytes) -> pa.Table:
        # A body is one JSON line (unless some server writes it over many lines), read as
        # one block: the reader must see the whole line at once.
        multiline = b"\n" in body
        options = self._options.get(multiline)
        if options is None:
            options = self._options[multiline] = pa_json.ParseOptions(
                explicit_schema=self._explicit,
                unexpected_field_behavior="infer",
                newlines_in_values=multiline,
            )
        read = _READ if len(body) < _BLOCK else _read_options(len(body) + 1)
        return pa_json.read_json(pa.BufferReader(body), read_options=read, parse_options=options)

    def table(self, body: bytes) -> pa.Table:
        """The body parsed, every string kept as the text it was."""
        table = self._read(body)
        if self._explicit is not None and table.schema.equals(self._explicit):
            return table  # nothing new: every string was read as a string
        seen = pa.struct(list(table.schema))
        guessed = _guessed(seen)
        if guessed:
            seen = _as_text(seen)
        known = None if self._explicit is None else pa.struct(list(self._explicit))
        merged = _known(seen if known is None else _merge(known, seen))
        if merged is not None:
            merged = _capacity_as_double(merged)
        if merged is not None and merged != known:
            self._explicit = pa.schema(list(merged))
            self._options.clear()
        if guessed:
            table = self._read(body)
        return table

    def parse(self, metadata: dict[str, Any], body: bytes | None) -> dict[str, Any]:
        if body is None:
            # botocore parsed this one itself (a stubbed client): back to the wire form.
            response = metadata
            metadata = response.get("ResponseMetadata", {})
            body = items_body(
                response.get("Items", []),
                **{k: v for k, v in response.items() if k not in ("Items", "ResponseMetadata")},
            )
        table = self.table(body)
        page: dict[str, Any] = {"ResponseMetadata": metadata, "Items": []}
        names = table.schema.names
        for name in ("Count", "ScannedCount", "ConsumedCapacity"):
            if name in names:
                value = table.column(name)[0].as_py()
                if value is not None:
                    page[name] = _plain(value)
        if "LastEvaluatedKey" in names:
            key = table.column("LastEvaluatedKey")[0].as_py()
            if key:
                key = {name: _strip(av) for name, av in key.items() if av is not None}
                binary_to_bytes([key])
                page["LastEvaluatedKey"] = key
        if "Items" in names:
            listed = table.column("Items").combine_chunks()
            if pa.types.is_list(listed.type) and pa.types.is_struct(listed.type.value_type):
                page["Items"] = listed.flatten()
        return page


# -- 2. raw items to a record batch ----------------------------------------------------------


def _or(mask: pa.Array | None, other: pa.Array | None) -> pa.Array | None:
    if other is None:
        return mask
    if mask is None:
        return other
    return pc.or_(mask, other)


def _tag(av: pa.StructArray, name: str) -> pa.Array | None:
    index = av.type.get_field_index(name)
    return None if index < 0 else pc.struct_field(av, [index])


def _rows_of(parents: pa.Array, bad: pa.Array, n: int) -> pa.Array:
    """Rows (of ``n``) that hold a bad element of a list, from the elements' parent rows."""
    rows = pc.filter(parents, bad)
    return pc.is_in(pa.array(range(n), pa.int64()), value_set=rows.cast(pa.int64()))


def _int_bounds(type_: pa.DataType) -> tuple[int, int]:
    bits = type_.bit_width
    if pa.types.is_signed_integer(type_):
        return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1


def _fits(value: Decimal, type_: pa.DataType) -> bool:
    if not value.is_finite():
        return False
    if pa.types.is_integer(type_):
        low, high = _int_bounds(type_)
        return value == value.to_integral_value(context=_WIDE) and low <= value <= high
    _, digits, exponent = value.normalize(_WIDE).as_tuple()
    assert isinstance(exponent, int)
    scale = max(0, -exponent)
    whole = max(0, len(digits) + exponent)
    return bool(scale <= type_.scale and whole <= type_.precision - type_.scale)


def _numbers_one_by_one(raw: pa.Array, type_: pa.DataType) -> tuple[pa.Array, pa.Array | None]:
    out: list[Any] = []
    bad: list[bool] = []
    integer = pa.types.is_integer(type_)
    for text in raw.to_pylist():
        if text is None:
            out.append(None)
            bad.append(False)
            continue
        try:
            value = Decimal(text)
        except InvalidOperation:
            value = Decimal("NaN")
        if _fits(value, type_):
            # Normalized: pyarrow turns a Decimal with more digits than the type into
            # garbage (or an error), even where the value itself fits (1.70...0E-28).
            out.append(int(value) if integer else value.normalize(_WIDE))
            bad.append(False)
        else:
            out.append(None)
            bad.append(True)
    return pa.array(out, type_), (pa.array(bad) if any(bad) else None)


def _numbers(raw: pa.Array, type_: pa.DataType) -> tuple[pa.Array, pa.Array | None]:
    if pa.types.is_string(type_) or pa.types.is_large_string(type_):
        return raw.cast(type_), None  # numbers as their own text: exact by definition
    if pa.types.is_integer(type_):
        try:
            return pc.cast(raw, type_), None  # Arrow parses integers strictly (range too)
        except pa.ArrowInvalid:
            return _numbers_one_by_one(raw, type_)
    # decimal: Arrow's cast does not check precision (39 digits wrap around), so the text
    # is checked first to have no more digits than the type holds.
    whole = type_.precision - type_.scale
    if whole > 0:
        pattern = f"^-?[0-9]{{1,{whole}}}" + (
            f"(\\.[0-9]{{1,{type_.scale}}})?$" if type_.scale else "$"
        )
        plain = pc.match_substring_regex(raw, pattern)
        if pc.all(pc.or_kleene(plain, pc.is_null(raw))).as_py():
            try:
                return pc.cast(raw, type_), None
            except pa.ArrowInvalid:  # pragma: no cover - ruled out by the check above
                pass
    return _numbers_one_by_one(raw, type_)


def _binary(raw: pa.Array, type_: pa.DataType) -> pa.Array:
    return pa.array([None if v is None else b64decode(v) for v in raw.to_pylist()], type_)


def _scalar(kind: str, raw: pa.Array, type_: pa.DataType) -> tuple[pa.Array, pa.Array | None]:
    if kind == "N":
        return _numbers(raw, type_)
    if kind == "B":
        return _binary(raw, type_), None
    if raw.type == type_:
        return raw, None
    if not pa.types.is_string(raw.type):
        # The parser reads every string as text (see PageParser.table); anything else here
        # would be a value changed on the way, so fail loudly rather than cast it.
        raise TypeError(f"a {kind} value was read as {raw.type}, not as text")
    return raw.cast(type_), None


def _list(kind: str, raw: pa.Array, type_: pa.DataType) -> tuple[pa.Array, pa.Array | None]:
    element = type_.value_field
    values = raw.flatten()
    if kind == "L":
        converted, bad = _value(element, values, in_list=True)
    else:
        converted, bad = _scalar(kind[0], values, element.type)
    n = len(raw)
    lengths = pc.fill_null(pc.list_value_length(raw), 0)
    offset_type = pa.int64() if pa.types.is_large_list(type_) else pa.int32()
    offsets = pa.concat_arrays(
        [pa.array([0], offset_type), pc.cumulative_sum(lengths).cast(offset_type)]
    )
    array_class = pa.LargeListArray if pa.types.is_large_list(type_) else pa.ListArray
    out = array_class.from_arrays(offsets, converted, type=type_, mask=raw.is_null())
    row_bad = None
    if bad is not None and pc.any(bad).as_py():
        row_bad = _rows_of(pc.list_parent_indices(raw), bad, n)
    return out, row_bad


def _map(raw: pa.Array, type_: pa.StructType) -> tuple[pa.Array, pa.Array | None]:
    n = len(raw)
    children = []
    bad: pa.Array | None = None
    names = set()
    for field in type_:
        names.add(field.name)
        av = _tag(raw, field.name)
        if av is None:
            children.append(pa.nulls(n, field.type))
            continue
        child, child_bad = _value(field, av, in_list=False)
        children.append(child)
        bad = _or(bad, child_bad)
    for field in raw.type:
        if field.name not in names:  # a key the schema has no field for
            bad = _or(bad, pc.is_valid(_tag(raw, field.name)))
    return pa.StructArray.from_arrays(children, fields=list(type_), mask=raw.is_null()), bad


def _value(field: pa.Field, av: pa.Array, *, in_list: bool) -> tuple[pa.Array, pa.Array | None]:
    """One attribute's (or list element's) raw values to ``field``'s type; and the rows
    whose value does not fit it (``None``: all fit)."""
    n = len(av)
    type_ = field.type
    if not pa.types.is_struct(av.type):  # no value at all (elements of empty lists)
        return pa.nulls(n, type_), None
    kind = kind_of(field)
    bad: pa.Array | None = None
    raw = None
    for tag_field in av.type:
        tag = tag_field.name
        if tag == kind:
            raw = _tag(av, tag)
            if tag == "NULL" and not in_list:  # outside a list, null means "absent"
                bad = _or(bad, pc.is_valid(raw))
        elif not (in_list and tag == "NULL"):
            # Another kind of value, or a NULL where null means "absent": not this column's.
            bad = _or(bad, pc.is_valid(_tag(av, tag)))
    if raw is None or kind == "NULL":
        return pa.nulls(n, type_), bad
    if kind in ("SS", "NS", "BS", "L"):
        out, inner_bad = _list(kind, raw, type_)
    elif kind == "M":
        if not pa.types.is_struct(raw.type):
            return pa.nulls(n, type_), _or(bad, pc.is_valid(raw))
        out, inner_bad = _map(raw, type_)
    else:
        out, inner_bad = _scalar(kind, raw, type_)
    return out, _or(bad, inner_bad)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _rest(items: pa.StructArray, leftovers: list[tuple[int, pa.Array]]) -> pa.Array:
    n = len(items)
    by_row: dict[int, dict[str, Any]] = {}
    names = items.type
    for index, mask in sorted(leftovers, key=lambda pair: pair[0]):
        if not pc.any(mask).as_py():
            continue
        rows = pc.indices_nonzero(mask)
        name = names.field(index).name
        values = pc.struct_field(items, [index]).take(rows).to_pylist()
        for row, value in zip(rows.to_pylist(), values, strict=True):
            by_row.setdefault(row, {})[name] = _strip(value)
    if not by_row:
        return pa.nulls(n, pa.string())
    return pa.array([_dumps(by_row[r]) if r in by_row else None for r in range(n)], pa.string())


def to_batch(items: pa.StructArray, schema: pa.Schema) -> pa.RecordBatch:
    """Raw items to a batch of exactly ``schema`` (which has a ``_rest`` column)."""
    n = len(items)
    columns: list[pa.Array] = []
    leftovers: list[tuple[int, pa.Array]] = []
    known = set(schema.names)
    for field in schema:
        if field.name == REST:
            columns.append(pa.nulls(0))  # placeholder, filled below
            continue
        index = items.type.get_field_index(field.name)
        if index < 0:
            columns.append(pa.nulls(n, field.type))
            continue
        column, bad = _value(field, pc.struct_field(items, [index]), in_list=False)
        if bad is not None:
            if pc.any(bad).as_py():
                column = pc.if_else(bad, pa.scalar(None, field.type), column)
            leftovers.append((index, bad))
        columns.append(column)
    for index, field in enumerate(items.type):
        if field.name not in known or field.name == REST:
            leftovers.append((index, pc.is_valid(pc.struct_field(items, [index]))))
    columns[schema.get_field_index(REST)] = _rest(items, leftovers)
    return pa.RecordBatch.from_arrays(columns, schema=schema)


class PageColumns:
    """The engine's hook (``Options.columns``): page bodies in, record batches out.

    The schema is ``schema`` (with ``_rest``) or, if ``None``, inferred from the first page
    with items that reaches ``convert``, and then kept for the whole scan.
    """

    __slots__ = ("_parser", "schema")

    def __init__(self, schema: pa.Schema | None) -> None:
        self._parser = PageParser()
        self.schema = with_rest(schema) if schema is not None else None

    def parse(self, metadata: dict[str, Any], body: bytes | None) -> dict[str, Any]:
        return self._parser.parse(metadata, body)

    def convert(self, items: pa.StructArray) -> list[pa.RecordBatch]:
        schema = self.schema
        if schema is None:
            schema = self.schema = infer_schema(items)
        return [to_batch(items, schema)]
