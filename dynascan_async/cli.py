"""The ``dynascan`` command: a parallel scan from the shell, with AWS CLI flag names.

``dynascan scan --table-name T ...`` takes the flags of ``aws dynamodb scan`` (so a command
can be pasted and have ``aws dynamodb`` replaced), writes one item per line as JSON to
stdout and its progress to stderr. Every failure a person can cause (a bad flag, bad JSON,
a missing table, no credentials) is one line on stderr and a non-zero exit; ``--debug``
shows the traceback.
"""

from __future__ import annotations

__all__ = ["main"]

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn, TextIO

from ._encode import dumps_item
from ._errors import CheckpointError

EXIT_USAGE = 2
EXIT_FAILURE = 1
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """A mistake in the command line: printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # argparse prints the whole usage; a person wants the one line that is wrong.
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")


def _json_arg(text: str) -> Any:
    """A JSON flag value, inline or ``file://path`` as the AWS CLI takes it."""
    if text.startswith("file://"):
        try:
            text = Path(text[len("file://") :]).read_text()
        except OSError as exc:
            raise argparse.ArgumentTypeError(f"cannot read {text}: {exc.strerror}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON ({exc.msg} at {exc.pos})") from None


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="dynascan", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    scan = commands.add_parser(
        "scan",
        help="scan a table or index in parallel, one JSON item per line",
        description="Flag names and JSON forms as in `aws dynamodb scan`.",
    )
    scan.add_argument("--table-name", required=True)
    scan.add_argument("--index-name")
    scan.add_argument("--total-segments", type=_positive_int, help="TotalSegments")
    scan.add_argument("--concurrency", type=_positive_int, help="requests in flight at most")
    scan.add_argument("--rate-limit", type=_positive_float, help="read capacity units per second")
    scan.add_argument("--filter-expression")
    scan.add_argument("--projection-expression")
    scan.add_argument("--expression-attribute-names", type=_json_arg, metavar="JSON")
    scan.add_argument("--expression-attribute-values", type=_json_arg, metavar="JSON")
    scan.add_argument("--consistent-read", action="store_true")
    scan.add_argument("--page-size", type=_positive_int, help="Limit: items read per request")
    scan.add_argument(
        "--select",
        choices=["ALL_ATTRIBUTES", "ALL_PROJECTED_ATTRIBUTES", "SPECIFIC_ATTRIBUTES", "COUNT"],
    )
    scan.add_argument("--count", action="store_true", help="print only the totals")
    scan.add_argument("--raw", action="store_true", help="items as DynamoDB AttributeValue JSON")
    scan.add_argument("--checkpoint", type=Path, metavar="FILE", help="save/resume state here")
    scan.add_argument("--endpoint-url")
    scan.add_argument("--region")
    scan.add_argument("--profile")
    scan.add_argument(
        "--transport",
        choices=["auto", "direct", "botocore"],
        default="auto",
        help="who sends the requests (auto: the library itself, unless that cannot be done)",
    )
    scan.add_argument(
        "--progress",
        choices=["auto", "always", "never"],
        default="auto",
        help="live progress on stderr (auto: when stderr is a terminal)",
    )

    demo = commands.add_parser(
        "demo",
        help="a local server, the seeds' web-log table, sequential against parallel",
    )
    demo.add_argument("--server", choices=["model", "moto"], default="model")
    demo.add_argument("--rows", type=_positive_int, default=None)
    demo.add_argument("--latency", type=float, default=0.02, help="model server round trip, s")
    demo.add_argument("--segments", type=_positive_int, default=16)

    from ._export._cli import add_parser as add_export_parser

    add_export_parser(commands, scan, _positive_int)
    return parser


def _scan_params(args: argparse.Namespace) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for flag, name in (
        ("index_name", "IndexName"),
        ("filter_expression", "FilterExpression"),
        ("projection_expression", "ProjectionExpression"),
        ("expression_attribute_names", "ExpressionAttributeNames"),
        ("expression_attribute_values", "ExpressionAttributeValues"),
        ("page_size", "Limit"),
        ("select", "Select"),
    ):
        value = getattr(args, flag)
        if value is not None:
            params[name] = value
    if args.consistent_read:
        params["ConsistentRead"] = True
    if args.count:
        params["Select"] = "COUNT"
    return params


class _Progress:
    """One line on stderr, redrawn at most four times a second."""

    def __init__(self, stream: TextIO, enabled: bool, estimate: int | None) -> None:
        self.stream = stream
        self.enabled = enabled
        self.estimate = estimate
        self._drawn = 0.0

    def update(self, scan: Any) -> None:
        # Called for every item: decide cheaply before taking a stats snapshot.
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._drawn < 0.25:
            return
        self._drawn = now
        stats = scan.stats
        total = stats.scanned
        share = ""
        if self.estimate:
            share = f" of ~{self.estimate:,} ({min(total / self.estimate, 1):.0%})"
        self.stream.write(
            f"\r{stats.items:,} items, {total:,} scanned{share}, {stats.items_per_second:,.0f} "
            f"items/s, {stats.consumed_capacity:,.1f} RCU, segments "
            f"{stats.segments_done}/{stats.segments}\x1b[K"
        )
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self._drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


