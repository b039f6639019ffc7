"""Scan requests the library sends itself, on the client's own HTTP session.

botocore spends 2 to 3 ms of CPU on the way *out* of every call — building the User-Agent,
resolving the endpoint rules, validating and serializing, and signing with a key it derives
again each time — whatever the page holds. On a scan of small pages over a slow network
that cost, not DynamoDB, caps what more segments can gain: at 20 ms a page it holds 16
segments to about 7 times one. So for a Scan the library builds the request itself:

- the parameters are serialized once per scan by botocore's own serializer (so values mean
  exactly what they mean to ``client.scan``); per page only ``Segment`` and
  ``ExclusiveStartKey`` are added;
- it is signed with the client's credentials (refreshed as botocore would) by ``_sigv4``,
  which keeps the signing key for the day;
- the endpoint, and any signing region, come from the client's endpoint rules, resolved
  once per scan;
- it is sent through the client's own aiobotocore HTTP session, so proxies, TLS settings,
  timeouts and the connection pool are the ones the user configured, and a dropped
  connection raises the same botocore exceptions;
- a non-200 answer is parsed by botocore's parser and raised as the client's own modeled
  exception (``client.exceptions.ProvisionedThroughputExceededException`` and so on), which
  is what ``client.scan`` raises.

What is left out is botocore's retry layer (the library's ``RetryPolicy`` is the only one
here, so retry counts are exact) and its event hooks. Because whatever lives inside
``client.scan`` would silently see nothing, ``transport="auto"`` takes this path only when
the client is as aiobotocore made it: no handler on the Scan call beyond the exact ones a
fresh client registers (so not a ``Stubber``, client-side monitoring or endpoint discovery,
though all three are botocore's own), ``_make_api_call`` and ``scan`` not wrapped (ddtrace
and the X-Ray SDK wrap ``_make_api_call``), and an endpoint URL with neither a path nor a
query string; see ``unsupported``. The User-Agent is the one the client's own builder makes
(with its ``user_agent_appid`` and ``user_agent_extra``), plus the library's name.
"""

from __future__ import annotations

__all__ = ["DirectTransport", "unsupported"]

import base64
import functools
import importlib
import inspect
import json
import os
import platform
import zlib
from collections.abc import Callable
from datetime import datetime, timezone
from types import FunctionType
from typing import Any
from urllib.parse import urlsplit

import aiobotocore
import anyio
import botocore
import botocore.exceptions
from botocore.awsrequest import AWSPreparedRequest
from botocore.parsers import create_parser
from botocore.serialize import create_serializer

from ._sigv4 import Signer

_dumps: Callable[[Any], bytes]
try:
    from orjson import dumps as _dumps
except ImportError:  # pragma: no cover - exercised by the CI matrix without orjson

    def _dumps(value: Any) -> bytes:
        return json.dumps(value, separators=(",", ":")).encode("utf-8")


# The events of a Scan call on its way through botocore. A handler on any of them that
# is not one a fresh client registers itself (below) means somebody wants to see or change
# the call, and the direct path would bypass it.
_EVENTS = (
    "provide-client-params",
    "before-parameter-build",
    "before-call",
    "request-created",
    "choose-signer",
    "before-sign",
    "before-send",
    "response-received",
    "needs-retry",
    "after-call",
    "after-call-error",
    "before-parse",
)

# The exact handlers a fresh aiobotocore DynamoDB client puts on those events (aiobotocore
# 2.25 and 3.x; every retry mode), and ours. An allow-list, not a module prefix: botocore's
# own Stubber, client-side monitoring and endpoint discovery are botocore modules too, and
# each changes what a Scan call does. What the direct path does in their place: it signs
# (the signer's handler), sends the same headers (the API-version, recursion-detection and
# User-Agent ones), and has its own retries (the retry handlers, which it replaces).
# A name missing from an installed version is skipped; a default handler missing from
# this list costs speed (the client goes to botocore), never correctness.
_DEFAULT_HANDLERS = (
    "botocore.handlers:generate_idempotent_uuid",
    "botocore.handlers:_handle_request_validation_mode_member",
    "botocore.handlers:add_recursion_detection_header",
    "botocore.handlers:inject_api_version_header_if_needed",
    "botocore.handlers:add_retry_headers",
    "botocore.handlers:set_operation_specific_signer",
    "botocore.handlers:_set_auth_scheme_preference_signer",
    # Registered when the endpoint comes from the environment or config file; it only
    # refuses operations that *require* discovery, which Scan does not.
    "botocore.discovery:block_endpoint_discovery_required_operations",
    "botocore.useragent:UserAgentString.rebuild_and_replace_user_agent_handler",
    "botocore.signers:RequestSigner.handler",
    "aiobotocore.signers:AioRequestSigner.handler",
    # Retries: legacy, standard and adaptive modes.
    "botocore.retryhandler:RetryHandler.__call__",
    "aiobotocore.retryhandler:AioRetryHandler.__call__",
    "botocore.retries.standard:RetryHandler.needs_retry",
    "aiobotocore.retries.standard:AioRetryHandler.needs_retry",
    "botocore.retries.standard:RetryQuotaChecker.release_retry_quota",
    "botocore.retries.adaptive:ClientRateLimiter.on_sending_request",
    "botocore.retries.adaptive:ClientRateLimiter.on_receiving_response",
    "aiobotocore.retries.adaptive:AsyncClientRateLimiter.on_sending_request",
    "aiobotocore.retries.adaptive:AsyncClientRateLimiter.on_receiving_response",
    # The botocore transport's own (see _transport).
    "dynascan_async._transport:_take_body",
)

