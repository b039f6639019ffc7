"""Arrow batches against Python values: client CPU per item, same table, same run.

    python benchmarks/run.py --scenario arrow            # part of the full benchmark
    python benchmarks/arrow_batches.py --smoke           # tiny: 5,000 items, 3 pairs
    python benchmarks/arrow_batches.py --items 50000 --pairs 5 --server dynalite

``dynascan_async.arrow.scan_batches`` exists to be cheaper than ``scan()``'s Python values
(the goal: at most 0.6x the client CPU per item). Both clients scan the same web-log table
in their own subprocess (``clients.py``: ``dynascan_arrow`` sums the ``bytessent`` column of
each batch, ``dynascan`` adds up ``int(item["bytessent"])``), first once each with their
count and checksum checked, then in back-to-back pairs whose CPU ratio is the figure
(``run.paired``: a pair sees the same minute of a shared machine).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import _data, _report, _servers
from benchmarks import run as runner

GOAL = 0.6
SMOKE_ITEMS, SMOKE_PAIRS = 5_000, 3


def scenario(args: argparse.Namespace, run: runner.Run) -> None:
    """Measure, and add the table, the ratio and the goal to ``run``."""
    items = SMOKE_ITEMS if args.smoke else args.items
    pairs = SMOKE_PAIRS if args.smoke else max(3, min(args.pairs, 15))
    server = getattr(args, "arrow_server", "model")
    s, c = args.segments, args.concurrency
    arrow_spec = runner.Spec("dynascan_arrow", "dynascan_arrow", s, c, note="record batches")
    python_spec = runner.Spec("dynascan", "dynascan", s, c, note="Python values")
    timeout = runner.client_timeout(items, False)
    with _servers.start(server) as endpoint:
        print(f"arrow scenario: {server}, loading {items:,} items ...", flush=True)
        _data.load(endpoint, runner.TABLE, items)
        rows = runner.measure(
            run, "arrow", [arrow_spec, python_spec], endpoint, runner.TABLE, items, 1, timeout
        )
        ratio = (
            runner.paired((arrow_spec, python_spec), endpoint, pairs, timeout)
            if all(row.ok for row in rows)
            else {"rounds": 0}
        )
    run.scenario_data["arrow"] = {
        "server": server,
        "items": items,
        "runs": {row.client: row.runs for row in rows},
        "paired": ratio,
    }
    run.scenario_lines += [
        f"## Arrow batches vs Python values: {server}, {items:,} items",
        "",
        *_report.client_table(rows),
        "",
    ]
    if not ratio.get("rounds"):
        run.scenario_lines += ["No pair of runs completed: no ratio.", ""]
        return
    measured = (
        f"{ratio['median']:.2f}x (95% {ratio['low']:.2f}-{ratio['high']:.2f}, "
        f"{ratio['rounds']} pairs)"
    )
    run.scenario_lines += [
        f"Client CPU per item, scan_batches over scan(): median of paired runs {measured}.",
        "",
    ]
    run.goals.append(
        _report.Goal(
            f"arrow batches CPU/item vs scan() Python values ({server})",
            f"≤ {GOAL}x",
            measured,
            None if args.smoke else ratio["median"] <= GOAL,
        )
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", dest="arrow_server", default="model", choices=runner.SERVERS)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--pairs", type=int, default=10)
    parser.add_argument("--segments", type=int, default=25)
    parser.add_argument("--concurrency", type=int, default=5)
    parser.add_argument("--smoke", action="store_true", help=f"{SMOKE_ITEMS:,} items, no goal")
    args = parser.parse_args(argv)
    if runner.CPUS is not None:
        # As run.py does: the server (started from here) off the measured client's CPU.
        os.sched_setaffinity(0, runner.CPUS[1])
    run = runner.Run()
    scenario(args, run)
    print("\n".join(run.scenario_lines))
    for goal in run.goals:
        print(f"{goal.name}: {goal.measured} (goal {goal.target}): {goal.verdict}")
    bad = runner.failures(run)
    if bad:
        print("FAILED: wrong results from " + "; ".join(bad), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
