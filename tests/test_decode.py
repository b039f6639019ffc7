"""The decoder agrees with boto3's TypeDeserializer, except where that raises on valid numbers."""

from __future__ import annotations

import base64
import decimal
import importlib.util
import sys
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from boto3.dynamodb.types import (  # type: ignore[import-untyped, unused-ignore]
    Binary,
    TypeDeserializer,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from dynascan_async import _decode
from dynascan_async._decode import binary_to_bytes, decode_item, decode_items, decode_value

# Any: boto3-stubs, where installed, wants TypedDicts, which the generated values are not.
TD: Any = TypeDeserializer()
DECODE_PY = Path(_decode.__file__)

# DynamoDB numbers: up to 38 significant digits, magnitude 1E-130 to 9.99...E+125, or zero.
MAX_DIGITS = 38
MIN_ADJUSTED_EXPONENT = -130
MAX_ADJUSTED_EXPONENT = 125


# --- comparing results ----------------------------------------------------------------------


def assert_same(actual: Any, expected: Any, path: str = "$") -> None:
    """Equal, of the same type all the way down, and Decimals with the same exponent and sign."""
    assert type(actual) is type(expected), f"{path}: {type(actual)} is not {type(expected)}"
    if isinstance(expected, Decimal):
        assert actual == expected, f"{path}: {actual!r} != {expected!r}"
        assert str(actual) == str(expected), f"{path}: {actual!r} is not written {expected!r}"
    elif isinstance(expected, dict):
        assert actual.keys() == expected.keys(), path
        for key, value in expected.items():
            assert_same(actual[key], value, f"{path}.{key}")
    elif isinstance(expected, list):
        assert len(actual) == len(expected), path
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
            assert_same(a, e, f"{path}[{i}]")
    elif isinstance(expected, set):
        assert len(actual) == len(expected), path
        # Set members are compared one by one so that Decimal exponents and member types count.
        members = {member: member for member in actual}
        for e in expected:
            assert e in members, f"{path}: {e!r} missing from {actual!r}"
            assert_same(members[e], e, f"{path}{{{e!r}}}")
    elif isinstance(expected, Binary):
        expected_binary: Any = expected  # boto3-stubs leave out Binary.value
        assert type(actual.value) is type(expected_binary.value), path
        assert actual.value == expected_binary.value, f"{path}: {actual!r} != {expected!r}"
    else:
        assert actual == expected, f"{path}: {actual!r} != {expected!r}"


@pytest.mark.parametrize(
    ("actual", "expected"),
    [
        (Decimal("1.0"), Decimal(1)),
        (Decimal(0), Decimal("-0")),
        (Decimal("1E+2"), Decimal(100)),
        (1, Decimal(1)),
        ({Decimal("1.0")}, {Decimal(1)}),
        ([Decimal(1)], (Decimal(1),)),
        ({"a": True}, {"a": 1}),
        (b"x", Binary(b"x")),
        (Binary(bytearray(b"x")), Binary(b"x")),
    ],
)
def test_assert_same_tells_apart(actual: Any, expected: Any) -> None:
    with pytest.raises(AssertionError):
        assert_same(actual, expected)


def expected_number(text: str) -> Decimal:
    """TypeDeserializer's number, or, where it raises, the exact value."""
    try:
        result: Decimal = TD.deserialize({"N": text})
    except decimal.DecimalException:
        result = Decimal(text)
    return result


def expected_value(av: Mapping[str, Any]) -> Any:
    """TypeDeserializer's result, with only the numbers it rejects replaced by exact ones."""
    ((tag, value),) = av.items()
    if tag == "N":
        return expected_number(value)
    if tag == "NS":
        return {expected_number(text) for text in value}
    if tag == "L":
        return [expected_value(v) for v in value]
    if tag == "M":
        return {k: expected_value(v) for k, v in value.items()}
    return TD.deserialize(av)


# --- strategies -----------------------------------------------------------------------------


_NOTATIONS = ["str", "positional", "scientific", "e", "engineering"]


@st.composite
def dynamodb_numbers(draw: st.DrawFn) -> tuple[str, Decimal, bool]:
    """A number DynamoDB can store: its text in some notation, its exact value, and whether the
    text spells out the value's coefficient and exponent exactly (as ``str(Decimal)`` does)."""
    # Few draws per number: hypothesis's per-draw overhead is most of this test file's run time.
    sign, notation = draw(st.sampled_from([(s, n) for s in ("", "-", "+") for n in _NOTATIONS]))
    coefficient = draw(st.integers(0, 10**MAX_DIGITS - 1))
    if coefficient == 0:
        # Also exponents outside DYNAMODB_CONTEXT's range: "0E-200" is still 0.
        digits = "0"
        exponent = draw(st.integers(-200, 200))
    else:
        adjusted = draw(st.integers(MIN_ADJUSTED_EXPONENT, MAX_ADJUSTED_EXPONENT))
        # Trailing zeros are not significant to DynamoDB, but they are digits to DYNAMODB_CONTEXT.
        trailing_zeros = draw(st.integers(0, 100))
        digits = str(coefficient) + "0" * trailing_zeros
        exponent = adjusted - (len(digits) - 1)
    value = Decimal((sign == "-", tuple(map(int, digits)), exponent))
    if notation == "str":
        text = str(value)
    elif notation == "positional":  # how DynamoDB itself writes numbers, e.g. 1E+100
        text = f"{value:f}"
    elif notation == "scientific":
        text = f"{value:E}"
    elif notation == "e":
        text = f"{value:e}"
    else:
        text = value.to_eng_string()
    if sign == "+":
        text = "+" + text
    return text, value, notation in {"str", "scientific", "e"}


number_texts = dynamodb_numbers().map(lambda number: number[0])

scalars: st.SearchStrategy[dict[str, Any]] = st.one_of(
    st.builds(lambda s: {"S": s}, st.text()),
    st.builds(lambda n: {"N": n}, number_texts),
    st.builds(lambda b: {"B": b}, st.binary()),
    st.builds(lambda b: {"BOOL": b}, st.booleans()),
    st.just({"NULL": True}),
    st.builds(lambda ss: {"SS": ss}, st.lists(st.text(), min_size=1, max_size=5, unique=True)),
    st.builds(
        lambda ns: {"NS": ns},
        st.lists(number_texts, min_size=1, max_size=5, unique_by=Decimal),
    ),
    st.builds(lambda bs: {"BS": bs}, st.lists(st.binary(), min_size=1, max_size=5, unique=True)),
)

attribute_values: st.SearchStrategy[dict[str, Any]] = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.builds(lambda items: {"L": items}, st.lists(children, max_size=5)),
        st.builds(lambda m: {"M": m}, st.dictionaries(st.text(), children, max_size=5)),
    ),
    max_leaves=10,
)

