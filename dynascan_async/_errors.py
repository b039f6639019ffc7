"""What can go wrong, and which exceptions a caller sees.

Errors from DynamoDB are *not* wrapped: callers already catch
``botocore.exceptions.ClientError`` and look at its error code, and a scan library
that hid that behind its own type would break their handlers. The library only adds
context (which table, which segment) to the original exception, and defines its own
types for its own conditions::

    Exception
    ├── ValueError
    │   └── CheckpointError        a resume_from that does not fit this scan
    └── botocore ClientError / BotoCoreError   raised unchanged, with a note
                                               naming the table and segment

Invalid options are plain ``TypeError``/``ValueError`` raised by ``scan(...)`` itself.
"""

from __future__ import annotations

__all__ = [
    "CheckpointError",
    "annotate",
    "is_certificate_error",
    "is_throttle",
    "is_retryable",
]

import ssl

import botocore.exceptions

try:  # aiohttp comes with aiobotocore; a truncated body can surface as its own error.
    from aiohttp import ClientConnectorCertificateError as _AiohttpCertificateError
    from aiohttp import ClientError as _AiohttpClientError
except ImportError:  # pragma: no cover - aiobotocore always brings aiohttp
    _AiohttpClientError = OSError  # type: ignore[assignment,misc]
    _AiohttpCertificateError = ssl.SSLCertVerificationError  # type: ignore[assignment,misc]


class CheckpointError(ValueError):
    """A ``resume_from`` value that cannot resume this scan.

    A ``ValueError`` so that the contract ("resuming with a different table, segments
    or scan parameters raises ValueError") holds for callers who do not know this type.
    """


THROTTLE_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "Throttling",
    }
)

# Transport failures worth another attempt: the request may or may not have reached
# DynamoDB, and a Scan is a read, so repeating it is always safe.
_TRANSIENT_TRANSPORT = (
    botocore.exceptions.ConnectionError,  # connect/read timeouts, closed, refused
    botocore.exceptions.HTTPClientError,
    botocore.exceptions.IncompleteReadError,
    botocore.exceptions.ResponseStreamingError,
    botocore.exceptions.ChecksumError,  # the direct path's check of x-amz-crc32
    _AiohttpClientError,
    ConnectionError,
)


def _client_error_code(exc: BaseException) -> tuple[str, int]:
    if not isinstance(exc, botocore.exceptions.ClientError):
        return "", 0
    error = exc.response.get("Error", {})
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    return str(error.get("Code", "")), int(status or 0)


def is_throttle(exc: BaseException) -> bool:
    return _client_error_code(exc)[0] in THROTTLE_CODES


def is_certificate_error(exc: BaseException) -> bool:
    """Whether the server's TLS certificate failed verification (untrusted, expired, wrong
    host), anywhere in the chain of errors that led to ``exc``.

    botocore raises it as ``SSLError``, a ``ConnectionError`` like a dropped connection,
    but the same certificate fails the same way on every attempt: retrying it only delays
    the one error that matters (by the whole backoff, on every segment).
    """
    seen: set[int] = set()
    stack: list[object] = [exc]
    while stack:
        current = stack.pop()
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError | _AiohttpCertificateError):
            return True
        # botocore keeps the HTTP library's error in kwargs["error"]; aiohttp keeps the
        # ssl module's in certificate_error / os_error; httpx chains it as the cause.
        kwargs = getattr(current, "kwargs", None)
        if isinstance(kwargs, dict):
            stack.append(kwargs.get("error"))
        stack.append(getattr(current, "certificate_error", None))
        stack.append(getattr(current, "os_error", None))
        stack.append(current.__cause__)
        stack.append(current.__context__)
    return False


def is_retryable(exc: BaseException) -> bool:
    """Throttling, any 5xx and dropped connections; never a request DynamoDB refused, and
    never a certificate that failed verification."""
    if isinstance(exc, _TRANSIENT_TRANSPORT):
        return not is_certificate_error(exc)
    code, status = _client_error_code(exc)
    return code in THROTTLE_CODES or status >= 500


def annotate(exc: BaseException, table: str, segment: int, total_segments: int) -> None:
    """Name the table and segment on the original exception, without changing its type.

    ``add_note`` shows in tracebacks (on 3.10 through the ``exceptiongroup`` backport
    that anyio installs); the attributes are for code that wants them.
    """
    note = f"dynascan_async: while scanning table {table!r}, segment {segment} of {total_segments}"
    notes = getattr(exc, "__notes__", None)
    if notes is not None and note in notes:
        return
    if hasattr(exc, "add_note"):
        exc.add_note(note)
    else:  # Python 3.10
        exc.__notes__ = [*(notes or []), note]  # type: ignore[attr-defined]
    exc.dynascan_table = table  # type: ignore[attr-defined]
    exc.dynascan_segment = segment  # type: ignore[attr-defined]
