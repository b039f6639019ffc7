"""The export loop: scan, write parts, commit each with the scan's checkpoint.

This is the one place where "exactly once" is kept for exports (the folder's layout and
the reasons for the order of the steps are in ``_layout``):

1. a scan (``scan()`` for the line formats, ``arrow.scan_batches()`` for Parquet) resumed
   from the state's checkpoint;
2. every item or batch it yields goes straight into the current part writer, with no
   await in between, so at every await the writer holds exactly the items the scan's
   ``checkpoint()`` counts as delivered;
3. when the part is full: commit the part (fsync, rename), then the state with that
   checkpoint. Both run shielded from cancellation, so an interruption lands before or
   after a whole commit, never inside one (a ``kill -9`` inside one is what ``_layout``
   covers);
4. interrupted by a signal, a cancellation or a DynamoDB error, the part being written
   is committed the same way before the error goes on: nothing read is read again.
   A write error (a full disk) instead drops the part being written; the committed
   ones stay, and the same call continues once there is space.

The writers' heavy steps (compressing a row group, fsync) run in a worker thread, so
the scan keeps fetching pages meanwhile.
"""

from __future__ import annotations

__all__ = ["export_table", "write_part"]

import math
import os
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

from .._checkpoint import fingerprint
from .._options import int_option
from .._stats import ScanStats
from . import _layout
from ._errors import ExportError, ExportExistsError, ExportMismatchError
from ._formats import (
    DEFAULT_ROW_GROUP_SIZE,
    DEFAULT_ROWS_PER_PART,
    FORMATS,
    PartInfo,
    PartWriter,
    open_part,
)
from ._manifest import ExportManifest, ExportProgress


def _schema_text(schema: Any) -> str | None:
    """An Arrow schema as text for the state (base64 of its IPC form), None for None."""
    import base64

    if schema is None:
        return None
    return base64.b64encode(schema.serialize().to_pybytes()).decode("ascii")


def _schema_from_text(text: str) -> Any:
    import base64

    import pyarrow as pa

    return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(text)))


