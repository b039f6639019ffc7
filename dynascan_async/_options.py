"""Every option checked before the first request, and the defaults worked out.

A scan that fails on its first page because of a typo in an option wastes nothing; one
that fails on page 3,000 of a resumed export wastes an hour. So everything that can be
checked locally is checked in ``scan(...)`` itself, including the Scan parameters,
against botocore's own model of the request.
"""

from __future__ import annotations

__all__ = ["Options", "PageHook", "RESERVED_PARAMS", "int_option", "rate_option", "validate"]

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from aiobotocore.client import AioBaseClient
from botocore.client import BaseClient
from botocore.validate import ParamValidator

from . import _checkpoint
from ._capacity import Tuning, parse_share
from ._direct import unsupported
from ._retry import RetryPolicy

RESERVED_PARAMS = ("TableName", "Segment", "TotalSegments", "ExclusiveStartKey")
MAX_SEGMENTS = 1_000_000
DEFAULT_POOL = 10  # botocore's max_pool_connections default


class PageHook(Protocol):
    """What ``arrow`` puts in place of the JSON parser and the decoder (see ``_columns``)."""

    def parse(self, metadata: dict[str, Any], body: bytes | None) -> dict[str, Any]:
        """A page body to the answer's shape, its ``Items`` sliceable and sized, any type."""

    def convert(self, items: Any) -> list[Any]:
        """A page's ``Items`` (after a resumed page's ``skip``) to what the consumer gets."""


@dataclass(frozen=True)
class Options:
    table: str
    segments: int
    concurrency: int
    rate_limit: float | None
    # rate_limit="50%": 0.5 (and rate_limit None until DescribeTable says how much).
    rate_share: float | None
    deserialize: bool
    buffer_pages: int
    retry: RetryPolicy
    transport: str
    scan_params: Mapping[str, Any]
    request_params: Mapping[str, Any]
    fingerprint: str
    resume: _checkpoint.ResumeState | None
    tuning: Tuning
    # Set by ``arrow`` only (never by scan()): pages become columns instead of Python items.
    columns: PageHook | None = None


