"""``dynascan export --format parquet`` against a plain scan and against aws-sdk-pandas.

    python benchmarks/export.py                   # 100k-row table, RSS at 100k and 1M
    python benchmarks/export.py --smoke           # tiny: checks the results, < 1 minute
    python benchmarks/run.py --scenario export    # the same, inside the full benchmark

What is measured, each command in its own subprocess on the same table in one run
(medians of ``--repeat`` runs, interleaved; each command alone on one CPU, the servers on
the others, as in ``run.py``), on the model server without latency, which
serves a scan faster than dynalite, so that the clients, not the server, set the pace.
dynalite's own rate (about 65,000 items a second here, what the lower-bound client
reaches) is about what the export reads at, so there the ratio to awswrangler measures
dynalite; the same three commands are run on it too and shown beside, not judged:

* ``dynascan scan > /dev/null``: what reading the table costs at all;
* ``dynascan export --format parquet``: the goal is at most 1.3x the scan's wall time
  (typed columns, zstd, fsync-ed parts and state included);
* ``awswrangler.dynamodb.read_items(table_name=..., allow_full_scan=True)`` followed by
  ``DataFrame.to_parquet``: what people use today; the goal is the export at least 5x
  faster;
* the peak RSS (the child's own ``VmHWM``, see ``_peak``) of the export and of
  awswrangler at two table sizes: the export's is flat (within 15%), awswrangler's grows
  with the table, because it holds all of it in memory.

Every export is checked: the manifest's item count, and the sum of ``bytessent`` read
back with pyarrow, against what the table holds (``_data.expected_checksum``).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import _data, _peak, _report, _servers

HERE = Path(__file__).resolve().parent

TABLE = "logfile_scan"


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(
        AWS_ACCESS_KEY_ID=_data.ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY=_data.SECRET_KEY,
        AWS_DEFAULT_REGION=_data.REGION,
        AWS_EC2_METADATA_DISABLED="true",
    )
    return env


def timed(command: list[str], *, stdout: Any = subprocess.DEVNULL) -> dict[str, Any]:
    """Run ``command`` (``[sys.executable, ...]``); its wall time, CPU (wait4), peak RSS
    (its own, from ``_peak``: wait4's ``ru_maxrss`` would include this driver's), stderr."""
    from benchmarks import run as runner  # here: run.py imports this module

    with tempfile.TemporaryDirectory() as scratch:
        peak = Path(scratch) / "peak"
        wrapped = [command[0], str(HERE / "_peak.py"), str(peak), *command[1:]]
        with tempfile.TemporaryFile("w+") as err:
            started = time.perf_counter()
            process = subprocess.Popen(
                wrapped,
                stdout=stdout,
                stderr=err,
                stdin=subprocess.DEVNULL,
                env=_env(),
                # Alone on the client's CPU, as every client of run.py: a command sharing
                # the server's core would be timed with the server's work in it.
                preexec_fn=runner._pin_client,  # noqa: PLW1509 - the driver runs no threads
            )
            _, status, usage = os.wait4(process.pid, 0)
            wall = time.perf_counter() - started
            process.returncode = os.waitstatus_to_exitcode(status)
            err.seek(0)
            stderr = err.read()
        peak_kib = _peak.read_peak(peak)
    if process.returncode != 0:
        tail = stderr.strip().splitlines()[-1:] or [f"exit status {process.returncode}"]
        return {"error": tail[0][:300]}
    if peak_kib is None:
        return {"error": "the child exited without reporting its peak RSS"}
    return {
        "wall": wall,
        "cpu": usage.ru_utime + usage.ru_stime,
        "max_rss_kib": peak_kib,
        "stderr": stderr,
    }


def _dynascan(*args: str) -> list[str]:
    return [sys.executable, "-m", "dynascan_async", *args]


def _check_parquet(folder: Path, items: int) -> str:
    """ "" if the folder holds the table exactly (count and checksum), else why not."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.read_table(folder, columns=["bytessent"])
    total = pc.sum(table.column("bytessent")).as_py()
    if table.num_rows != items or total != _data.expected_checksum(items):
        return f"WRONG: {table.num_rows:,} rows, sum(bytessent) {total}"
    return ""


