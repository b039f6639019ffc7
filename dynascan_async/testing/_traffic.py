"""Other traffic on a table: an application reading at a fixed rate while a scan runs.

A scan that is told to take half of a table's capacity is only doing its job if the
application beside it is not throttled. :class:`BackgroundReader` is that application: it
sends GetItem requests through a real client at a fixed rate in read capacity units, keeps
its schedule whatever the scan does (a request that is throttled is counted, not retried,
so the offered load stays the same), and reports what it saw.

Each request is a strongly consistent GetItem of a random key of the table's key schema:
one read unit, as DynamoDB prices a read of an item up to 4 KB (absent items included),
spread over the key space (hence over partitions) as an application's reads are.
"""

from __future__ import annotations

__all__ = ["BackgroundReader", "ReaderStats"]

import asyncio
import base64
import contextlib
import random
import time
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from typing_extensions import Self

_THROTTLING: Final = frozenset(
    {"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"}
)


@dataclass(frozen=True, slots=True)
class ReaderStats:
    """What a :class:`BackgroundReader` has seen so far.

    Attributes:
        requests: requests answered (read or refused).
        reads: requests that read (answered 200).
        throttled: throttled attempts: refusals it received, plus attempts that the client's
            own retries absorbed (botocore's ``RetryAttempts``); with a client that does not
            retry (``retries={"total_max_attempts": 1}``) every one is a refusal seen.
        consumed_capacity: read units DynamoDB reported consumed.
        elapsed: seconds since the reader started.
    """

    requests: int
    reads: int
    throttled: int
    consumed_capacity: float
    elapsed: float

    @property
    def rcu_per_second(self) -> float:
        """The read units consumed per second, on average since the start."""
        return self.consumed_capacity / self.elapsed if self.elapsed > 0 else 0.0


def _random_key(schema: list[tuple[str, str]], rng: random.Random) -> dict[str, Any]:
    key: dict[str, Any] = {}
    for name, kind in schema:
        if kind == "S":
            key[name] = {"S": f"background-{rng.getrandbits(64):016x}"}
        elif kind == "N":
            key[name] = {"N": str(rng.getrandbits(48))}
        else:
            key[name] = {"B": base64.b64encode(rng.getrandbits(64).to_bytes(8, "big")).decode()}
    return key


class BackgroundReader:
    """``async with BackgroundReader(client, "t", rcu=100) as reader: ... reader.stats``

    Reads ``table_name`` at ``rcu`` read units per second with one-unit GetItem requests,
    on their schedule even when answers are slow (up to ``max_in_flight`` at once), from
    entering the block until leaving it. ``client`` is an aiobotocore DynamoDB client; it is
    not closed. An error other than throttling stops the reader and is raised on exit.
    """

    def __init__(
        self,
        client: Any,
        table_name: str,
        *,
        rcu: float,
        max_in_flight: int = 64,
        seed: int = 0,
    ) -> None:
        if not (isinstance(rcu, int | float) and rcu > 0 and rcu != float("inf")):
            raise ValueError(f"rcu must be a positive number, not {rcu!r}")
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be at least 1, not {max_in_flight!r}")
        self.client = client
        self.table_name = table_name
        self.rcu = float(rcu)
        self.max_in_flight = max_in_flight
        self._rng = random.Random(seed)
        self._requests = self._reads = self._throttled = 0
        self._consumed = 0.0
        self._started: float | None = None
        self._stopped: float | None = None
        self._error: BaseException | None = None
        self._pacer: asyncio.Task[None] | None = None
        self._in_flight: set[asyncio.Task[None]] = set()

    @property
    def stats(self) -> ReaderStats:
        now = self._stopped if self._stopped is not None else time.monotonic()
        return ReaderStats(
            requests=self._requests,
            reads=self._reads,
            throttled=self._throttled,
            consumed_capacity=self._consumed,
            elapsed=0.0 if self._started is None else now - self._started,
        )

    async def __aenter__(self) -> Self:
        described = await self.client.describe_table(TableName=self.table_name)
        table = described["Table"]
        types = {a["AttributeName"]: a["AttributeType"] for a in table["AttributeDefinitions"]}
        schema = [(k["AttributeName"], types[k["AttributeName"]]) for k in table["KeySchema"]]
        self._started = time.monotonic()
        self._pacer = asyncio.create_task(self._pace(schema))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        tasks = [task for task in (self._pacer, *self._in_flight) if task is not None]
        for task in tasks:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*tasks, return_exceptions=True)
        self._stopped = time.monotonic()
        if self._error is not None and exc is None:
            raise self._error

    async def _pace(self, schema: list[tuple[str, str]]) -> None:
        """Start one read every ``1 / rcu`` seconds, on an absolute schedule (a late start
        does not delay the next ones), never more than ``max_in_flight`` at once."""
        slots = asyncio.Semaphore(self.max_in_flight)
        assert self._started is not None
        due = self._started
        while self._error is None:
            await slots.acquire()
            task = asyncio.create_task(self._read(_random_key(schema, self._rng), slots))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)
            due += 1.0 / self.rcu
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)

    async def _read(self, key: dict[str, Any], slots: asyncio.Semaphore) -> None:
        from botocore.exceptions import ClientError

        try:
            answer = await self.client.get_item(
                TableName=self.table_name,
                Key=key,
                ConsistentRead=True,
                ReturnConsumedCapacity="TOTAL",
            )
        except ClientError as error:
            self._requests += 1
            if error.response.get("Error", {}).get("Code") not in _THROTTLING:
                self._error = error
                return
            retried = error.response.get("ResponseMetadata", {}).get("RetryAttempts", 0)
            self._throttled += 1 + retried
        except Exception as error:  # noqa: BLE001 - any other failure stops the reader
            self._error = error
        else:
            self._requests += 1
            self._reads += 1
            self._throttled += answer.get("ResponseMetadata", {}).get("RetryAttempts", 0)
            self._consumed += answer.get("ConsumedCapacity", {}).get("CapacityUnits", 0.0)
        finally:
            slots.release()

    def __repr__(self) -> str:
        s = self.stats
        return (
            f"<BackgroundReader {self.table_name} rcu={self.rcu:g}/s requests={s.requests} "
            f"throttled={s.throttled} in_flight={len(self._in_flight)}>"
        )
