"""Keys: how items sort, where a key sits in the hash space, and which partition holds it.

A partition key value hashes to a 64-bit point; segments and partitions are both contiguous
slices of that space (``segment_hashes``), so a scan with as many segments as the table has
partitions reads one partition per segment, and a hot key range is one partition's problem.
"""

from __future__ import annotations

__all__ = ["HASH_SPACE", "MAX_SEGMENTS", "KeyAttr", "key_hash", "partition_of", "segment_hashes"]

import base64
import hashlib
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

from ._expressions import AttributeValue
from ._values import DIGITS

HASH_SPACE: Final = 1 << 64
MAX_SEGMENTS: Final = 1_000_000


@dataclass(frozen=True, slots=True)
class KeyAttr:
    """One key attribute, and how its values sort: strings and binaries by their bytes
    (code point order is UTF-8 byte order), numbers by value."""

    name: str
    type: str  # S, N or B

    def sortable(self, value: AttributeValue) -> Any:
        inner = value[self.type]
        if self.type == "S":
            return inner
        if self.type == "N":
            return Decimal(inner)
        return base64.b64decode(inner)


def key_hash(kind: str, sortable: Any) -> int:
    """A stable 64-bit hash of a partition key value: where the item sits in the key space,
    hence its segment and partition. Equal keys (``1`` and ``1.0``) hash the same."""
    if kind == "S":
        data = b"S" + sortable.encode("utf-8", "surrogatepass")
    elif kind == "N":
        text = "0" if not sortable else str(sortable.normalize(DIGITS))
        data = b"N" + text.encode("ascii")
    else:
        data = b"B" + sortable
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


def segment_hashes(segment: int, total: int) -> tuple[int, int]:
    """The hash range ``[low, high)`` of one segment: segments are contiguous slices of the
    key space, so with as many segments as partitions each segment is one partition."""
    return -(-(segment * HASH_SPACE) // total), -(-((segment + 1) * HASH_SPACE) // total)


def partition_of(key_hash: int, partitions: int) -> int:
    return (key_hash * partitions) >> 64
