"""Which Arrow type holds which DynamoDB values: the schema, inferred or checked.

Every field of a schema made here carries its DynamoDB kind in its metadata
(``{"dynamodb": "SS"}``), at every depth, because the Arrow type alone cannot say it:
``list<string>`` is a string set or a list of strings, ``string`` is text or a number
too wide for ``decimal128``. The kind is what turns a column back into exactly the values
``TypeDeserializer`` gives (``_arrow_rows``). A schema passed in by the user may leave the
markers out; the kind then follows from the type (see ``kind_of``).

Inference looks at the raw attribute values of a page (``_columns``: one struct of tags per
attribute, ``struct<S: string, N: string, ...>``) and picks, per attribute, the tag most of
its values have. Values of any other tag, and values that fit no column type, are not
forced into the column: the converter keeps them in ``_rest``. A column whose values cannot
share one Arrow type (a list of strings and numbers mixed; a map holding such a list; a map
with no keys at all, which Parquet cannot store) gets no column: its values go to ``_rest``.
"""

from __future__ import annotations

__all__ = [
    "KIND",
    "REST",
    "element_field",
    "check_field",
    "infer_fields",
    "infer_schema",
    "kind_of",
    "number_type",
    "with_rest",
]

from decimal import Context, Decimal, InvalidOperation

import pyarrow as pa
import pyarrow.compute as pc

KIND = b"dynamodb"
REST = "_rest"
# The kinds a value of each raw tag can become, and the tags in the order ties are broken.
TAGS = ("S", "N", "B", "BOOL", "NULL", "SS", "NS", "BS", "L", "M")
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
DECIMAL_DIGITS = 38
_WIDE = Context(prec=1000)  # room for any DynamoDB number written out in full


def _field(name: str, type_: pa.DataType, kind: str) -> pa.Field:
    return pa.field(name, type_, nullable=True, metadata={KIND: kind.encode()})


def element_field(type_: pa.DataType, kind: str) -> pa.Field:
    """The item field of a list column, named as Parquet names it ("element", where pyarrow
    says "item"), so that a schema read back from a Parquet file is the one written."""
    return _field("element", type_, kind)


def kind_of(field: pa.Field) -> str:
    """The DynamoDB kind a field holds: its marker, or what its type says.

    Raises ``TypeError`` for a type no DynamoDB value is kept in exactly (floats round,
    timestamps and the like have no DynamoDB counterpart).
    """
    metadata = field.metadata or {}
    marked = metadata.get(KIND)
    type_ = field.type
    if marked is not None:
        kind: str = marked.decode()
        if kind not in TAGS:
            raise TypeError(f"field {field.name!r}: unknown DynamoDB kind {kind!r}")
        _check_marked(field, kind)
        return kind
    if pa.types.is_string(type_) or pa.types.is_large_string(type_):
        return "S"
    if pa.types.is_integer(type_) or pa.types.is_decimal(type_):
        return "N"
    if pa.types.is_binary(type_) or pa.types.is_large_binary(type_):
        return "B"
    if pa.types.is_boolean(type_):
        return "BOOL"
    if pa.types.is_null(type_):
        return "NULL"
    if pa.types.is_list(type_) or pa.types.is_large_list(type_):
        return "L"
    if pa.types.is_struct(type_):
        return "M"
    raise TypeError(
        f"field {field.name!r}: type {type_} cannot hold DynamoDB values exactly "
        "(use string, int64, decimal128, binary, bool, null, list or struct)"
    )


def _check_marked(field: pa.Field, kind: str) -> None:
    type_ = field.type
    is_list = pa.types.is_list(type_) or pa.types.is_large_list(type_)
    ok = {
        "S": pa.types.is_string(type_) or pa.types.is_large_string(type_),
        "N": pa.types.is_integer(type_)
        or pa.types.is_decimal(type_)
        or pa.types.is_string(type_)
        or pa.types.is_large_string(type_),
        "B": pa.types.is_binary(type_) or pa.types.is_large_binary(type_),
        "BOOL": pa.types.is_boolean(type_),
        "NULL": pa.types.is_null(type_),
        "SS": is_list,
        "NS": is_list,
        "BS": is_list,
        "L": is_list,
        "M": pa.types.is_struct(type_),
    }[kind]
    if not ok:
        raise TypeError(f"field {field.name!r}: a {type_} column cannot hold DynamoDB {kind}")


def check_field(field: pa.Field) -> None:
    """Raise ``TypeError`` now for a field no DynamoDB value could be put in."""
    kind = kind_of(field)
    type_ = field.type
    if kind in ("SS", "NS", "BS", "L"):
        element = type_.value_field
        inner = kind_of(element)
        wanted = {"SS": "S", "NS": "N", "BS": "B"}.get(kind)
        if wanted is not None and inner != wanted:
            raise TypeError(f"field {field.name!r}: a {kind} column holds {wanted} items")
        check_field(element)
    elif kind == "M":
        for child in type_:
            check_field(child)


