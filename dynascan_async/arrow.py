"""Scan a table into Arrow record batches: for pyarrow, pandas, polars, DuckDB, Parquet.

::

    from dynascan_async import arrow

    async with arrow.scan_batches(client, "logfile_scan", segments=16) as batches:
        async for batch in batches:          # pyarrow.RecordBatch, one per Scan page
            ...
    table = await arrow.read_table(client, "logfile_scan", segments=16)  # pyarrow.Table

Needs the ``arrow`` extra (pyarrow); ``import dynascan_async`` alone never imports it.

The pages go straight from their JSON text into Arrow arrays (``_columns``), with no
Python object per item, which is what makes this cheaper than ``scan()``'s Python values.
The schema is fixed once, from ``schema=`` or from the first page with items, and every
batch has exactly it; what does not fit it is kept in the ``_rest`` column as DynamoDB
JSON text (the README's type table says what goes where). One batch is one page, so a
``checkpoint()`` taken between batches resumes exactly where the consumer stopped.

Also here, for code that makes its own pages or plans its own scans (exports, Dask):
``infer_schema`` (a schema from a sample of raw items), ``items_to_batch`` (raw items to a
batch of a given schema) and ``to_items`` (batches back to ``scan()``'s Python values).
"""

from __future__ import annotations

__all__ = [
    "REST",
    "BatchScan",
    "infer_schema",
    "items_to_batch",
    "read_table",
    "scan_batches",
    "to_items",
]

import dataclasses
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any, Literal

try:
    import pyarrow as pa
except ImportError as exc:  # pragma: no cover - the extra is installed wherever tests run
    raise ImportError(
        "dynascan_async.arrow needs pyarrow: pip install 'dynascan-async[arrow]'"
    ) from exc

from ._arrow_rows import to_items
from ._arrow_types import REST, with_rest
from ._arrow_types import infer_schema as _infer_schema
from ._columns import PageColumns, PageParser, items_body, to_batch
from ._options import validate
from ._retry import RetryPolicy
from ._scan import Scan, _Items
from ._stats import ScanStats


class BatchScan(Scan):
    """A parallel scan that yields ``pyarrow.RecordBatch`` es; see :func:`scan_batches`.

    Everything of :class:`dynascan_async.Scan` holds (the two forms, ``checkpoint()``,
    cleanup); ``stats.items`` counts rows.
    """

    __slots__ = ("_columns", "_rows")

    def __init__(self, client: Any, options: Any, columns: PageColumns) -> None:
        super().__init__(client, options)
        self._columns = columns
        self._rows = 0

    def __repr__(self) -> str:
        o = self._options
        return (
            f"<BatchScan table={o.table!r} segments={o.segments} concurrency={o.concurrency} "
            f"transport={o.transport} state={self._state} rows={self._rows}>"
        )

    def __aiter__(self) -> AsyncIterator[pa.RecordBatch]:
        return _Batches(self)

    async def __anext__(self) -> pa.RecordBatch:
        batch: pa.RecordBatch = await super().__anext__()
        self._rows += batch.num_rows
        return batch

    @property
    def stats(self) -> ScanStats:
        """Progress so far, ``items`` being the rows handed out."""
        return self._engine.counters.snapshot(self._rows)

    @property
    def schema(self) -> pa.Schema | None:
        """The schema of every batch: ``schema=`` (with ``_rest``), or the one inferred from
        the first page with items; ``None`` until then. Pass it as ``schema=`` to a resumed
        scan to keep the same types."""
        return self._columns.schema


class _Batches:
    """``async for`` over a :class:`BatchScan`: the scan's own iterator, counting rows."""

    __slots__ = ("_items", "_scan")

    def __init__(self, scan: BatchScan) -> None:
        self._scan = scan
        self._items = _Items(scan)  # dropping it (with us) ends a bare scan

    def __aiter__(self) -> _Batches:
        return self

    async def __anext__(self) -> pa.RecordBatch:
        batch: pa.RecordBatch = await self._items.__anext__()
        self._scan._rows += batch.num_rows
        return batch


