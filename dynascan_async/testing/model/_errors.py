"""DynamoDB's error answers, as the model server sends them.

Every refusal is a :class:`Fault`: an HTTP 400 (500 for the model's own failures) whose JSON
body botocore turns into a ``ClientError`` with the same code, message and, for throttling,
the ``ThrottlingReasons`` DynamoDB attaches (which resource, which limit).
"""

from __future__ import annotations

__all__ = [
    "DYNAMODB",
    "SERVICE",
    "VALIDATE",
    "Fault",
    "invalid",
    "malformed",
    "not_found",
    "throttled",
]

from typing import Any, Final

from ._json import dumps

DYNAMODB: Final = "com.amazonaws.dynamodb.v20120810#"
VALIDATE: Final = "com.amazon.coral.validate#"
SERVICE: Final = "com.amazon.coral.service#"

_PROVISIONED: Final = (
    "The level of configured provisioned throughput for the table was exceeded. "
    "Consider increasing your provisioning level with the UpdateTable API."
)
_KEY_RANGE: Final = (
    "Throughput exceeds the current capacity for one or more partitions of your table or "
    "index. Spread your traffic over more partition key values."
)
_MAX_ON_DEMAND: Final = (
    "Throughput exceeds the maximum OnDemandThroughput configured on your table or index. "
    "Raise MaxReadRequestUnits with the UpdateTable API."
)


class Fault(Exception):
    """An answer in DynamoDB's JSON error form, which botocore turns into a ``ClientError``
    with ``code`` as its error code; ``fields`` are further members of the body."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        namespace: str = DYNAMODB,
        status: int = 400,
        fields: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.namespace = namespace
        self.status = status
        self.fields = fields or {}

    def body(self) -> bytes:
        return dumps({"__type": self.namespace + self.code, "message": self.message, **self.fields})


def invalid(message: str) -> Fault:
    return Fault("ValidationException", message, namespace=VALIDATE)


def malformed(message: str) -> Fault:
    return Fault("SerializationException", message, namespace=SERVICE)


def not_found() -> Fault:
    return Fault("ResourceNotFoundException", "Requested resource not found")


def throttled(resource: str, arn: str, limit: str, detail: str = "") -> Fault:
    """A read refused for lack of capacity, as DynamoDB words it.

    ``resource`` is ``Table`` or ``Index``; ``limit`` is DynamoDB's limit type:
    ``ProvisionedThroughputExceeded`` (provisioned capacity) and ``KeyRangeThroughputExceeded``
    (one partition) answer ``ProvisionedThroughputExceededException``;
    ``MaxOnDemandThroughputExceeded`` (an on-demand table's ``MaxReadRequestUnits``) answers
    ``ThrottlingException``, whose reasons member is spelled ``throttlingReasons``.
    """
    reasons = [{"reason": f"{resource}Read{limit}", "resource": arn}]
    if limit == "MaxOnDemandThroughputExceeded":
        return Fault(
            "ThrottlingException", _MAX_ON_DEMAND + detail, fields={"throttlingReasons": reasons}
        )
    message = _KEY_RANGE if limit == "KeyRangeThroughputExceeded" else _PROVISIONED
    return Fault(
        "ProvisionedThroughputExceededException",
        message + detail,
        fields={"ThrottlingReasons": reasons},
    )