@contextlib.contextmanager
def _scratch() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="dynascan-export-bench-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run_scan(endpoint: str, table: str, args: argparse.Namespace) -> dict[str, Any]:
    return timed(
        _dynascan(
            "scan",
            "--table-name",
            table,
            "--endpoint-url",
            endpoint,
            "--total-segments",
            str(args.segments),
            "--concurrency",
            str(args.concurrency),
        )
    )


def run_export(endpoint: str, table: str, items: int, args: argparse.Namespace) -> dict[str, Any]:
    with _scratch() as folder:
        out = folder / "out"
        result = timed(
            _dynascan(
                "export",
                "--format",
                "parquet",
                "--table-name",
                table,
                "--endpoint-url",
                endpoint,
                "--output",
                str(out),
                "--total-segments",
                str(args.segments),
                "--concurrency",
                str(args.concurrency),
            )
        )
        if "error" not in result:
            manifest = json.loads((out / "_manifest.json").read_text())
            result["bytes"] = manifest["bytes"]
            result["parts"] = len(manifest["parts"])
            wrong = _check_parquet(out, items)
            if manifest["items"] != items:
                wrong = f"WRONG: manifest says {manifest['items']:,} items"
            if wrong:
                result = {"error": wrong}
    return result


def run_awswrangler(endpoint: str, table: str, items: int) -> dict[str, Any]:
    try:
        import awswrangler  # noqa: F401
    except ImportError:
        return {"error": "awswrangler is not installed (it is in the bench dependency group)"}
    with _scratch() as folder:
        out = folder / "wrangler.parquet"
        result = timed([sys.executable, __file__, "--child-awswrangler", endpoint, table, str(out)])
        if "error" not in result:
            wrong = _check_parquet(out, items)
            if wrong:
                result = {"error": wrong}
    return result


def _awswrangler_child(endpoint: str, table: str, out: str) -> None:
    """What a user of aws-sdk-pandas writes: read every item, then write Parquet."""
    import awswrangler as wr
    import boto3

    wr.config.dynamodb_endpoint_url = endpoint
    session = boto3.Session(
        aws_access_key_id=_data.ACCESS_KEY,
        aws_secret_access_key=_data.SECRET_KEY,
        region_name=_data.REGION,
    )
    frame = wr.dynamodb.read_items(table_name=table, allow_full_scan=True, boto3_session=session)
    # DynamoDB numbers come back as Decimal objects: Parquet wants them typed.
    frame["bytessent"] = frame["bytessent"].astype("int64")
    frame["responsecode"] = frame["responsecode"].astype("int64")
    frame.to_parquet(out, compression="zstd", index=False)


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(float(r[key]) for r in runs))


def _line(name: str, runs: list[dict[str, Any]], errors: list[str]) -> str:
    if not runs:
        return f"| {name} | — | — | — | {'; '.join(errors[:1])} |"
    wall = _median(runs, "wall")
    cpu = _median(runs, "cpu")
    rss = _median(runs, "max_rss_kib") / 1024
    note = "; ".join(errors[:1])
    return f"| {name} | {wall:.2f} | {cpu:.2f} | {rss:.0f} | {note} |"


def _run_steps(
    endpoint: str, sizes: list[int], items: int, args: argparse.Namespace
) -> tuple[
    dict[str, list[dict[str, Any]]], dict[str, list[str]], dict[str, dict[int, dict[str, Any]]]
]:
    """Load each size, run the commands on it (interleaved, ``--repeat`` rounds at
    ``items``, one at the other sizes); the runs at ``items``, errors, and the last run of
    the export and of awswrangler at each size."""
    runs: dict[str, list[dict[str, Any]]] = {"scan": [], "export": [], "awswrangler": []}
    errors: dict[str, list[str]] = {name: [] for name in runs}
    sized: dict[str, dict[int, dict[str, Any]]] = {"export": {}, "awswrangler": {}}
    for size in sorted({items, *sizes}):
        table = f"{TABLE}_{size}"
        print(f"export scenario: loading {size:,} items into {table} ...", flush=True)
        _data.load(endpoint, table, size, in_flight=16)
        steps: dict[str, Callable[[], dict[str, Any]]] = {
            "export": functools.partial(run_export, endpoint, table, size, args),
            "awswrangler": functools.partial(run_awswrangler, endpoint, table, size),
        }
        if size == items:
            steps = {"scan": functools.partial(run_scan, endpoint, table, args), **steps}
        repeat = args.repeat if size == items else 1
        for round_ in range(repeat):
            for name, step in steps.items():
                if name == "awswrangler" and args.skip_awswrangler_above < size:
                    continue
                result = step()
                if "error" in result:
                    print(f"  {name:12} {size:>9,} run {round_ + 1}: {result['error']}")
                    errors[name].append(result["error"])
                    continue
                result.pop("stderr", None)
                print(
                    f"  {name:12} {size:>9,} run {round_ + 1}: {result['wall']:7.2f} s, "
                    f"{result['max_rss_kib'] / 1024:6.0f} MiB",
                    flush=True,
                )
                if size == items:
                    runs[name].append(result)
                if name in sized:
                    sized[name][size] = result
    return runs, errors, sized


