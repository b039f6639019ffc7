"""``dynascan export ... --scheduler ADDRESS``: the export's parts written by a Dask cluster.

A thin shell over :func:`dynascan_async.dask.export_table`, run in a thread of its own
(the distributed client is synchronous). The workers make their clients from
``--endpoint-url`` and ``--region`` with credentials from their own environment.
"""

from __future__ import annotations

__all__ = ["run_cluster_export"]

import argparse
import time
from typing import Any, TextIO


def run_cluster_export(
    args: argparse.Namespace, err: TextIO, *, scan_params: dict[str, Any]
) -> int:
    from ._errors import CheckpointError
    from ._export._errors import ExportError

    try:
        import distributed

        from .dask import _cluster_threads, export_table
    except ImportError as exc:
        err.write(f"dynascan: --scheduler needs the dask extra ({exc})\n")
        return 2
    client_kwargs = {
        key: value
        for key, value in (("endpoint_url", args.endpoint_url), ("region_name", args.region))
        if value
    }
    started = time.monotonic()
    try:
        connect: Any = distributed.Client  # untyped
        client: Any = connect(args.scheduler, timeout=30)
    except OSError as exc:
        err.write(f"dynascan: cannot reach the Dask scheduler at {args.scheduler}: {exc}\n")
        return 1
    try:
        segments = args.total_segments
        if segments is None:
            segments = 4 * (_cluster_threads(client) or 1)
        manifest = export_table(
            args.table_name,
            args.output,
            client_kwargs=client_kwargs,
            segments=segments,
            partitions=args.partitions,
            format=args.format,
            rate_limit=args.rate_limit,
            concurrency=args.concurrency,
            row_group_size=args.row_group_size,
            overwrite=args.overwrite,
            client=client,
            **scan_params,
        )
    except ExportError as exc:
        err.write(f"dynascan: {exc}\n")
        return 1
    except CheckpointError as exc:
        err.write(f"dynascan: {exc}\n")
        return 1
    except (TypeError, ValueError) as exc:
        err.write(f"dynascan: {exc}\n")
        return 2
    # A task that failed for good raises whatever it raised on its worker (a ClientError,
    # an OSError of the shared folder, ...): one line, and what is committed is kept.
    except Exception as exc:  # noqa: BLE001
        err.write(
            f"dynascan: the cluster export failed ({type(exc).__name__}: {exc}); the parts "
            f"committed are kept in {args.output}: run the same command again to continue\n"
        )
        return 1
    finally:
        client.close()
    elapsed = time.monotonic() - started
    err.write(
        f"dynascan: exported {manifest.items:,} items of {manifest.table} to {args.output} in "
        f"{len(manifest.parts):,} {manifest.format} parts written by the cluster at "
        f"{args.scheduler}, in {elapsed:.2f} s\n"
    )
    return 0
