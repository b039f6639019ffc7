"""The values an export hands out: its manifest (also ``DIR/_manifest.json``) and progress.

``_manifest.json`` is the last file an export writes; its presence (with no state file
beside it) is what "finished" means. It lists every part with its item count, so a
reader can check a folder without opening the parts::

    {"dynascan_export": 1, "table": "logfile_scan", "format": "parquet",
     "items": 100000, "bytes": 2345678,
     "parts": [{"name": "part-000000.parquet", "items": 100000, "bytes": 2345678}],
     "segments": 16, "params": "<sha256 of the Scan parameters>",
     "started_at": "...", "finished_at": "..."}
"""

from __future__ import annotations

__all__ = ["ExportManifest", "ExportProgress"]

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._stats import ScanStats
from ._errors import ExportError
from ._formats import PartInfo

_TAG = "dynascan_export"
_VERSION = 1


@dataclass(frozen=True)
class ExportManifest:
    """A finished export: every part with its item count, and the totals.

    ``stats`` is the scan of the run that finished it (``None`` when read from disk);
    ``items`` counts every run's items.
    """

    directory: Path
    table: str
    format: str
    parts: tuple[PartInfo, ...]
    items: int
    bytes: int
    segments: int
    params: str
    started_at: str
    finished_at: str
    stats: ScanStats | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            _TAG: _VERSION,
            "table": self.table,
            "format": self.format,
            "items": self.items,
            "bytes": self.bytes,
            "parts": [part.to_json() for part in self.parts],
            "segments": self.segments,
            "params": self.params,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
        }

    @classmethod
    def from_json(cls, value: Any, directory: Path) -> ExportManifest:
        try:
            if value.get(_TAG) != _VERSION:
                raise ValueError("not a dynascan export manifest")
            return cls(
                directory=directory,
                table=str(value["table"]),
                format=str(value["format"]),
                parts=tuple(
                    PartInfo(str(p["name"]), int(p["items"]), int(p["bytes"]))
                    for p in value["parts"]
                ),
                items=int(value["items"]),
                bytes=int(value["bytes"]),
                segments=int(value["segments"]),
                params=str(value["params"]),
                started_at=str(value["started_at"]),
                finished_at=str(value["finished_at"]),
            )
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise ExportError(f"{directory}/_manifest.json is damaged ({exc})") from None


@dataclass(frozen=True)
class ExportProgress:
    """Where an export is: items and bytes committed or being written, over all runs.

    ``items`` counts every item taken from the scan, committed or in the part being
    written; ``committed_items`` only those in committed parts (what a crash keeps).
    """

    items: int
    committed_items: int
    parts: int
    bytes: int
    stats: ScanStats