class _Export:
    """One run of one export: the state, the writer, the commit step."""

    def __init__(
        self,
        directory: Path,
        state: _layout.ExportState,
        *,
        rows_per_part: int,
        row_group_size: int,
        on_progress: Callable[[ExportProgress], None] | None = None,
        progress_interval: float = 0.25,
    ) -> None:
        self.directory = directory
        self.state = state
        self.rows_per_part = rows_per_part
        self.row_group_size = row_group_size
        self.writer: PartWriter | None = None
        self.schema: Any = _schema_from_text(state.schema) if state.schema else None
        self.source: Any = None  # the scan, once opened
        self.write_failed = False
        self.on_progress = on_progress
        self.progress_interval = progress_interval
        self._next_report = time.monotonic() + progress_interval

    # -- parts ---------------------------------------------------------------------

    def open_part(self) -> PartWriter:
        name = _layout.part_name(self.state.format, self.state.next_part)
        try:
            self.writer = open_part(
                self.state.format,
                self.directory,
                name,
                schema=self.schema,
                row_group_size=self.row_group_size,
            )
        except BaseException:
            self.write_failed = True
            raise
        return self.writer

    async def flush(self, writer: PartWriter) -> None:
        try:
            await anyio.to_thread.run_sync(writer.flush)
        except BaseException:
            # Cancelled while the thread writes: it finishes (run_sync waits for it),
            # but whether the buffer reached the file is not worth guessing at.
            self.write_failed = True
            raise

    async def commit(self, checkpoint: Any) -> None:
        """Commit the part being written, then the state saying so (see ``_layout``)."""
        writer, self.writer = self.writer, None
        if writer is None:
            return
        with anyio.CancelScope(shield=True):
            if not writer.rows:
                writer.abort()
                return
            try:
                part = await anyio.to_thread.run_sync(writer.commit)
            except BaseException:
                self.write_failed = True
                raise
            state = replace(
                self.state,
                checkpoint=checkpoint,
                parts=(*self.state.parts, part),
                next_part=self.state.next_part + 1,
                schema=self.state.schema or _schema_text(self.schema),
            )
            try:
                await anyio.to_thread.run_sync(
                    _layout.write_json, self.directory, _layout.STATE_NAME, state.to_json()
                )
            except BaseException:
                # The part is renamed but not listed: the next run removes it and reads
                # its items again.
                self.write_failed = True
                raise
            self.state = state

    def abort(self) -> None:
        writer, self.writer = self.writer, None
        if writer is not None:
            writer.abort()

    # -- progress --------------------------------------------------------------------

    def tick(self) -> None:
        """Report progress if it is time (called per item: one clock read when not)."""
        if self.on_progress is not None and time.monotonic() >= self._next_report:
            self._next_report = time.monotonic() + self.progress_interval
            progress = self.progress()
            if progress is not None:
                self.on_progress(progress)

    def progress(self) -> ExportProgress | None:
        source = self.source
        if source is None:
            return None
        writer = self.writer
        state = self.state
        stats: ScanStats = source.stats
        return ExportProgress(
            items=state.items + (writer.rows if writer is not None else 0),
            committed_items=state.items,
            parts=len(state.parts),
            bytes=state.bytes + (writer.bytes_written if writer is not None else 0),
            stats=stats,
        )

    # -- the loops -------------------------------------------------------------------

    async def run_items(self, scan: Any) -> None:
        """jsonl and ddb-json: a part holds exactly ``rows_per_part`` items."""
        limit = self.rows_per_part
        writer = self.writer
        tick = self.tick
        async for item in scan:
            if writer is None:
                writer = self.open_part()
            try:
                writer.add(item)
            except BaseException:
                # The scan counts this item as delivered, the part does not hold it:
                # this part must not be committed with the scan's checkpoint.
                self.write_failed = True
                raise
            if writer.rows >= limit:
                await self.commit(scan.checkpoint())
                writer = None
            elif writer.needs_flush:
                await self.flush(writer)
            tick()

    async def run_batches(self, batches: Any) -> None:
        """parquet: a part ends with the batch that brings it to ``rows_per_part``.

        Not exactly: the scan's checkpoint marks whole batches (pages) only, and a part
        split inside one could not be committed with a checkpoint that matches it.
        """
        limit = self.rows_per_part
        writer = self.writer
        async for batch in batches:
            if not batch.num_rows:
                continue
            if writer is None:
                # The scan fixed it (from schema= or its first page), and it is the
                # schema= of every resumed scan of this export: the same in every part.
                self.schema = batch.schema
                writer = self.open_part()
            try:
                writer.add_batch(batch)
            except BaseException:
                self.write_failed = True
                raise
            if writer.rows >= limit:
                await self.commit(batches.checkpoint())
                writer = None
            elif writer.needs_flush:
                await self.flush(writer)
            self.tick()


def _open_source(
    format: str,
    client: Any,
    table: str,
    *,
    segments: int | None,
    checkpoint: Any,
    schema: Any,
    scan_options: dict[str, Any],
    scan_params: dict[str, Any],
) -> Any:
    """The scan an export reads: validated here, before anything is sent."""
    if format == "parquet":
        from .. import arrow

        return arrow.scan_batches(
            client,
            table,
            segments=segments,
            resume_from=checkpoint,
            schema=schema,
            **scan_options,
            **scan_params,
        )
    from .._scan import scan

    return scan(
        client,
        table,
        segments=segments,
        resume_from=checkpoint,
        deserialize=format == "jsonl",
        **scan_options,
        **scan_params,
    )