_LABELS = (
    ("scan", "dynascan scan > /dev/null"),
    ("export", "dynascan export --format parquet"),
    ("awswrangler", "awswrangler read_items + to_parquet"),
)


def _ratio(runs: dict[str, list[dict[str, Any]]], slow: str, fast: str) -> float | None:
    if not runs[slow] or not runs[fast]:
        return None
    return _median(runs[slow], "wall") / _median(runs[fast], "wall")


def measure(args: argparse.Namespace) -> tuple[list[str], list[_report.Goal], dict[str, Any]]:
    """The scenario: markdown lines, goals and raw figures (see the module docstring)."""
    items = args.export_items
    sizes = [int(s) for s in args.export_rss_sizes.split(",")]
    goals: list[_report.Goal] = []
    with contextlib.ExitStack() as stack:
        server, endpoint = _start_server(stack, args.export_server)
        runs, errors, sized = _run_steps(endpoint, sizes, items, args)
    rss = {
        name: {n: r["max_rss_kib"] / 1024 for n, r in got.items()} for name, got in sized.items()
    }
    data: dict[str, Any] = {"items": items, "server": server, "runs": runs, "rss": rss}
    data["errors"] = errors
    lines = [
        (
            f"## Export to Parquet: {items:,} items, {args.segments} segments, "
            f"{args.concurrency} in flight"
        ),
        "",
        f"On the {server} server (judged):",
        "",
        "| command | wall s | CPU s | peak RSS MiB | note |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    lines += [_line(label, runs[name], errors[name]) for name, label in _LABELS]
    lines += ["", "| peak RSS MiB | " + " | ".join(f"{s:,} items" for s in sizes) + " |"]
    lines.append("| --- |" + " ---: |" * len(sizes))
    for name in ("export", "awswrangler"):
        cells = [f"{rss[name][s]:.0f}" if s in rss[name] else "—" for s in sizes]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    large = max(sizes)
    if all(large in sized[name] for name in sized) and large != items:
        export_s, wrangler_s = (sized[name][large]["wall"] for name in ("export", "awswrangler"))
        lines.append(
            f"\nAt {large:,} items (one run each): export {export_s:.2f} s, awswrangler "
            f"{wrangler_s:.2f} s, {wrangler_s / export_s:.1f}x faster (not judged: the goal "
            f"is at {items:,}, where the export's fixed start-up, importing aiohttp, botocore "
            "and pyarrow and making the client, is a large part of its time)."
        )
    lines.append("")
    also = args.export_also
    if also and also != server:
        lines += _beside(also, items, args, data)

    ratio = _ratio(runs, "export", "scan")
    if ratio is not None:
        goals.append(
            _report.Goal(
                f"export parquet vs scan > /dev/null ({items:,} items, {server})",
                "≤ 1.3x the wall time",
                f"{ratio:.2f}x",
                ratio <= 1.3,
            )
        )
    speedup = _ratio(runs, "awswrangler", "export")
    if speedup is not None:
        goals.append(
            _report.Goal(
                f"export parquet vs awswrangler ({items:,} items, {server})",
                "≥ 5x faster",
                f"{speedup:.1f}x",
                speedup >= 5,
            )
        )
    small, large = sizes[0], sizes[-1]
    if small in rss["export"] and large in rss["export"] and small != large:
        growth = rss["export"][large] / rss["export"][small] - 1
        wrangler = ""
        if small in rss["awswrangler"] and large in rss["awswrangler"]:
            wrangler = (
                f"; awswrangler {rss['awswrangler'][small]:.0f} → "
                f"{rss['awswrangler'][large]:.0f} MiB"
            )
        goals.append(
            _report.Goal(
                f"export peak RSS, {large:,} vs {small:,} items",
                "within 15%",
                f"{rss['export'][small]:.0f} → {rss['export'][large]:.0f} MiB "
                f"({growth:+.1%}){wrangler}",
                abs(growth) <= 0.15,
            )
        )
    return lines, goals, data


def _beside(name: str, items: int, args: argparse.Namespace, data: dict[str, Any]) -> list[str]:
    """The same three commands at ``items`` on a second server, shown, not judged."""
    with contextlib.ExitStack() as stack:
        endpoint = _try_start(stack, name)
        if endpoint is None:
            return [f"({name} could not run here: no second server.)", ""]
        runs, errors, _ = _run_steps(endpoint, [], items, args)
    data["beside"] = {"server": name, "runs": runs, "errors": errors}
    data["errors"] = {k: data["errors"][k] + errors[k] for k in errors}
    lines = [
        f"On {name} (shown, not judged):",
        "",
        "| command | wall s | CPU s | peak RSS MiB | note |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    lines += [_line(label, runs[key], errors[key]) for key, label in _LABELS]
    speedup = _ratio(runs, "awswrangler", "export")
    vs_scan = _ratio(runs, "export", "scan")
    if speedup is not None and vs_scan is not None:
        lines += [
            "",
            (
                f"On {name}: export {vs_scan:.2f}x the scan's wall time, {speedup:.1f}x faster "
                f"than awswrangler. {name} itself serves a full-speed scan at about the rate "
                "the export reads (compare the lower-bound client in the main table), so here "
                "the server, not the client, sets the export's pace."
            ),
        ]
    return [*lines, ""]


def _try_start(stack: contextlib.ExitStack, name: str) -> str | None:
    try:
        return str(stack.enter_context(_servers.start(name)))
    except _servers.ServerUnavailable as why:
        print(f"export scenario: {name} unavailable ({why})", flush=True)
        return None


def _start_server(stack: contextlib.ExitStack, wanted: str) -> tuple[str, str]:
    """The model server (it serves faster than dynalite, so that the clients set the
    pace), or dynalite where it cannot run; the one started and its URL."""
    for name in [wanted, *(n for n in ("model", "dynalite") if n != wanted)]:
        endpoint = _try_start(stack, name)
        if endpoint is not None:
            return name, endpoint
    raise _servers.ServerUnavailable("neither dynalite nor the model server can run here")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--export-items", type=int, default=100_000, help=argparse.SUPPRESS)
    parser.add_argument("--export-rss-sizes", default="100000,1000000", help=argparse.SUPPRESS)
    parser.add_argument("--export-server", default="model", help=argparse.SUPPRESS)
    parser.add_argument("--export-also", default="dynalite", help=argparse.SUPPRESS)
    parser.add_argument("--skip-awswrangler-above", type=int, default=10**9, help=argparse.SUPPRESS)


def smoke(args: argparse.Namespace) -> None:
    args.export_items = min(args.export_items, 2_000)
    args.export_rss_sizes = "2000,6000"
    args.repeat = 1


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child-awswrangler"]:
        _awswrangler_child(*argv[1:4])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny run; checks the results")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--segments", type=int, default=25)
    parser.add_argument("--concurrency", type=int, default=5)
    add_arguments(parser)
    args = parser.parse_args(argv)
    if args.smoke:
        smoke(args)
    from benchmarks import run as runner

    if runner.CPUS is not None:
        # As run.py does: the servers (started from here) off the measured command's CPU.
        os.sched_setaffinity(0, runner.CPUS[1])
    lines, goals, data = measure(args)
    print("\n".join(lines))
    if args.smoke:
        print("(smoke: a few thousand items measure start-up costs; the goals are not judged)")
    else:
        for goal in goals:
            print(f"{goal.verdict:4}  {goal.name}: {goal.measured} (goal {goal.target})")
    wrong = [e for errs in data["errors"].values() for e in errs if e.startswith("WRONG")]
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
