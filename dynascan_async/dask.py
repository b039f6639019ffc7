"""The same scan on a Dask cluster: a table as a lazy ``dask.dataframe.DataFrame``.

::

    from dynascan_async import dask as dyn_dask

    df = dyn_dask.read_dynamodb("logfile_scan", client_kwargs={"region_name": "eu-west-1"},
                                segments=64, rate_limit=1000)
    df.groupby("responsecode").bytessent.sum().compute()

Each partition is a group of whole segments, read completely by one task with the
library's own scan, on the worker, with a client made there (see ``_dask_task``). What is
decided here, once, before any task runs: the schema (from a small sample, or ``schema=``),
so every partition agrees and ``df.dtypes`` is known without computing; the groups of
segments; and each task's share of ``rate_limit`` (see ``_partitions``).

Install with the ``dask`` extra; dask, distributed, pandas and pyarrow are imported only
when this module's functions are called.
"""

from __future__ import annotations

__all__ = ["export_table", "read_dynamodb"]

import os
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ._capacity import parse_share, table_capacity
from ._dask_task import ReadPartition, run_sync, to_frame
from ._options import MAX_SEGMENTS, int_option, rate_option
from ._partitions import Partition, plan
from ._retry import RetryPolicy

if TYPE_CHECKING:
    import dask.dataframe
    import pyarrow

    from .export import ExportManifest

# What planning reads to fix the schema when ``schema=`` is not given.
SAMPLE_ITEMS = 1000
# Never pickled into the graph: the workers take credentials from their own environment.
_SECRET_KWARGS = ("aws_access_key_id", "aws_secret_access_key", "aws_session_token")