# Why a known handler's module rules the direct path out, in words a user recognizes.
_KNOWN_MODULES = (
    ("botocore.stub", "a botocore Stubber is active on it"),
    ("botocore.monitoring", "client-side monitoring (CSM) is enabled on it"),
    ("aiobotocore.monitoring", "client-side monitoring (CSM) is enabled on it"),
    ("botocore.discovery", "endpoint discovery is enabled on it"),
    ("aiobotocore.discovery", "endpoint discovery is enabled on it"),
)


def _code_of(handler: Any) -> Any:
    """What a handler runs: the function of a function or bound method, else ``__call__``."""
    if isinstance(handler, FunctionType):
        return handler
    function = getattr(handler, "__func__", None)
    if isinstance(function, FunctionType):
        return function
    # A callable object (botocore's legacy RetryHandler): its class's __call__.
    return inspect.getattr_static(type(handler), "__call__", None)


@functools.cache
def _default_handlers() -> frozenset[Any]:
    found = set()
    for spec in _DEFAULT_HANDLERS:
        module_name, _, path = spec.partition(":")
        try:
            value: Any = importlib.import_module(module_name)
            for part in path.split("."):
                value = inspect.getattr_static(value, part)
        except (ImportError, AttributeError):
            continue
        found.add(_code_of(value))
    return frozenset(found)


def _foreign_handlers(client: Any) -> list[tuple[str, str]]:
    """(event, handler name) of every handler on a Scan call that a fresh client lacks."""
    emitter = getattr(client.meta.events, "_emitter", client.meta.events)
    handlers = getattr(emitter, "_handlers", None)
    if handlers is None or not hasattr(handlers, "prefix_search"):
        return [("", "(unknown event system)")]
    defaults = _default_handlers()
    foreign = []
    for event in _EVENTS:
        for handler in handlers.prefix_search(f"{event}.dynamodb.Scan"):
            if _code_of(handler) in defaults:
                continue
            code = _code_of(handler)
            module = getattr(code, "__module__", None) or type(handler).__module__
            name = getattr(code, "__qualname__", None) or type(handler).__qualname__
            foreign.append((event, f"{module}.{name}"))
    return foreign


# Where botocore's and aiobotocore's own code lives (see _sdk_function).
_SDK_DIRS = tuple(
    os.path.dirname(os.path.abspath(module.__file__ or "")) + os.sep
    for module in (botocore, aiobotocore)
)


def _sdk_function(found: Any, qualname: str) -> bool:
    """Whether ``found`` is botocore's or aiobotocore's own function named ``qualname``.

    Each layer of wrapping must be a plain function whose code lives in botocore or
    aiobotocore (they decorate their own methods, ``with_current_context``); a wrapt
    wrapper (not a plain function) or anyone else's ``functools.wraps`` layer is foreign.
    """
    for _ in range(10):
        # type(), not isinstance(): a wrapt proxy passes isinstance(..., FunctionType).
        if type(found) is not FunctionType or not found.__code__.co_filename.startswith(_SDK_DIRS):
            return False
        inner = getattr(found, "__wrapped__", None)
        if inner is None:
            return bool(found.__qualname__.endswith(qualname))
        found = inner
    return False