items = st.dictionaries(st.text(min_size=1, max_size=10), attribute_values, max_size=6)


# --- equivalence with TypeDeserializer ------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(av=attribute_values)
def test_value_matches_type_deserializer(av: dict[str, Any]) -> None:
    decoded = decode_value(av)
    assert_same(decoded, expected_value(av))
    try:
        reference = TD.deserialize(av)
    except decimal.DecimalException:
        return
    assert_same(decoded, reference)


@settings(max_examples=30, deadline=None)
@given(page=st.lists(items, min_size=1, max_size=3))
def test_items_match_type_deserializer(page: list[dict[str, Any]]) -> None:
    decoded = decode_items(page)
    assert type(decoded) is list
    assert len(decoded) == len(page)
    for item, result in zip(page, decoded, strict=True):
        expected = {name: expected_value(av) for name, av in item.items()}
        assert_same(result, expected)
        assert_same(decode_item(item), expected)


@settings(max_examples=300, deadline=None)
@given(number=dynamodb_numbers())
def test_numbers_are_exact(number: tuple[str, Decimal, bool]) -> None:
    text, value, spelled_exactly = number
    decoded = decode_value({"N": text})
    assert type(decoded) is Decimal
    assert decoded.is_finite()
    assert decoded == value
    assert decoded.is_signed() == value.is_signed()
    if spelled_exactly:
        assert decoded.as_tuple() == value.as_tuple()
    try:
        reference = TD.deserialize({"N": text})
    except decimal.DecimalException:
        return
    # Where the DynamoDB context accepts a number, the plain constructor gives the same one.
    assert_same(decoded, reference)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        # 40 digits: DYNAMODB_CONTEXT counts the zeros and traps Rounded.
        ("1" + "0" * 39, Decimal((0, (1,), 39))),
        # 1E+100 as DynamoDB returns it (boto/boto3#2500).
        ("1" + "0" * 100, Decimal((0, (1,), 100))),
        # boto/boto3#4693.
        (
            "1234567895171680000000000000000000000000",
            Decimal((0, tuple(int(d) for d in "123456789517168"), 25)),
        ),
        # The largest number DynamoDB stores, in positional notation.
        ("9" * 38 + "0" * 88, Decimal((0, (9,) * 38, 88))),
        ("-" + "9" * 38 + "0" * 88, Decimal((1, (9,) * 38, 88))),
        # 38 digits near the smallest magnitude: below the context's Etiny, traps Underflow.
        (
            "1.0000000000000000000000000000000000001E-130",
            Decimal((0, (1,) + (0,) * 36 + (1,), -167)),
        ),
        (
            "-1.2345678901234567890123456789012345678E-129",
            Decimal((1, tuple(int(d) for d in "12345678901234567890123456789012345678"), -166)),
        ),
        ("0." + "0" * 129 + "1" + "0" * 36 + "1", Decimal((0, (1,) + (0,) * 36 + (1,), -167))),
        # Insignificant trailing zeros after the point (traps Rounded).
        ("1.5" + "0" * 40, Decimal((0, (1, 5), -1))),
        # Zero with an exponent outside the context's range (traps Clamped).
        ("0E-200", Decimal((0, (0,), -200))),
        ("-0E+200", Decimal((1, (0,), 200))),
    ],
)
def test_numbers_type_deserializer_rejects_are_exact(text: str, value: Decimal) -> None:
    decoded = decode_value({"N": text})
    assert type(decoded) is Decimal
    assert decoded.is_finite()
    assert decoded == value
    assert decoded.is_signed() == value.is_signed()
    assert Decimal(text).as_tuple() == decoded.as_tuple()
    assert_same(decode_value({"NS": [text]}), {decoded})
    try:
        reference = TD.deserialize({"N": text})
    except decimal.DecimalException:
        return  # what this test is about (boto3 1.43 raises for every case above)
    assert_same(decoded, reference)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", "0"),
        ("-0", "-0"),
        ("0.00", "0.00"),
        ("1.50", "1.50"),
        ("1E+10", "1E+10"),
        ("1e10", "1E+10"),
        ("+7", "7"),
        ("007.5", "7.5"),
        ("12000", "12000"),
        ("1E-130", "1E-130"),
        (
            "9.9999999999999999999999999999999999999E+125",
            "9.9999999999999999999999999999999999999E+125",
        ),
    ],
)
def test_number_notations(text: str, expected: str) -> None:
    decoded = decode_value({"N": text})
    assert str(decoded) == expected
    assert_same(decoded, TD.deserialize({"N": text}))


