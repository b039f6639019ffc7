"""Part writers: one file of an export, in one format, written whole or not at all.

A part writer opens a *new temporary file* next to its final name (through
:func:`dynascan_async._durable.atomic_file`: ``.part-000003.parquet.k2j4.tmp``, a name
that starts with ``.`` and does not end in the format's extension, so no reader of the
folder sees it), takes items, and on :meth:`commit` finishes the format (Parquet footer,
gzip trailer), ``fsync``-s the file, renames it to its final name and ``fsync``-s the
folder. :meth:`abort` removes the temporary file. Nothing else is ever written into the
folder by a writer, so a crash at any moment leaves either the finished part or a stale
temporary file.

The writers are synchronous and hold no event loop: the export loop runs their heavy
steps (:meth:`flush`, :meth:`commit`) in a worker thread, and a Dask task can use them as
they are. They are not thread-safe: one caller at a time.

Formats:

``parquet``
    ``pyarrow.RecordBatch`` in, zstd-compressed Parquet out. Batches are buffered and
    written in row groups of exactly ``row_group_size`` rows (the last one of a part may
    be shorter), so the row groups do not follow the scan's page sizes.
``jsonl``
    Plain items in, one line each exactly as ``dynascan scan`` prints them
    (:func:`dynascan_async._encode.dumps_item`).
``ddb-json``
    Raw AttributeValue items in, gzip out, one ``{"Item": {...}}`` per line: the shape of
    the ``DYNAMODB_JSON`` data files of DynamoDB's export to S3 (binary values as base64
    text, numbers as strings, sets as lists).
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_ROW_GROUP_SIZE",
    "DEFAULT_ROWS_PER_PART",
    "EXTENSIONS",
    "FORMATS",
    "PartInfo",
    "PartWriter",
    "dumps_ddb_item",
    "open_part",
]

import base64
import contextlib
import json
import os
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from .._durable import atomic_file
from .._encode import dumps_item

if TYPE_CHECKING:
    import pyarrow

FORMATS = ("parquet", "jsonl", "ddb-json")
EXTENSIONS = {"parquet": ".parquet", "jsonl": ".jsonl", "ddb-json": ".json.gz"}

# Sizes for analytics rather than for the scan. A row group is the unit a Parquet reader
# skips by its statistics and the unit DuckDB and Spark hand to one thread. 65,536 rows
# (DuckDB writes 122,880, pyarrow a million) keeps the writer's buffer, the one thing in
# an export that grows with a setting, at a few tens of MB for typical items, and makes an
# export of 100,000 items already work as a large one does (buffer, write, release)
# rather than hold the whole table to the end: measured peak RSS of a 1,000,000-item
# export 0.5-11% above a 100,000-item one, where 122,880-row groups gave 10-20%. A part of
# about a million rows (16 whole groups) is tens of MB compressed: large enough that a
# folder of a big table is not thousands of small files (which every engine reads
# slowly), small enough that a crash redoes little (at most one part is re-read).
DEFAULT_ROW_GROUP_SIZE = 65_536
DEFAULT_ROWS_PER_PART = 16 * DEFAULT_ROW_GROUP_SIZE  # 1,048,576

_LINES_PER_FLUSH = 2048


@dataclass(frozen=True)
class PartInfo:
    """A committed part file: its name in the export folder, its items and its size."""

    name: str
    items: int
    bytes: int

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "items": self.items, "bytes": self.bytes}


class PartWriter:
    """One part file being written; see the module docstring.

    Subclasses take items through ``add``/``add_batch`` and buffer them; ``needs_flush``
    says when :meth:`flush` has enough to write (the caller may run it in a thread).
    """

    format: str = ""

    def __init__(self, directory: str | os.PathLike[str], name: str) -> None:
        self.directory = Path(directory)
        self.name = name
        #: items added so far (flushed or not)
        self.rows = 0
        self._stack = contextlib.ExitStack()
        self._handle: BinaryIO = self._stack.enter_context(atomic_file(self.directory / name))
        self._closed = False

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} rows={self.rows} bytes={self.bytes_written}>"

    @property
    def bytes_written(self) -> int:
        """Bytes of the part written to its file so far (compressed, where it is)."""
        try:
            return self._handle.tell()
        except (OSError, ValueError):
            return 0

    @property
    def needs_flush(self) -> bool:
        return False

    def flush(self) -> None:
        """Write what is buffered (for Parquet, every whole row group)."""

    def _finish(self) -> None:
        """Write the format's ending (footer, trailer) into the temporary file."""

    def _drop(self) -> None:
        """Let go of format state after a failure, writing nothing more."""

    def commit(self) -> PartInfo:
        """Finish the file, fsync it, rename it to its name, fsync the folder.

        On failure (a full disk), the temporary file is removed and the error raised.
        """
        if self._closed:
            raise RuntimeError(f"part {self.name} is already closed")
        self._closed = True
        try:
            self._finish()
        except BaseException as exc:
            self._drop()
            self._stack.__exit__(type(exc), exc, exc.__traceback__)
            raise
        self._stack.close()  # atomic_file: flush, fsync, rename, fsync the folder
        size = (self.directory / self.name).stat().st_size
        return PartInfo(self.name, self.rows, size)

    def abort(self) -> None:
        """Forget the part: its temporary file is removed."""
        if self._closed:
            return
        self._closed = True
        self._drop()
        error = RuntimeError("part aborted")
        with contextlib.suppress(Exception):
            self._stack.__exit__(RuntimeError, error, None)

    # -- taking items; each subclass implements the one its format takes ----------

    def add(self, item: Any) -> None:
        raise TypeError(f"a {self.format} part takes {self._takes}")

    def add_batch(self, batch: pyarrow.RecordBatch) -> None:
        raise TypeError(f"a {self.format} part takes {self._takes}")

    _takes = ""