def _session(args: argparse.Namespace) -> Any:
    from aiobotocore.session import AioSession

    return AioSession(profile=args.profile) if args.profile else AioSession()


async def _estimate(client: Any, table: str) -> int | None:
    """DynamoDB's approximate item count (updated every ~6 hours), for the progress line."""
    try:
        described = await client.describe_table(TableName=table)
    except Exception:  # noqa: BLE001 - a progress estimate is never worth failing a scan for
        return None
    count = described.get("Table", {}).get("ItemCount")
    return int(count) if count else None


def _load_resume(path: Path | None) -> Any:
    if path is None or not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UsageError(f"dynascan: cannot read checkpoint {path}: {exc}") from None


def _save(path: Path, state: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(state))
    os.replace(tmp, path)  # never a half-written checkpoint


async def run_scan(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    import dynascan_async

    params = _scan_params(args)
    resume = _load_resume(args.checkpoint)
    session = _session(args)
    async with session.create_client(
        "dynamodb", endpoint_url=args.endpoint_url, region_name=args.region
    ) as client:
        try:
            scan = dynascan_async.scan(
                client,
                args.table_name,
                segments=args.total_segments,
                concurrency=args.concurrency,
                rate_limit=args.rate_limit,
                deserialize=not args.raw,
                resume_from=resume,
                transport=args.transport,
                **params,
            )
        except CheckpointError as exc:
            raise UsageError(
                f"dynascan: checkpoint {args.checkpoint} does not fit this command: {exc} "
                "(delete it to start over)"
            ) from None
        except (TypeError, ValueError) as exc:
            raise UsageError(f"dynascan: {exc}") from None
        show = args.progress == "always" or (args.progress == "auto" and err.isatty())
        progress = _Progress(err, show, await _estimate(client, args.table_name) if show else None)
        write = out.write
        try:
            async with scan:
                async for item in scan:
                    write(dumps_item(item))
                    progress.update(scan)
        except BaseException:
            # Ctrl-C, an error, a closed pipe: what was written is what the checkpoint says.
            with contextlib.suppress(OSError, ValueError):
                out.flush()
            if args.checkpoint is not None:
                _save(args.checkpoint, scan.checkpoint())
            raise
        finally:
            progress.close()
        out.flush()
        if args.checkpoint is not None:
            with contextlib.suppress(FileNotFoundError):
                args.checkpoint.unlink()  # done: the next run starts afresh
        stats = scan.stats
        if args.count:
            print(json.dumps({"Count": stats.count, "ScannedCount": stats.scanned}), file=out)
        err.write(
            f"dynascan: {stats.items:,} items ({stats.count:,} counted, {stats.scanned:,} "
            f"scanned) in {stats.elapsed:.2f} s, {stats.items_per_second:,.0f} items/s, "
            f"{stats.consumed_capacity:,.1f} RCU, {stats.retries} retries\n"
        )
    return 0


def _describe(exc: BaseException, args: argparse.Namespace) -> str:
    """One line a person can act on, for the errors a person can cause."""
    from botocore import exceptions as boto

    table = getattr(args, "table_name", None)
    if isinstance(exc, boto.ClientError):
        error = exc.response.get("Error", {})
        code = error.get("Code", "Error")
        message = error.get("Message", str(exc))
        if code == "ResourceNotFoundException" and table:
            return f"dynascan: table {table!r} not found ({message})"
        return f"dynascan: {code}: {message}"
    if isinstance(exc, boto.NoCredentialsError):
        return (
            "dynascan: no AWS credentials found (set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
            "or --profile)"
        )
    if isinstance(exc, boto.NoRegionError):
        return "dynascan: no AWS region set (use --region or AWS_DEFAULT_REGION)"
    if isinstance(exc, boto.ProfileNotFound):
        return f"dynascan: {exc}"
    if isinstance(exc, boto.EndpointConnectionError | boto.ConnectionClosedError):
        return f"dynascan: cannot reach the endpoint: {exc}"
    if isinstance(exc, boto.BotoCoreError):
        return f"dynascan: {exc}"
    return f"dynascan: {type(exc).__name__}: {exc}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args: argparse.Namespace | None = None
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        args = parser.parse_args(argv)
        if args.command == "demo":
            from ._demo import run_demo

            return run_demo(args)
        if args.command == "export":
            from ._export._cli import run_export

            return asyncio.run(
                run_export(args, sys.stderr, scan_params=_scan_params(args), session=_session(args))
            )
        return asyncio.run(run_scan(args, sys.stdout, sys.stderr))
    except UsageError as exc:
        if debug:
            raise
        print(exc, file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("dynascan: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # `dynascan scan ... | head`: the reader left; that is not an error.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:
        if debug:
            raise
        print(_describe(exc, args or argparse.Namespace()), file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
