"""The ``dynascan`` command: a parallel scan from the shell, with AWS CLI flag names.

``dynascan scan --table-name T ...`` takes the flags of ``aws dynamodb scan`` (so a command
can be pasted and have ``aws dynamodb`` replaced), writes one item per line as JSON to
stdout and its progress to stderr. Every failure a person can cause (a bad flag, bad JSON,
a missing table, no credentials) is one line on stderr and a non-zero exit; ``--debug``
shows the traceback.
"""

from __future__ import annotations

__all__ = ["main", "run"]

import argparse
import asyncio
import contextlib
import errno
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TextIO

from ._durable import fsync_dir, write_atomic
from ._encode import dumps_item
from ._errors import CheckpointError
from ._output import FLUSH_BYTES, Output, OutputError, open_output
from ._signals import Interrupted, stop_on_signals
from ._startup import hold, release

EXIT_USAGE = 2
EXIT_FAILURE = 1
EXIT_INTERRUPTED = 130  # 128 + SIGINT; SIGTERM gives 143 and SIGHUP 129 (see _signals)
FLUSH_SECONDS = 0.5  # the longest a line waits in the output buffer while items keep coming


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


# Help text is plain text: argparse prints it as it is (no reStructuredText markup here).
DESCRIPTION = "dynascan: scan a whole DynamoDB table in parallel, from the shell."
SCAN_EPILOG = """\
With --checkpoint FILE, a run stopped by Ctrl-C, SIGTERM, SIGHUP or an error saves
its state in FILE, counting only the items that reached the output; the same command
run again resumes there. With --output FILE as well, a resumed output file holds
every item exactly once, even after kill -9.

exit status: 0 done; 1 a failure (one line on stderr, e.g. a missing table or a
failed write); 2 a bad command line; 128 + the signal's number when stopped by a
signal (130 Ctrl-C, 143 SIGTERM, 129 SIGHUP).
"""
DEMO_DESCRIPTION = """\
Starts a local DynamoDB-compatible server, loads a web-log table like logfile_scan,
the table of AWS's parallel-scan workshop (one item per HTTP request: host, url,
response code, bytes sent), and times a sequential scan against a parallel one.
"""