class _LinePart(PartWriter):
    """One line per item, buffered in memory and written in chunks (optionally gzip)."""

    _encode: Callable[[Any], str]

    def __init__(
        self, directory: str | os.PathLike[str], name: str, *, compress: bool = False
    ) -> None:
        super().__init__(directory, name)
        self._lines: list[str] = []
        # zlib with wbits=31 writes the gzip container itself: a header with no file name
        # (it would be the temporary one) and no time stamp, so the same items give the
        # same bytes, and no buffer of its own beyond the compressor. Level 6 is zlib's
        # default: a third of level 9's CPU for a few percent more bytes.
        self._zlib: Any = zlib.compressobj(6, zlib.DEFLATED, 31) if compress else None

    def add(self, item: Any) -> None:
        self._lines.append(self._encode(item))
        self.rows += 1

    def add_lines(self, items: Iterable[Any]) -> None:
        encode = self._encode
        before = len(self._lines)
        self._lines.extend(encode(item) for item in items)
        self.rows += len(self._lines) - before

    @property
    def needs_flush(self) -> bool:
        return len(self._lines) >= _LINES_PER_FLUSH

    def flush(self) -> None:
        if self._lines:
            data = "".join(self._lines).encode()
            self._lines = []
            if self._zlib is not None:
                data = self._zlib.compress(data)
            self._handle.write(data)

    def _finish(self) -> None:
        self.flush()
        if self._zlib is not None:
            self._handle.write(self._zlib.flush())  # the rest, and the gzip trailer

    def _drop(self) -> None:
        self._lines = []
        self._zlib = None


class _JsonlPart(_LinePart):
    format = "jsonl"
    _takes = "plain items (scan(..., deserialize=True))"
    _encode = staticmethod(dumps_item)


def _b64(value: Any) -> str:
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(value).decode("ascii")
    raise TypeError(f"cannot write a {type(value).__name__} in DynamoDB JSON")


def _make_ddb_dumps() -> Callable[[Any], str]:
    try:
        from orjson import dumps
    except ImportError:
        encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=_b64)

        def dumps_plain(item: Any) -> str:
            return '{"Item":' + encoder.encode(item) + "}\n"

        return dumps_plain

    def dumps_orjson(item: Any) -> str:
        return '{"Item":' + dumps(item, default=_b64).decode() + "}\n"

    return dumps_orjson