async def export_table(
    client: Any,
    table: str,
    directory: str | os.PathLike[str],
    /,
    *,
    format: str = "parquet",
    segments: int | None = None,
    concurrency: int | None = None,
    rate_limit: Any = None,
    rows_per_part: int = DEFAULT_ROWS_PER_PART,
    row_group_size: int = DEFAULT_ROW_GROUP_SIZE,
    overwrite: bool = False,
    schema: Any = None,
    on_progress: Callable[[ExportProgress], None] | None = None,
    progress_interval: float = 0.25,
    scan_options: dict[str, Any] | None = None,
    **scan_params: Any,
) -> ExportManifest:
    """Export a whole table (or index, or filtered subset) into part files in ``directory``.

    See :mod:`dynascan_async.export`.
    """
    if format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")
    rows_per_part = int_option("rows_per_part", rows_per_part, 1)
    row_group_size = int_option("row_group_size", row_group_size, 1)
    if not isinstance(overwrite, bool):
        raise TypeError(f"overwrite must be True or False, not {overwrite!r}")
    if not (isinstance(progress_interval, int | float) and math.isfinite(progress_interval)):
        raise TypeError("progress_interval must be a finite number of seconds")
    if format == "parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise ImportError(
                "format='parquet' needs pyarrow: pip install 'dynascan-async[arrow]'"
            ) from None
    options = {
        "concurrency": concurrency,
        "rate_limit": rate_limit,
        **(scan_options or {}),
    }
    folder = Path(directory)
    params = fingerprint(scan_params)
    # A scan made without a checkpoint checks every option (before any request), and
    # says how many segments it chose; the folder is not touched before that.
    probe = _open_source(
        format,
        client,
        table,
        segments=segments,
        checkpoint=None,
        schema=schema,
        scan_options=options,
        scan_params=scan_params,
    )
    start = probe.checkpoint()
    # The schema the scan will use (schema= as arrow completes it), to compare with the
    # one an unfinished export was written with.
    wanted_schema = _schema_text(getattr(probe, "schema", None))
    del probe

    fresh = _layout.ExportState(
        table=table,
        format=format,
        params=params,
        segments=int(start["segments"]),
        checkpoint=start,
        schema=wanted_schema,
    )
    lock = await anyio.to_thread.run_sync(_layout.acquire, folder)
    try:
        state = await anyio.to_thread.run_sync(
            _prepare, folder, fresh, overwrite, segments is not None
        )
        return await _run(
            client,
            folder,
            state,
            rows_per_part=rows_per_part,
            row_group_size=row_group_size,
            on_progress=on_progress,
            progress_interval=progress_interval,
            scan_options=options,
            scan_params=scan_params,
        )
    finally:
        _layout.release(lock)


def _prepare(
    folder: Path, fresh: _layout.ExportState, overwrite: bool, explicit_segments: bool
) -> _layout.ExportState:
    """The state this run continues from, with the folder cleaned to match it."""
    damaged = False
    try:
        state = _layout.read_state(folder)
    except ExportError:
        if not overwrite:
            raise
        state, damaged = None, True  # edited by hand? overwrite replaces it like any other
    if damaged:
        pass
    elif state is not None:
        why = _mismatch(state, fresh, explicit_segments=explicit_segments)
        if why and not overwrite:
            raise ExportMismatchError(
                f"{folder} holds an unfinished export with {why}; run that command to "
                "finish it, or overwrite to start over"
            )
        if why:
            state = None
    elif (manifest := _read_manifest(folder, overwrite)) is not None:
        if not overwrite:
            raise ExportExistsError(
                f"{folder} holds a finished export of table {manifest.get('table')!r} "
                f"({manifest.get('items', 0):,} items in {len(manifest.get('parts', ())):,} "
                "parts); overwrite to replace it"
            )
    elif foreign := _layout.foreign_parts(folder, fresh.format):
        raise ExportExistsError(
            f"{folder} holds {foreign[0]} and no dynascan export; choose an empty folder"
        )
    if state is None:
        # New, or replacing: the new state first, so the old files it does not list
        # are clean()'s to remove even if this run dies right here.
        state = fresh
        _layout.write_json(folder, _layout.STATE_NAME, state.to_json())
    _layout.clean(folder, state)
    return state


def _read_manifest(folder: Path, overwrite: bool) -> dict[str, Any] | None:
    try:
        return _layout.read_manifest(folder)
    except ExportError:
        if not overwrite:
            raise
        return {}  # damaged: a finished export of unknown shape, which overwrite replaces


def _mismatch(
    state: _layout.ExportState, wanted: _layout.ExportState, *, explicit_segments: bool
) -> str:
    """Why ``state`` was not made by this command ("" if it was)."""
    if state.table != wanted.table:
        return f"table {state.table!r}"
    if state.format != wanted.format:
        return f"format {state.format}"
    if state.params != wanted.params:
        return "other Scan parameters (filter, projection, index, page size, ...)"
    if explicit_segments and state.segments != wanted.segments:
        return f"{state.segments} segments"
    if wanted.schema is not None and state.schema not in (None, wanted.schema):
        return "another schema"
    return ""