def with_rest(schema: pa.Schema) -> pa.Schema:
    """``schema``, checked, with a ``_rest`` string column at the end if it has none."""
    for field in schema:
        if field.name != REST:
            check_field(field)
    index = schema.get_field_index(REST)
    if index >= 0:
        if not pa.types.is_string(schema.field(index).type):
            raise TypeError(f"the {REST} column is a string column (DynamoDB JSON text)")
        return schema
    return schema.append(pa.field(REST, pa.string()))


# -- inference ---------------------------------------------------------------------------


def number_type(texts: pa.Array) -> tuple[pa.DataType, str]:
    """The narrowest exact type for these numbers (their DynamoDB text): int64, else
    decimal128(38, s) when every value fits 38 digits at one scale, else their text."""
    present = texts.drop_null()
    try:
        pc.cast(present, pa.int64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    else:
        return pa.int64(), "N"
    scale = whole = 0
    for text in pc.unique(present).to_pylist():
        try:
            value = Decimal(text)
        except InvalidOperation:
            return pa.string(), "N"
        if not value.is_finite():
            return pa.string(), "N"
        # Trailing zeros take no room: 1.50 needs scale 1, 100 no scale at all.
        _, digits, exponent = value.normalize(_WIDE).as_tuple()
        assert isinstance(exponent, int)
        scale = max(scale, -exponent)
        whole = max(whole, len(digits) + exponent)
    if whole + scale <= DECIMAL_DIGITS:
        return pa.decimal128(DECIMAL_DIGITS, scale), "N"
    return pa.string(), "N"


def _tag(av: pa.StructArray, tag: str) -> pa.Array:
    return pc.struct_field(av, [av.type.get_field_index(tag)])


def infer_type(av: pa.StructArray, *, one_kind: bool = False) -> tuple[pa.DataType, str] | None:
    """The type of one attribute, from its raw values (a struct of tags); ``None``: none.

    The kind most values have wins (the others will go to ``_rest``), except with
    ``one_kind`` (the elements of lists): a list is typed only if its elements agree,
    ``NULL`` aside (a null element is a ``NULL``).
    """
    counts = {}
    for field in av.type:
        if field.name in TAGS:
            counts[field.name] = pc.count(_tag(av, field.name)).as_py()
    values = {tag: n for tag, n in counts.items() if n and tag != "NULL"}
    if not values:
        return pa.null(), "NULL"
    if one_kind and len(values) > 1:
        return None
    tag = max(values, key=lambda t: (values[t], -TAGS.index(t)))
    raw = _tag(av, tag)
    if tag == "S":
        return pa.string(), "S"
    if tag == "N":
        return number_type(raw)
    if tag == "B":
        return pa.binary(), "B"
    if tag == "BOOL":
        return pa.bool_(), "BOOL"
    if tag in ("SS", "NS", "BS"):
        inner_kind = tag[0]
        if inner_kind == "N":
            inner, _ = number_type(raw.flatten())
        else:
            inner = pa.string() if inner_kind == "S" else pa.binary()
        return pa.list_(element_field(inner, inner_kind)), tag
    if tag == "L":
        elements = raw.flatten()
        if len(elements) == 0 or not pa.types.is_struct(elements.type):
            return pa.list_(element_field(pa.null(), "NULL")), "L"
        inner_type = infer_type(elements, one_kind=True)
        if inner_type is None:
            return None
        return pa.list_(element_field(*inner_type)), "L"
    # "M": a struct of the keys seen, each typed as an attribute of its own.
    if not pa.types.is_struct(raw.type) or raw.type.num_fields == 0:
        return None
    children = infer_fields(raw)
    if children is None:
        return None
    return pa.struct(children), "M"


def infer_fields(items: pa.StructArray, *, top_level: bool = False) -> list[pa.Field] | None:
    """One field per attribute of these raw items (or map values), in order of appearance.

    For the items of a page (``top_level``), an attribute that cannot be typed is left out
    (its values go to ``_rest``, as do those of an attribute named ``_rest``); inside a map
    it makes the whole map untypable (``None``), because a map is kept or sent to ``_rest``
    as a whole.
    """
    fields = []
    for index, field in enumerate(items.type):
        if top_level and field.name == REST:
            continue
        av = pc.struct_field(items, [index])
        typed = infer_type(av) if pa.types.is_struct(av.type) else None
        if typed is None:
            if top_level:
                continue
            return None
        fields.append(_field(field.name, *typed))
    return fields


def infer_schema(items: pa.StructArray) -> pa.Schema:
    """A schema for raw items (``_columns``), ``_rest`` last."""
    fields = infer_fields(items, top_level=True) or []
    return pa.schema([*fields, pa.field(REST, pa.string())])
