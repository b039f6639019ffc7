"""The Arrow type mapping loses nothing: every AttributeValue kind, nested, sparse, mixed.

Raw items are turned into a record batch exactly as a scan page is (``items_to_batch`` runs
the page parser and converter of ``scan_batches``), read back with ``arrow.to_items``, and
compared with boto3's ``TypeDeserializer`` on the raw items (numbers by value: a column
holds the number, not the way it was written; where ``TypeDeserializer`` raises on a valid
number, with the exact value).
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dynascan_async import arrow
from dynascan_async._columns import PageParser, items_body, to_batch
from tests.support.arrow_help import by_value
from tests.support.helpers import canon
from tests.test_decode import attribute_values, expected_value, items, number_texts

Item = dict[str, Any]


def expected(item: Item) -> Item:
    return {name: expected_value(av) for name, av in item.items()}


def assert_round_trip(got: list[Item], raw: list[Item]) -> None:
    assert len(got) == len(raw)
    for back, item in zip(got, raw, strict=True):
        assert canon(by_value(back)) == canon(by_value(expected(item))), (item, back)


def rest_of(batch: pa.RecordBatch) -> list[Any]:
    return [None if t is None else json.loads(t) for t in batch.column(arrow.REST).to_pylist()]


# -- properties ---------------------------------------------------------------------------------

# Items that share attribute names, so that columns form, with every kind under each name.
shared_names = st.sampled_from(["a", "b", "c", "pk", "_rest"])
dense_items = st.dictionaries(shared_names, attribute_values, max_size=5)


@settings(max_examples=40, deadline=None)
@given(page=st.lists(st.one_of(items, dense_items), min_size=1, max_size=8))
def test_one_page_round_trips(page: list[Item]) -> None:
    batch = arrow.items_to_batch(page)
    assert batch.schema.names[-1] == arrow.REST
    assert_round_trip(arrow.to_items(batch), page)


@settings(max_examples=40, deadline=None)
@given(
    first=st.lists(dense_items, min_size=1, max_size=6),
    later=st.lists(st.one_of(dense_items, items), min_size=1, max_size=6),
)
def test_later_pages_keep_the_first_pages_schema(first: list[Item], later: list[Item]) -> None:
    """Attributes new on a later page, and values that disagree with their column, go to
    ``_rest``; the batch still has exactly the first page's schema."""
    schema = arrow.infer_schema(first)
    batch = arrow.items_to_batch(later, schema)
    assert batch.schema == schema
    assert_round_trip(arrow.to_items(batch), later)


@settings(max_examples=25, deadline=None)
@given(page=st.lists(dense_items, min_size=1, max_size=8), data=st.data())
def test_a_resumed_page_is_sliced(page: list[Item], data: st.DataObject) -> None:
    """A page resumed mid-way (``skip``) converts only what follows, lists and maps too."""
    skip = data.draw(st.integers(0, len(page) - 1))
    raw = PageParser().parse({}, items_body(page))["Items"]
    schema = arrow.infer_schema(page)
    batch = to_batch(raw[skip:], schema)
    assert_round_trip(arrow.to_items(batch), page[skip:])


@settings(max_examples=25, deadline=None)
@given(pages=st.lists(st.lists(dense_items, max_size=4), min_size=2, max_size=4))
def test_one_parser_over_many_pages(pages: list[list[Item]]) -> None:
    """The parser carries the shapes seen from page to page; nothing of that leaks."""
    parser = PageParser()
    schema = arrow.infer_schema([item for page in pages for item in page])
    for page in pages:
        raw = parser.parse({}, items_body(page, Count=len(page)))["Items"]
        if not page:
            assert len(raw) == 0
            continue
        assert_round_trip(arrow.to_items(to_batch(raw, schema)), page)


number_columns = st.one_of(
    st.sampled_from(
        [pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.uint8(), pa.uint32(), pa.uint64()]
    ),
    st.integers(1, 38).flatmap(lambda p: st.integers(0, p).map(lambda s: pa.decimal128(p, s))),
    st.integers(1, 76).flatmap(lambda p: st.integers(0, p).map(lambda s: pa.decimal256(p, s))),
    st.just(pa.string()).map(lambda _: pa.field("x", pa.string(), metadata={"dynamodb": "N"})),
)


