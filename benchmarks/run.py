"""Scan one web-log table with every Python DynamoDB client people use, and dynascan_async.

    python benchmarks/run.py                        # everything; writes benchmarks/report/
    python benchmarks/run.py --server dynalite --items 100000 --repeat 5 --scenario main
    python benchmarks/run.py --smoke                # what CI runs: tiny, < 60 s, checks counts
    python benchmarks/run.py --quick                # every scenario, small: checks the bench
    nox -s bench -- --scenario segments

Why it is built this way:

* Users choose a scan library because it finishes sooner and leaves their CPU to their own
  code, so each client is measured for wall time, items/s, *its own process's* CPU per item
  and peak RSS. Each client runs in a fresh subprocess (``benchmarks/clients.py``) and each
  server in its own process, all on 127.0.0.1: nothing measured shares a process.
* Every client scans the same table in the same run and must return the same item count and
  checksum (sum of ``bytessent``), in every run and in every paired run; a client that
  loses or repeats pages is reported as WRONG, and the run exits non-zero -- except for the
  ThreadPoolExecutor recipe (from a widely copied blog post) run verbatim, whose loss of
  pages is a finding, not a failure of this benchmark. A run that fails is reported too
  (the ``runs`` column: finished of asked), and fails the benchmark.
* Repetitions are interleaved (client A, B, C, then A, B, C again) so slow drift of the
  machine spreads over all clients; medians are reported.
* The goals are checked: a goal missed, or one that cannot be computed because a row it
  needs failed (or its server or scenario could not run), makes the run exit non-zero
  with the list. ``--smoke`` checks counts only: 2,000 items measure start-up costs, not
  the goals' ratios.
* On a machine with two CPUs or more, the measured client runs alone on the first one, and
  this driver and the servers on the others (``split_cpus``): a client's CPU time then does
  not grow with the cache misses and migrations of sharing its core with the server.
* The scenarios (``--scenario segments|rss|rate``) need a server with a round-trip latency
  and provisioned capacity, which only the model server has; without it they are
  reported as not computed.

Output: a full run (every server, scenario and client) writes ``report/bench.md`` (also
printed) and ``report/bench.json``, the report the README quotes, meant to be committed;
any other run writes them to ``results/`` (``results/smoke/``, ``results/quick/``), which
git ignores, as it does the plot ``results/bench.png`` and profiles.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pstats
import random
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

if __package__ in (None, ""):
    # Run as a script (``python benchmarks/run.py``): make ``benchmarks`` importable.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import _data, _report, _servers
from benchmarks import capacity as _capacity
from benchmarks import export as export_bench
from benchmarks.clients import CLIENTS, PARALLEL
from dynascan_async._durable import write_atomic

HERE = Path(__file__).resolve().parent
# The report the README quotes: committed, unlike results/ (plots, profiles, smoke runs).
REPORT = HERE / "report"
CLIENT_SCRIPT = HERE / "clients.py"
TABLE = "logfile_scan"
SERVERS = ("dynalite", "model")
SMOKE_CLIENTS = ("paginator", "lowerbound", "dynascan", "dynascan_raw")
# Rows whose wrong counts are a finding to report, not a failure of the run.
KNOWN_LOSSY = frozenset({"recipe"})


@dataclass(frozen=True)
class Spec:
    """One row of a table: which client, under which name, with which knobs."""

    row: str
    client: str
    segments: int = 1
    concurrency: int = 1
    args: tuple[str, ...] = ()
    note: str = ""

    @property
    def settings(self) -> str:
        if self.client not in PARALLEL:
            return "sequential"
        if self.segments == 1 and self.concurrency == 1:
            return "1 segment, sequential"
        return f"{self.segments} segments, {self.concurrency} in flight"

    def command(self, endpoint: str, table: str) -> list[str]:
        return [
            sys.executable,
            str(CLIENT_SCRIPT),
            self.client,
            f"--endpoint={endpoint}",
            f"--table={table}",
            f"--segments={self.segments}",
            f"--concurrency={self.concurrency}",
            *self.args,
        ]


@dataclass
class Run:
    """Everything measured in one invocation, for the report and ``bench.json``."""

    servers: dict[str, dict[str, Any]] = field(default_factory=dict)
    scenario_lines: list[str] = field(default_factory=list)
    scenario_data: dict[str, Any] = field(default_factory=dict)
    goals: list[_report.Goal] = field(default_factory=list)
    profile: str = ""
    # Per server: dynascan's CPU/item over aiodynamo's, round by round (see paired()).
    pairs: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Every row measured, with where it was measured, for the exit status.
    checked: list[tuple[str, Spec, _report.Row]] = field(default_factory=list)
    # Paired runs that failed or returned a wrong count, for the exit status.
    pair_failures: list[str] = field(default_factory=list)
    # Servers of the main table that could not run here, and why (their goals: not computed).
    unavailable: dict[str, str] = field(default_factory=dict)


def main_specs(args: argparse.Namespace) -> list[Spec]:
    """The issue's table: every client, parallel ones with the same segments/in-flight."""
    s, c = args.segments, args.concurrency
    specs = [
        Spec("paginator", "paginator"),
        Spec("aioboto3_table", "aioboto3_table"),
        Spec("recipe", "recipe", 25, 5, note="blog post recipe verbatim, its own 25/5"),
        Spec("aiodynamo", "aiodynamo", note="numbers as float"),
        Spec("lowerbound", "lowerbound", s, c),
        Spec("lowerbound_seq", "lowerbound", 1, 1),
        Spec("dynascan", "dynascan", s, c),
        Spec("dynascan_raw", "dynascan_raw", s, c, note="raw AttributeValues"),
    ]
    if args.clients:
        wanted = set(args.clients.split(","))
        specs = [spec for spec in specs if spec.row in wanted or spec.client in wanted]
    return specs