def _wrapped_call(client: Any) -> str | None:
    """Whether ``client.scan`` or ``_make_api_call`` is not what aiobotocore made.

    Instrumentation such as ddtrace and the X-Ray SDK wraps the client's ``_make_api_call``
    (with wrapt, on the class) instead of registering events; a user may wrap ``scan`` on
    one client. Either would see none of the direct path's calls.
    """
    found = inspect.getattr_static(client, "_make_api_call", None)
    if not _sdk_function(found, "AioBaseClient._make_api_call"):
        name = getattr(found, "__qualname__", None) or type(found).__qualname__
        return f"its _make_api_call is wrapped or overridden ({type(found).__name__} {name})"
    scan = inspect.getattr_static(client, "scan", None)
    if "scan" in getattr(client, "__dict__", {}) or not _sdk_function(
        scan, "_create_api_method.<locals>._api_call"
    ):
        return "its scan method is wrapped or overridden"
    return None


def unsupported(client: Any) -> str | None:
    """Why the direct path cannot stand in for ``client.scan`` on this client, or None."""
    try:
        meta = client.meta
        service_model = meta.service_model
        http_session = client._endpoint.http_session
        signer = client._request_signer
    except AttributeError:
        return "it is not an aiobotocore client"
    if not callable(getattr(http_session, "send", None)):
        return "its HTTP session has no send()"
    if getattr(service_model, "protocol", None) != "json":
        return f"its service protocol is {getattr(service_model, 'protocol', None)!r}, not 'json'"
    version = getattr(signer, "signature_version", None)
    if version not in ("v4", botocore.UNSIGNED):
        return f"it signs with {version!r}, not SigV4"
    url = urlsplit(meta.endpoint_url or "")
    if url.path not in ("", "/"):
        return f"its endpoint URL has a path ({meta.endpoint_url})"
    if url.query or url.fragment:
        return f"its endpoint URL has a query string or fragment ({meta.endpoint_url})"
    wrapped = _wrapped_call(client)
    if wrapped is not None:
        return wrapped
    foreign = _foreign_handlers(client)
    for prefix, reason in _KNOWN_MODULES:
        if any(name.startswith(prefix + ".") for _, name in foreign):
            return reason
    if foreign:
        return "it has event handlers of its own on Scan calls: " + ", ".join(
            f"{event}: {name}" for event, name in foreign
        )
    return None


def _wire_key(key: dict[str, Any]) -> dict[str, Any]:
    """A key as botocore holds it (binary as bytes) in its JSON form (binary as base64)."""
    out = {}
    for name, av in key.items():
        value = av.get("B")
        if isinstance(value, bytes | bytearray):
            av = {"B": base64.b64encode(value).decode("ascii")}
        out[name] = av
    return out


def _user_agent(client: Any) -> str:
    """The User-Agent ``client.scan`` sends, with the library's name and version added.

    botocore builds it from the client's config: its ``user_agent_appid`` (also set by
    ``AWS_SDK_UA_APP_ID`` or ``sdk_ua_app_id`` in the config file), its
    ``user_agent_extra``, the session's extra, or a whole ``user_agent`` override. Built
    here once per scan, by the client's own builder when it has one.
    """
    from . import __version__

    ours = f"lib/dynascan-async#{__version__}"
    to_string = getattr(getattr(client, "_user_agent_creator", None), "to_string", None)
    if callable(to_string):
        built = to_string()
        if isinstance(built, str) and built:
            return f"{built} {ours}"
    config = getattr(client.meta, "config", None)
    parts = [
        getattr(config, "user_agent", None)
        or f"botocore/{botocore.__version__} Python/{platform.python_version()}",
        ours,
    ]
    appid = getattr(config, "user_agent_appid", None)
    if appid:
        parts.append(f"app/{appid}")
    extra = getattr(config, "user_agent_extra", None)
    if extra:
        parts.append(extra)
    return " ".join(parts)


