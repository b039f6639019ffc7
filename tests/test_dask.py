"""The scan on a real Dask cluster: two worker processes, against moto and the model server.

One ``LocalCluster`` for the whole module (starting one costs seconds). The workers get
credentials from their environment only; ``client_kwargs`` carries just the endpoint and
region, as it would on a real cluster.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

dask = pytest.importorskip("dask")
pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")
pa = pytest.importorskip("pyarrow")
cloudpickle = pytest.importorskip("cloudpickle")  # comes with distributed
pd = pytest.importorskip("pandas")
pq = pytest.importorskip("pyarrow.parquet")

import boto3  # noqa: E402
from boto3.dynamodb.types import TypeDeserializer  # noqa: E402

from dynascan_async import RetryPolicy, arrow  # noqa: E402
from dynascan_async import dask as dyn_dask  # noqa: E402
from dynascan_async.cli import main  # noqa: E402
from dynascan_async.testing import ModelServer, MotoServer  # noqa: E402
from tests.support import tables  # noqa: E402
from tests.support.faultproxy import FaultProxy  # noqa: E402
from tests.support.helpers import as_multiset, async_client  # noqa: E402

SECRET = "dask-test-secret-0f9e8d7c"
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": SECRET,
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(scope="module")
def dask_client() -> Iterator[Any]:
    """Two single-threaded worker processes whose only credentials are in their environment.

    The test process gets the same variables: ``read_dynamodb`` plans (DescribeTable, a
    sample page) with a client of its own.
    """
    with pytest.MonkeyPatch.context() as patch:
        for name, value in CREDENTIALS.items():
            patch.setenv(name, value)
        with (
            distributed.LocalCluster(
                n_workers=2,
                processes=True,
                threads_per_worker=1,
                dashboard_address=None,
                silence_logs=logging.CRITICAL,
                env=CREDENTIALS,
            ) as cluster,
            distributed.Client(cluster) as client,
        ):
            warm(client)
            yield client


def warm(client: Any) -> None:
    """Imports take seconds on a busy machine: do them before anything is measured."""
    for module in ("pandas", "pyarrow", "dynascan_async.dask", "aiobotocore.session"):
        client.run(importlib.import_module, module)


def where(url: str) -> dict[str, Any]:
    return {"endpoint_url": url, "region_name": "us-east-1"}


def frame_items(frame: Any) -> list[dict[str, Any]]:
    """The rows as plain values, attributes that are null in a row left out."""
    rows = pa.Table.from_pandas(frame, preserve_index=False).to_pylist()
    return [{k: v for k, v in row.items() if v is not None} for row in rows]


def plain(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    deserializer = TypeDeserializer()
    return [{k: deserializer.deserialize(v) for k, v in item.items()} for item in items]


def numbers_as_decimal(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """int64 columns come back as int, TypeDeserializer gives Decimal: compare them exactly."""
    return [
        {
            k: Decimal(v) if isinstance(v, int) and not isinstance(v, bool) else v
            for k, v in item.items()
        }
        for item in items
    ]


def assert_weblog(frame: Any, loaded: tables.Loaded) -> None:
    got = as_multiset(numbers_as_decimal(frame_items(frame)))
    assert len(set(got)) == len(got), "an item was delivered twice"
    assert got == as_multiset(plain(loaded.weblog))


def test_items_and_types_match_a_reference_scan(
    dask_client: Any, moto_server: MotoServer, loaded: tables.Loaded
) -> None:
    df: Any = dyn_dask.read_dynamodb(
        tables.WEBLOG, client_kwargs=where(moto_server.endpoint_url), segments=8, partitions=3
    )
    assert df.npartitions == 3
    # Known before anything runs, and the types arrow.read_table gives the same items.
    meta = dict(df.dtypes)
    reference = asyncio.run(_read_table(moto_server.endpoint_url, tables.WEBLOG))
    assert {name: dtype.pyarrow_dtype for name, dtype in meta.items()} == {
        field.name: field.type for field in reference.schema
    }
    # The frame and an aggregate over it in one computation: one read of the table.
    frame, totals = dask.compute(df, df.groupby("responsecode").bytessent.sum())
    assert dict(frame.dtypes) == meta
    assert_weblog(frame, loaded)
    expected: dict[int, int] = {}
    for item in loaded.weblog:
        code = int(item["responsecode"]["N"])
        expected[code] = expected.get(code, 0) + int(item["bytessent"]["N"])
    assert {int(k): int(v) for k, v in totals.items()} == expected


async def _read_table(url: str, table: str) -> Any:
    async with async_client(url) as client:
        return await arrow.read_table(client, table, segments=4)


def test_the_graph_holds_no_credentials(moto_server: MotoServer, loaded: tables.Loaded) -> None:
    with pytest.MonkeyPatch.context() as patch:
        for name, value in CREDENTIALS.items():
            patch.setenv(name, value)
        df: Any = dyn_dask.read_dynamodb(
            tables.WEBLOG, client_kwargs=where(moto_server.endpoint_url), segments=4
        )
    for blob in (cloudpickle.dumps(df), cloudpickle.dumps(dict(df.__dask_graph__()))):
        assert moto_server.endpoint_url.encode() in blob  # the tasks' client_kwargs are in it
        assert SECRET.encode() not in blob
    with pytest.raises(ValueError, match="aws_secret_access_key"):
        dyn_dask.read_dynamodb(
            tables.WEBLOG,
            client_kwargs={**where(moto_server.endpoint_url), "aws_secret_access_key": "x"},
            segments=4,
        )


def test_a_task_that_raises_is_read_again(
    dask_client: Any, faults: FaultProxy, loaded: tables.Loaded
) -> None:
    df: Any = dyn_dask.read_dynamodb(
        tables.WEBLOG,
        client_kwargs=where(faults.url),
        segments=8,
        partitions=8,
        retry=RetryPolicy(max_attempts=1),  # no retries in the library: errors fail the task
        Limit=40,
    )
    faults.error_rate = 0.3
    frame = df.compute(retries=40)
    # Each injected 5xx failed a task (one attempt per page) after some of its pages were in.
    assert faults.injected["error"] > 0
    assert_weblog(frame, loaded)


# --- checked before anything runs (no cluster needed) --------------------------------------------


@pytest.mark.parametrize(
    ("options", "error", "words"),
    [
        ({"segments": 0}, ValueError, "segments"),
        ({"segments": 4, "partitions": 5}, ValueError, "partitions"),
        ({"segments": 4, "rate_limit": "150%"}, ValueError, "rate_limit"),
        ({"segments": 4, "rate_limit": 0}, ValueError, "rate_limit"),
        ({"segments": 4, "client_kwargs": "us-east-1"}, TypeError, "client_kwargs"),
        ({"segments": 4, "Segment": 1}, TypeError, "Segment"),
        ({"segments": 4, "Limit": "ten"}, TypeError, "Limit"),
    ],
)
def test_bad_options_fail_before_any_scan(
    faults: FaultProxy, options: dict[str, Any], error: type[Exception], words: str
) -> None:
    options.setdefault("client_kwargs", where(faults.url))
    before = faults.scan_requests
    with pytest.MonkeyPatch.context() as patch:
        for name, value in CREDENTIALS.items():
            patch.setenv(name, value)
        with pytest.raises(error, match=words):
            dyn_dask.read_dynamodb(tables.WEBLOG, **options)
    assert faults.scan_requests == before


def test_a_share_of_an_on_demand_table_asks_for_a_number(
    moto_server: MotoServer, loaded: tables.Loaded
) -> None:
    with pytest.MonkeyPatch.context() as patch:
        for name, value in CREDENTIALS.items():
            patch.setenv(name, value)
        with pytest.raises(ValueError, match=f"table '{tables.WEBLOG}' is on-demand"):
            dyn_dask.read_dynamodb(
                tables.WEBLOG, client_kwargs=where(moto_server.endpoint_url), segments=4,
                rate_limit="50%",
            )  # fmt: skip


def test_importing_the_module_imports_no_dask() -> None:
    code = (
        "import sys, dynascan_async.dask; "
        "heavy = {'dask', 'distributed', 'pandas', 'pyarrow'} & set(sys.modules); "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# --- one budget across workers (model server) ---------------------------------------------------


class CapacityLog(FaultProxy):
    """A proxy that notes, for each Scan, when the request arrived, its segment and its cost."""

    def __init__(self, host: str, port: int) -> None:
        super().__init__(host, port)
        self.log: list[tuple[float, int, float]] = []
        self._log_lock = threading.Lock()

    async def _forward(self, request: Any, *, scan: bool = False) -> Any:
        arrived = time.monotonic()
        response = await super()._forward(request, scan=scan)
        if scan and response.status == 200:
            segment = json.loads(request.body).get("Segment", 0)
            units = json.loads(response.body).get("ConsumedCapacity", {}).get("CapacityUnits", 0)
            with self._log_lock:
                self.log.append((arrived, segment, float(units)))
        return response


PROVISIONED, ROWS = 240, 650


@pytest.fixture(scope="module")
def budget_table() -> Iterator[CapacityLog]:
    """A provisioned table on the model server, behind a proxy that logs each page's cost.

    Provisioned well above the budgets used, so the server never throttles: what holds the
    rate is the tasks' own limiters.
    """
    with ModelServer() as server, CapacityLog("127.0.0.1", server.port or 0) as proxy:
        sync = boto3.client("dynamodb", **where(server.endpoint_url))
        sync.create_table(
            TableName="budget",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            ProvisionedThroughput={"ReadCapacityUnits": PROVISIONED, "WriteCapacityUnits": 1000},
        )
        for start in range(0, ROWS, 25):
            batch: list[Any] = [
                {"PutRequest": {"Item": {"pk": {"S": f"k{n:05d}"}, "pad": {"S": "x" * 1000}}}}
                for n in range(start, start + 25)
            ]
            sync.batch_write_item(RequestItems={"budget": batch})
        yield proxy


def read_logged(
    dask_client: Any, proxy: CapacityLog, *, partitions: int, share: str
) -> list[tuple[float, int, float]]:
    """Read the budget table with ``rate_limit=share``; each Scan's arrival, segment, cost."""
    df: Any = dyn_dask.read_dynamodb(
        "budget", client_kwargs=where(proxy.url), segments=4, partitions=partitions,
        rate_limit=share, concurrency=1, Limit=10,
    )  # fmt: skip
    dask_client.wait_for_workers(2, timeout=120)
    warm(dask_client)
    proxy.log.clear()
    frame = df.compute()
    assert len(frame) == ROWS
    return sorted(proxy.log)


