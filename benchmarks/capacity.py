"""Capacity shares and adaptive control, measured against the model server.

    python benchmarks/capacity.py            # the full scenario (about 2 minutes)
    python benchmarks/capacity.py --smoke    # seconds: the same three parts, shorter
    python benchmarks/run.py --scenario capacity

Three parts, each on its own model server process (the client, this process, is measured):

* **share**: a table provisioned at 400 RCU, an application reading it at 100 RCU/s
  (``BackgroundReader``, strongly consistent GetItem), and a scan with ``rate_limit="50%"``.
  The scan must hold 200 RCU/s (±5%, the least-squares slope of its consumed capacity after
  the first 2 s) and the application must see no throttling.
* **throttling**: an on-demand table cut into 4 partitions of 50 RCU/s each (200 RCU/s in
  all, far less than 16 segments pull). The same full scan three ways: with adaptive control
  (the default), without it (``Tuning(adaptive=False)``: every request backs off alone), and
  without it through a client in botocore's ``adaptive`` retry mode (its own CUBIC limiter,
  per client, counting requests). Goal for adaptive control: at least 90% of the 200 RCU/s
  in steady state (the slope between 20% and 80% of the run) with under 5% of the requests
  throttled. Throttled requests are the scan's retries: every failure here is a throttle
  (with botocore's retries, ``RetryAttempts`` counts the ones it absorbed).
* **refresh**: a table provisioned at 100 RCU scanned with ``rate_limit="50%"`` and a refresh
  period of ``REFRESH`` seconds; UpdateTable raises it to 400 RCU during the scan. The rate
  must be 200 RCU/s within one refresh period.

Results go to ``results/capacity.json`` (``results/smoke/`` with ``--smoke``) and, from
``run.py``, into its report.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session

import dynascan_async
from dynascan_async._capacity import Tuning
from dynascan_async.testing import BackgroundReader, ModelServer, bulk_load

HERE = Path(__file__).resolve().parent
REFRESH = 2.0  # seconds between DescribeTable calls in the refresh part
LATENCY = 0.005  # the model server's round trip


@asynccontextmanager
async def client(url: str, **config: Any) -> AsyncIterator[Any]:
    config.setdefault("retries", {"total_max_attempts": 1})
    async with get_session().create_client(
        "dynamodb",
        endpoint_url=url,
        region_name="us-east-1",
        config=AioConfig(max_pool_connections=32, **config),
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
    ) as made:
        yield made


async def make_table(url: str, name: str, items: int, size: int, **billing: Any) -> None:
    async with client(url) as c:
        await c.create_table(
            TableName=name,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            **billing,
        )
    pad = "x" * size
    rows = ({"pk": {"S": f"item-{n:08d}"}, "pad": {"S": pad}} for n in range(items))
    await bulk_load(url, name, rows)


def slope(samples: list[tuple[float, float]]) -> float:
    """Least-squares RCU/s of (time, consumed) samples."""
    n = len(samples)
    if n < 2:
        return float("nan")
    mt = sum(t for t, _ in samples) / n
    mc = sum(c for _, c in samples) / n
    num = sum((t - mt) * (c - mc) for t, c in samples)
    den = sum((t - mt) ** 2 for t, _ in samples)
    return num / den if den else float("nan")


async def timed_scan(
    scan: Any, *, seconds: float | None = None, every: float = 0.05, on_tick: Any = None
) -> list[tuple[float, float, float | None]]:
    """Consume ``scan`` (for ``seconds`` at most); (time, consumed, rate) every ``every`` s,
    taken by a task of their own so that the samples do not wait for pages."""
    samples: list[tuple[float, float, float | None]] = []
    start = time.perf_counter()

    def sample() -> float:
        stats = scan.stats
        now = time.perf_counter() - start
        samples.append((now, stats.consumed_capacity, stats.rate_limit))
        return now

    async def ticker() -> None:
        while True:
            now = sample()
            if on_tick is not None:
                await on_tick(now)
            await asyncio.sleep(every)

    task = asyncio.create_task(ticker())
    try:
        async with scan:
            async for _ in scan:
                if seconds is not None and time.perf_counter() - start >= seconds:
                    break
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    sample()
    return samples


# --- (a) a share of a provisioned table beside an application ------------------------------


async def part_share(seconds: float) -> dict[str, Any]:
    provisioned, app, target = 400, 100.0, 200.0
    with ModelServer(latency=LATENCY) as server:
        url = server.endpoint_url
        # 4 KB items read consistently: one RCU each, pages of 25 (25 RCU).
        items = int(target * (seconds + 5))
        await make_table(
            url,
            "share",
            items,
            4000,
            ProvisionedThroughput={"ReadCapacityUnits": provisioned, "WriteCapacityUnits": 10},
        )
        await asyncio.sleep(1.0)  # let the table's burst settle as it would in service
        async with client(url) as c, BackgroundReader(c, "share", rcu=app) as reader:
            await asyncio.sleep(1.0)
            scan = dynascan_async.scan(
                c,
                "share",
                segments=16,
                concurrency=8,
                rate_limit="50%",
                ConsistentRead=True,
                Limit=25,
                deserialize=False,
            )
            samples = await timed_scan(scan, seconds=seconds)
            stats = scan.stats
            await asyncio.sleep(0.5)
            seen = reader.stats
    steady = slope([(t, c) for t, c, _ in samples if t >= 2.0])
    return {
        "provisioned": provisioned,
        "application_rcu_s": app,
        "target": target,
        "rate_limit": stats.rate_limit,
        "scan_seconds": stats.elapsed,
        "consumed": stats.consumed_capacity,
        "overall_rcu_s": stats.consumed_capacity / stats.elapsed,
        "steady_rcu_s": steady,
        "scan_throttles": stats.throttles,
        "app_requests": seen.requests,
        "app_rcu_s": seen.rcu_per_second,
        "app_throttled": seen.throttled,
        "passed": abs(steady / target - 1) <= 0.05 and seen.throttled == 0,
    }


# --- (b) a table whose partitions throttle ---------------------------------------------------


async def one_throttled_scan(url: str, how: str, items: int) -> dict[str, Any]:
    config: dict[str, Any] = {}
    options: dict[str, Any] = {}
    if how == "without adaptive control":
        options["_tuning"] = Tuning(adaptive=False)
    elif how == "botocore adaptive retry mode":
        config["retries"] = {"mode": "adaptive", "max_attempts": 10}
        options["_tuning"] = Tuning(adaptive=False)
        options["transport"] = "botocore"
    async with client(url, **config) as c:
        scan = dynascan_async.scan(
            c,
            "hot",
            segments=16,
            concurrency=16,
            ConsistentRead=True,
            Limit=5,  # 5 RCU pages: a tenth of a second of a partition, as 1 MB pages are
            deserialize=False,
            retry=dynascan_async.RetryPolicy(max_attempts=50),
            **options,
        )
        samples = await timed_scan(scan)
        stats = scan.stats
    total = samples[-1][0]
    middle = [(t, c) for t, c, _ in samples if 0.2 * total <= t <= 0.8 * total]
    rates = [r for _, _, r in samples if r is not None]
    return {
        "how": how,
        "items": stats.items,
        "expected": items,
        "wall_s": stats.elapsed,
        "consumed": stats.consumed_capacity,
        "overall_rcu_s": stats.consumed_capacity / stats.elapsed,
        "steady_rcu_s": slope(middle),
        "pages": stats.pages,
        "throttled": stats.retries,
        "requests": stats.pages + stats.retries,
        "throttled_share": stats.retries / (stats.pages + stats.retries),
        "lowest_rate": min(rates) if rates else None,
    }


async def part_throttling(seconds: float) -> dict[str, Any]:
    partitions, per_partition = 4, 50.0
    capacity = partitions * per_partition
    items = int(capacity * seconds)  # 4 KB items, one RCU each read consistently
    runs = []
    with ModelServer(latency=LATENCY, partitions=partitions, partition_rcu=per_partition) as srv:
        url = srv.endpoint_url
        await make_table(url, "hot", items, 4000, BillingMode="PAY_PER_REQUEST")
        for how in (
            "adaptive control",
            "without adaptive control",
            "botocore adaptive retry mode",
        ):
            await asyncio.sleep(1.5)  # the partitions' burst back to full for each run
            runs.append(await one_throttled_scan(url, how, items))
    adaptive = runs[0]
    return {
        "capacity_rcu_s": capacity,
        "items": items,
        "runs": runs,
        "passed": adaptive["steady_rcu_s"] >= 0.9 * capacity
        and adaptive["throttled_share"] < 0.05
        and all(run["items"] == items for run in runs),
    }


# --- (c) UpdateTable during the scan ---------------------------------------------------------


async def part_refresh(seconds: float) -> dict[str, Any]:
    before, after = 100, 400
    with ModelServer(latency=LATENCY) as server:
        url = server.endpoint_url
        await make_table(
            url,
            "grows",
            int(after / 2 * (seconds + 5)),
            4000,
            ProvisionedThroughput={"ReadCapacityUnits": before, "WriteCapacityUnits": 10},
        )
        async with client(url) as c:
            changed: list[float] = []

            async def on_tick(t: float) -> None:
                if not changed and t >= seconds / 3:
                    changed.append(t)
                    await c.update_table(
                        TableName="grows",
                        ProvisionedThroughput={
                            "ReadCapacityUnits": after,
                            "WriteCapacityUnits": 10,
                        },
                    )

            scan = dynascan_async.scan(
                c,
                "grows",
                segments=16,
                concurrency=8,
                rate_limit="50%",
                ConsistentRead=True,
                Limit=10,  # 10 RCU: a fifth of a second at the first rate
                deserialize=False,
                _tuning=Tuning(refresh=REFRESH),
            )
            samples = await timed_scan(scan, seconds=seconds, on_tick=on_tick)
    at = changed[0] if changed else float("nan")
    followed = next((t for t, _, r in samples if t >= at and r == after / 2), float("nan"))
    lag = followed - at
    after_change = [(t, c) for t, c, _ in samples if t >= followed + 1.0]
    return {
        "refresh_s": REFRESH,
        "rate_before": before / 2,
        "rate_after": after / 2,
        "changed_at_s": at,
        "rate_followed_after_s": lag,
        "rcu_s_before": slope([(t, c) for t, c, _ in samples if 1.0 <= t < at]),
        "rcu_s_after": slope(after_change),
        # One refresh period, and the page that was waiting for the old rate's budget.
        "passed": lag <= REFRESH + 0.3,
    }


# --- the report --------------------------------------------------------------------------


def lines(result: dict[str, Any]) -> list[str]:
    """Markdown for run.py's report (and for printing)."""
    out = ["## Capacity shares and adaptive control (model server)", ""]
    a = result.get("share")
    if a:
        out += [
            (
                f"**Share**: table provisioned at {a['provisioned']} RCU, an application reading "
                f'{a["application_rcu_s"]:.0f} RCU/s, scan with `rate_limit="50%"` '
                f"(target {a['target']:.0f} RCU/s): {a['steady_rcu_s']:.1f} RCU/s in steady "
                f"state ({a['steady_rcu_s'] / a['target'] - 1:+.1%}), {a['overall_rcu_s']:.1f} "
                f"overall; the application read {a['app_rcu_s']:.1f} RCU/s and was throttled "
                f"{a['app_throttled']} times in {a['app_requests']} requests."
            ),
            "",
        ]
    b = result.get("throttling")
    if b:
        out += [
            (
                f"**Throttling partitions**: {b['items']:,} items of 4 KB, on-demand, 4 partitions "
                f"serving {b['capacity_rcu_s']:.0f} RCU/s in all; 16 segments, 16 in flight."
            ),
            "",
            (
                "| scan | wall s | RCU/s overall | RCU/s steady (share of capacity) | requests "
                "| throttled | lowest rate |"
            ),
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for run in b["runs"]:
            lowest = "-" if run["lowest_rate"] is None else f"{run['lowest_rate']:.0f}"
            out.append(
                f"| {run['how']} | {run['wall_s']:.1f} | {run['overall_rcu_s']:.1f} | "
                f"{run['steady_rcu_s']:.1f} ({run['steady_rcu_s'] / b['capacity_rcu_s']:.0%}) | "
                f"{run['requests']:,} | {run['throttled']:,} ({run['throttled_share']:.1%}) | "
                f"{lowest} |"
            )
        out.append("")
    c = result.get("refresh")
    if c:
        out += [
            (
                f'**Refresh**: `rate_limit="50%"` of 100 RCU, raised to 400 RCU by UpdateTable at '
                f"{c['changed_at_s']:.1f} s; refresh every {c['refresh_s']:.0f} s: the rate was "
                f"{c['rate_after']:.0f} RCU/s {c['rate_followed_after_s']:.2f} s later "
                f"(consumed {c['rcu_s_before']:.1f} RCU/s before, {c['rcu_s_after']:.1f} after)."
            ),
            "",
        ]
    return out


def goals(result: dict[str, Any]) -> list[tuple[str, str, str, bool | None]]:
    """(name, target, measured, passed) for run.py's goal table; ``passed`` is None (not
    judged) in a smoke run, whose seconds are mostly the start of each scan."""
    found: list[tuple[str, str, str, bool | None]] = []
    a = result.get("share")
    if a:
        found.append(
            (
                'rate_limit="50%" of 400 RCU beside a 100 RCU/s application',
                "200 RCU/s ±5%, 0 application throttles",
                f"{a['steady_rcu_s']:.1f} RCU/s, {a['app_throttled']} throttles",
                bool(a["passed"]),
            )
        )
    b = result.get("throttling")
    if b:
        run = b["runs"][0]
        found.append(
            (
                "adaptive control on throttling partitions",
                ">= 90% of capacity, < 5% throttled",
                (
                    f"{run['steady_rcu_s'] / b['capacity_rcu_s']:.0%}, "
                    f"{run['throttled_share']:.1%} throttled"
                ),
                bool(b["passed"]),
            )
        )
    c = result.get("refresh")
    if c:
        found.append(
            (
                "capacity raised during the scan",
                f"followed within one refresh period ({c['refresh_s']:.0f} s, + one page)",
                f"{c['rate_followed_after_s']:.2f} s",
                bool(c["passed"]),
            )
        )
    if result.get("smoke"):
        found = [(name, target, measured, None) for name, target, measured, _ in found]
    return found


async def measure(smoke: bool) -> dict[str, Any]:
    seconds = (5.0, 5.0, 6.0) if smoke else (30.0, 30.0, 20.0)
    result: dict[str, Any] = {"smoke": smoke}
    print("capacity: share of a provisioned table beside an application ...", flush=True)
    result["share"] = await part_share(seconds[0])
    print("capacity: throttling partitions, three ways ...", flush=True)
    result["throttling"] = await part_throttling(seconds[1])
    print("capacity: UpdateTable during the scan ...", flush=True)
    result["refresh"] = await part_refresh(seconds[2])
    return result


def run_scenario(smoke: bool, out: Path) -> dict[str, Any]:
    result = asyncio.run(measure(smoke))
    out.mkdir(parents=True, exist_ok=True)
    (out / "capacity.json").write_text(json.dumps(result, indent=2))
    return result


def scenario(args: argparse.Namespace, run: Any) -> None:
    """``run.py --scenario capacity``: the full form, into run.py's report."""
    from benchmarks import _report

    result = run_scenario(bool(args.smoke), Path(args.out))
    run.scenario_data["capacity"] = result
    run.scenario_lines += lines(result)
    run.goals += [_report.Goal(*goal) for goal in goals(result)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a few seconds per part")
    parser.add_argument("--out", default=None, help="default: results/ (results/smoke/)")
    args = parser.parse_args(argv)
    out = Path(args.out) if args.out else HERE / "results" / ("smoke" if args.smoke else "")
    result = run_scenario(args.smoke, out)
    print("\n".join(lines(result)))
    for name, target, measured, passed in goals(result):
        verdict = "n/a " if passed is None else ("PASS" if passed else "FAIL")
        print(f"{verdict}  {name}: {measured} (goal: {target})")
    # Every run must have read the whole table, smoke or not.
    lost = [r["how"] for r in result["throttling"]["runs"] if r["items"] != r["expected"]]
    if lost:
        print(f"FAILED: wrong item count from {', '.join(lost)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