class DirectTransport:
    """Sends the Scan requests of one scan; created per scan, holds nothing to close."""

    __slots__ = (
        "_client",
        "_credentials",
        "_headers",
        "_http",
        "_lock",
        "_operation",
        "_parser",
        "_signer",
        "_static",
        "_unsigned",
        "_url",
    )

    def __init__(self, client: Any) -> None:
        self._client = client
        self._http = client._endpoint.http_session
        self._operation = client.meta.service_model.operation_model("Scan")
        self._unsigned = client._request_signer.signature_version is botocore.UNSIGNED
        self._credentials: Any = getattr(client._request_signer, "_credentials", None)
        self._parser = create_parser("json")
        self._lock = anyio.Lock()
        self._url = ""
        self._signer: Signer | None = None
        self._headers: dict[str, str] = {}
        self._static: dict[str, Any] | None = None

    async def _prepare(self, request: dict[str, Any]) -> None:
        """Serialize the fixed parameters and resolve the endpoint, once per scan."""
        async with self._lock:
            if self._static is not None:
                return
            fixed = {k: v for k, v in request.items() if k not in ("Segment", "ExclusiveStartKey")}
            serialized = create_serializer("json", include_validation=False).serialize_to_request(
                fixed, self._operation
            )
            headers = self._headers
            headers.update((k, str(v)) for k, v in serialized["headers"].items())
            url, region, signing_name = await self._endpoint(fixed)
            headers["User-Agent"] = _user_agent(self._client)
            # botocore's recursion-detection header, for scans run inside AWS Lambda.
            trace = os.environ.get("_X_AMZN_TRACE_ID")
            if trace and os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
                headers["X-Amzn-Trace-Id"] = trace
            self._url = url
            self._signer = Signer(url=url, region=region, service=signing_name)
            self._static = json.loads(serialized["body"] or b"{}")

    async def _endpoint(self, params: dict[str, Any]) -> tuple[str, str, str]:
        """The URL, signing region and signing name ``client.scan`` would use."""
        client = self._client
        meta = client.meta
        region = meta.region_name
        signing_name = meta.service_model.signing_name or "dynamodb"
        context: dict[str, Any] = {
            "client_region": region,
            "client_config": meta.config,
            "has_streaming_input": False,
            "auth_type": None,
            "unsigned_payload": None,
            "auth_options": meta.service_model.metadata.get("auth"),
        }
        try:
            url, extra_headers, _ = await client._resolve_endpoint_ruleset(
                self._operation, params, context
            )
        except (AttributeError, TypeError):  # an aiobotocore without endpoint rules
            url, extra_headers = meta.endpoint_url, {}
        self._headers.update(
            (name, ",".join(value) if isinstance(value, list) else str(value))
            for name, value in (extra_headers or {}).items()
        )
        signing = context.get("signing") or {}
        return (
            url.rstrip("/") + "/",
            signing.get("region") or region,
            signing.get("signing_name") or signing_name,
        )

    async def page(self, request: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
        """Send one Scan request; the parsed answer and its body, or botocore's exception."""
        if self._static is None:
            await self._prepare(request)
        assert self._static is not None
        payload = dict(self._static)
        if "Segment" in request:
            payload["Segment"] = request["Segment"]
        key = request.get("ExclusiveStartKey")
        if key is not None:
            payload["ExclusiveStartKey"] = _wire_key(key)
        body = _dumps(payload)
        headers = dict(self._headers)
        if not self._unsigned:
            await self._sign(headers, body)
        # A plain dict for the headers: the HTTP sessions only iterate over them.
        prepared = AWSPreparedRequest("POST", self._url, headers, body, False)  # type: ignore[arg-type]
        response = await self._http.send(prepared)
        content: bytes = await response.content
        status: int = response.status_code
        response_headers: dict[str, str] = dict(response.headers)
        if status != 200:
            self._raise(status, response_headers, content)
        expected = response_headers.get("x-amz-crc32")
        if expected is not None:
            actual = str(zlib.crc32(content))
            if actual != expected:  # a body damaged on the way; _errors retries it
                raise botocore.exceptions.ChecksumError(
                    checksum_type="crc32", expected_checksum=expected, actual_checksum=actual
                )
        metadata = {
            "RequestId": response_headers.get("x-amzn-requestid", ""),
            "HTTPStatusCode": status,
            "HTTPHeaders": response_headers,
            "RetryAttempts": 0,
        }
        return metadata, content

    async def _sign(self, headers: dict[str, str], body: bytes) -> None:
        credentials = self._credentials
        if credentials is None:
            raise botocore.exceptions.NoCredentialsError()
        frozen = await credentials.get_frozen_credentials()
        if frozen.access_key is None or frozen.secret_key is None:
            raise botocore.exceptions.NoCredentialsError()
        assert self._signer is not None
        self._signer.sign(
            headers,
            body,
            access_key=frozen.access_key,
            secret_key=frozen.secret_key,
            token=frozen.token,
            now=datetime.now(timezone.utc),
        )

    def _raise(self, status: int, headers: dict[str, str], body: bytes) -> None:
        """Raise what ``client.scan`` raises for this answer: botocore parses it."""
        parsed: dict[str, Any] = self._parser.parse(
            {"status_code": status, "headers": headers, "body": body},
            self._operation.output_shape,
        )
        parsed.setdefault("ResponseMetadata", {})["RetryAttempts"] = 0
        error = parsed.get("Error", {})
        code = error.get("QueryErrorCode") or error.get("Code")
        raise self._client.exceptions.from_code(code)(parsed, "Scan")