dumps_ddb_item: Callable[[Any], str] = _make_ddb_dumps()
dumps_ddb_item.__doc__ = "One raw item as a line of DynamoDB's export format: {'Item': {...}}."


class _DdbJsonPart(_LinePart):
    format = "ddb-json"
    _takes = "raw AttributeValue items (scan(..., deserialize=False))"
    _encode = staticmethod(dumps_ddb_item)

    def __init__(self, directory: str | os.PathLike[str], name: str) -> None:
        super().__init__(directory, name, compress=True)


class _ParquetPart(PartWriter):
    format = "parquet"
    _takes = "pyarrow.RecordBatch objects (arrow.scan_batches)"

    def __init__(
        self,
        directory: str | os.PathLike[str],
        name: str,
        *,
        schema: pyarrow.Schema,
        row_group_size: int = DEFAULT_ROW_GROUP_SIZE,
        compression: str = "zstd",
    ) -> None:
        import pyarrow.parquet as pq

        super().__init__(directory, name)
        self.schema = schema
        self.row_group_size = row_group_size
        self._pending: list[pyarrow.RecordBatch] = []
        self._pending_rows = 0
        try:
            self._writer: Any = pq.ParquetWriter(self._handle, schema, compression=compression)
        except BaseException:
            self.abort()
            raise

    def add_batch(self, batch: pyarrow.RecordBatch) -> None:
        if batch.num_rows:
            if not batch.schema.equals(self.schema):
                raise ValueError(
                    f"part {self.name}: a batch's schema differs from the part's "
                    f"({batch.schema} != {self.schema})"
                )
            self._pending.append(batch)
            self._pending_rows += batch.num_rows
            self.rows += batch.num_rows

    @property
    def needs_flush(self) -> bool:
        return self._pending_rows >= self.row_group_size

    def _write_groups(self, *, final: bool) -> None:
        import pyarrow as pa

        if not self._pending_rows or (not final and self._pending_rows < self.row_group_size):
            return
        table = pa.Table.from_batches(self._pending, schema=self.schema)
        size = self.row_group_size
        whole = table.num_rows if final else table.num_rows - table.num_rows % size
        start = 0
        while start < whole:
            length = min(size, whole - start)
            self._writer.write_table(table.slice(start, length), row_group_size=size)
            start += length
        rest = table.slice(whole)
        self._pending = rest.to_batches() if rest.num_rows else []
        self._pending_rows = rest.num_rows
        del table, rest
        # Arrow's allocator (mimalloc in the wheels) keeps what a row group freed for
        # reuse; handed back now, a long export holds one row group's worth, not the
        # high-water mark of every group it has written. pyarrow calls this expensive:
        # once per row group it is not (1M-item exports peaked at 199-202 MiB with it,
        # 203-211 without, in the same time).
        pa.default_memory_pool().release_unused()

    def flush(self) -> None:
        self._write_groups(final=False)

    def _finish(self) -> None:
        self._write_groups(final=True)
        self._writer.close()  # the footer; the underlying file stays open

    def _drop(self) -> None:
        self._pending = []
        self._pending_rows = 0
        writer = self._writer if hasattr(self, "_writer") else None
        if writer is not None and getattr(writer, "is_open", False):
            # Its close() writes a footer, which a full disk refuses; a writer left
            # open would try again (and complain) when it is collected.
            with contextlib.suppress(Exception):
                writer.close()
            writer.is_open = False


def open_part(
    format: str,
    directory: str | os.PathLike[str],
    name: str,
    *,
    schema: pyarrow.Schema | None = None,
    row_group_size: int = DEFAULT_ROW_GROUP_SIZE,
) -> PartWriter:
    """A writer for part file ``directory/name`` in ``format`` (see the module docstring).

    ``parquet`` needs the ``schema`` of the batches it will get (every part of one
    export must have the same one, or readers of the folder refuse it).
    """
    if format == "parquet":
        if schema is None:
            raise TypeError("a parquet part needs the schema of its batches")
        return _ParquetPart(directory, name, schema=schema, row_group_size=row_group_size)
    if format == "jsonl":
        return _JsonlPart(directory, name)
    if format == "ddb-json":
        return _DdbJsonPart(directory, name)
    raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")