def int_option(name: str, value: object, low: int, high: int | None = None) -> int:
    """``value`` if it is an int (not a bool) in ``[low, high]``; else the error to raise.

    Shared by every entry point that takes counts (``scan()``, ``dask``, ``export``), so
    that a bad count reads the same wherever it is given.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if value < low or (high is not None and value > high):
        bounds = f"between {low:,} and {high:,}" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be {bounds}, got {value!r}")
    return value


def rate_option(value: object) -> tuple[float | None, float | None]:
    """``rate_limit`` checked: ``(RCU/s, None)``, ``(None, share)`` for ``"P%"``, or
    ``(None, None)``; else the error to raise (as ``int_option``, for every entry point)."""
    if value is None:
        return None, None
    if isinstance(value, str):
        return None, parse_share(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(
            f"rate_limit must be a number or a share such as '50%', not {type(value).__name__}"
        )
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"rate_limit must be a finite number > 0, got {value!r}")
    return float(value), None


def _pool_size(client: Any) -> int:
    size = getattr(
        getattr(getattr(client, "meta", None), "config", None), "max_pool_connections", None
    )
    return size if isinstance(size, int) and size > 0 else DEFAULT_POOL


def _check_client(client: Any) -> None:
    scan = getattr(client, "scan", None)
    if scan is None or not callable(scan):
        raise TypeError(
            "client must be an aiobotocore DynamoDB client (for example "
            f"aioboto3.Session().client('dynamodb')), not {type(client).__name__}"
        )
    if isinstance(client, BaseClient) and not isinstance(client, AioBaseClient):
        raise TypeError(
            "client is a synchronous boto3 client: pass an aiobotocore or aioboto3 one "
            "(the scan awaits client.scan)"
        )
    service = getattr(
        getattr(getattr(client, "meta", None), "service_model", None), "service_name", None
    )
    if service is not None and service != "dynamodb":
        raise TypeError(f"client is a {service!r} client, not a 'dynamodb' one")


def _check_scan_params(client: Any, table: str, params: Mapping[str, Any]) -> None:
    for name in RESERVED_PARAMS:
        if name in params:
            raise TypeError(
                f"{name} is set by dynascan_async itself and cannot be passed "
                "(use the table argument, segments=, or resume_from=)"
            )
    for name in params:
        if not name[:1].isupper():
            raise TypeError(f"scan() got an unexpected keyword argument {name!r}")
    try:
        shape = client.meta.service_model.operation_model("Scan").input_shape
    except AttributeError:  # a client without a botocore model: nothing more to check here
        return
    report = ParamValidator().validate({"TableName": table, **params}, shape)
    if not report.has_errors():
        return
    kinds = {error[0] for error in getattr(report, "_errors", [])}
    message = report.generate_report()
    if kinds & {"unknown field", "invalid type"}:
        raise TypeError(f"invalid Scan parameter: {message}")
    raise ValueError(f"invalid Scan parameter: {message}")


TRANSPORTS = ("auto", "direct", "botocore")


def _transport(client: Any, transport: Any) -> str:
    """ "direct" or "botocore": what "auto" comes to for this client, or why "direct" cannot."""
    if transport not in TRANSPORTS:
        raise ValueError(f"transport must be one of {TRANSPORTS}, got {transport!r}")
    if transport == "botocore":
        return "botocore"
    reason = unsupported(client)
    if reason is None:
        return "direct"
    if transport == "direct":
        raise ValueError(f"transport='direct' cannot stand in for this client's scan: {reason}")
    return "botocore"


def validate(
    client: Any,
    table: Any,
    *,
    segments: Any,
    concurrency: Any,
    rate_limit: Any,
    deserialize: Any,
    resume_from: Any,
    buffer_pages: Any,
    retry: Any,
    transport: Any,
    scan_params: dict[str, Any],
    tuning: Any = None,
) -> Options:
    _check_client(client)
    if not isinstance(table, str):
        raise TypeError(f"table must be a str, not {type(table).__name__}")
    if not 3 <= len(table) <= 1024:
        # DynamoDB accepts 3 to 255 characters for a name and 1024 for an ARN.
        raise ValueError(f"table must be a table name or ARN, got {table!r}")
    if segments is not None:
        segments = int_option("segments", segments, 1, MAX_SEGMENTS)
    if concurrency is not None:
        concurrency = int_option("concurrency", concurrency, 1)
    rate_limit, rate_share = rate_option(rate_limit)
    if (rate_limit is not None or rate_share is not None) and scan_params.get(
        "ReturnConsumedCapacity"
    ) == "NONE":
        raise ValueError(
            "rate_limit needs the ConsumedCapacity of each page: do not pass "
            "ReturnConsumedCapacity='NONE' with it"
        )
    if not isinstance(deserialize, bool):
        raise TypeError(f"deserialize must be True or False, not {deserialize!r}")
    if retry is None:
        retry = RetryPolicy()
    elif not isinstance(retry, RetryPolicy):
        raise TypeError(f"retry must be a dynascan_async.RetryPolicy, not {type(retry).__name__}")
    if tuning is None:
        tuning = Tuning()
    elif not isinstance(tuning, Tuning):
        raise TypeError(f"_tuning must be a Tuning, not {type(tuning).__name__}")
    _check_scan_params(client, table, scan_params)
    transport = _transport(client, transport)

    digest = _checkpoint.fingerprint(scan_params)
    resume = None
    if resume_from is not None:
        resume = _checkpoint.load(resume_from, table=table, segments=segments, params=digest)
        segments = resume.segments

    pool = _pool_size(client)
    if concurrency is None:
        concurrency = min(segments, pool) if segments is not None else pool
    if segments is None:
        # More segments than workers, so a skewed segment cannot hold the scan back.
        segments = min(MAX_SEGMENTS, 4 * concurrency)
    if buffer_pages is None:
        buffer_pages = max(2, min(concurrency, segments))
    else:
        buffer_pages = int_option("buffer_pages", buffer_pages, 1)

    request = {"TableName": table, "TotalSegments": segments, **scan_params}
    request.setdefault("ReturnConsumedCapacity", "TOTAL")
    return Options(
        table=table,
        segments=segments,
        concurrency=concurrency,
        rate_limit=rate_limit,
        rate_share=rate_share,
        deserialize=deserialize,
        buffer_pages=buffer_pages,
        retry=retry,
        transport=transport,
        scan_params=dict(scan_params),
        request_params=request,
        fingerprint=digest,
        resume=resume,
        tuning=tuning,
    )
