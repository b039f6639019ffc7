"""The workers: the pagination loop of each segment, and the queue of pages.

``concurrency`` workers share one line of segments. A worker takes the segment at the
head of the line, reads *one* page of it, hands the page to the consumer and puts the
segment back at the end of the line. So 25 segments are read by 5 workers in turn, a
skewed segment cannot hold a worker for the whole scan, and no more than
``concurrency`` requests are ever in flight. A segment goes back in line only after
its page is in the queue, which keeps each segment's pages in order for the consumer.

The queue between workers and consumer is bounded: a consumer that stops pulling stops
the workers after at most ``buffer_pages + concurrency`` pages, whatever the table size.

Workers never raise into whatever runs them. A persistent error is recorded on the
engine, the other workers are cancelled, and the consumer raises it once they are gone.
That keeps the consumer's own code out of any cancel scope: in the ``async with`` form
the consumer's block is never cancelled behind its back because a page failed.
"""

from __future__ import annotations

__all__ = ["Engine", "Page"]

import math
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from ._capacity import Controller
from ._decode import decode_items
from ._errors import annotate, is_retryable, is_throttle
from ._options import Options
from ._stats import Counters
from ._transport import fetch_page, open_transport

Key = dict[str, Any]
Spawn = Callable[[Callable[[], Coroutine[Any, Any, None]]], object]


class Page:
    """One response's worth of items, and where it sits in its segment."""

    __slots__ = ("items", "last_key", "segment", "skip", "start_key")

    def __init__(
        self, segment: int, start_key: Key | None, skip: int, items: list[Any], last_key: Key | None
    ) -> None:
        self.segment = segment
        self.start_key = start_key
        self.skip = skip
        self.items = items
        self.last_key = last_key


