"""An export whose part files are written by the tasks of a Dask cluster.

The same folder, part writers and manifest as ``dynascan export`` (``export.write_part``,
``export.write_manifest``): one part per partition, each a group of whole segments that
one task scans and writes, committed whole under its name (temporary file, fsync, rename),
so a task run again replaces its part and never adds a second one. The folder must be one
the workers and the caller all see (a local folder for a ``LocalCluster``, a shared file
system otherwise).

What the folder keeps besides the parts, all named so that readers skip them:

* ``_dask_export.json``: the plan (table, format, segments, partitions, Scan parameters'
  digest, the Parquet schema), written before any task runs. A run on a folder that has
  one continues that plan and refuses another table, format, segments, partitions or
  Scan parameters.
* ``_dask_done-NNNNNN.json``: written by a task once its part is committed, with its
  item count. A partition without one is (re)written by the next run; one with it is not.
* ``_manifest.json``, last, once every partition is done; then the two above are removed.
"""

from __future__ import annotations

__all__ = ["WritePart", "export_on_cluster"]

import base64
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import _checkpoint, _durable
from ._dask_task import run_sync
from ._partitions import Partition, plan, resume_value
from ._retry import RetryPolicy

if TYPE_CHECKING:
    import pyarrow

    from .export import ExportManifest

PLAN_NAME = "_dask_export.json"
_TAG = "dynascan_dask_export"


def _done_name(index: int) -> str:
    return f"_dask_done-{index:06d}.json"


def _schema_text(schema: pyarrow.Schema | None) -> str | None:
    if schema is None:
        return None
    return base64.b64encode(schema.serialize().to_pybytes()).decode("ascii")


def _schema_from(text: str | None) -> pyarrow.Schema | None:
    if text is None:
        return None
    import pyarrow

    return pyarrow.ipc.read_schema(pyarrow.py_buffer(base64.b64decode(text)))


@dataclass(frozen=True)
class WritePart:
    """The task: one partition's segments into one committed part file, then its record."""

    table: str
    directory: str
    format: str
    client_kwargs: Mapping[str, Any]
    scan_params: Mapping[str, Any]
    schema_text: str | None
    concurrency: int | None
    retry: RetryPolicy | None
    row_group_size: int

    def __call__(self, partition: Partition) -> dict[str, Any]:
        return run_sync(lambda: self.write(partition))

    async def write(self, partition: Partition) -> dict[str, Any]:
        from . import export
        from ._dask_task import _session

        name = export.part_name(self.format, partition.index)
        async with _session().create_client("dynamodb", **self.client_kwargs) as client:
            part = await export.write_part(
                client,
                self.table,
                self.directory,
                name,
                format=self.format,
                segments=partition.total,
                concurrency=self.concurrency,
                rate_limit=partition.rate_limit,
                resume_from=resume_value(partition, table=self.table, scan_params=self.scan_params),
                schema=_schema_from(self.schema_text),
                row_group_size=self.row_group_size,
                scan_options={"retry": self.retry} if self.retry else None,
                **self.scan_params,
            )
        record = {"index": partition.index, "part": None if part is None else part.to_json()}
        # After the part: a record means its part is whole and final.
        _durable.write_atomic(
            Path(self.directory) / _done_name(partition.index), json.dumps(record).encode()
        )
        return record


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def export_on_cluster(
    table: str,
    directory: str,
    *,
    client_kwargs: Mapping[str, Any],
    segments: int,
    partitions: int,
    format: str,
    budget: float | None,
    schema: pyarrow.Schema | None,
    concurrency: int | None,
    retry: RetryPolicy | None,
    row_group_size: int,
    overwrite: bool,
    retries: int,
    dask_client: Any,
    scan_params: Mapping[str, Any],
) -> ExportManifest:
    """Plan (or continue) the export in ``directory``, run the missing parts, finish it."""
    from . import export
    from ._export._errors import ExportExistsError, ExportMismatchError

    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    if export.read_manifest(folder) is not None:
        if not overwrite:
            raise ExportExistsError(
                f"{folder} holds a finished export; pass overwrite=True (--overwrite) to replace it"
            )
        for entry in folder.iterdir():
            if entry.is_file() and (
                entry.name.endswith(export.EXTENSIONS[format]) or entry.name.startswith("_")
            ):
                entry.unlink()
    digest = _checkpoint.fingerprint(scan_params)
    wanted = {
        _TAG: 1,
        "table": table,
        "format": format,
        "segments": segments,
        "partitions": partitions,
        "params": digest,
    }
    saved = _read_json(folder / PLAN_NAME)
    if saved is None:
        saved = {**wanted, "schema": _schema_text(schema), "started_at": _now()}
        _durable.write_atomic(folder / PLAN_NAME, json.dumps(saved).encode())
    else:
        differs = [key for key, value in wanted.items() if saved.get(key) != value]
        if differs:
            raise ExportMismatchError(
                f"{folder} holds an unfinished cluster export with another "
                f"{', '.join(differs)}; run the same command, or pass overwrite=True "
                "(--overwrite) after removing it"
            )
    groups = plan(segments=segments, partitions=partitions, rate_limit=budget)
    missing = [g for g in groups if not (folder / _done_name(g.index)).exists()]
    task = WritePart(
        table=table,
        directory=str(folder.resolve()),
        format=format,
        client_kwargs=dict(client_kwargs),
        scan_params=dict(scan_params),
        schema_text=saved.get("schema"),
        concurrency=concurrency,
        retry=retry,
        row_group_size=row_group_size,
    )
    if missing:
        futures = dask_client.map(task, missing, retries=retries, pure=False)
        dask_client.gather(futures)
    parts = []
    for group in groups:
        record = _read_json(folder / _done_name(group.index))
        if record is None:  # pragma: no cover - gather raised if a task failed
            raise RuntimeError(f"partition {group.index} of the export has no record")
        if record["part"] is not None:
            parts.append(record["part"])
    infos = tuple(export.PartInfo(p["name"], int(p["items"]), int(p["bytes"])) for p in parts)
    manifest = export.ExportManifest(
        directory=folder,
        table=table,
        format=format,
        parts=infos,
        items=sum(p.items for p in infos),
        bytes=sum(p.bytes for p in infos),
        segments=segments,
        params=digest,
        started_at=str(saved.get("started_at", _now())),
        finished_at=_now(),
    )
    export.write_manifest(manifest)
    (folder / PLAN_NAME).unlink()
    for group in groups:
        (folder / _done_name(group.index)).unlink(missing_ok=True)
    _durable.fsync_dir(folder)
    return manifest
