"""The export folder on disk: what each file is, and which one is the truth.

A folder ``DIR`` being exported into holds::

    DIR/part-000000.parquet       committed parts (".jsonl", ".json.gz" for the other formats)
    DIR/part-000001.parquet
    DIR/.part-000002.parquet.x1y2.tmp   the part being written (new file, renamed when whole)
    DIR/_export_state.json        while unfinished: the state (below)
    DIR/_manifest.json            once finished, written last

The **state** is the single source of truth while an export is unfinished::

    {"dynascan_export_state": 1, "table": "t", "format": "parquet",
     "params": "<sha256 of the Scan parameters>", "segments": 16,
     "checkpoint": {...},   # scan checkpoint covering exactly the items of "parts"
     "parts": [{"name": "part-000000.parquet", "items": 983040, "bytes": 41234567}, ...],
     "next_part": 2,        # the number the next part file gets
     "schema": "<base64 Arrow IPC schema>" | null,   # parquet: every part has this one
     "started_at": "2026-12-01T21:40:00Z"}

The commit protocol, per part: write the part under its temporary name, fsync, rename
to ``part-NNNNNN.ext``, fsync the folder; *then* replace the state (atomically, through
``_durable``) with one that lists the part and holds the scan's checkpoint taken right
after the part's last item. A crash between the rename and the state write leaves a
part the state does not list: :func:`clean` removes it, and the scan resumes from the
state's checkpoint, which does not cover its items, so they are read again, once.

Which file wins: a state, if there is one (the export is unfinished, whatever else is
there, including a manifest of an earlier run); else a manifest (the export is
finished); else nothing (a new export). Finishing writes the manifest and then removes
the state; overwriting writes a new state first and then removes the old files; so a
crash at any point of either leaves a folder that one of the three readings describes.
"""

from __future__ import annotations

__all__ = [
    "MANIFEST_NAME",
    "STATE_NAME",
    "ExportState",
    "clean",
    "acquire",
    "foreign_parts",
    "now",
    "part_name",
    "read_manifest",
    "read_state",
    "release",
    "remove_state",
    "write_json",
]

import contextlib
import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._durable import fsync_dir, remove_stale, write_atomic
from ._errors import ExportError, ExportLockedError
from ._formats import EXTENSIONS, FORMATS, PartInfo

STATE_NAME = "_export_state.json"
MANIFEST_NAME = "_manifest.json"
_STATE_TAG = "dynascan_export_state"
_VERSION = 1
# Part files of every export: "part-" and anything (the CLI numbers them; a Dask task
# may name its part after its partition), then the format's extension.
_PART = re.compile(r"^part-[A-Za-z0-9_.-]+$")
# What atomic_file leaves behind when a process dies mid-write: ".{name}.{random}.tmp".
_STALE_PART_TMP = re.compile(r"^\.part-[A-Za-z0-9_.-]+\.tmp$")


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def part_name(format: str, number: int) -> str:
    """``part-000042.parquet``: six digits keep ``ls`` and globs in commit order."""
    return f"part-{number:06d}{EXTENSIONS[format]}"


def is_part(format: str, name: str) -> bool:
    return bool(_PART.match(name)) and name.endswith(EXTENSIONS[format])


