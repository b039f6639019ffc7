"""Exports: a whole table into a folder of part files, exactly once, however interrupted.

::

    from dynascan_async import export

    manifest = await export.export_table(client, "logfile_scan", "out/", format="parquet",
                                         segments=16, rate_limit=1000)
    print(manifest.items, [part.name for part in manifest.parts])

``export_table(client, table, directory, /, *, format="parquet", segments=None,
concurrency=None, rate_limit=None, rows_per_part=1_048_576, row_group_size=65_536,
overwrite=False, schema=None, on_progress=None, progress_interval=0.25,
scan_options=None, **scan_params)`` scans the table (``scan()``'s arguments and Scan
parameters) into ``directory``:

* ``format="parquet"``: ``part-NNNNNN.parquet`` (zstd, row groups of ``row_group_size``
  rows, typed as :mod:`dynascan_async.arrow` types them; ``schema`` to give the Arrow
  schema instead of inferring it), read by ``pyarrow.parquet.read_table(directory)``,
  DuckDB's ``read_parquet('directory/*.parquet')``, polars, pandas, Spark;
* ``"jsonl"``: ``part-NNNNNN.jsonl``, lines exactly as ``dynascan scan`` prints them;
* ``"ddb-json"``: ``part-NNNNNN.json.gz``, DynamoDB's own export format
  (``DYNAMODB_JSON``: gzip, one ``{"Item": {...}}`` per line in AttributeValue form);
* ``_manifest.json``, written last: every part with its item count, the table, the
  format and the totals. It is also what :func:`export_table` returns
  (:class:`ExportManifest`), and :func:`read_manifest` reads it back.

Each part is committed whole (temporary name, fsync, rename) together with the scan's
checkpoint, in ``_export_state.json``, so an interrupted export (a signal, ``kill -9``,
a crash, a full disk, a DynamoDB error) keeps its progress, and the same call continues
it; the finished folder holds every item exactly once. A finished export is not
overwritten (:class:`ExportExistsError`) unless ``overwrite=True``; an unfinished one
made with another table, format or Scan parameters is refused
(:class:`ExportMismatchError`). ``on_progress`` is called with an
:class:`ExportProgress` about every ``progress_interval`` seconds while items arrive.
``scan_options`` passes further options of ``scan()`` (``transport``, ``retry``, ...).

For work split elsewhere (a Dask task writes one part per partition):
:func:`write_part` scans a share of the table (``resume_from`` selects it) into one part
file, streamed and committed whole under its name, so a retried task replaces its part
atomically; :func:`write_manifest` then writes the manifest once every part is there.
The part writers (:func:`open_part`) are usable on their own too: ``add`` /
``add_batch``, then ``commit()`` (whole or not at all) or ``abort()``.

Importing this module imports neither pyarrow nor anything else heavy.
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_ROW_GROUP_SIZE",
    "DEFAULT_ROWS_PER_PART",
    "EXTENSIONS",
    "FORMATS",
    "ExportError",
    "ExportExistsError",
    "ExportLockedError",
    "ExportManifest",
    "ExportMismatchError",
    "ExportProgress",
    "PartInfo",
    "PartWriter",
    "export_table",
    "open_part",
    "part_name",
    "read_manifest",
    "write_manifest",
    "write_part",
]

import os
from pathlib import Path

from ._export import _layout
from ._export._errors import (
    ExportError,
    ExportExistsError,
    ExportLockedError,
    ExportMismatchError,
)
from ._export._formats import (
    DEFAULT_ROW_GROUP_SIZE,
    DEFAULT_ROWS_PER_PART,
    EXTENSIONS,
    FORMATS,
    PartInfo,
    PartWriter,
    open_part,
)
from ._export._layout import part_name
from ._export._layout import read_manifest as _read_manifest_json
from ._export._manifest import ExportManifest, ExportProgress
from ._export._run import export_table, write_part


def read_manifest(directory: str | os.PathLike[str]) -> ExportManifest | None:
    """The manifest of the finished export in ``directory``, or None if it has none."""
    folder = Path(directory)
    value = _read_manifest_json(folder)
    return None if value is None else ExportManifest.from_json(value, folder)


def write_manifest(manifest: ExportManifest) -> None:
    """Write ``manifest.directory/_manifest.json`` atomically (for exports assembled
    from parts written elsewhere, e.g. by Dask tasks; write it after every part)."""
    _layout.write_json(Path(manifest.directory), _layout.MANIFEST_NAME, manifest.to_json())
