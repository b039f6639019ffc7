"""``python -m dynascan_async.testing.model``: the DynamoDB model server, until interrupted.

A separate entry point so that benchmarks and the demo can run the server in its own
process (see ``ModelServer``), where it does not compete for the GIL with the client being
measured. Binds 127.0.0.1 only.
"""

from __future__ import annotations

__all__ = ["main"]

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Sequence

from ._options import ModelOptions
from ._process import run_model


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m dynascan_async.testing.model",
        description="An in-memory DynamoDB model server on 127.0.0.1, for tests and benchmarks.",
    )
    parser.add_argument("--port", type=int, default=8000, help="0 picks a free port (8000)")
    parser.add_argument(
        "--latency", type=float, default=0.0, help="seconds added to every Scan answer (0)"
    )
    parser.add_argument(
        "--partitions", type=int, default=1, help="partitions per table and index (1)"
    )
    parser.add_argument(
        "--partition-rcu",
        type=float,
        default=None,
        help="read capacity units per second per partition (unlimited)",
    )
    parser.add_argument(
        "--burst-seconds",
        type=float,
        default=1.0,
        help="seconds of capacity a throttling bucket can save up (1.0)",
    )
    parser.add_argument("--quiet", action="store_true", help="do not print the URL")
    parser.add_argument("--ready-file", help=argparse.SUPPRESS)
    parser.add_argument("--instance", default="", help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        options = ModelOptions(
            latency=args.latency,
            partitions=args.partitions,
            partition_rcu=args.partition_rcu,
            burst_seconds=args.burst_seconds,
        )
    except (TypeError, ValueError) as error:
        parser.error(str(error))

    def announce(url: str) -> None:
        print(f"DynamoDB model server on {url} (Ctrl-C to stop)", flush=True)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            run_model(
                options,
                port=args.port,
                ready_file=args.ready_file,
                announce=None if args.quiet else announce,
                instance=args.instance,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