@settings(max_examples=60, deadline=None)
@given(column=number_columns, texts=st.lists(number_texts, min_size=1, max_size=6))
def test_numbers_in_a_column_of_your_own(column: Any, texts: list[str]) -> None:
    """Any integer or decimal column: a number is in it exactly, or in ``_rest``."""
    field = column if isinstance(column, pa.Field) else pa.field("x", column)
    page = [{"x": {"N": text}} for text in texts]
    batch = arrow.items_to_batch(page, pa.schema([field]))
    assert_round_trip(arrow.to_items(batch), page)
    for text, value in zip(texts, batch.column("x").to_pylist(), strict=True):
        if value is not None:
            assert Decimal(value) == Decimal(text)


@settings(max_examples=25, deadline=None)
@given(page=st.lists(dense_items, min_size=1, max_size=6))
def test_large_types_of_your_own(page: list[Item]) -> None:
    """A schema with large_string, large_binary and large_list holds what the small ones do."""

    def large(type_: pa.DataType) -> pa.DataType:
        if pa.types.is_string(type_):
            return pa.large_string()
        if pa.types.is_binary(type_):
            return pa.large_binary()
        if pa.types.is_list(type_):
            return pa.large_list(type_.value_field.with_type(large(type_.value_type)))
        if pa.types.is_struct(type_):
            return pa.struct([f.with_type(large(f.type)) for f in type_])
        return type_

    inferred = arrow.infer_schema(page)
    schema = pa.schema(
        [f if f.name == arrow.REST else f.with_type(large(f.type)) for f in inferred]
    )
    batch = arrow.items_to_batch(page, schema)
    assert batch.schema == schema
    assert_round_trip(arrow.to_items(batch), page)


# -- the type table, case by case -----------------------------------------------------------------


def column_type(values: list[dict[str, Any]]) -> pa.DataType:
    return arrow.infer_schema([{"x": v} for v in values]).field("x").type


@pytest.mark.parametrize(
    ("values", "type_"),
    [
        ([{"S": "a"}], pa.string()),
        ([{"N": "1"}, {"N": "-9223372036854775808"}], pa.int64()),
        ([{"N": "9223372036854775808"}], pa.decimal128(38, 0)),
        ([{"N": "1.5"}, {"N": "-20"}, {"N": "0.125"}], pa.decimal128(38, 3)),
        ([{"N": "9" * 38}], pa.decimal128(38, 0)),
        ([{"N": "1" + "0" * 39}], pa.string()),  # 40 digits: DynamoDB's, not decimal128's
        ([{"N": "1E-130"}], pa.string()),
        ([{"N": "0." + "0" * 36 + "1"}], pa.decimal128(38, 37)),
        ([{"B": b"\x00\x01"}], pa.binary()),
        ([{"BOOL": True}], pa.bool_()),
        ([{"NULL": True}], pa.null()),
        ([{"SS": ["a"]}], pa.list_(pa.string())),
        ([{"NS": ["1", "2"]}], pa.list_(pa.int64())),
        ([{"BS": [b"\x00"]}], pa.list_(pa.binary())),
        ([{"L": [{"S": "a"}, {"NULL": True}]}], pa.list_(pa.string())),
        ([{"L": []}], pa.list_(pa.null())),
        ([{"M": {"k": {"N": "1"}}}, {"M": {"j": {"S": "x"}}}], None),
        ([{"S": "a"}, {"S": "b"}, {"N": "1"}], pa.string()),  # the most common kind wins
    ],
)
def test_column_types(values: list[dict[str, Any]], type_: pa.DataType | None) -> None:
    got = column_type(values)
    if type_ is None:
        assert got == pa.struct([("k", pa.int64()), ("j", pa.string())])
    else:
        assert got == type_  # metadata markers aside
    page = [{"x": v} for v in values]
    assert_round_trip(arrow.to_items(arrow.items_to_batch(page)), page)


@pytest.mark.parametrize(
    "values",
    [
        [{"L": [{"S": "a"}, {"N": "1"}]}],  # a list of mixed kinds
        [{"M": {}}],  # a map with no keys: Parquet cannot hold an empty struct
        [{"M": {"k": {"L": [{"S": "a"}, {"BOOL": True}]}}}],
    ],
)
def test_values_no_column_can_hold_live_in_rest(values: list[dict[str, Any]]) -> None:
    page = [{"x": v, "pk": {"S": str(i)}} for i, v in enumerate(values)]
    batch = arrow.items_to_batch(page)
    assert batch.schema.names == ["pk", arrow.REST]
    assert rest_of(batch) == [{"x": v} for v in values]
    assert_round_trip(arrow.to_items(batch), page)