def _rate_limit(text: str) -> float | str:
    """RCU per second, or a share of the table's capacity: ``--rate-limit 50%``."""
    if not text.strip().endswith("%"):
        return _positive_float(text)
    from ._capacity import parse_share

    try:
        parse_share(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number > 0 or a share of the capacity such as 50%, got {text!r}"
        ) from None
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="dynascan", description=DESCRIPTION)
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    scan = commands.add_parser(
        "scan",
        help="scan a table or index in parallel, one JSON item per line",
        description="Flag names and JSON forms as in 'aws dynamodb scan'.",
        epilog=SCAN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    scan.add_argument("--table-name", required=True)
    scan.add_argument("--index-name")
    scan.add_argument("--total-segments", type=_positive_int, help="TotalSegments")
    scan.add_argument("--concurrency", type=_positive_int, help="requests in flight at most")
    scan.add_argument(
        "--rate-limit",
        type=_rate_limit,
        help="read capacity units per second, or a share of the table's capacity: 50%%",
    )
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
    scan.add_argument(
        "--output",
        type=Path,
        metavar="FILE",
        help="append the items to FILE instead of stdout (created with mode 0600); "
        "with --checkpoint, a resume first cuts FILE back to what the checkpoint counts",
    )
    scan.add_argument("--checkpoint", type=Path, metavar="FILE", help="save/resume state here")
    scan.add_argument(
        "--checkpoint-interval",
        type=_positive_float,
        default=5.0,
        metavar="SECONDS",
        help="also save the checkpoint this often while scanning (default 5)",
    )
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
        help="a local server and a sample web-log table: a sequential scan against a parallel one",
        description=DEMO_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_argument(
        "--server",
        choices=["model", "moto"],
        default="model",
        help="model: this package's model of DynamoDB, with a round trip per request "
        "(default); moto: moto's emulator, at a small size",
    )
    demo.add_argument(
        "--rows", type=_positive_int, default=None, help="items to load (100,000; moto 3,000)"
    )
    demo.add_argument("--latency", type=float, default=0.02, help="model server round trip, s")
    demo.add_argument(
        "--segments", type=_positive_int, default=16, help="segments of the parallel scan (16)"
    )

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
        self._draw(
            f"\r{stats.items:,} items, {total:,} scanned{share}, {stats.items_per_second:,.0f} "
            f"items/s, {stats.consumed_capacity:,.1f} RCU"
            + ("" if stats.rate_limit is None else f" (rate {stats.rate_limit:,.1f}/s)")
            + f", segments {stats.segments_done}/{stats.segments}\x1b[K"
        )

    def close(self) -> None:
        if self.enabled and self._drawn:
            self._draw("\r\x1b[K")

    def _draw(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except OSError:
            # The terminal went away (SIGHUP, then EIO): the scan, and saving its
            # checkpoint, matter more than drawing its progress.
            self.enabled = False


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


CHECKPOINT_FORMAT = "dynascan_cli"


@dataclass(frozen=True)
class _Resume:
    """What a checkpoint file says: the scan's state and, with ``--output``, the file's length."""

    scan: Any
    output: str | None  # the absolute path of --output, or None for stdout
    length: int | None  # bytes of --output that the scan state counts


def _load_resume(path: Path | None) -> _Resume | None:
    if path is None or not path.exists():
        return None
    try:
        value = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UsageError(f"dynascan: cannot read checkpoint {path}: {exc}") from None
    if isinstance(value, dict) and value.get(CHECKPOINT_FORMAT) == 1:
        output = value.get("output")
        if output is None:
            return _Resume(value.get("scan"), None, None)
        if (
            not isinstance(output, dict)
            or not isinstance(output.get("path"), str)
            or not isinstance(output.get("length"), int)
        ):
            raise UsageError(f"dynascan: cannot read checkpoint {path}: bad output record")
        return _Resume(value.get("scan"), output["path"], output["length"])
    # A checkpoint from before --output: the scan's state alone, for a run to stdout.
    return _Resume(value, None, None)


def _save(path: Path, state: Any, output: Output) -> None:
    """Write the checkpoint: a new 0600 file in the same folder, fsync-ed, renamed into place."""
    record: dict[str, Any] = {CHECKPOINT_FORMAT: 1, "scan": state, "output": None}
    if output.owned:
        record["output"] = {"path": output.where, "length": output.length}
    write_atomic(path, json.dumps(record).encode())


class _Committer:
    """Flushes the output and advances the checkpoint only past what reached it.

    ``scan.checkpoint()`` is the *consumer's* position: every item the loop has received.
    The loop puts each item into the output's buffer before it asks for the next one, so
    right after :meth:`Output.flush` returns, that position is exactly what the output
    holds; :meth:`commit` takes it then and only then. With ``--checkpoint`` the
    committed state is also saved every ``interval`` seconds while the scan runs (after
    an fsync of the output), so that a ``kill -9`` loses nothing either.
    """

    def __init__(self, scan: Any, output: Output, path: Path | None, interval: float) -> None:
        self.scan = scan
        self.output = output
        self.path = path
        self.interval = interval
        self.state = scan.checkpoint()  # nothing delivered yet
        self.saved_at = time.monotonic()
        self.flushed_at = self.saved_at

    def commit(self) -> None:
        self.output.flush()  # raises OutputError: then the state stays where it was
        self.state = self.scan.checkpoint()
        now = time.monotonic()
        self.flushed_at = now
        if self.path is not None and now - self.saved_at >= self.interval:
            self.save()

    def save(self) -> None:
        assert self.path is not None
        self.output.sync()  # the bytes the checkpoint counts are on disk before it is
        _save(self.path, self.state, self.output)
        self.saved_at = time.monotonic()


def _open_output(args: argparse.Namespace, resume: _Resume | None) -> Output:
    if args.output is None:
        if resume is not None and resume.output is not None:
            raise UsageError(
                f"dynascan: checkpoint {args.checkpoint} belongs to a run with "
                f"--output {resume.output} (add that flag, or delete the checkpoint to start over)"
            )
        return Output(sys.stdout.fileno(), "stdout")
    where = str(args.output.absolute())
    if resume is not None and resume.output != where:
        had = f"--output {resume.output}" if resume.output else "stdout"
        raise UsageError(
            f"dynascan: checkpoint {args.checkpoint} belongs to a run that wrote to {had} "
            "(run it that way, or delete the checkpoint to start over)"
        )
    try:
        return open_output(Path(where), resume_length=resume.length if resume else None)
    except ValueError as exc:
        raise UsageError(f"dynascan: {exc} (delete the checkpoint to start over)") from None
    except OSError as exc:
        raise UsageError(f"dynascan: cannot open --output {args.output}: {exc.strerror}") from None


async def run_scan(args: argparse.Namespace, err: TextIO) -> int:
    async with stop_on_signals():
        return await _run_scan(args, err)


async def _run_scan(args: argparse.Namespace, err: TextIO) -> int:
    params = _scan_params(args)
    resume = _load_resume(args.checkpoint)
    output = _open_output(args, resume)
    try:
        return await _scan_into(args, err, params, resume, output)
    finally:
        if output.owned:
            os.close(output.fd)


async def _scan_into(
    args: argparse.Namespace,
    err: TextIO,
    params: dict[str, Any],
    resume: _Resume | None,
    output: Output,
) -> int:
    import dynascan_async

    session = _session(args)
    async with session.create_client(
        "dynamodb", endpoint_url=args.endpoint_url, region_name=args.region
    ) as client:
        release()  # start-up is over
        try:
            scan = dynascan_async.scan(
                client,
                args.table_name,
                segments=args.total_segments,
                concurrency=args.concurrency,
                rate_limit=args.rate_limit,
                deserialize=not args.raw,
                resume_from=resume.scan if resume is not None else None,
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
        committer = _Committer(scan, output, args.checkpoint, args.checkpoint_interval)
        if args.checkpoint is not None and output.owned and resume is None:
            # Before the first byte: the length the file had, so that a run killed before
            # its first periodic save is cut back to it on resume.
            committer.save()
        parts = output.parts
        append = parts.append
        dumps = dumps_item
        clock = time.monotonic
        pending = 0
        try:
            async with scan:
                async for item in scan:
                    line = dumps(item)
                    append(line)
                    pending += len(line)
                    if pending >= FLUSH_BYTES or clock() - committer.flushed_at >= FLUSH_SECONDS:
                        committer.commit()
                        pending = 0
                    progress.update(scan)
            if args.count:
                append(json.dumps({"Count": scan.stats.count, "ScannedCount": scan.stats.scanned}))
                append("\n")
            committer.commit()
        except BaseException as exc:
            # A signal, a scan error, a failed write: the checkpoint counts what reached
            # the output, and nothing else.
            if not isinstance(exc, OutputError):
                with contextlib.suppress(OutputError):
                    committer.commit()
            if args.checkpoint is not None:
                with contextlib.suppress(OutputError):
                    committer.output.sync()
                _save(args.checkpoint, committer.state, output)
            raise
        finally:
            progress.close()
        output.sync()
        if args.checkpoint is not None:
            with contextlib.suppress(FileNotFoundError):
                args.checkpoint.unlink()  # done: the next run starts afresh
            fsync_dir(args.checkpoint.parent)
        stats = scan.stats
        _say(
            f"dynascan: {stats.items:,} items ({stats.count:,} counted, {stats.scanned:,} "
            f"scanned) in {stats.elapsed:.2f} s, {stats.items_per_second:,.0f} items/s, "
            f"{stats.consumed_capacity:,.1f} RCU, {stats.retries} retries",
            err,
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


def _say(line: str, stream: TextIO | None = None) -> None:
    """One line on stderr, if stderr is still there (after SIGHUP a terminal gives EIO)."""
    with contextlib.suppress(OSError, ValueError):
        print(line, file=stream or sys.stderr, flush=True)


def _saved(args: argparse.Namespace | None) -> str:
    path = getattr(args, "checkpoint", None)
    if path is None or not path.exists():
        return ""
    return f"; checkpoint saved to {path}, run the same command to resume"


def run(argv: Sequence[str] | None = None) -> int:
    """The ``dynascan`` program: :func:`main` with the collector held during start-up.

    Only the program does that (see ``_startup``); ``main()`` called from Python does not.
    """
    hold()
    return main(argv)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    finally:
        release()  # a command that stopped before its start-up was over


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args: argparse.Namespace | None = None
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        args = parser.parse_args(argv)
        if args.command == "demo":
            from ._demo import run_demo

            release()  # the demo starts a server and loads a table: no start-up to speak of
            return run_demo(args)
        if args.command == "export":
            from ._export._cli import run_export

            return asyncio.run(
                run_export(args, sys.stderr, scan_params=_scan_params(args), session=_session(args))
            )
        return asyncio.run(run_scan(args, sys.stderr))
    except UsageError as exc:
        if debug:
            raise
        _say(str(exc))
        return EXIT_USAGE
    except Interrupted as exc:
        _say(f"dynascan: interrupted by {exc.name}{_saved(args)}")
        return exc.exit_status
    except KeyboardInterrupt:  # Ctrl-C before the scan's own handling was in place
        _say("dynascan: interrupted")
        return EXIT_INTERRUPTED
    except OutputError as exc:
        if exc.errno == errno.EPIPE and getattr(args, "checkpoint", None) is None:
            return 0  # `dynascan scan ... | head`: the reader left; that is not an error
        if debug:
            raise
        _say(f"dynascan: {exc}{_saved(args)}")
        return EXIT_FAILURE
    except Exception as exc:
        if debug:
            raise
        _say(_describe(exc, args or argparse.Namespace()))
        return EXIT_FAILURE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
