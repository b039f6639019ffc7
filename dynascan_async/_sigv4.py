"""AWS Signature Version 4 for DynamoDB's JSON API, with the signing key kept for the day.

botocore's signer is general: on every request it derives the signing key again (four
HMACs), rebuilds the canonical request from a generic request object and walks every
header. For a scan that is a large part of the client's time per page, spent on work
whose result only changes when the date or the credentials do. A Scan request is always
the same shape — a POST to one path with a fixed set of headers — so this signer derives
the key once per day and credentials, and builds the canonical request from a template.

``tests/test_sigv4.py`` checks the result against botocore's own ``SigV4Auth``, byte for
byte, so the two cannot drift apart unnoticed.
"""

from __future__ import annotations

__all__ = ["Signer", "canonical_host"]

import hashlib
import hmac
from datetime import datetime
from urllib.parse import urlsplit

from botocore.auth import SIGNED_HEADERS_BLACKLIST

_ALGORITHM = "AWS4-HMAC-SHA256"
_DEFAULT_PORTS = {"http": 80, "https": 443}


def canonical_host(url: str) -> str:
    """The ``host`` value that is signed: the one an HTTP client sends for ``url``.

    Lower case, no user info, brackets around an IPv6 address, and the port only when it
    is not the scheme's default, as HTTP clients leave it out of the ``Host`` header.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port is not None and _DEFAULT_PORTS.get(parts.scheme) != parts.port:
        host = f"{host}:{parts.port}"
    return host


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()


class Signer:
    """Signs POST requests to one endpoint path for one region and service.

    The caller's headers must already hold ``Content-Type`` and ``X-Amz-Target``; ``sign``
    adds ``X-Amz-Date``, ``X-Amz-Security-Token`` (for temporary credentials) and
    ``Authorization``. Header names are matched case-insensitively, as in SigV4, but
    the caller spells them as botocore does so that the signed set is the same.
    """

    __slots__ = ("_host", "_key", "_key_for", "_scope_tail")

    def __init__(self, *, url: str, region: str, service: str) -> None:
        # The path is always "/": DynamoDB's JSON API has one, and endpoints with a path
        # of their own are left to botocore (see _direct.unsupported).
        self._host = canonical_host(url)
        self._scope_tail = f"{region}/{service}/aws4_request"
        self._key_for: tuple[str, str] | None = None
        self._key = b""

    def _signing_key(self, secret_key: str, day: str) -> bytes:
        # Keyed on the secret itself, so refreshed credentials get a new key at once.
        if self._key_for != (secret_key, day):
            region, service, _ = self._scope_tail.split("/")
            key = _hmac(("AWS4" + secret_key).encode("utf-8"), day)
            key = _hmac(key, region)
            key = _hmac(key, service)
            self._key = _hmac(key, "aws4_request")
            self._key_for = (secret_key, day)
        return self._key

    def sign(
        self,
        headers: dict[str, str],
        body: bytes,
        *,
        access_key: str,
        secret_key: str,
        token: str | None,
        now: datetime,
    ) -> None:
        """Add the date, token and ``Authorization`` headers for ``body`` sent at ``now`` (UTC)."""
        stamp = now.strftime("%Y%m%dT%H%M%SZ")
        day = stamp[:8]
        headers["X-Amz-Date"] = stamp
        if token:
            headers["X-Amz-Security-Token"] = token
        # Canonical headers: every header but the few botocore leaves unsigned, lower-case
        # names, sorted, values with their runs of spaces folded.
        signed: list[tuple[str, str]] = [("host", self._host)]
        for name, value in headers.items():
            lower = name.lower()
            if lower not in _UNSIGNED:
                signed.append((lower, " ".join(value.split())))
        signed.sort()
        names = ";".join(name for name, _ in signed)
        canonical = "\n".join(
            (
                "POST",
                "/",
                "",
                "".join(f"{name}:{value}\n" for name, value in signed),
                names,
                hashlib.sha256(body).hexdigest(),
            )
        )
        scope = f"{day}/{self._scope_tail}"
        to_sign = "\n".join(
            (_ALGORITHM, stamp, scope, hashlib.sha256(canonical.encode("utf-8")).hexdigest())
        )
        signature = hmac.new(
            self._signing_key(secret_key, day), to_sign.encode("utf-8"), hashlib.sha256
        ).hexdigest()
        headers["Authorization"] = (
            f"{_ALGORITHM} Credential={access_key}/{scope}, "
            f"SignedHeaders={names}, Signature={signature}"
        )


# What botocore's SigV4Auth leaves unsigned (proxies and HTTP clients may change those),
# and the two this signer handles itself.
_UNSIGNED = frozenset(SIGNED_HEADERS_BLACKLIST) | {"authorization", "host"}