def scan_batches(
    client: Any,
    table: str,
    /,
    *,
    segments: int | None = None,
    concurrency: int | None = None,
    rate_limit: Any = None,
    resume_from: Any = None,
    schema: pa.Schema | None = None,
    buffer_pages: int | None = None,
    retry: RetryPolicy | None = None,
    transport: Literal["auto", "direct", "botocore"] = "auto",
    **scan_params: Any,
) -> BatchScan:
    """Scan a whole table (or index) in parallel into record batches, one per page.

    The arguments are :func:`dynascan_async.scan`'s (without ``deserialize``), plus
    ``schema``: a ``pyarrow.Schema`` to use instead of inferring one from the first page.
    A ``_rest`` string column is added to it if it has none. Fields may carry a
    ``{"dynamodb": kind}`` marker (what :func:`infer_schema` puts there, e.g. ``"SS"`` on
    a ``list<string>`` for a string set); without one, the type says the kind.

    Like ``scan()``, every option and the schema are checked here, before any request.
    """
    if schema is not None and not isinstance(schema, pa.Schema):
        raise TypeError(f"schema must be a pyarrow.Schema, not {type(schema).__name__}")
    columns = PageColumns(schema)
    options = validate(
        client,
        table,
        segments=segments,
        concurrency=concurrency,
        rate_limit=rate_limit,
        deserialize=False,
        resume_from=resume_from,
        buffer_pages=buffer_pages,
        retry=retry,
        transport=transport,
        scan_params=scan_params,
    )
    return BatchScan(client, dataclasses.replace(options, columns=columns), columns)


async def read_table(
    client: Any,
    table: str,
    /,
    *,
    segments: int | None = None,
    concurrency: int | None = None,
    rate_limit: Any = None,
    resume_from: Any = None,
    schema: pa.Schema | None = None,
    buffer_pages: int | None = None,
    retry: RetryPolicy | None = None,
    transport: Literal["auto", "direct", "botocore"] = "auto",
    **scan_params: Any,
) -> pa.Table:
    """The whole scan as one ``pyarrow.Table`` (arguments as :func:`scan_batches`).

    ``.to_pandas()`` and ``polars.from_arrow(...)`` take it from there.
    """
    scan = scan_batches(
        client,
        table,
        segments=segments,
        concurrency=concurrency,
        rate_limit=rate_limit,
        resume_from=resume_from,
        schema=schema,
        buffer_pages=buffer_pages,
        retry=retry,
        transport=transport,
        **scan_params,
    )
    async with scan as batches:
        collected = [batch async for batch in batches]
    final = batches.schema or with_rest(pa.schema([]))
    return pa.Table.from_batches(collected, schema=final)


def _raw_items(items: Iterable[Mapping[str, Any]]) -> Any:
    return PageParser().parse({}, items_body(items))["Items"]


def infer_schema(items: Iterable[Mapping[str, Any]]) -> pa.Schema:
    """The schema ``scan_batches`` would infer from a page holding these raw items.

    ``items`` are AttributeValue dicts as ``scan(..., deserialize=False)`` or the low-level
    API give them (binary as bytes or base64 text). Fix a schema from a sample with this,
    then pass it as ``schema=`` to every scan that must agree on it (resumed scans, the
    partitions of one dataframe, the part files of one export).
    """
    raw = _raw_items(items)
    if len(raw) == 0:
        return with_rest(pa.schema([]))
    return _infer_schema(raw)


def items_to_batch(
    items: Iterable[Mapping[str, Any]], schema: pa.Schema | None = None
) -> pa.RecordBatch:
    """Raw items (as for :func:`infer_schema`) to one record batch of exactly ``schema``
    (with ``_rest`` added if it has none), converted as ``scan_batches`` converts a page.
    ``schema=None``: inferred from these items."""
    raw = _raw_items(items)
    final = with_rest(schema) if schema is not None else None
    if len(raw) == 0:
        final = final or with_rest(pa.schema([]))
        return pa.RecordBatch.from_pylist([], schema=final)
    return to_batch(raw, final or _infer_schema(raw))