class Engine:
    __slots__ = (
        "_cancelled",
        "_capacity",
        "_estimate",
        "_finished",
        "_line",
        "_live",
        "_options",
        "_receive",
        "_scopes",
        "_send",
        "_transport",
        "_unstarted",
        "counters",
        "error",
        "started",
    )

    def __init__(self, client: Any, options: Options, counters: Counters) -> None:
        self._transport = open_transport(client, options.transport)
        self._options = options
        self.counters = counters
        self.error: BaseException | None = None
        self.started = False
        resume = options.resume
        done = resume.done if resume else frozenset()
        positions = resume.positions if resume else {}
        # Segments already begun go first, in order, then the untouched ones lazily:
        # a million-segment scan does not build a million cursors up front.
        self._line: deque[tuple[int, Key | None, int]] = deque(
            (segment, key, skip) for segment, (key, skip) in sorted(positions.items())
        )
        self._unstarted = iter(
            [s for s in range(options.segments) if s not in done and s not in positions]
            if done or positions
            else range(options.segments)
        )
        # The scan's rate: its token bucket, the share of the table, adaptive control.
        self._capacity = Controller(
            rate_limit=options.rate_limit,
            share=options.rate_share,
            table=options.table,
            index=options.scan_params.get("IndexName"),
            counters=counters,
            describe=lambda: client.describe_table(TableName=options.table),
            # Adaptive control needs each page's cost.
            adaptive=options.request_params.get("ReturnConsumedCapacity") != "NONE",
            tuning=options.tuning,
        )
        # What a page is expected to cost, charged up front and corrected afterwards.
        self._estimate = 1.0
        self._scopes: set[anyio.CancelScope] = set()
        # Set by cancel(): a worker that had not yet run when the scan was left (the task
        # group starts its tasks on the next turn of the loop) must not start reading then.
        self._cancelled = False
        self._live = 0
        self._send: MemoryObjectSendStream[Page] | None = None
        self._receive: MemoryObjectReceiveStream[Page] | None = None
        self._finished: anyio.Event | None = None

    # -- lifecycle ----------------------------------------------------------------

    def start(self, spawn: Spawn) -> None:
        """Start the workers with ``spawn`` (a task group's ``start_soon`` or a plain task)."""
        self.started = True
        self._send, self._receive = anyio.create_memory_object_stream[Page](
            self._options.buffer_pages
        )
        self._finished = anyio.Event()
        self.counters.start()
        workers = min(self._options.concurrency, self._options.segments)
        self._live = workers
        for _ in range(workers):
            spawn(self._worker)

    def cancel(self) -> None:
        """Stop every worker, started or not; safe to call from ``__del__`` and more than once.

        A worker already running is cancelled through its scope. One that the task group
        (or the loop) has not started yet has no scope to cancel: it sees the flag before
        its first request and ends at once, so a block left before the workers ran neither
        waits for them to fill the queue nor sends a request after it is gone.
        """
        self._cancelled = True
        for scope in list(self._scopes):
            scope.cancel()

    @property
    def running(self) -> bool:
        return self._live > 0

    async def wait_finished(self) -> None:
        if self._finished is not None:
            await self._finished.wait()

    async def receive(self) -> Page:
        assert self._receive is not None
        return await self._receive.receive()

    def close(self) -> None:
        if self._receive is not None:
            self._receive.close()

    def _fail(self, exc: BaseException) -> None:
        if self.error is None:
            self.error = exc
            self.cancel()

    # -- workers ------------------------------------------------------------------

    def _take(self) -> tuple[int, Key | None, int] | None:
        segment = next(self._unstarted, None)
        if segment is not None:
            return segment, None, 0
        return self._line.popleft() if self._line else None

    async def _worker(self) -> None:
        scope = anyio.CancelScope()
        self._scopes.add(scope)
        try:
            if self._cancelled:
                return
            with scope:
                await self._run()
        except Exception as exc:  # noqa: BLE001 - handed to the consumer, who raises it
            self._fail(exc)
        finally:
            self._scopes.discard(scope)
            self._live -= 1
            if self._live == 0:
                self.counters.finish()
                assert self._send is not None
                assert self._finished is not None
                self._send.close()
                self._finished.set()

    async def _run(self) -> None:
        assert self._send is not None
        send = self._send.send
        counters = self.counters
        # DynamoDB sends no items for Select="COUNT"; some emulators (moto) send them anyway.
        count_only = self._options.scan_params.get("Select") == "COUNT"
        columns = self._options.columns
        while self.error is None and not self._cancelled:
            cursor = self._take()
            if cursor is None:
                return
            segment, key, skip = cursor
            response = await self._fetch(segment, key)
            items = [] if count_only else response.get("Items", [])
            if skip:
                items = items[skip:]
            if items:
                if columns is not None:
                    items = columns.convert(items)
                elif self._options.deserialize:
                    items = decode_items(items)
            last_key = response.get("LastEvaluatedKey")
            counters.pages += 1
            counters.count += response.get("Count", 0)
            counters.scanned += response.get("ScannedCount", 0)
            page = Page(segment, key, skip, items, last_key)
            # The parsed answer is several times the size of the decoded page: let it go
            # now, not after the next request, so that a worker blocked on a full queue
            # holds one page, not two.
            del response, items
            await send(page)
            del page
            if last_key is None:
                counters.segments_done += 1
            else:
                self._line.append((segment, last_key, 0))

    async def _fetch(self, segment: int, key: Key | None) -> dict[str, Any]:
        options = self._options
        request = dict(options.request_params)
        if options.segments > 1:
            request["Segment"] = segment
        else:
            del request["TotalSegments"]
        if key is not None:
            request["ExclusiveStartKey"] = key
        counters = self.counters
        control = self._capacity
        raw = not options.deserialize
        attempts = 0
        retry = 0
        throttled_at = -math.inf  # when this page's last throttled attempt was sent
        while True:
            throttled = False
            if control.due():  # a "P%" scan's DescribeTable: first, then every few minutes
                try:
                    await control.refresh()
                except Exception as exc:
                    annotate(exc, options.table, segment, options.segments)
                    raise
            # Read on every attempt: adaptive control may engage or drop the bucket.
            limiter = control.bucket
            estimate = self._estimate
            if limiter is not None:
                await limiter.acquire(estimate)
            sent_at = control.now()
            settled = False
            try:
                response = await fetch_page(
                    self._transport, request, raw=raw, columns=options.columns
                )
                cost = _capacity(response)
                if limiter is not None:
                    limiter.settle(estimate, cost)
                    settled = True
                # Follow the real page cost, smoothed: pages of one table cost alike.
                self._estimate = 0.7 * estimate + 0.3 * cost
                counters.consumed_capacity += cost
                hidden = response.get("ResponseMetadata", {}).get("RetryAttempts", 0)
                counters.retries += hidden
                if hidden:
                    # botocore retried inside the call: most likely throttled (see _capacity).
                    control.throttled(sent_at)
                control.succeeded(cost, sent_at)
                return response
            except Exception as exc:
                made = 1 + _botocore_retries(exc)
                attempts += made
                counters.retries += made - 1
                throttled = is_throttle(exc)
                if throttled:
                    counters.throttles += 1
                    again = throttled_at >= control.dropped_at > -math.inf
                    control.throttled(sent_at, again=again)
                    throttled_at = sent_at
                if not is_retryable(exc) or attempts >= options.retry.max_attempts:
                    annotate(exc, options.table, segment, options.segments)
                    raise
                counters.retries += 1
            finally:
                if limiter is not None and not settled:
                    # A throttled attempt keeps its estimate: it read nothing, but it was
                    # a request at the table, and retries that cost nothing would go out
                    # as fast as the backoff lets them while the table repays its debt.
                    # Any other failure gives the estimate back.
                    limiter.settle(estimate, estimate if throttled else 0.0)
            await anyio.sleep(options.retry.delay(retry))
            retry += 1


def _capacity(response: dict[str, Any]) -> float:
    consumed = response.get("ConsumedCapacity")
    if not consumed:
        return 0.0
    return float(consumed.get("CapacityUnits", 0.0))


def _botocore_retries(exc: BaseException) -> int:
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return 0
    return int(response.get("ResponseMetadata", {}).get("RetryAttempts", 0) or 0)