async def _run(
    client: Any,
    folder: Path,
    state: _layout.ExportState,
    *,
    rows_per_part: int,
    row_group_size: int,
    on_progress: Callable[[ExportProgress], None] | None,
    progress_interval: float,
    scan_options: dict[str, Any],
    scan_params: dict[str, Any],
) -> ExportManifest:
    run = _Export(
        folder,
        state,
        rows_per_part=rows_per_part,
        row_group_size=row_group_size,
        on_progress=on_progress,
        progress_interval=progress_interval,
    )
    source = _open_source(
        state.format,
        client,
        state.table,
        segments=state.segments,
        checkpoint=state.checkpoint,
        schema=run.schema,
        scan_options=scan_options,
        scan_params=scan_params,
    )
    run.source = source
    try:
        async with source:
            if state.format == "parquet":
                await run.run_batches(source)
            else:
                await run.run_items(source)
    except BaseException as exc:
        # A cancellation (a signal, in the CLI) or DynamoDB's error: both arrive at an
        # await, where the part holds exactly what the checkpoint counts, so keep what
        # was read: commit the part with the checkpoint that covers it. A write error,
        # an item the part could not take, or a KeyboardInterrupt (which Python raises
        # between any two bytecodes, maybe between receiving an item and writing it):
        # drop the part; its items are read again next time.
        consistent = isinstance(exc, Exception | anyio.get_cancelled_exc_class())
        if run.write_failed or not consistent:
            run.abort()
        else:
            try:
                await run.commit(source.checkpoint())
            except BaseException:
                run.abort()
                raise
        raise
    await run.commit(source.checkpoint())
    final = run.state
    manifest = ExportManifest(
        directory=folder,
        table=final.table,
        format=final.format,
        parts=final.parts,
        items=final.items,
        bytes=final.bytes,
        segments=final.segments,
        params=final.params,
        started_at=final.started_at,
        finished_at=_layout.now(),
        stats=source.stats,
    )
    with anyio.CancelScope(shield=True):
        await anyio.to_thread.run_sync(
            _layout.write_json, folder, _layout.MANIFEST_NAME, manifest.to_json()
        )
        await anyio.to_thread.run_sync(_layout.remove_state, folder)
    if on_progress is not None:
        progress = run.progress()
        if progress is not None:
            on_progress(progress)
    return manifest


async def write_part(
    client: Any,
    table: str,
    directory: str | os.PathLike[str],
    name: str,
    /,
    *,
    format: str = "parquet",
    segments: int | None = None,
    concurrency: int | None = None,
    rate_limit: Any = None,
    resume_from: Any = None,
    schema: Any = None,
    row_group_size: int = DEFAULT_ROW_GROUP_SIZE,
    scan_options: dict[str, Any] | None = None,
    **scan_params: Any,
) -> PartInfo | None:
    """Scan (a share of) a table into ONE part file ``directory/name``, whole or not at all.

    For work split elsewhere, such as one Dask task per partition: ``resume_from`` (a
    checkpoint with the other segments marked done) selects what this part holds. The
    part is streamed (memory: one row group) to a temporary file and renamed to ``name``
    only once complete, so a retry of the same work replaces it atomically: the name is
    the idempotency key. Returns the part, or None when the scan had no items and no
    ``schema`` was given (nothing is written then; with a schema, Parquet gets an empty
    part of that schema). Any failure leaves no file of this call behind.
    """
    if format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")
    row_group_size = int_option("row_group_size", row_group_size, 1)
    source = _open_source(
        format,
        client,
        table,
        segments=segments,
        checkpoint=resume_from,
        schema=schema,
        scan_options={"concurrency": concurrency, "rate_limit": rate_limit, **(scan_options or {})},
        scan_params=scan_params,
    )
    folder = Path(directory)
    writer: PartWriter | None = None

    def start(part_schema: Any) -> PartWriter:
        return open_part(format, folder, name, schema=part_schema, row_group_size=row_group_size)

    try:
        async with source:
            if format == "parquet":
                async for batch in source:
                    if not batch.num_rows:
                        continue
                    if writer is None:
                        writer = await anyio.to_thread.run_sync(start, batch.schema)
                    writer.add_batch(batch)
                    if writer.needs_flush:
                        await anyio.to_thread.run_sync(writer.flush)
                if writer is None and source.schema is not None and schema is not None:
                    writer = await anyio.to_thread.run_sync(start, source.schema)
            else:
                async for item in source:
                    if writer is None:
                        writer = await anyio.to_thread.run_sync(start, None)
                    writer.add(item)
                    if writer.needs_flush:
                        await anyio.to_thread.run_sync(writer.flush)
        if writer is None:
            return None
        with anyio.CancelScope(shield=True):
            part: PartInfo = await anyio.to_thread.run_sync(writer.commit)
        return part
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