def test_null_is_kept_apart_from_absent() -> None:
    page: list[Item] = [
        {"pk": {"S": "1"}, "x": {"NULL": True}},
        {"pk": {"S": "2"}},
        {"pk": {"S": "3"}, "m": {"M": {"k": {"NULL": True}}}},
        {"pk": {"S": "4"}, "m": {"M": {}}},
        {"pk": {"S": "5"}, "l": {"L": [{"NULL": True}, {"S": "a"}]}},
    ]
    batch = arrow.items_to_batch(page)
    rest = rest_of(batch)
    assert rest[0] == {"x": {"NULL": True}}
    assert rest[1] is None
    assert rest[2] == {"m": {"M": {"k": {"NULL": True}}}}  # a NULL in a map: the map, whole
    assert batch.column("l").to_pylist()[4] == [None, "a"]  # in a list, null is NULL
    assert_round_trip(arrow.to_items(batch), page)


def test_timestamp_like_text_stays_text() -> None:
    """Arrow's JSON reader would turn these strings into timestamps; they stay as written,
    in a column of the first page, in a new attribute of a later page, in a map and a key."""
    parser = PageParser()
    dates = ["2026-11-01", "2026-11-01T10:00:00Z", "2026-11-01 10:00"]
    first = [{"when": {"S": d}} for d in dates]
    later: list[Item] = [
        {"when": {"S": d}, "new": {"S": d}, "m": {"M": {"d": {"S": d}}}, "ss": {"SS": [d]}}
        for d in dates
    ]
    raw = parser.parse({}, items_body(first))["Items"]
    schema = arrow.infer_schema(first)
    assert schema.field("when").type == pa.string()
    assert to_batch(raw, schema).column("when").to_pylist() == dates
    page = parser.parse(
        {}, items_body(later, LastEvaluatedKey={"when": {"S": dates[0]}, "b": {"B": b"\x01"}})
    )
    assert page["LastEvaluatedKey"] == {"when": {"S": dates[0]}, "b": {"B": b"\x01"}}
    assert_round_trip(arrow.to_items(to_batch(page["Items"], schema)), later)


@pytest.mark.parametrize(
    ("type_", "texts", "fit"),
    [
        (pa.int64(), ["1", "-0", "1E+2", "+5", "1.0"], [True] * 5),
        (pa.int64(), ["9223372036854775808", "1.5", "1E+100"], [False] * 3),
        (pa.int8(), ["127", "-128", "128"], [True, True, False]),
        (pa.uint8(), ["255", "-1"], [True, False]),
        (pa.decimal128(38, 2), ["1.25", "-1.5", "1E+2", "1.250", "100.00"], [True] * 5),
        (pa.decimal128(38, 2), ["1.125", "9" * 37, "1E-130", "1E+125"], [False] * 4),
        (pa.decimal128(5, 2), ["999.99", "1000"], [True, False]),
        # Fits once its trailing zeros are dropped: 80 digits as written (pyarrow would
        # make 0 or an error of the Decimal as it is).
        (pa.decimal128(38, 34), ["1.701338" + "0" * 74 + "E-28"], [True]),
        (pa.int64(), ["1" + "0" * 30 + "E-20"], [True]),
    ],
)
def test_numbers_that_do_not_fit_their_column_go_to_rest(
    type_: pa.DataType, texts: list[str], fit: list[bool]
) -> None:
    schema = pa.schema([("x", type_)])
    page = [{"x": {"N": t}} for t in texts]
    batch = arrow.items_to_batch(page, schema)
    column = batch.column("x").to_pylist()
    for text, value, fits in zip(texts, column, fit, strict=True):
        if fits:
            assert Decimal(value) == Decimal(text)
        else:
            assert value is None
    assert [r is None for r in rest_of(batch)] == fit
    assert_round_trip(arrow.to_items(batch), page)


def test_an_attribute_named_rest_is_kept() -> None:
    page: list[Item] = [{"_rest": {"S": "mine"}, "pk": {"S": "1"}}]
    batch = arrow.items_to_batch(page)
    assert batch.schema.names == ["pk", arrow.REST]
    assert_round_trip(arrow.to_items(batch), page)


def test_user_schema_markers() -> None:
    sets = pa.field("tags", pa.list_(pa.string()), metadata={"dynamodb": "SS"})
    text = pa.field("n", pa.string(), metadata={"dynamodb": "N"})
    schema = pa.schema([sets, text, ("plain", pa.list_(pa.string()))])
    page: list[Item] = [
        {"tags": {"SS": ["a", "b"]}, "n": {"N": "1E-130"}, "plain": {"SS": ["x"]}},
        {"tags": {"L": [{"S": "a"}]}, "plain": {"L": [{"S": "y"}]}},
    ]
    batch = arrow.items_to_batch(page, schema)
    assert batch.column("tags").to_pylist() == [["a", "b"], None]
    assert batch.column("n").to_pylist() == ["1E-130", None]
    assert batch.column("plain").to_pylist() == [None, ["y"]]  # a plain list is "L"
    assert rest_of(batch) == [{"plain": {"SS": ["x"]}}, {"tags": {"L": [{"S": "a"}]}}]
    assert_round_trip(arrow.to_items(batch), page)


