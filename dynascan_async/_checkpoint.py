"""Where the *consumer* is in each segment, as a JSON value that can restart a scan.

A checkpoint records, per segment, the ``ExclusiveStartKey`` of the page the consumer
is reading and how many of that page's items it has already received. Recording what
the workers have fetched instead would lose the pages waiting in the queue; recording
only whole pages would re-deliver the part of a page already handed out. Re-reading a
page from the same start key with the same parameters returns the same items on a table
that was not written in between, so skipping that many items on resume is exact.

The format (``version`` 1)::

    {"dynascan_checkpoint": 1, "table": "t", "segments": 8, "params": "<sha256>",
     "done": [[0, 3], [6, 6]],                  # inclusive ranges of finished segments
     "positions": [[4, {"pk": {"S": "x"}}, 17],  # segment, start key (null: the start), skip
                   [5, null, 2]]}

Binary key values are base64 text, so the value survives ``json.dumps``.
"""

from __future__ import annotations

__all__ = [
    "Position",
    "ResumeState",
    "dump",
    "fingerprint",
    "load",
]

import base64
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ._errors import CheckpointError

VERSION = 1
_TAG = "dynascan_checkpoint"

Key = dict[str, Any]
# (ExclusiveStartKey of the page being read or None for the segment's start, items to skip)
Position = tuple[Key | None, int]


def _json_default(value: object) -> object:
    if isinstance(value, bytes | bytearray):
        return {"__bytes__": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)
    raise TypeError(f"scan parameter value of type {type(value).__name__} is not supported")


def fingerprint(scan_params: Mapping[str, Any]) -> str:
    """A stable digest of the Scan parameters, so a resume with other ones is refused.

    A digest rather than the parameters themselves: ``ExpressionAttributeValues`` may
    hold data the user would not want written into a checkpoint file.
    """
    canonical = json.dumps(
        scan_params, sort_keys=True, separators=(",", ":"), default=_json_default
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _encode_key(key: Key | None) -> Any:
    if key is None:
        return None
    out: dict[str, Any] = {}
    for name, value in key.items():
        ((tag, raw),) = value.items()
        if tag == "B":
            raw = base64.b64encode(bytes(raw)).decode("ascii")
        out[name] = {tag: raw}
    return out


def _decode_key(value: Any, where: str) -> Key | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not value:
        raise CheckpointError(f"checkpoint {where}: a key must be an object or null")
    out: Key = {}
    for name, attr in value.items():
        if not (isinstance(attr, dict) and len(attr) == 1):
            raise CheckpointError(f"checkpoint {where}: key attribute {name!r} is malformed")
        ((tag, raw),) = attr.items()
        if tag == "B":
            try:
                raw = base64.b64decode(raw, validate=True)
            except (ValueError, TypeError) as exc:
                raise CheckpointError(f"checkpoint {where}: bad base64 in key") from exc
        elif tag not in ("S", "N") or not isinstance(raw, str):
            raise CheckpointError(f"checkpoint {where}: key attribute {name!r} is malformed")
        out[name] = {tag: raw}
    return out


def _ranges(done: Iterable[int]) -> list[list[int]]:
    out: list[list[int]] = []
    for s in sorted(done):
        if out and out[-1][1] == s - 1:
            out[-1][1] = s
        else:
            out.append([s, s])
    return out


def dump(
    *,
    table: str,
    segments: int,
    params: str,
    done: Iterable[int],
    positions: Mapping[int, Position],
) -> dict[str, Any]:
    return {
        _TAG: VERSION,
        "table": table,
        "segments": segments,
        "params": params,
        "done": _ranges(done),
        "positions": [
            [segment, _encode_key(key), skip]
            for segment, (key, skip) in sorted(positions.items())
            if key is not None or skip
        ],
    }


@dataclass(frozen=True)
class ResumeState:
    segments: int
    done: frozenset[int] = frozenset()
    positions: Mapping[int, Position] = field(default_factory=dict)


def _int(value: Any, where: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise CheckpointError(f"checkpoint {where}: expected an integer in [{low}, {high}]")
    return value


def load(value: Any, *, table: str, segments: int | None, params: str) -> ResumeState:
    """Check that ``value`` was taken from a scan like this one, and unpack it."""
    if not isinstance(value, Mapping) or value.get(_TAG) != VERSION:
        raise CheckpointError(
            "resume_from is not a dynascan_async checkpoint (pass the value checkpoint() "
            "returned, or json.loads of it)"
        )
    if value.get("table") != table:
        raise CheckpointError(
            f"resume_from was taken from a scan of table {value.get('table')!r}, not {table!r}"
        )
    total = _int(value.get("segments"), "segments", 1, 1_000_000)
    if segments is not None and total != segments:
        raise CheckpointError(
            f"resume_from was taken with segments={total}, this scan has segments={segments}"
        )
    if value.get("params") != params:
        raise CheckpointError(
            "resume_from was taken with other Scan parameters (filter, projection, Limit, "
            "index, ...); resume with exactly the same ones"
        )
    done: set[int] = set()
    raw_done = value.get("done")
    if not isinstance(raw_done, list):
        raise CheckpointError("checkpoint done: expected a list of ranges")
    for item in raw_done:
        if not (isinstance(item, list) and len(item) == 2):
            raise CheckpointError("checkpoint done: expected [first, last] ranges")
        first = _int(item[0], "done", 0, total - 1)
        last = _int(item[1], "done", first, total - 1)
        done.update(range(first, last + 1))
    positions: dict[int, Position] = {}
    raw_positions = value.get("positions")
    if not isinstance(raw_positions, list):
        raise CheckpointError("checkpoint positions: expected a list")
    for item in raw_positions:
        if not (isinstance(item, list) and len(item) == 3):
            raise CheckpointError("checkpoint positions: expected [segment, key, skip]")
        segment = _int(item[0], "positions", 0, total - 1)
        if segment in done or segment in positions:
            raise CheckpointError(f"checkpoint positions: segment {segment} appears twice")
        key = _decode_key(item[1], f"positions[{segment}]")
        skip = _int(item[2], f"positions[{segment}]", 0, 2**31)
        positions[segment] = (key, skip)
    return ResumeState(segments=total, done=frozenset(done), positions=positions)
