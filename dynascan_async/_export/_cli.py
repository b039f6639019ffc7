"""``dynascan export``: the command-line shell over :func:`dynascan_async.export.export_table`.

It takes every flag of ``dynascan scan`` except ``--checkpoint`` (the export keeps its
own state in the folder), ``--raw`` and ``--count`` (the format decides what is
written), copied from the scan subcommand's parser so that a flag added to ``scan``
is an export flag too.

Signals: SIGINT, SIGTERM and SIGHUP cancel the export the way Ctrl-C does, so the part
being written is committed with its checkpoint before the process exits (status
128 + the signal's number) and the same command continues from there. ``kill -9``
cannot be caught; it loses at most the part being written, which the next run reads
again. A second signal during the first one's commit ends the process at once, with the
same guarantee. The handling is :func:`dynascan_async._signals.stop_on_signals`, the
one ``dynascan scan`` uses.
"""

from __future__ import annotations

__all__ = ["add_parser", "run_export"]

import argparse
import time
from typing import Any, TextIO

import anyio

from .._signals import Interrupted, stop_on_signals
from .._startup import release
from ._errors import ExportError
from ._formats import DEFAULT_ROW_GROUP_SIZE, DEFAULT_ROWS_PER_PART, FORMATS
from ._manifest import ExportProgress

# Flags of `scan` that are about its stdout or its checkpoint file: the export writes
# its own folder and keeps its own state.
_NOT_FOR_EXPORT = {
    "--checkpoint",
    "--checkpoint-interval",
    "--raw",
    "--count",
    "-h",
    "--help",
}
# The export's own flags; a `scan` flag of the same name (its `--output FILE`) is not copied.
_OWN = {
    "--output",
    "--format",
    "--rows-per-part",
    "--row-group-size",
    "--overwrite",
    "--scheduler",
    "--partitions",
}


def _bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000
    return f"{n:,.1f} TB"  # pragma: no cover - unreachable


def add_parser(commands: Any, scan: argparse.ArgumentParser, positive_int: Any) -> None:
    """Add ``export`` to the subcommands, with the flags of ``scan`` (see module doc)."""
    export = commands.add_parser(
        "export",
        help="export a table into a folder of part files (parquet, jsonl, ddb-json)",
        description=(
            "Write the scan into DIR as part files, exactly once even if interrupted: "
            "run the same command again to continue."
        ),
    )
    for action in scan._actions:
        if not (_NOT_FOR_EXPORT | _OWN).intersection(action.option_strings):
            export._add_action(action)
    export.add_argument("--output", required=True, metavar="DIR", help="the export folder")
    export.add_argument("--format", choices=FORMATS, default="parquet")
    export.add_argument(
        "--rows-per-part",
        type=positive_int,
        default=DEFAULT_ROWS_PER_PART,
        help=f"items per part file (default {DEFAULT_ROWS_PER_PART:,})",
    )
    export.add_argument(
        "--row-group-size",
        type=positive_int,
        default=DEFAULT_ROW_GROUP_SIZE,
        help=f"parquet: rows per row group (default {DEFAULT_ROW_GROUP_SIZE:,})",
    )
    export.add_argument("--overwrite", action="store_true", help="replace a finished export in DIR")
    export.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="write the parts from the tasks of the Dask cluster at ADDRESS (needs the dask "
        "extra; DIR must be seen by every worker at the same path)",
    )
    export.add_argument(
        "--partitions",
        type=positive_int,
        help="with --scheduler: parts (tasks) of whole segments (default: the cluster's threads)",
    )
    export.set_defaults(count=False, raw=False, checkpoint=None)


class _Progress:
    """The scan's progress line, plus parts and bytes written."""

    def __init__(self, stream: TextIO, enabled: bool) -> None:
        self.stream = stream
        self.enabled = enabled
        self.drawn = False

    def __call__(self, progress: ExportProgress) -> None:
        if not self.enabled:
            return
        stats = progress.stats
        self.drawn = True
        self.stream.write(
            f"\r{progress.items:,} items, {progress.parts:,} parts, "
            f"{_bytes(progress.bytes)} written, {stats.items_per_second:,.0f} items/s, "
            f"{stats.consumed_capacity:,.1f} RCU, segments "
            f"{stats.segments_done}/{stats.segments}\x1b[K"
        )
        self.stream.flush()

    def close(self) -> None:
        if self.drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


async def run_export(
    args: argparse.Namespace, err: TextIO, *, scan_params: dict[str, Any], session: Any
) -> int:
    from .._errors import CheckpointError
    from ..export import export_table

    if args.scheduler:
        from .._dask_cli import run_cluster_export

        release()
        return await anyio.to_thread.run_sync(
            lambda: run_cluster_export(args, err, scan_params=scan_params)
        )
    show = args.progress == "always" or (args.progress == "auto" and err.isatty())
    progress = _Progress(err, show)
    started = time.monotonic()
    try:
        async with (
            session.create_client(
                "dynamodb", endpoint_url=args.endpoint_url, region_name=args.region
            ) as client,
            stop_on_signals(),
        ):
            try:
                if args.format == "parquet":
                    # Part of start-up, so frozen with it (see _startup); without pyarrow,
                    # the ImportError's advice is shown below like any other.
                    from .. import arrow  # noqa: F401
                release()
                manifest = await export_table(
                    client,
                    args.table_name,
                    args.output,
                    format=args.format,
                    segments=args.total_segments,
                    concurrency=args.concurrency,
                    rate_limit=args.rate_limit,
                    rows_per_part=args.rows_per_part,
                    row_group_size=args.row_group_size,
                    overwrite=args.overwrite,
                    on_progress=progress,
                    scan_options={"transport": args.transport},
                    **scan_params,
                )
            except ExportError as exc:
                err.write(f"dynascan: {exc}\n")
                return 1
            except CheckpointError as exc:  # a damaged or foreign checkpoint in the state
                err.write(f"dynascan: the export state in {args.output} does not fit: {exc}\n")
                return 1
            except (TypeError, ValueError, ImportError) as exc:
                err.write(f"dynascan: {exc}\n")
                return 2
            except OSError as exc:
                err.write(
                    f"dynascan: cannot write the export to {args.output}: {exc}; what was "
                    "committed is kept: run the same command again to continue\n"
                )
                return 1
            finally:
                progress.close()
    except Interrupted as exc:
        err.write(
            f"dynascan: interrupted by {exc.name}; the export's progress is kept in "
            f"{args.output}: run the same command again to continue\n"
        )
        return exc.exit_status
    stats = manifest.stats
    elapsed = time.monotonic() - started
    this_run = stats.items if stats is not None else 0
    err.write(
        f"dynascan: exported {manifest.items:,} items of {manifest.table} to {args.output} in "
        f"{len(manifest.parts):,} {manifest.format} parts ({_bytes(manifest.bytes)}); this run: "
        f"{this_run:,} items in {elapsed:.2f} s, {this_run / elapsed if elapsed else 0:,.0f} "
        f"items/s, {stats.consumed_capacity if stats else 0:,.1f} RCU, "
        f"{stats.retries if stats else 0} retries\n"
    )
    return 0