@pytest.mark.parametrize(
    ("field", "message"),
    [
        (pa.field("x", pa.float64()), "cannot hold DynamoDB values exactly"),
        (pa.field("x", pa.timestamp("s")), "cannot hold DynamoDB values exactly"),
        (pa.field("x", pa.int64(), metadata={"dynamodb": "S"}), "cannot hold DynamoDB S"),
        (pa.field("x", pa.string(), metadata={"dynamodb": "Q"}), "unknown DynamoDB kind"),
        (
            pa.field("x", pa.list_(pa.int64()), metadata={"dynamodb": "SS"}),
            "holds S items",
        ),
        (pa.field("x", pa.struct([("y", pa.float32())])), "cannot hold DynamoDB values"),
    ],
)
def test_bad_schemas(field: pa.Field, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        arrow.items_to_batch([], pa.schema([field]))


def test_rest_must_be_text() -> None:
    with pytest.raises(TypeError, match="_rest"):
        arrow.items_to_batch([], pa.schema([("_rest", pa.int64())]))


# -- the page parser -------------------------------------------------------------------------------


def test_page_metadata_is_read() -> None:
    parser = PageParser()
    page = [{"pk": {"S": "a"}, "b": {"B": b"\x00\xff"}}]
    first = parser.parse(
        {"HTTPStatusCode": 200},
        items_body(page, Count=1, ScannedCount=3, ConsumedCapacity={"CapacityUnits": 1}),
    )
    assert first["Count"] == 1
    assert first["ScannedCount"] == 3
    assert first["ConsumedCapacity"] == {"CapacityUnits": 1}
    assert first["ResponseMetadata"] == {"HTTPStatusCode": 200}
    assert "LastEvaluatedKey" not in first
    # A later page's capacity may be fractional where the first one's was whole.
    later = parser.parse(
        {},
        items_body(
            page,
            Count=1,
            ConsumedCapacity={"CapacityUnits": 0.5, "TableName": "t"},
            LastEvaluatedKey={"pk": {"S": "a"}, "b": {"B": b"\x00\xff"}},
        ),
    )
    assert later["ConsumedCapacity"] == {"CapacityUnits": 0.5, "TableName": "t"}
    assert later["LastEvaluatedKey"] == {"pk": {"S": "a"}, "b": {"B": b"\x00\xff"}}
    assert_round_trip(arrow.to_items(to_batch(later["Items"], arrow.infer_schema(page))), page)


def test_a_page_botocore_parsed_itself() -> None:
    """No body (a stubbed client): botocore's own answer, binary as bytes, is converted."""
    page: list[Item] = [{"pk": {"S": "a"}, "b": {"B": b"\x01"}, "bs": {"BS": [b"\x02"]}}]
    response = {
        "Items": page,
        "Count": 1,
        "ScannedCount": 1,
        "LastEvaluatedKey": {"pk": {"S": "a"}},
        "ResponseMetadata": {"HTTPStatusCode": 200},
    }
    parsed = PageParser().parse(response, None)
    assert parsed["ResponseMetadata"] == {"HTTPStatusCode": 200}
    assert parsed["LastEvaluatedKey"] == {"pk": {"S": "a"}}
    assert_round_trip(arrow.to_items(to_batch(parsed["Items"], arrow.infer_schema(page))), page)


def test_a_body_written_over_many_lines() -> None:
    page: list[Item] = [{"pk": {"S": "a\nb"}, "m": {"M": {"k": {"N": "1"}}}}]
    body = json.dumps({"Items": page, "Count": 1}, indent=2).encode()
    parsed = PageParser().parse({}, body)
    assert_round_trip(arrow.to_items(to_batch(parsed["Items"], arrow.infer_schema(page))), page)


def test_select_count_and_empty_pages() -> None:
    parser = PageParser()
    assert len(parser.parse({}, b'{"Count":5,"ScannedCount":5}')["Items"]) == 0
    assert len(parser.parse({}, b'{"Items":[],"Count":0,"ScannedCount":5}')["Items"]) == 0
    # An empty page first does not stop the next one's items from being read.
    page: list[Item] = [{"pk": {"S": "a"}}]
    parsed = parser.parse({}, items_body(page, Count=1))
    assert_round_trip(arrow.to_items(to_batch(parsed["Items"], arrow.infer_schema(page))), page)