# --- the individual types -------------------------------------------------------------------


def test_each_type() -> None:
    item: dict[str, dict[str, Any]] = {
        "s": {"S": "text"},
        "n": {"N": "-12.50"},
        "b": {"B": b"\x00\xff"},
        "bool": {"BOOL": False},
        "null": {"NULL": True},
        "ss": {"SS": ["a", "b"]},
        "ns": {"NS": ["1", "2.5"]},
        "bs": {"BS": [b"a", b""]},
        "l": {"L": [{"S": "x"}, {"N": "1"}, {"L": []}, {"M": {}}]},
        "m": {"M": {"inner": {"M": {"deep": {"BOOL": True}}}}},
    }
    assert_same(
        decode_item(item),
        {
            "s": "text",
            "n": Decimal("-12.50"),
            "b": Binary(b"\x00\xff"),
            "bool": False,
            "null": None,
            "ss": {"a", "b"},
            "ns": {Decimal(1), Decimal("2.5")},
            "bs": {Binary(b"a"), Binary(b"")},
            "l": ["x", Decimal(1), [], {}],
            "m": {"inner": {"deep": True}},
        },
    )


def test_binary_is_boto3_binary() -> None:
    assert type(decode_value({"B": b"x"})) is Binary
    assert {type(member) for member in decode_value({"BS": [b"x", b"y"]})} == {Binary}


def test_empty_page() -> None:
    assert decode_items([]) == []
    assert decode_item({}) == {}


# --- malformed attribute values -------------------------------------------------------------


@pytest.mark.parametrize("tag", ["X", "SSS", "", "S "])
def test_unknown_tag_raises_type_error_naming_it(tag: str) -> None:
    with pytest.raises(TypeError, match=f"'{tag}'"):
        decode_value({tag: "1"})
    with pytest.raises(TypeError, match=f"'{tag}'"):
        decode_item({"attribute": {tag: "1"}})
    with pytest.raises(TypeError, match=f"'{tag}'"):
        decode_items([{"attribute": {"L": [{"M": {"k": {tag: "1"}}}]}}])
    with pytest.raises(TypeError):  # as does TypeDeserializer
        TD.deserialize({tag: "1"})


