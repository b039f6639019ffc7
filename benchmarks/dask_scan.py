"""The same scan on a Dask cluster: 2 worker processes against 1, where the client's CPU limits.

    python benchmarks/run.py --scenario dask             # part of the full benchmark
    python benchmarks/dask_scan.py --smoke               # tiny: 5,000 items, one round
    python benchmarks/dask_scan.py --items 100000 --rounds 3

The model server answers without latency, so a scan is bound by the CPU of whoever reads
the pages. Three ways to read the same web-log table, each checked for its item count:

* the single-process Arrow path (``arrow.scan_batches`` in its own process, ``clients.py``);
* ``dask.read_dynamodb`` on a ``LocalCluster`` of 1 worker process (one thread), and of 2.

Reported: wall time of the computation (planning, which reads a sample, is timed apart),
the speed-up of 2 workers over 1, and the CPU per item of the worker processes (their own
``getrusage``, all threads) against the single-process Arrow client's. Each cluster reads
the table once before it is measured, as a long-lived cluster has: a worker thread's first
task loads botocore's model of DynamoDB (a few hundred ms of CPU, per thread, once).
On a 2-core machine the model server shares the cores with the workers, so 2 workers
cannot double the rate there; the figures say what the cluster path costs and gains, not
a cluster's ceiling.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import _data, _report, _servers
from benchmarks import run as runner
from benchmarks.clients import ACCESS_KEY, REGION, SECRET_KEY

SMOKE_ITEMS = 5_000
SEGMENTS = 16


def _cpu(usage: Any) -> float:
    return float(usage.ru_utime + usage.ru_stime)


def _workers_cpu(client: Any) -> float:
    usages = client.run(resource.getrusage, resource.RUSAGE_SELF)
    return sum(_cpu(usage) for usage in usages.values())


def _dask_runs(endpoint: str, items: int, workers: int, rounds: int) -> list[dict[str, Any]]:
    """``rounds`` computations of the whole table on a fresh cluster of ``workers``."""
    from dynascan_async import dask as dyn_dask

    distributed: Any = importlib.import_module("distributed")  # untyped

    env = {
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_DEFAULT_REGION": REGION,
    }
    os.environ.update(env)  # planning (the sample) runs here
    affinity = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    if affinity is not None:
        # The workers may use every CPU: the driver may have been pinned off the client's.
        os.sched_setaffinity(0, range(os.cpu_count() or 1))
    try:
        cluster = distributed.LocalCluster(
            n_workers=workers,
            processes=True,
            threads_per_worker=1,
            dashboard_address=None,
            silence_logs=logging.ERROR,
            env=env,
        )
    finally:
        if affinity is not None:
            os.sched_setaffinity(0, affinity)
    out = []
    with cluster, distributed.Client(cluster) as client:
        for module in ("pandas", "pyarrow", "dynascan_async.dask", "aiobotocore.session"):
            client.run(__import__, module)
        for round in range(rounds + 1):
            started = time.perf_counter()
            df: Any = dyn_dask.read_dynamodb(
                runner.TABLE,
                client_kwargs={"endpoint_url": endpoint, "region_name": REGION},
                segments=SEGMENTS,
                partitions=workers,
            )
            planned = time.perf_counter() - started
            cpu0 = _workers_cpu(client)
            started = time.perf_counter()
            count = int(df.bytessent.count().compute())
            wall = time.perf_counter() - started
            cpu = _workers_cpu(client) - cpu0
            if round:  # the first is a warm-up: each worker thread makes its first client
                out.append({"items": count, "wall": wall, "cpu": cpu, "planning": planned})
    return out


def scenario(args: argparse.Namespace, run: runner.Run) -> None:
    items = SMOKE_ITEMS if args.smoke else args.items
    rounds = 1 if args.smoke else max(1, getattr(args, "rounds", 3))
    spec = runner.Spec(
        "dynascan_arrow", "dynascan_arrow", SEGMENTS, 10, note="one process, record batches"
    )
    timeout = runner.client_timeout(items, False)
    results: dict[str, list[dict[str, Any]]] = {}
    with _servers.start("model") as endpoint:
        print(f"dask scenario: model server, loading {items:,} items ...", flush=True)
        _data.load(endpoint, runner.TABLE, items)
        arrow_runs = []
        for _ in range(rounds):
            result = runner.run_client(spec, endpoint, runner.TABLE, timeout)
            if "error" in result:
                raise RuntimeError(f"arrow client: {result['error']}")
            arrow_runs.append(result)
        results["arrow, 1 process"] = arrow_runs
        for workers in (1, 2):
            print(f"  dask, {workers} worker process(es) ...", flush=True)
            results[f"dask, {workers} worker(s)"] = _dask_runs(endpoint, items, workers, rounds)
    bad = [
        f"{name}: {r['items']} items"
        for name, runs in results.items()
        for r in runs
        if r["items"] != items
    ]
    if bad:
        raise RuntimeError("wrong item counts: " + "; ".join(bad))

    def median(name: str, key: str) -> float:
        return statistics.median(float(r[key]) for r in results[name])

    lines = [
        f"## Dask: 1 and 2 worker processes, model server without latency, {items:,} items",
        "",
        "| reader | wall s | items/s | CPU µs/item (readers' processes) |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name in results:
        wall, cpu = median(name, "wall"), median(name, "cpu")
        lines.append(f"| {name} | {wall:.2f} | {items / wall:,.0f} | {cpu / items * 1e6:.1f} |")
    one, two = median("dask, 1 worker(s)", "wall"), median("dask, 2 worker(s)", "wall")
    per_item = median("dask, 2 worker(s)", "cpu") / median("arrow, 1 process", "cpu")
    speedup = one / two
    lines += [
        "",
        (
            f"2 workers over 1: {speedup:.2f}x faster; CPU per item of the 2-worker run over "
            f"the single-process Arrow path: {per_item:.2f}x. Planning (a sample of items) "
            f"took {median('dask, 2 worker(s)', 'planning'):.2f} s, not in the wall time."
        ),
        "",
    ]
    run.scenario_lines += lines
    run.scenario_data["dask"] = {"items": items, "runs": results}
    run.goals.append(
        _report.Goal(
            "dask: 2 worker processes vs 1 (model, no latency)",
            "faster (speed-up > 1)",
            f"{speedup:.2f}x ({one:.2f} s → {two:.2f} s)",
            None if args.smoke else speedup > 1,
        )
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help=f"{SMOKE_ITEMS:,} items, one round")
    args = parser.parse_args(argv)
    if runner.CPUS is not None:
        os.sched_setaffinity(0, runner.CPUS[1])
    run = runner.Run()
    scenario(args, run)
    print("\n".join(run.scenario_lines))
    for goal in run.goals:
        print(f"{goal.name}: {goal.measured} (goal {goal.target}): {goal.verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