def split_cpus() -> tuple[set[int], set[int]] | None:
    """(the client's CPU, everything else's CPUs), or None where that cannot be done."""
    if not hasattr(os, "sched_getaffinity"):
        return None
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None
    return {cpus[0]}, set(cpus[1:])


CPUS = split_cpus()


def _pin_client() -> None:
    """Runs in the client's process before it starts (``preexec_fn``)."""
    if CPUS is not None:
        os.sched_setaffinity(0, CPUS[0])


def _machine() -> dict[str, str]:
    info = _report.machine()
    if CPUS is not None:
        client, rest = CPUS
        info["pinning"] = (
            f"each client alone on CPU {min(client)}; servers and this driver on CPU(s) "
            + ", ".join(map(str, sorted(rest)))
        )
    return info


def run_client(spec: Spec, endpoint: str, table: str, timeout: float) -> dict[str, Any]:
    """One client subprocess; its JSON line, or ``{"error": ...}``."""
    # Clients run as an installed program runs: with bytecode caches. Without them (some
    # machines set PYTHONDONTWRITEBYTECODE) every run compiles what it imports, and modules
    # imported lazily on a client's first request are compiled inside its measured window.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    try:
        done = subprocess.run(
            spec.command(endpoint, table),
            env=env,
            preexec_fn=_pin_client,  # safe: the driver runs no threads of its own
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = done.stderr.strip().splitlines()[-1:] or [f"exit code {done.returncode}"]
        return {"error": tail[0][:300]}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def measure(
    run: Run,
    where: str,
    specs: list[Spec],
    endpoint: str,
    table: str,
    items: int,
    repeat: int,
    timeout: float,
) -> list[_report.Row]:
    """Each spec ``repeat`` times, interleaved; rows checked against the loaded table.

    A consumer that drops items (``--drop``) reports no checksum: only its count is checked.
    """
    checksum = _data.expected_checksum(items)
    rows = [
        _report.Row(
            spec.row,
            spec.settings,
            [],
            items,
            0 if "--drop" in spec.args else checksum,
            spec.note,
            repeats=repeat,
        )
        for spec in specs
    ]
    run.checked += [(where, spec, row) for spec, row in zip(specs, rows, strict=True)]
    for round_ in range(repeat):
        for spec, row in zip(specs, rows, strict=True):
            result = run_client(spec, endpoint, table, timeout)
            if "error" in result:
                print(f"  {spec.row:15} run {round_ + 1}: ERROR {result['error']}", flush=True)
                row.note = f"{row.note}; error: {result['error']}".strip("; ")
                continue
            row.runs.append(result)
            wrong = (
                ""
                if result["items"] == items and result["checksum"] == row.expected_checksum
                else "  WRONG COUNT OR CHECKSUM"
            )
            print(
                f"  {spec.row:15} run {round_ + 1}: {result['items']:>9,} items "
                f"{result['wall']:7.2f} s {result['items'] / result['wall']:>9,.0f} items/s "
                f"{result['cpu'] / max(1, result['items']) * 1e6:6.1f} us/item "
                f"{result['max_rss_kib'] / 1024:5.0f} MiB{wrong}",
                flush=True,
            )
    return rows


def paired(
    run: Run,
    where: str,
    specs: tuple[Spec, Spec],
    endpoint: str,
    items: int,
    rounds: int,
    timeout: float,
) -> dict[str, Any]:
    """The first client's CPU/item over the second's, measured in back-to-back pairs.

    On a small shared VM a single run's CPU/item moves by up to 50%, and slowly: a bad
    minute weighs on every client run in it. A pair run back to back sees the same minute,
    so the ratio within each pair cancels most of it (the order alternates, so neither
    side always runs second). Reported: the median of the ratios, a bootstrap 95%
    interval of that median, in how many pairs the first client was cheaper, and how
    many of the pairs asked for finished. Every run of a pair must return the table's
    item count and checksum, as in the main table: a pair with a failed or wrong run is
    left out of the ratio and fails the benchmark (``run.pair_failures``).
    """
    checksum = _data.expected_checksum(items)
    ratios: list[float] = []
    failed: list[str] = []
    for round_ in range(rounds):
        order = specs if round_ % 2 == 0 else specs[::-1]
        cpu: dict[str, float] = {}
        for spec in order:
            result = run_client(spec, endpoint, TABLE, timeout)
            if "error" in result:
                failed.append(f"pair {round_ + 1}, {spec.row}: {result['error']}")
                break
            if result.get("items") != items or result.get("checksum") != checksum:
                failed.append(
                    f"pair {round_ + 1}, {spec.row}: WRONG: {result.get('items', '?'):,} items "
                    f"(expected {items:,}) or checksum differs"
                )
                break
            cpu[spec.row] = result["cpu"] / result["items"]
        if len(cpu) == 2:
            ratios.append(cpu[specs[0].row] / cpu[specs[1].row])
    for failure in failed:
        print(f"  paired: {failure}", flush=True)
    run.pair_failures += [f"{where}/paired {failure}" for failure in failed]
    if not ratios:
        return {"asked": rounds, "rounds": 0, "failed": failed}
    rng = random.Random(0)
    medians = sorted(statistics.median(rng.choices(ratios, k=len(ratios))) for _ in range(2000))
    summary = {
        "asked": rounds,
        "rounds": len(ratios),
        "median": statistics.median(ratios),
        "low": medians[int(0.025 * len(medians))],
        "high": medians[int(0.975 * len(medians)) - 1],
        "cheaper": sum(ratio < 1 for ratio in ratios),
        "ratios": ratios,
        "failed": failed,
    }
    print(
        f"  paired {specs[0].row}/{specs[1].row}: median {summary['median']:.3f} "
        f"(95% {summary['low']:.3f}-{summary['high']:.3f}) over {len(ratios)} of {rounds} pairs",
        flush=True,
    )
    return summary


def client_timeout(items: int, smoke: bool) -> float:
    return 30.0 if smoke else 120.0 + items * 0.003


def server_version(name: str) -> str:
    if name == "dynalite":
        return f"dynalite {_servers.DYNALITE_VERSION} (Node.js, in memory)"
    return "dynascan_async model server (Python, in memory, no latency)"


def main_benchmark(server: str, args: argparse.Namespace, run: Run) -> None:
    """The issue's table on one server: load, then every client, ``repeat`` times."""
    specs = main_specs(args)
    with _servers.start(server) as endpoint:
        print(f"{server} on {endpoint}: loading {args.items:,} items ...", flush=True)
        started = time.perf_counter()
        _data.load(endpoint, TABLE, args.items)
        print(f"  loaded in {time.perf_counter() - started:.1f} s", flush=True)
        rows = measure(
            run,
            server,
            specs,
            endpoint,
            TABLE,
            args.items,
            args.repeat,
            client_timeout(args.items, args.smoke),
        )
        if args.profile and not run.profile:
            run.profile = profile_dynascan(endpoint, args)
        wanted = {spec.row: spec for spec in specs}
        if args.pairs and "dynascan" in wanted and "aiodynamo" in wanted:
            run.pairs[server] = paired(
                run,
                server,
                (wanted["dynascan"], wanted["aiodynamo"]),
                endpoint,
                args.items,
                args.pairs,
                client_timeout(args.items, args.smoke),
            )
    run.servers[server] = {
        "items": args.items,
        "repeat": args.repeat,
        "version": server_version(server),
        "rows": rows,
    }


def profile_dynascan(endpoint: str, args: argparse.Namespace) -> str:
    """The dynascan client once under cProfile: where its CPU goes, top entries."""
    path = Path(args.out) / "profile_dynascan.prof"
    spec = Spec("dynascan", "dynascan", args.segments, args.concurrency, (f"--profile={path}",))
    result = run_client(spec, endpoint, TABLE, client_timeout(args.items, False) * 3)
    if "error" in result:
        return f"profile failed: {result['error']}"
    text_path = path.with_suffix(".txt")
    with open(text_path, "w", encoding="utf-8") as out:
        out.write(f"dynascan, {result['items']:,} items, under cProfile\n")
        for order in ("cumulative", "tottime"):
            out.write(f"\n=== top 20 by {order} ===\n")
            pstats.Stats(str(path), stream=out).strip_dirs().sort_stats(order).print_stats(20)
    print(f"  profile of dynascan written to {text_path}", flush=True)
    return text_path.read_text(encoding="utf-8")


# --- the scenarios (model server only) ------------------------------------------------------


@contextlib.contextmanager
def model_server(**knobs: Any) -> Iterator[str]:
    with _servers.start("model", **knobs) as endpoint:
        yield endpoint


def scenario_segments(args: argparse.Namespace, run: Run) -> None:
    """16 segments against 1 at 20 ms per page, and the ThreadPoolExecutor recipe at 16 in flight.

    Pages are ``Limit=50`` items so that the scan is many round trips (400 for 20,000
    items): the round trip, not the client's CPU, is what parallel segments remove.
    The recipe is run fixed at the same 16/16 (verbatim it loses pages when every
    segment is in flight), and verbatim at 80/16, the post's own ratio of segments to
    scans in flight, which keeps its stated assumption (fewer scans than segments).
    """
    items, limit, latency = args.segments_items, 50, 0.020
    page = (f"--page-limit={limit}",)
    specs = [
        Spec("dynascan 1 segment", "dynascan", 1, 1, page),
        Spec("dynascan 16 segments", "dynascan", 16, 16, page),
        Spec(
            "dynascan 16 segments, botocore transport",
            "dynascan",
            16,
            16,
            (*page, "--transport=botocore"),
        ),
        Spec("recipe_fixed 16/16", "recipe_fixed", 16, 16, page),
        Spec("recipe 80/16", "recipe", 80, 16, page, note="verbatim"),
        Spec("paginator", "paginator", args=page),
    ]
    with model_server(latency=latency) as endpoint:
        print(f"segments scenario: model server, {latency * 1000:.0f} ms per page", flush=True)
        _data.load(endpoint, TABLE, items)
        rows = measure(run, "segments", specs, endpoint, TABLE, items, args.repeat, 600)
    by = {row.client: row for row in rows}
    one, sixteen = by["dynascan 1 segment"], by["dynascan 16 segments"]
    recipe = by["recipe_fixed 16/16"]
    run.scenario_lines += [
        f"## Segments: model server, {latency * 1000:.0f} ms/page, {items:,} items, Limit={limit}",
        "",
        *_report.client_table(rows),
        "",
    ]
    run.scenario_data["segments"] = {row.client: row.runs for row in rows}
    if sixteen.ok:
        # Once the client's CPU, not the round trip, limits 16 segments, the speed-up is
        # at most (latency + CPU per page) / CPU per page: say so next to the figure.
        per_page = statistics.median(r["cpu"] / max(1, r["pages"]) for r in sixteen.runs)
        bound = 1 + latency / per_page
        run.scenario_lines += [
            (
                f"dynascan's client CPU per page at 16 segments: {per_page * 1000:.2f} ms "
                f"({limit} items); with {latency * 1000:.0f} ms per page, a client-bound scan "
                f"is at most {bound:.1f}x faster with 16 segments than with 1."
            ),
            "",
        ]
    name, target = "16 segments vs 1 (model, 20 ms/page)", "≥ 12x faster"
    if one.ok and sixteen.ok:
        speedup = one.wall / sixteen.wall
        run.goals.append(
            _report.Goal(
                name,
                target,
                f"{speedup:.1f}x ({one.wall:.2f} s → {sixteen.wall:.2f} s)",
                speedup >= 12,
            )
        )
    else:
        run.goals.append(_report.not_computed(name, target, broken_rows(one, sixteen)))
    name = "16 segments vs ThreadPoolExecutor recipe at 16 in flight"
    target = "≥ 1x (at least as fast)"
    if sixteen.ok and recipe.ok:
        ratio = recipe.wall / sixteen.wall
        run.goals.append(
            _report.Goal(
                name,
                target,
                f"{ratio:.2f}x ({recipe.wall:.2f} s vs {sixteen.wall:.2f} s)",
                ratio >= 1,
            )
        )
    else:
        run.goals.append(_report.not_computed(name, target, broken_rows(sixteen, recipe)))


def scenario_rss(args: argparse.Namespace, run: Run) -> None:
    """Peak RSS of a scan whose consumer drops every item, over 100k and 1M items:
    memory bounded by pages in flight, not by the table, should not grow with it."""
    sizes = [int(size) for size in args.rss_sizes.split(",")]
    rows = []
    with model_server() as endpoint:
        for size in sizes:
            table = f"rss_{size}"
            print(f"rss scenario: loading {size:,} items into {table} ...", flush=True)
            started = time.perf_counter()
            _data.load(endpoint, table, size, in_flight=16)
            print(f"  loaded in {time.perf_counter() - started:.1f} s", flush=True)
            spec = Spec(
                f"dynascan drop {size:,}",
                "dynascan",
                args.segments,
                args.concurrency,
                ("--drop",),
            )
            timeout = 120 + size * 0.003
            rows += measure(run, "rss", [spec], endpoint, table, size, args.repeat, timeout)
    run.scenario_lines += [
        "## Memory: a consumer that drops every item (model server)",
        "",
        *_report.client_table(rows),
        "",
    ]
    run.scenario_data["rss"] = {row.client: row.runs for row in rows}
    name = f"peak RSS, {sizes[-1]:,} vs {sizes[0]:,} items, dropping consumer"
    if len(rows) < 2:
        run.goals.append(_report.not_computed(name, "within 10%", "needs two table sizes"))
    elif rows[0].ok and rows[-1].ok:
        small, large = rows[0].rss_mib, rows[-1].rss_mib
        growth = large / small - 1
        run.goals.append(
            _report.Goal(
                name,
                "within 10%",
                f"{large:.0f} MiB vs {small:.0f} MiB ({growth:+.1%})",
                abs(growth) <= 0.10,
            )
        )
    else:
        run.goals.append(_report.not_computed(name, "within 10%", broken_rows(rows[0], rows[-1])))


def scenario_export(args: argparse.Namespace, run: Run) -> None:
    """``dynascan export --format parquet`` against a scan and awswrangler: benchmarks/export.py."""
    lines, goals, data = export_bench.measure(args)
    run.scenario_lines += [*lines, ""]
    run.goals += goals
    run.scenario_data["export"] = data


def _slope(samples: list[tuple[float, float]]) -> float:
    """Least-squares capacity per second over ``samples`` of (elapsed, consumed)."""
    n = len(samples)
    if n < 2:
        return float("nan")
    mean_t = sum(t for t, _ in samples) / n
    mean_c = sum(c for _, c in samples) / n
    num = sum((t - mean_t) * (c - mean_c) for t, c in samples)
    den = sum((t - mean_t) ** 2 for t, _ in samples)
    return num / den if den else float("nan")


def scenario_rate(args: argparse.Namespace, run: Run) -> None:
    """``rate_limit`` against what the server says was consumed, on a provisioned table.

    The table is provisioned at 1.5x the target, so a scan that keeps to its target must
    never be throttled; pages are ``Limit=100`` items (about 3 RCU each), fine-grained
    against a 100 RCU/s budget. The scan stops after ``--rate-seconds`` seconds.
    """
    target, provisioned, seconds, items = 100.0, 150, args.rate_seconds, args.rate_items
    spec = Spec(
        "dynascan rate_limit",
        "dynascan",
        16,
        8,
        (f"--rate-limit={target}", f"--seconds={seconds}", "--page-limit=100"),
    )
    with model_server() as endpoint:
        print(f"rate scenario: provisioned {provisioned} RCU, target {target} RCU/s", flush=True)
        _data.load(endpoint, "rate", items, provisioned_rcu=provisioned, in_flight=16)
        result = run_client(spec, endpoint, "rate", seconds * 3 + 60)
    run.scenario_data["rate"] = result
    goal_rate = f"rate_limit {target:.0f} RCU/s over a {seconds:.0f} s scan"
    goal_throttles = f"no throttling below provisioned capacity ({provisioned} RCU/s)"
    if "error" in result:
        run.scenario_lines += ["## Rate limit", "", f"Failed: {result['error']}", ""]
        run.goals += [
            _report.not_computed(goal_rate, "within ±5%", f"the scan failed: {result['error']}"),
            _report.not_computed(goal_throttles, "0 throttles", "the scan failed"),
        ]
        return
    samples = [(float(t), float(c)) for t, c in result["samples"]]
    elapsed, consumed = samples[-1] if samples else (result["elapsed"], result["consumed_capacity"])
    overall = consumed / elapsed if elapsed else float("nan")
    steady = _slope([s for s in samples if s[0] >= 2.0])
    throttles = int(result["throttles"])
    print(
        f"  {consumed:.1f} RCU in {elapsed:.1f} s: {overall:.1f} RCU/s overall, "
        f"{steady:.1f} RCU/s after the first 2 s, {throttles} throttles",
        flush=True,
    )
    run.scenario_lines += [
        f"## Rate limit: model server, table provisioned at {provisioned} RCU/s",
        "",
        "| target RCU/s | scan s | consumed RCU | RCU/s overall | RCU/s after 2 s | throttles |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
        (
            f"| {target:.0f} | {elapsed:.1f} | {consumed:,.1f} | {overall:.1f} | {steady:.1f} | "
            f"{throttles} |"
        ),
        "",
        (
            "Overall includes the limiter's initial burst (one second of budget); "
            "'after 2 s' is the least-squares slope of consumed capacity over time."
        ),
        "",
    ]
    run.goals += [
        _report.Goal(
            goal_rate,
            "within ±5%",
            f"{overall:.1f} RCU/s overall ({overall / target - 1:+.1%}), "
            f"{steady:.1f} steady ({steady / target - 1:+.1%})",
            abs(overall / target - 1) <= 0.05,
        ),
        _report.Goal(
            goal_throttles,
            "0 throttles",
            str(throttles),
            throttles == 0,
        ),
    ]


# --- goals from the main table ----------------------------------------------------------------


def broken_rows(*rows: _report.Row) -> str:
    """Why a goal built on ``rows`` cannot be computed: each failed row and its failure."""
    return "; ".join(f"{row.client}: {row.failure()}" for row in rows if not row.ok)


Measure = Callable[..., tuple[str, bool]]


def add_goal(
    run: Run,
    rows: dict[str, _report.Row],
    name: str,
    target: str,
    needs: list[str],
    measure: Measure,
) -> None:
    """``measure(*needed rows)`` as a goal; not computed (and why) if a needed row failed.

    Left out only if a needed row was not asked for in this run (``--clients``).
    """
    if any(need not in rows for need in needs):
        return
    needed = [rows[need] for need in needs]
    if all(row.ok for row in needed):
        measured, passed = measure(*needed)
        run.goals.append(_report.Goal(name, target, measured, passed))
    else:
        run.goals.append(_report.not_computed(name, target, broken_rows(*needed)))


def cpu_ratio(target: float) -> Measure:
    """Our CPU/item over another row's, met at ``target`` times theirs or less."""

    def measure(ours: _report.Row, other: _report.Row) -> tuple[str, bool]:
        cpu, theirs = ours.cpu_us_per_item, other.cpu_us_per_item
        return f"{cpu / theirs:.2f}x ({cpu:.1f} vs {theirs:.1f} µs)", cpu <= target * theirs

    return measure


def wall_speedup(paginator: _report.Row, ours: _report.Row) -> tuple[str, bool]:
    """How many times faster than the paginator we finish; met at twice or more."""
    times = paginator.wall / ours.wall
    return f"{times:.2f}x ({paginator.wall:.2f} s → {ours.wall:.2f} s)", times >= 2


def scenario_arrow(args: argparse.Namespace, run: Run) -> None:
    """Arrow batches against Python values: ``benchmarks/arrow_batches.py``."""
    from benchmarks import arrow_batches

    arrow_batches.scenario(args, run)


def scenario_dask(args: argparse.Namespace, run: Run) -> None:
    """2 Dask worker processes against 1: ``benchmarks/dask_scan.py``."""
    from benchmarks import dask_scan

    dask_scan.scenario(args, run)


SCENARIOS = ("main", "segments", "rss", "rate", "arrow", "export", "capacity", "dask")


def main_goals(run: Run) -> None:
    """The issue's ratios, per server, from the medians of this run.

    A goal whose rows were not asked for (``--clients``) is left out. A goal whose rows
    were asked for but failed (no run finished, a run failed, a wrong count) is reported
    as not computed, with the reason, and fails the run like a missed goal: a competitor
    that breaks must not make a goal vanish from the report.
    """
    for server, why in run.unavailable.items():
        run.goals.append(
            _report.not_computed(f"every goal on {server}", "measured", f"skipped: {why}")
        )
    for server, section in run.servers.items():
        rows: dict[str, _report.Row] = {row.client: row for row in section["rows"]}
        dyn = rows.get("dynascan")
        if dyn is None:
            continue  # dynascan not asked for: no goal is about anything else

        pair = run.pairs.get(server)
        name = f"CPU/item vs aiodynamo ({server})"
        if pair is not None:
            if pair.get("rounds"):
                run.goals.append(
                    _report.Goal(
                        f"CPU/item vs aiodynamo ({server}, {pair['rounds']} of "
                        f"{pair['asked']} paired runs)",
                        "≤ 1x",
                        (
                            f"{pair['median']:.2f}x (95% {pair['low']:.2f}-{pair['high']:.2f}; "
                            f"cheaper in {pair['cheaper']} of {pair['rounds']})"
                        ),
                        pair["median"] <= 1,
                    )
                )
            else:
                why = "; ".join(pair.get("failed", [])[:3]) or "no pair finished"
                run.goals.append(_report.not_computed(name, "≤ 1x", why))
        else:
            add_goal(run, rows, name, "≤ 1x", ["dynascan", "aiodynamo"], cpu_ratio(1.0))
        add_goal(
            run,
            rows,
            f"CPU/item vs aioboto3 Table.scan ({server})",
            "≤ 0.25x",
            ["dynascan", "aioboto3_table"],
            cpu_ratio(0.25),
        )
        bounds = [rows[bound] for bound in ("lowerbound", "lowerbound_seq") if bound in rows]
        if bounds:
            name, target = f"CPU/item vs lower bound ({server})", "≤ 1.5x"
            good = [row for row in bounds if row.ok]
            if dyn.ok and good:
                best = min(good, key=lambda row: row.cpu_us_per_item)
                measured, passed = cpu_ratio(1.5)(dyn, best)
                run.goals.append(
                    _report.Goal(f"{name[:-1]}, best: {best.client})", target, measured, passed)
                )
            else:
                why = broken_rows(dyn, *bounds)
                run.goals.append(_report.not_computed(name, target, why))
        if server == "dynalite":
            add_goal(
                run,
                rows,
                "wall time vs aiobotocore paginator (dynalite)",
                "≥ 2x faster",
                ["paginator", "dynascan"],
                wall_speedup,
            )


# --- driver ---------------------------------------------------------------------------------


def write_report(run: Run, args: argparse.Namespace) -> str:
    """``bench.md`` and ``bench.json`` into ``args.report`` (the committed ``report/`` for
    a full run), the plot and the profile into ``args.out`` (ignored by git)."""
    out, report = Path(args.out), Path(args.report)
    out.mkdir(parents=True, exist_ok=True)
    report.mkdir(parents=True, exist_ok=True)
    descriptions = dict(CLIENTS)
    descriptions["lowerbound_seq"] = "the lower bound read sequentially (one segment)"
    text = _report.markdown(_machine(), run.servers, run.scenario_lines, run.goals, descriptions)
    # Readable by anyone who can read the checkout: it is meant to be committed.
    write_atomic(report / "bench.md", text.encode(), mode=0o644)
    plotted = _report.plot(run.servers, out / "bench.png")
    raw = {
        "servers": {
            name: {
                **{k: v for k, v in section.items() if k != "rows"},
                "rows": [
                    {
                        "client": r.client,
                        "settings": r.settings,
                        "ok": r.ok,
                        "repeats": r.repeats,
                        "finished": len(r.runs),
                        "failure": r.failure(),
                        "runs": r.runs,
                    }
                    for r in section["rows"]
                ],
            }
            for name, section in run.servers.items()
        },
        "scenarios": run.scenario_data,
        "pairs": run.pairs,
        "goals": [g.__dict__ | {"verdict": g.verdict} for g in run.goals],
        "failures": failures(run),
    }
    data = json.dumps(raw, indent=1, default=str).encode()
    write_atomic(report / "bench.json", data, mode=0o644)
    print(text)
    if run.profile:
        print(run.profile)
    written = [report / "bench.md", report / "bench.json"]
    if plotted:
        written.append(out / "bench.png")
    print("written: " + ", ".join(map(str, written)))
    return text


def failures(run: Run) -> list[str]:
    """Rows with a failed run, a wrong count or checksum, and failed or wrong pairs."""
    return [
        f"{where}/{row.client}: {row.failure() or 'failed'}"
        for where, spec, row in run.checked
        if spec.client not in KNOWN_LOSSY and not row.ok
    ] + run.pair_failures


def unmet(run: Run) -> list[str]:
    """Goals missed or not computed, in words."""
    return [
        f"{goal.name}: {goal.measured} (target {goal.target})"
        for goal in run.goals
        if goal.passed is not True
    ]


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Scan one DynamoDB table with every client; report speed and CPU.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--server",
        default="all",
        choices=[*SERVERS, "all"],
        help="server(s) for the main table; 'all' skips those that cannot run here",
    )
    parser.add_argument("--items", type=int, default=100_000)
    # Five, not three: client CPU per item moves by up to 50% between single runs on a small
    # shared VM, and a median of three still let one slow pair of runs decide a goal.
    parser.add_argument("--repeat", type=int, default=5, help="runs per client; medians")
    parser.add_argument(
        "--scenario",
        default="all",
        help="comma-separated: main, segments, rss, rate, arrow, export, capacity, dask, or all",
    )
    parser.add_argument(
        "--smoke", action="store_true", help="tiny run for CI; checks counts, not goals"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=(
            "every scenario at a small size, goals included (they are not expected to be "
            "met at that size): a check of the benchmark itself, in a few minutes"
        ),
    )
    parser.add_argument(
        "--out",
        default=None,
        help="plot and profile; default: results/ (results/smoke/, results/quick/)",
    )
    parser.add_argument(
        "--report",
        default=None,
        help=(
            "bench.md and bench.json; default: report/ (committed, quoted by the README) "
            "for a full run, else the --out folder"
        ),
    )
    parser.add_argument("--segments", type=int, default=25, help="every parallel client")
    parser.add_argument("--concurrency", type=int, default=5, help="every parallel client")
    parser.add_argument("--clients", default="", help="comma-separated subset of the table")
    parser.add_argument(
        "--pairs",
        type=int,
        default=30,
        help="dynascan/aiodynamo runs back to back per server, for the CPU/item ratio",
    )
    parser.add_argument("--profile", action="store_true", help="cProfile the dynascan client")
    parser.add_argument("--rss-sizes", default="100000,1000000", help=argparse.SUPPRESS)
    parser.add_argument("--rate-seconds", type=float, default=20.0, help=argparse.SUPPRESS)
    parser.add_argument("--rate-items", type=int, default=100_000, help=argparse.SUPPRESS)
    parser.add_argument("--segments-items", type=int, default=20_000, help=argparse.SUPPRESS)
    export_bench.add_arguments(parser)
    args = parser.parse_args(argv)
    # Only a run of everything, at the sizes the README quotes, replaces the committed
    # report; any other run writes its report next to its plot.
    args.full = not (args.smoke or args.quick or args.clients) and (
        args.scenario == "all" and args.server == "all"
    )
    if args.quick:
        args.items = min(args.items, 2_000)
        args.repeat = min(args.repeat, 2)
        args.pairs = min(args.pairs, 2)
        args.rss_sizes = "2000,20000"
        args.rate_seconds = 3.0
        args.rate_items = 10_000
        args.segments_items = 2_000
    if args.smoke:
        args.items = min(args.items, 2_000)
        args.repeat = 1
        args.scenario = "main"
        args.pairs = 0
        args.clients = args.clients or ",".join(SMOKE_CLIENTS)
        if args.server not in ("model", "dynalite"):
            args.server = "model" if _servers.model_server_class() else "dynalite"
    return args