@pytest.mark.parametrize("tag", ["s", "n", "Bool", "null", "Ns"])
def test_tags_are_case_sensitive(tag: str) -> None:
    # TypeDeserializer lower-cases the tag to find its method, so it takes these. DynamoDB only
    # sends the upper-case tags, so a map like this is not an attribute value: refuse it.
    with pytest.raises(TypeError, match=f"'{tag}'"):
        decode_value({tag: "1"})


@pytest.mark.parametrize("av", [{}, {"BOOL": True, "NULL": True}])
def test_not_exactly_one_tag_raises_type_error(av: dict[str, Any]) -> None:
    with pytest.raises(TypeError, match="exactly one type tag"):
        decode_value(av)


# --- where Binary comes from ----------------------------------------------------------------


def load_decode_copy(name: str) -> ModuleType:
    """A fresh, independent copy of the module, so its choice of Binary class is made again."""
    spec = importlib.util.spec_from_file_location(name, DECODE_PY)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("first", [{"B": b"x"}, {"BS": [b"x", b"y"]}])
def test_without_boto3_binary_falls_back(
    monkeypatch: pytest.MonkeyPatch, first: dict[str, Any]
) -> None:
    for name in ("boto3", "boto3.dynamodb", "boto3.dynamodb.types"):
        monkeypatch.setitem(sys.modules, name, None)  # makes importing it raise ImportError
    module = load_decode_copy("_decode_without_boto3")
    decoded = module.decode_value(first)
    fallback = module._FallbackBinary
    assert module._Binary is fallback
    for member in decoded if isinstance(decoded, set) else [decoded]:
        assert type(member) is fallback
    assert module.decode_value({"BS": [b"a", b"b"]}) == {fallback(b"a"), fallback(b"b")}


@pytest.mark.parametrize("value", [b"", b"abc", bytearray(b"abc")])
def test_fallback_binary_behaves_like_boto3s(value: bytes | bytearray) -> None:
    fallback = _decode._FallbackBinary
    ours, theirs = fallback(value), Binary(value)
    assert ours.value is value
    assert repr(ours) == repr(theirs)
    assert bytes(ours) == bytes(value)
    assert ours == fallback(bytes(value))
    assert ours == bytes(value)
    assert not ours != fallback(bytes(value))  # noqa: SIM202 -- __ne__ is what is tested
    assert ours != fallback(value + b"!")
    assert ours != value + b"!"
    assert ours != "abc"
    if isinstance(value, bytes):
        assert hash(ours) == hash(theirs) == hash(value)
        assert len({fallback(value), fallback(bytes(value))}) == 1


def test_fallback_binary_rejects_non_bytes() -> None:
    with pytest.raises(TypeError):
        _decode._FallbackBinary("abc")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Binary("abc")


@pytest.mark.parametrize("value", [b"", b"\x00\xff", bytes(range(256))])
def test_binary_from_the_wire_form(value: bytes) -> None:
    """The library's fast path hands over base64 text; botocore's parser, bytes."""
    text = base64.b64encode(value).decode()
    assert_same(decode_value({"B": text}), Binary(value))
    assert_same(decode_value({"BS": [text, "AA=="]}), {Binary(value), Binary(b"\x00")})
    nested = {"M": {"l": {"L": [{"B": text}]}}}
    assert_same(decode_value(nested), {"l": [Binary(value)]})


def test_binary_to_bytes_in_place_at_any_depth() -> None:
    items: list[dict[str, Any]] = [
        {
            "b": {"B": "AAE="},
            "bs": {"BS": ["AA==", "AQ=="]},
            "m": {"M": {"deep": {"L": [{"B": "/w=="}, {"S": "AAE="}]}}},
            "s": {"S": "AAE="},
            "already": {"B": b"\x07"},
        }
    ]
    binary_to_bytes(items)
    assert items == [
        {
            "b": {"B": b"\x00\x01"},
            "bs": {"BS": [b"\x00", b"\x01"]},
            "m": {"M": {"deep": {"L": [{"B": b"\xff"}, {"S": "AAE="}]}}},
            "s": {"S": "AAE="},
            "already": {"B": b"\x07"},
        }
    ]
