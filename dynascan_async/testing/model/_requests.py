"""Request parameters shared by the operations: types, expressions, capacity reporting."""

from __future__ import annotations

__all__ = [
    "capacity_mode",
    "consumed",
    "expression",
    "optional",
    "placeholders_of",
    "refuse_legacy",
]

from collections.abc import Mapping
from typing import Any

from ._errors import invalid, malformed
from ._expressions import ExpressionError, Placeholders
from ._values import check_names, check_values


def optional(request: Mapping[str, Any], name: str, kind: type[Any]) -> Any:
    value = request.get(name)
    if value is not None and (
        not isinstance(value, kind) or isinstance(value, bool) != (kind is bool)
    ):
        raise malformed(f"Unexpected value type for {name}")
    return value


def capacity_mode(request: Mapping[str, Any]) -> str:
    mode = request.get("ReturnConsumedCapacity", "NONE")
    if mode not in ("NONE", "TOTAL", "INDEXES"):
        raise invalid(
            f"1 validation error detected: Value '{mode}' at 'returnConsumedCapacity' failed to "
            "satisfy constraint: Member must satisfy enum value set: [INDEXES, TOTAL, NONE]"
        )
    return mode  # type: ignore[no-any-return]


def refuse_legacy(request: Mapping[str, Any], *names: str) -> None:
    for name in names:
        if request.get(name) is not None:
            raise invalid(
                f"The model server does not implement the legacy parameter {name}; use the "
                "expression parameters"
            )


def placeholders_of(request: Mapping[str, Any]) -> Placeholders:
    try:
        return Placeholders(
            check_names(request.get("ExpressionAttributeNames")),
            check_values(request.get("ExpressionAttributeValues")),
        )
    except ExpressionError as error:
        raise invalid(str(error)) from None


def expression(request: Mapping[str, Any], name: str) -> str | None:
    text = optional(request, name, str)
    return text  # type: ignore[no-any-return]


def consumed(mode: str, table: str, units: float, index: str | None) -> dict[str, Any]:
    """The ``ConsumedCapacity`` of a read, as ``ReturnConsumedCapacity`` asks for it."""
    answer: dict[str, Any] = {"TableName": table, "CapacityUnits": units}
    if mode == "INDEXES":
        if index is None:
            answer["Table"] = {"CapacityUnits": units}
        else:
            answer["Table"] = {"CapacityUnits": 0.0}
            answer["GlobalSecondaryIndexes"] = {index: {"CapacityUnits": units}}
    return answer