def main_or_skip(server: str, args: argparse.Namespace, run: Run) -> None:
    """The main table on ``server``; with ``--server all``, a server that cannot run here
    (no Node.js, no Java, no model server yet) is skipped with a message."""
    try:
        main_benchmark(server, args, run)
    except _servers.ServerUnavailable as why:
        print(f"skipping {server}: {why}", flush=True)
        if args.smoke or args.server != "all":
            raise
        run.unavailable[server] = str(why)


def _stop(signum: int, frame: FrameType | None) -> None:
    """SIGTERM behaves like Ctrl-C: unwind, so every server process is terminated."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    signal.signal(signal.SIGTERM, _stop)
    if CPUS is not None:
        # Servers started from here inherit this, and so keep off the client's CPU.
        os.sched_setaffinity(0, CPUS[1])
    scenarios = set(SCENARIOS) if args.scenario == "all" else set()
    scenarios |= {s.strip() for s in args.scenario.split(",") if s.strip() != "all"}
    unknown = scenarios - set(SCENARIOS)
    if unknown:
        raise SystemExit(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    servers = list(SERVERS) if args.server == "all" else [args.server]
    has_model = _servers.model_server_class() is not None
    if args.out is None:
        # A smoke or quick run must never overwrite the figures of a full one.
        kind = "smoke" if args.smoke else "quick" if args.quick else ""
        args.out = str(HERE / "results" / kind)
    if args.report is None:
        args.report = str(REPORT) if args.full else args.out
    Path(args.out).mkdir(parents=True, exist_ok=True)
    run = Run()
    started = time.perf_counter()
    try:
        if "main" in scenarios:
            for server in servers:
                main_or_skip(server, args, run)
        for name, scenario in (
            ("segments", scenario_segments),
            ("rss", scenario_rss),
            ("rate", scenario_rate),
            ("arrow", scenario_arrow),
            ("export", scenario_export),
            ("capacity", _capacity.scenario),
            ("dask", scenario_dask),
        ):
            if name not in scenarios:
                continue
            if not has_model:
                message = f"scenario {name} skipped: the model server is not available yet"
                print(message, flush=True)
                run.scenario_lines += [f"_{message}._", ""]
                run.goals.append(
                    _report.not_computed(f"scenario {name}", "measured", "no model server")
                )
                continue
            scenario(args, run)
    except KeyboardInterrupt:
        print("\ninterrupted: every server has been stopped; partial report follows")
        write_report(run, args)
        return 130
    if not args.smoke:  # 2,000 items measure start-up costs, not the goals' ratios
        main_goals(run)
    write_report(run, args)
    print(f"total {time.perf_counter() - started:.0f} s")
    status = 0
    bad = failures(run)
    if bad:
        print("FAILED: wrong or failed runs:", *bad, sep="\n  - ", file=sys.stderr)
        status = 1
    if args.smoke:
        if not any(row.runs for s in run.servers.values() for row in s["rows"]):
            print("FAILED: no client ran", file=sys.stderr)
            status = 1
    else:
        missed = unmet(run)
        if missed:
            print("FAILED: goals missed or not computed:", *missed, sep="\n  - ", file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