def assert_never_above(log: list[tuple[float, int, float]], budget: float, tasks: int) -> None:
    page = max(units for _, _, units in log)
    # A task's bucket starts when its scan is made, a moment before its first request
    # reaches the server (client set-up): a quarter of a second is allowed for that.
    t0 = log[0][0] - 0.25
    consumed = 0.0
    for when, _, units in log:
        consumed += units
        # The buckets may spend their first second's share at once (each starts full), and
        # go into debt by one page per request in flight (one per task here): never more
        # than that above the budget.
        assert consumed <= budget * (when - t0) + budget + tasks * page + 1e-9


def test_one_budget_for_all_workers(dask_client: Any, budget_table: CapacityLog) -> None:
    # A tenth of the table's capacity, read once from DescribeTable: 24 RCU/s in all, split
    # by segments between two tasks that run at once.
    budget, tasks = PROVISIONED / 10, 2
    log = read_logged(dask_client, budget_table, partitions=tasks, share="10%")
    assert_never_above(log, budget, tasks)
    running = []
    consumed = 0.0
    for when, _, units in log:
        consumed += units
        running.append((when, consumed))
    # While both tasks run, past their first second: the two together hold the budget.
    task_of = {s: s // 2 for s in range(4)}  # segments 0-1 and 2-3
    first = {t: min(w for w, s, _ in log if task_of[s] == t) for t in range(tasks)}
    last = {t: max(w for w, s, _ in log if task_of[s] == t) for t in range(tasks)}
    begin, end = max(first.values()) + 1.0, min(last.values())
    assert end - begin > 1.0, "the tasks did not run at the same time"
    inside = [(w, c) for w, c in running if begin <= w <= end]
    rate = (inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0])
    assert rate == pytest.approx(budget, rel=0.10)


