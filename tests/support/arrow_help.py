"""Comparing items read back from Arrow with the items ``scan()`` yields."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Context, Decimal
from typing import Any

from tests.support.helpers import as_multiset

_WIDE = Context(prec=1000)


def by_value(value: Any) -> Any:
    """Numbers by value: a column says Decimal(100) where DynamoDB may have said 1E+2, and
    a decimal128(38, 2) column 1.50 for 1.5. DynamoDB itself keeps only the value."""
    if isinstance(value, Decimal):
        return Decimal(0) if value == 0 else value.normalize(_WIDE)
    if isinstance(value, dict):
        return {k: by_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [by_value(v) for v in value]
    if isinstance(value, set | frozenset):
        return {by_value(v) for v in value}
    return value


def assert_same_values(got: Iterable[Any], expected: Iterable[Any]) -> None:
    """The same items, each as often, numbers compared by value."""
    got_list = as_multiset(by_value(item) for item in got)
    expected_list = as_multiset(by_value(item) for item in expected)
    assert len(got_list) == len(expected_list), (len(got_list), len(expected_list))
    assert got_list == expected_list