@dataclass(frozen=True)
class ExportState:
    """The unfinished export: what is committed, and where the scan goes on from."""

    table: str
    format: str
    params: str
    segments: int
    checkpoint: Any
    parts: tuple[PartInfo, ...] = ()
    next_part: int = 0
    schema: str | None = None
    started_at: str = field(default_factory=now)

    @property
    def items(self) -> int:
        return sum(part.items for part in self.parts)

    @property
    def bytes(self) -> int:
        return sum(part.bytes for part in self.parts)

    def to_json(self) -> dict[str, Any]:
        return {
            _STATE_TAG: _VERSION,
            "table": self.table,
            "format": self.format,
            "params": self.params,
            "segments": self.segments,
            "checkpoint": self.checkpoint,
            "parts": [part.to_json() for part in self.parts],
            "next_part": self.next_part,
            "schema": self.schema,
            "started_at": self.started_at,
        }

    @classmethod
    def from_json(cls, value: Any, where: Path) -> ExportState:
        try:
            if not isinstance(value, dict) or value.get(_STATE_TAG) != _VERSION:
                raise ValueError("not a dynascan export state")
            if value["format"] not in FORMATS:
                raise ValueError(f"unknown format {value['format']!r}")
            parts = tuple(
                PartInfo(str(p["name"]), int(p["items"]), int(p["bytes"])) for p in value["parts"]
            )
            for part in parts:
                if not is_part(value["format"], part.name):
                    raise ValueError(f"bad part name {part.name!r}")
            return cls(
                table=str(value["table"]),
                format=str(value["format"]),
                params=str(value["params"]),
                segments=int(value["segments"]),
                checkpoint=value["checkpoint"],
                parts=parts,
                next_part=int(value["next_part"]),
                schema=value.get("schema"),
                started_at=str(value.get("started_at", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ExportError(
                f"{where} is damaged ({exc}); remove the folder's export files to start over"
            ) from None


def _read_json(path: Path) -> Any:
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        return json.loads(text)
    except ValueError as exc:
        # Written atomically, so never half a file: this one was edited or is not ours.
        raise ExportError(f"{path} is not valid JSON ({exc})") from None


def read_state(directory: Path) -> ExportState | None:
    value = _read_json(directory / STATE_NAME)
    return None if value is None else ExportState.from_json(value, directory / STATE_NAME)


def read_manifest(directory: Path) -> dict[str, Any] | None:
    value = _read_json(directory / MANIFEST_NAME)
    if value is not None and not isinstance(value, dict):
        raise ExportError(f"{directory / MANIFEST_NAME} is not a dynascan export manifest")
    return value


def write_json(directory: Path, name: str, value: Any) -> None:
    """Replace ``directory/name`` atomically and durably (``_durable.write_atomic``)."""
    write_atomic(directory / name, json.dumps(value, indent=1).encode() + b"\n", mode=0o644)


def remove_state(directory: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        (directory / STATE_NAME).unlink()
    fsync_dir(directory)


def foreign_parts(directory: Path, format: str) -> list[str]:
    """Files a reader of the folder would take for parts, when no export owns the folder."""
    ext = EXTENSIONS[format]
    with os.scandir(directory) as entries:
        return sorted(
            e.name for e in entries if e.name.endswith(ext) and not e.name.startswith(("_", "."))
        )


def clean(directory: Path, state: ExportState) -> list[str]:
    """Make the folder hold exactly what ``state`` says: remove what a crash left.

    Removed: part files the state does not list (renamed, but the state naming them was
    never written), temporary files of parts, state and manifest, and a manifest of an
    earlier finished export (the state wins). Only names this package makes are touched.
    Returns the names removed.
    """
    listed = {part.name for part in state.parts}
    removed: list[str] = []
    with os.scandir(directory) as entries:
        names = [e.name for e in entries if e.is_file(follow_symlinks=False)]
    for name in names:
        stale_part = is_part(state.format, name) and name not in listed
        if stale_part or _STALE_PART_TMP.match(name) or name == MANIFEST_NAME:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(directory / name)
                removed.append(name)
    removed_tmp = remove_stale(directory, STATE_NAME) + remove_stale(directory, MANIFEST_NAME)
    if removed or removed_tmp:
        fsync_dir(directory)
    missing = [name for name in listed if not (directory / name).is_file()]
    if missing:
        raise ExportError(
            f"{directory}: committed part {missing[0]} is missing (removed by hand?); "
            "the export cannot be completed exactly; start over with overwrite"
        )
    return removed


def acquire(directory: Path) -> int:
    """Create the folder if needed and hold it for one export at a time.

    The lock is an advisory one on the folder's own descriptor, so there is no lock file
    to clean up after a ``kill -9`` (the kernel drops the lock with the process). Returns
    the descriptor; :func:`release` it when done.
    """
    if directory.exists() and not directory.is_dir():
        raise ExportError(f"{directory} is not a folder")
    directory.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no advisory locks on folders
        return -1
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise ExportLockedError(
            f"another export is writing {directory} right now; wait for it to end"
        ) from None
    return fd


def release(fd: int) -> None:
    if fd != -1:
        os.close(fd)  # and with it the lock