def test_more_partitions_than_threads_share_the_budget_in_slots(
    dask_client: Any, budget_table: CapacityLog
) -> None:
    # 4 partitions on 2 worker threads: split by segments, the 2 running tasks would hold
    # 3 RCU/s each, half the budget; with one slot per thread they hold 6 each.
    budget, slots = PROVISIONED / 20, 2
    log = read_logged(dask_client, budget_table, partitions=4, share="5%")
    assert_never_above(log, budget, slots)
    for segment in range(4):  # one task per segment
        mine = [(w, u) for w, s, u in log if s == segment]
        start = mine[0][0]
        after = [(w, u) for w, u in mine if w >= start + 1.0]  # past its bucket's first second
        assert len(after) >= 3, "a task too short to measure"
        rate = sum(u for _, u in after[1:]) / (after[-1][0] - after[0][0])
        assert rate > 1.5 * budget / 4, (segment, rate)


# --- the export, written by the cluster's tasks ------------------------------------------------


def test_an_interrupted_cluster_export_continues_exactly(
    dask_client: Any, faults: FaultProxy, loaded: tables.Loaded, tmp_path: Path
) -> None:
    out = tmp_path / "export"
    options: dict[str, Any] = {
        "client_kwargs": where(faults.url),
        "segments": 6,
        "partitions": 6,
        "schema": arrow.infer_schema(loaded.weblog),  # no sample: the proxy counts task scans
        "retries": 0,
        "Limit": 60,
    }
    faults.fail_after = 5  # then every Scan is refused: some parts are in, the others not
    with pytest.raises(Exception, match="AccessDenied"):
        dyn_dask.export_table(tables.WEBLOG, str(out), **options)
    first = {p.name: p.stat().st_mtime_ns for p in out.glob("part-*.parquet")}
    assert 0 < len(first) < 6
    assert not (out / "_manifest.json").exists()

    faults.fail_after = None
    manifest = dyn_dask.export_table(tables.WEBLOG, str(out), **options)
    assert manifest.items == len(loaded.weblog)
    assert len(manifest.parts) == 6
    # The parts committed by the first run were kept, not written again.
    assert {n: (out / n).stat().st_mtime_ns for n in first} == first
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [*(part.name for part in manifest.parts), "_manifest.json"]
    )
    assert_weblog(pq.read_table(out).to_pandas(types_mapper=pd.ArrowDtype), loaded)


