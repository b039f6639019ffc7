"""What one Dask task runs on its worker: read a group of whole segments into a frame.

The task makes its own aiobotocore client there, from ``client_kwargs`` alone, so the
credentials are the worker's own (environment, instance role, profile): nothing secret
travels in the task graph. It scans its segments with the library's ordinary scan (the
Arrow path), started from a checkpoint that marks every other segment done, and holds its
share of the budget. It always reads its segments from their start: a task that failed or
lost its worker is run again by Dask from scratch, which is what keeps every item exactly
once in the result.
"""

from __future__ import annotations

__all__ = ["ReadPartition", "budget_slot", "run_sync", "to_frame"]

import asyncio
import concurrent.futures
import contextlib
import threading
import time
from collections.abc import Callable, Coroutine, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from ._partitions import Partition, resume_value
from ._retry import RetryPolicy

if TYPE_CHECKING:
    import pandas
    import pyarrow

T = TypeVar("T")

_local = threading.local()


def _session() -> Any:
    """``aiobotocore.session.get_session()``, made once per worker thread.

    A session loads botocore's model of DynamoDB when it makes its first client (a
    few hundred milliseconds of CPU); the next tasks on the same thread reuse it. One per
    thread because a botocore session is not meant to be shared across threads. The
    credentials are still resolved by each client, from the worker's environment.
    """
    session = getattr(_local, "session", None)
    if session is None:
        from aiobotocore.session import get_session

        session = _local.session = get_session()
    return session


def run_sync(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to the end from synchronous code, even inside a running event loop.

    A Dask worker's thread has no event loop, but ``read_dynamodb`` may be called from a
    notebook (whose cell runs inside one) or the synchronous scheduler may run a task there:
    then the coroutine gets a thread and a loop of its own.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="dynascan") as pool:
        return pool.submit(lambda: asyncio.run(make())).result()


def to_frame(table: pyarrow.Table) -> pandas.DataFrame:
    """The pandas form of an Arrow table, every column keeping its exact Arrow type.

    ``pandas.ArrowDtype`` rather than pandas' own dtypes: an ``int64`` column with a
    missing value stays ``int64`` (not ``float64``), a ``decimal128`` stays a decimal, a
    list a list. The meta of the collection is made by this same function, so the
    partitions and ``df.dtypes`` always agree.
    """
    import pandas

    return table.to_pandas(types_mapper=pandas.ArrowDtype)


@contextlib.contextmanager
def budget_slot(name: str, slots: int | None) -> Iterator[None]:
    """Hold one of ``slots`` shares of the budget for as long as the task scans, and a second
    more.

    A share that is not held by a running task is free for the next one, so a computation
    with more partitions than threads still reads at its whole budget. The slots are a
    ``distributed.Semaphore`` on the scheduler, whose leases expire when the worker holding
    them dies. The second more: a scan's bucket starts with one second of its rate, so a
    task that took over a slot the moment the last one let go could read that second twice;
    holding the slot a second after the scan pays for its successor's start.
    """
    if not slots:
        yield
        return
    import distributed

    semaphore: Any = distributed.Semaphore
    slot = semaphore(max_leases=slots, name=f"dynascan-budget-{name}")
    with slot:
        try:
            yield
        finally:
            time.sleep(1.0)


@dataclass(frozen=True)
class ReadPartition:
    """The function of ``dask.dataframe.from_map``: one :class:`Partition` to one frame.

    Everything here is pickled into the task graph, so it holds no credentials (``client_kwargs``
    is checked for them when the collection is made). ``read_id`` makes each collection's keys
    its own: a table is mutable, and two reads of it are two different data sets.
    """

    table: str
    client_kwargs: Mapping[str, Any]
    scan_params: Mapping[str, Any]
    schema: pyarrow.Schema
    concurrency: int | None
    retry: RetryPolicy | None
    read_id: str = field(default="")
    slots: int | None = None

    def __call__(self, partition: Partition) -> pandas.DataFrame:
        # Import what the batches and the frame need before the scan starts: on a cold
        # worker that takes seconds, which would otherwise fall in the middle of the scan.
        import pandas  # noqa: F401
        import pyarrow  # noqa: F401

        with budget_slot(self.read_id, self.slots):
            table = run_sync(lambda: self.read(partition))
        return to_frame(table)

    async def read(self, partition: Partition) -> pyarrow.Table:
        import pyarrow

        from . import arrow

        resume = resume_value(partition, table=self.table, scan_params=self.scan_params)
        async with _session().create_client("dynamodb", **self.client_kwargs) as client:
            batches = arrow.scan_batches(
                client,
                self.table,
                segments=partition.total,
                concurrency=self.concurrency,
                retry=self.retry,
                rate_limit=partition.rate_limit,
                resume_from=resume,
                schema=self.schema,
                **self.scan_params,
            )
            async with batches:
                got = [batch async for batch in batches]
        return pyarrow.Table.from_batches(got, schema=self.schema)
