"""Getting a Scan page off the wire without botocore's response parser.

Two transports give the page body: ``DirectTransport`` (``_direct``) sends the request
itself, and ``BotocoreTransport`` goes through ``client.scan`` and takes the body as
below. Both hand the bytes to ``fetch_page``, which parses them with one C call.

botocore's generic parser walks every attribute of every item against the service model
to turn base64 into bytes; on a scan that is most of the client's CPU time, spent to
produce a structure the library then walks again to decode. So the botocore transport
keeps everything else of the client — signing, credentials, endpoint, proxies, its retries,
its hooks and its error handling for non-200 answers — and takes only the body of a
*successful* Scan answer for itself: a ``before-parse`` handler swaps the body for ``{}``
(which the parser reads in no time) and hands the bytes over.

The handler is registered once on each client the library is given, and does nothing
unless the current task is inside the library's own ``client.scan`` call (a context
variable says so), so the user's own Scan calls on the same client are untouched.
"""

from __future__ import annotations

__all__ = ["BotocoreTransport", "Transport", "fetch_page", "open_transport"]

import contextvars
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._decode import binary_to_bytes
from ._direct import DirectTransport

if TYPE_CHECKING:
    from ._options import PageHook

_loads: Callable[[bytes], Any]
try:  # orjson, when installed (the "fast" extra), parses a page several times faster.
    from orjson import loads as _loads
except ImportError:  # pragma: no cover - exercised by the CI matrix without orjson
    _loads = json.loads

_OURS: contextvars.ContextVar[bool] = contextvars.ContextVar("dynascan_async_scan", default=False)
_BODY = "__dynascan_async_body__"
_HANDLER_ID = "dynascan_async.take-scan-body"
_EVENT = "before-parse.dynamodb.Scan"


def _take_body(
    response_dict: dict[str, Any], customized_response_dict: dict[str, Any], **_: Any
) -> None:
    if _OURS.get() and response_dict.get("status_code") == 200:
        body = response_dict.get("body")
        if isinstance(body, bytes | bytearray):
            customized_response_dict[_BODY] = body
            response_dict["body"] = b"{}"


def install(client: Any) -> None:
    """Register the handler on ``client`` (idempotent: botocore keys it by its unique id)."""
    events = getattr(getattr(client, "meta", None), "events", None)
    if events is not None:
        events.register(_EVENT, _take_body, unique_id=_HANDLER_ID)


class BotocoreTransport:
    """``client.scan`` itself, all of botocore on the way out and its retries and hooks."""

    __slots__ = ("_client",)

    def __init__(self, client: Any) -> None:
        self._client = client
        install(client)

    async def page(self, request: dict[str, Any]) -> tuple[dict[str, Any], bytes | None]:
        """botocore's response (its metadata, for a body taken off the wire) and that body."""
        token = _OURS.set(True)
        try:
            response: dict[str, Any] = await self._client.scan(**request)
        finally:
            _OURS.reset(token)
        body = response.pop(_BODY, None)
        if body is None:  # not from the wire (a stubbed client) or not ours to take
            return response, None
        return response.get("ResponseMetadata", {}), body


Transport = BotocoreTransport | DirectTransport


def open_transport(client: Any, kind: str) -> Transport:
    """The transport ``_options`` chose for this client ("direct" or "botocore")."""
    return DirectTransport(client) if kind == "direct" else BotocoreTransport(client)


async def fetch_page(
    transport: Transport, request: dict[str, Any], *, raw: bool, columns: PageHook | None = None
) -> dict[str, Any]:
    """One Scan call; the answer in the shape ``client.scan`` gives.

    With ``raw``, binary values are bytes as botocore would give them; otherwise they may
    still be base64 text, which the decoder accepts. With ``columns``, the body is theirs
    to parse (``arrow``: straight into Arrow arrays, never into Python objects).
    """
    metadata, body = await transport.page(request)
    if columns is not None:
        return columns.parse(metadata, body)
    if body is None:
        return metadata
    page: dict[str, Any] = _loads(body)
    page["ResponseMetadata"] = metadata
    last_key = page.get("LastEvaluatedKey")
    if last_key:
        # Keys are held as botocore holds them (binary as bytes): checkpoints and the
        # botocore transport's serializer expect that. A key is a few attributes at most.
        binary_to_bytes([last_key])
    if raw and (b'"B"' in body or b'"BS"' in body):
        # Raw items must be what the low-level API gives: binary as bytes. Decoded items
        # need no pass of their own (the decoder takes base64 text), so the body, over a
        # megabyte, is searched only here.
        items = page.get("Items")
        if items:
            binary_to_bytes(items)
    return page