def test_dynascan_export_with_a_scheduler(
    dask_client: Any, moto_server: MotoServer, loaded: tables.Loaded, tmp_path: Path
) -> None:
    out = tmp_path / "cli"
    command = [
        "export", "--table-name", tables.WEBLOG, "--output", str(out), "--format", "jsonl",
        "--endpoint-url", moto_server.endpoint_url, "--region", "us-east-1",
        "--scheduler", dask_client.scheduler.address, "--total-segments", "4",
    ]  # fmt: skip
    assert main(command) == 0
    manifest = json.loads((out / "_manifest.json").read_text())
    assert manifest["items"] == len(loaded.weblog)
    assert len(manifest["parts"]) == 2
    lines = [
        line for part in sorted(out.glob("part-*.jsonl")) for line in part.read_text().splitlines()
    ]
    got = [json.loads(line, parse_float=Decimal, parse_int=Decimal) for line in lines]
    assert as_multiset(got) == as_multiset(plain(loaded.weblog))
    # The same command on the finished folder: refused, one line.
    assert main(command) == 1


# --- last: a worker killed (the cluster is left with one worker restarting) ----------------------


def test_a_killed_worker_loses_nothing(
    dask_client: Any, faults: FaultProxy, loaded: tables.Loaded
) -> None:
    df: Any = dyn_dask.read_dynamodb(
        tables.WEBLOG, client_kwargs=where(faults.url), segments=8, partitions=4, Limit=20
    )
    pids: dict[str, int] = dask_client.run(os.getpid)
    faults.latency = 0.05  # about 0.4 s per task, so the kill lands inside one
    started = faults.scan_requests
    future = dask_client.compute(df)
    victim = None
    deadline = time.monotonic() + 60
    while victim is None and time.monotonic() < deadline:
        busy = [addr for addr, keys in dask_client.processing().items() if keys]
        if busy and faults.scan_requests > started + 2:
            victim = busy[0]
        else:
            time.sleep(0.02)
    assert victim is not None, "no task started"
    os.kill(pids[victim], signal.SIGKILL)
    frame = future.result(timeout=120)
    assert_weblog(frame, loaded)