def _client_kwargs(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TypeError(f"client_kwargs must be a dict, not {type(value).__name__}")
    secret = [name for name in _SECRET_KWARGS if name in value]
    if secret:
        raise ValueError(
            f"client_kwargs must not hold credentials ({', '.join(secret)}): they would be "
            "pickled into the task graph and sent to the scheduler and every worker. Give the "
            "workers credentials the usual way (environment, instance role, profile)"
        )
    return dict(value)


def _cluster_threads(client: Any = None) -> int | None:
    """Threads of the cluster of ``client`` (default: the current distributed client), or
    None without one."""
    try:
        if client is None:
            import distributed

            default: Any = distributed.default_client
            client = default()
        info = client.scheduler_info()
    except (ImportError, ValueError):  # distributed not installed, or no client
        return None
    return sum(int(w.get("nthreads", 1)) for w in info.get("workers", {}).values()) or None


def _layout(
    segments: int, partitions: int | None, budget: float | None, client: Any = None
) -> tuple[list[Partition], int | None]:
    """The groups of segments, and the budget's slots if the tasks share them.

    Default: one partition per thread of the cluster (or per local CPU without a
    distributed client), so every task runs at once and the budget split by segments is
    used whole. With more partitions than threads, only some tasks run at a time: on a
    distributed cluster the budget is then split into one slot per thread instead, which
    the running tasks hold (``_dask_task.budget_slot``); without one, the split by
    segments stays, and the scan reads at the running tasks' share of it.
    """
    threads = _cluster_threads(client)
    if partitions is None:
        partitions = max(1, min(segments, threads or os.cpu_count() or 1))
    slots = threads if budget is not None and threads and partitions > threads else None
    groups = plan(segments=segments, partitions=partitions, rate_limit=budget, slots=slots)
    return groups, slots


def _rate(value: Any) -> float | str | None:
    """``rate_limit`` checked as ``scan()`` checks it; a share stays a string until
    ``_plan`` reads the capacity it is a share of."""
    rate, share = rate_option(value)
    return value if share is not None else rate


def _check(
    table: object,
    client_kwargs: Any,
    segments: object,
    partitions: object,
    rate_limit: object,
) -> tuple[dict[str, Any], int, int | None, float | str | None]:
    """The options every entry point here takes, checked before anything connects."""
    if not isinstance(table, str):
        raise TypeError(f"table must be a str, not {type(table).__name__}")
    kwargs = _client_kwargs(client_kwargs)
    total = int_option("segments", segments, 1, MAX_SEGMENTS)
    parts = None if partitions is None else int_option("partitions", partitions, 1, total)
    return kwargs, total, parts, _rate(rate_limit)


async def _plan(
    table: str,
    *,
    client_kwargs: Mapping[str, Any],
    segments: int,
    concurrency: int | None,
    retry: RetryPolicy | None,
    rate_limit: float | str | None,
    schema: pyarrow.Schema | None,
    scan_params: Mapping[str, Any],
    sample: bool = True,
) -> tuple[float | None, pyarrow.Schema | None]:
    """The absolute budget and the schema, with one client in the calling process.

    The options are checked by ``scan()`` itself, before any request, exactly as they
    would be on the workers; a bad one fails here rather than in every task.
    """
    from aiobotocore.session import get_session

    from . import _scan

    async with get_session().create_client("dynamodb", **client_kwargs) as client:
        _scan.scan(
            client,
            table,
            segments=segments,
            concurrency=concurrency,
            retry=retry,
            rate_limit=1.0 if isinstance(rate_limit, str) else rate_limit,
            **scan_params,
        )
        budget: float | None
        if isinstance(rate_limit, str):
            capacity = await table_capacity(client, table, scan_params.get("IndexName"))
            budget = capacity * parse_share(rate_limit)
        else:
            budget = rate_limit
        if schema is None and sample:
            schema = await _sample_schema(client, table, segments, budget, scan_params)
    return budget, schema


async def _sample_schema(
    client: Any,
    table: str,
    segments: int,
    rate_limit: float | None,
    scan_params: Mapping[str, Any],
) -> pyarrow.Schema:
    """The schema the Arrow path infers from the first items of a scan like the real one.

    The scan's workers start on different segments, so its first pages come from several
    places in the table. ``SAMPLE_ITEMS`` items are read, within the same budget as the
    tasks: planning costs a few pages of capacity.
    """
    from . import _scan, arrow

    items: list[Any] = []
    scan = _scan.scan(
        client, table, segments=segments, rate_limit=rate_limit, deserialize=False, **scan_params
    )
    async with scan:
        async for item in scan:
            items.append(item)
            if len(items) >= SAMPLE_ITEMS:
                break
    return arrow.infer_schema(items)


def read_dynamodb(
    table: str,
    /,
    *,
    client_kwargs: Mapping[str, Any] | None = None,
    segments: int,
    partitions: int | None = None,
    rate_limit: float | str | None = None,
    schema: pyarrow.Schema | None = None,
    concurrency: int | None = None,
    retry: RetryPolicy | None = None,
    **scan_params: Any,
) -> dask.dataframe.DataFrame:
    """A whole table (or index) as a lazy Dask DataFrame, read by the cluster's tasks.

    ``segments`` cuts the table (DynamoDB's ``TotalSegments``); ``partitions`` groups
    whole segments into tasks (default: one per thread of the current distributed
    client's cluster, or per local CPU; at most ``segments``). Each task makes its own
    client on its worker with ``aiobotocore.session.get_session().create_client("dynamodb",
    **client_kwargs)``: credentials come from the worker's environment and may not be
    passed in ``client_kwargs``. ``rate_limit`` (RCU/s, or ``"P%"`` of the table's or
    index's read capacity, read once here) is the budget of the whole computation; each
    task holds ``rate_limit * its segments / segments``. ``concurrency`` (requests in
    flight) and ``retry`` (how throttling and 5xx are retried) are per task, as for ``scan()``.
    Other keyword arguments are Scan parameters, as for ``scan()``.

    Columns and types are those of ``arrow.read_table`` on the same items, as pandas
    ``ArrowDtype`` columns; the schema is fixed here (``schema=``, or inferred from the
    first items of a sample scan), so ``df.dtypes`` is known without computing. A task that
    fails or loses its worker is run again by Dask and reads its segments from the start.
    """
    kwargs, segments, partitions, rate = _check(
        table, client_kwargs, segments, partitions, rate_limit
    )
    if schema is not None:
        import pyarrow

        if not isinstance(schema, pyarrow.Schema):
            raise TypeError(f"schema must be a pyarrow.Schema, not {type(schema).__name__}")

    import dask.dataframe

    budget, fixed = run_sync(
        lambda: _plan(
            table,
            client_kwargs=kwargs,
            segments=segments,
            concurrency=concurrency,
            retry=retry,
            rate_limit=rate,
            schema=schema,
            scan_params=scan_params,
        )
    )
    assert fixed is not None
    groups, slots = _layout(segments, partitions, budget)
    reader = ReadPartition(
        table=table,
        client_kwargs=kwargs,
        scan_params=dict(scan_params),
        schema=fixed,
        concurrency=concurrency,
        retry=retry,
        read_id=uuid.uuid4().hex,
        slots=slots,
    )
    from_map: Any = dask.dataframe.from_map  # untyped
    frame: dask.dataframe.DataFrame = from_map(
        reader,
        groups,
        meta=to_frame(fixed.empty_table()),
        label="read-dynamodb",
        enforce_metadata=False,
    )
    return frame


def export_table(
    table: str,
    directory: str,
    /,
    *,
    client_kwargs: Mapping[str, Any] | None = None,
    segments: int,
    partitions: int | None = None,
    format: str = "parquet",
    rate_limit: float | str | None = None,
    schema: pyarrow.Schema | None = None,
    concurrency: int | None = None,
    retry: RetryPolicy | None = None,
    row_group_size: int | None = None,
    overwrite: bool = False,
    retries: int = 3,
    client: Any = None,
    **scan_params: Any,
) -> ExportManifest:
    """``dynascan export`` with its part files written by the tasks of a Dask cluster.

    One part per partition (groups of whole segments, as for :func:`read_dynamodb`, with
    the same budget split), each written and committed whole by one task on its worker
    with ``export.write_part``; ``_manifest.json`` last. ``directory`` must be a folder
    the workers see at the same path. An interrupted export (an error, a lost cluster,
    Ctrl-C) keeps its committed parts: the same call continues it, and the finished
    folder holds every item exactly once. ``client`` is the ``distributed.Client``
    (default: the current one); ``retries`` is how often Dask runs a failed task again.
    Returns the manifest (``export.ExportManifest``).
    """
    from . import export
    from ._dask_export import export_on_cluster

    kwargs, segments, partitions, rate = _check(
        table, client_kwargs, segments, partitions, rate_limit
    )
    if format not in export.FORMATS:
        raise ValueError(f"format must be one of {', '.join(export.FORMATS)}, got {format!r}")
    retries = int_option("retries", retries, 0, 1000)
    if client is None:
        import distributed

        default: Any = distributed.default_client
        client = default()
    budget, fixed = run_sync(
        lambda: _plan(
            table,
            client_kwargs=kwargs,
            segments=segments,
            concurrency=concurrency,
            retry=retry,
            rate_limit=rate,
            schema=schema,
            scan_params=scan_params,
            sample=format == "parquet",
        )
    )
    return export_on_cluster(
        table,
        directory,
        client_kwargs=kwargs,
        segments=segments,
        partitions=partitions or len(_layout(segments, None, None, client)[0]),
        format=format,
        budget=budget,
        schema=fixed,
        concurrency=concurrency,
        retry=retry,
        row_group_size=row_group_size or export.DEFAULT_ROW_GROUP_SIZE,
        overwrite=overwrite,
        retries=retries,
        dask_client=client,
        scan_params=scan_params,
    )
