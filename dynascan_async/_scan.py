"""The public scan object: both an async iterator of items and an async context manager.

Two forms, two answers to "who stops the workers":

* ``async with scan(...) as s:`` owns an anyio task group for the length of the block.
  Leaving the block, however it is left, cancels the workers and waits for them.
* ``async for item in scan(...):`` has no block to hang cleanup on, and Python does not
  tell an async iterator that a loop was left by ``break`` or an exception. What it does
  do is drop the iterator object at that moment. So ``__aiter__`` hands out a small
  iterator whose ``__del__`` cancels the workers (plain tasks here, each inside its own
  cancel scope, with no clean-up that awaits): they are gone by the consumer's next
  await. The scan object itself may live on, for ``stats`` and ``checkpoint()``.

Either way the consumer's own position is what ``checkpoint()`` reports, so a scan
stopped by ``break``, by an error or by a timeout can be resumed exactly.
"""

from __future__ import annotations

__all__ = ["Scan", "scan"]

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

import anyio
from anyio.abc import TaskGroup

from . import _checkpoint
from ._capacity import Tuning
from ._options import Options, validate
from ._retry import RetryPolicy
from ._segments import Engine, Key, Page
from ._stats import Counters, ScanStats

# anyio imports its asyncio backend (a dozen modules) on first use: inside the event loop, on
# the first scan a service runs, stalling every other task for as long as the import takes
# (10 to 100 ms). Importing it with the library moves that to import time. The module is
# anyio's private one, so if it ever moves, the import simply happens later, as before.
with contextlib.suppress(ImportError):
    import anyio._backends._asyncio

if TYPE_CHECKING:
    from typing_extensions import Self

if sys.version_info < (3, 11):  # pragma: no cover
    from exceptiongroup import BaseExceptionGroup


class Scan:
    """A parallel scan of one table or index; see :func:`scan`.

    Iterate it for items; read :attr:`stats` and call :meth:`checkpoint` at any time.
    """

    __slots__ = (
        "__weakref__",
        "_done",
        "_engine",
        "_exhausted",
        "_i",
        "_items",
        "_items_before",
        "_n",
        "_options",
        "_page",
        "_positions",
        "_state",
        "_tasks",
        "_tg",
    )

    def __init__(self, client: Any, options: Options) -> None:
        self._options = options
        resume = options.resume
        self._engine = Engine(
            client, options, Counters(options.segments, len(resume.done) if resume else 0)
        )
        self._done: set[int] = set(resume.done) if resume else set()
        self._positions: dict[int, tuple[Key | None, int]] = (
            dict(resume.positions) if resume else {}
        )
        self._page: Page | None = None
        self._items: list[Any] = []
        self._i = 0
        self._n = 0
        self._items_before = 0
        # "new" -> "managed" (async with) or "bare" (plain async for) -> "closed"
        self._state = "new"
        self._tg: TaskGroup | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        # True once the consumer has seen the end: StopAsyncIteration or the scan's error.
        self._exhausted = False

    def __repr__(self) -> str:
        o = self._options
        return (
            f"<Scan table={o.table!r} segments={o.segments} concurrency={o.concurrency} "
            f"transport={o.transport} state={self._state} items={self._items_before + self._i}>"
        )

    # -- the context-manager form ------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._state != "new":
            raise RuntimeError("a scan can be entered once, before it is iterated")
        self._state = "managed"
        tg = anyio.create_task_group()
        await tg.__aenter__()
        self._tg = tg
        self._engine.start(lambda worker: tg.start_soon(worker))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        self._state = "closed"
        self._engine.cancel()
        tg, self._tg = self._tg, None
        assert tg is not None
        try:
            return await tg.__aexit__(exc_type, exc, tb)
        except BaseExceptionGroup as group:
            # The task group wraps the block's own exception; the workers never raise.
            # Hand the caller its exception as it was, not inside a group.
            if exc is not None and list(group.exceptions) == [exc]:
                return False
            raise
        finally:
            self._engine.close()

    # -- iteration ------------------------------------------------------------------

    def __aiter__(self) -> AsyncIterator[Any]:
        return _Items(self)

    async def __anext__(self) -> Any:
        i = self._i
        if i < self._n and self._engine.error is None:
            self._i = i + 1
            return self._items[i]
        return await self._next_item()

    def __del__(self) -> None:
        # Only reached when no iterator of ours is alive (each holds the scan).
        self._abandon()

    def _start_bare(self) -> None:
        self._state = "bare"
        loop = asyncio.get_running_loop()
        tasks = self._tasks

        def spawn(worker: Any) -> None:
            task: asyncio.Task[None] = loop.create_task(worker())
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        self._engine.start(spawn)

    def _abandon(self) -> None:
        """The last iterator of a bare scan is gone (break, exception, cancellation)."""
        if self._state == "bare":
            self._state = "closed"
            with contextlib.suppress(RuntimeError):  # the loop may already be closed
                self._engine.cancel()
                for task in list(self._tasks):
                    task.cancel()
            self._engine.close()

    def _finish_page(self) -> None:
        page = self._page
        if page is None:
            return
        self._items_before += self._n
        self._page = None
        self._items = []
        self._i = self._n = 0
        if page.last_key is None:
            self._done.add(page.segment)
            self._positions.pop(page.segment, None)
        else:
            self._positions[page.segment] = (page.last_key, 0)

    async def _next_item(self) -> Any:
        """The slow path: the current page is used up (or an error is waiting)."""
        engine = self._engine
        if self._state == "new":
            self._start_bare()
        elif self._state == "closed" and not engine.started:
            raise RuntimeError("this scan was closed before it started")
        if self._i >= self._n:
            self._finish_page()
        while True:
            if engine.error is not None:
                await self._raise_error()
            if self._state == "closed" and not self._exhausted:
                raise RuntimeError(
                    "this scan was stopped (its loop was left, or its block exited); start a "
                    "new one with resume_from=checkpoint()"
                )
            try:
                page = await engine.receive()
            except (anyio.EndOfStream, anyio.ClosedResourceError):
                if engine.error is not None:
                    await self._raise_error()
                self._exhausted = True
                engine.close()
                raise StopAsyncIteration from None
            except BaseException:
                # Cancelled (a timeout, a cancelled task) while waiting for a page. The
                # exception's traceback keeps our iterator alive for a while, so do not
                # wait for its __del__: a bare scan ends here and now.
                self._abandon()
                raise
            self._page = page
            self._items = page.items
            self._n = len(page.items)
            if self._n:
                self._i = 1
                return page.items[0]
            self._finish_page()

    async def _raise_error(self) -> None:
        engine = self._engine
        # "After the other segments are cancelled": wait for the workers to be gone.
        with anyio.CancelScope(shield=True):
            await engine.wait_finished()
        engine.close()
        error = engine.error
        assert error is not None
        if self._exhausted:
            raise StopAsyncIteration
        self._exhausted = True
        raise error

    # -- state ----------------------------------------------------------------------

    @property
    def stats(self) -> ScanStats:
        """Progress so far; readable during and after iteration."""
        return self._engine.counters.snapshot(self._items_before + self._i)

    @property
    def transport(self) -> str:
        """Who sends the requests, as ``transport="auto"`` decided: "direct" or "botocore"."""
        return self._options.transport

    def checkpoint(self) -> dict[str, Any]:
        """Where the consumer is, as a JSON-serializable value for ``resume_from``."""
        positions = dict(self._positions)
        done = set(self._done)
        page = self._page
        if page is not None:
            if self._i >= self._n:
                if page.last_key is None:
                    done.add(page.segment)
                    positions.pop(page.segment, None)
                else:
                    positions[page.segment] = (page.last_key, 0)
            else:
                positions[page.segment] = (page.start_key, page.skip + self._i)
        o = self._options
        return _checkpoint.dump(
            table=o.table, segments=o.segments, params=o.fingerprint, done=done, positions=positions
        )


class _Items:
    """The iterator ``async for`` holds; dropping it ends a bare scan (see module doc)."""

    __slots__ = ("_scan",)

    def __init__(self, scan: Scan) -> None:
        self._scan = scan

    def __aiter__(self) -> _Items:
        return self

    async def __anext__(self) -> Any:
        # The hot path: one item of the current page, no await, no allocation.
        s = self._scan
        i = s._i
        if i < s._n and s._engine.error is None:
            s._i = i + 1
            return s._items[i]
        return await s._next_item()

    def __del__(self) -> None:
        self._scan._abandon()


def scan(
    client: Any,
    table: str,
    /,
    *,
    segments: int | None = None,
    concurrency: int | None = None,
    rate_limit: float | str | None = None,
    deserialize: bool = True,
    resume_from: Any = None,
    buffer_pages: int | None = None,
    retry: RetryPolicy | None = None,
    transport: Literal["auto", "direct", "botocore"] = "auto",
    _tuning: Tuning | None = None,
    **scan_params: Any,
) -> Scan:
    """Scan a whole table (or index) in parallel: ``async for item in scan(client, "t")``.

    ``segments`` splits the table (DynamoDB's ``TotalSegments``); ``concurrency`` caps
    the requests in flight, so more segments than workers is normal and good.
    ``rate_limit`` caps read capacity units per second for the whole scan: a number, or
    a share of the table's (or index's) capacity as DescribeTable reports it, ``"50%"``.
    When DynamoDB throttles, the whole scan slows down and then climbs back, never above
    ``rate_limit`` (see ``_capacity``); ``stats.rate_limit`` is the rate now. Other keyword
    arguments are Scan parameters in DynamoDB's own spelling (``FilterExpression=...``).
    ``buffer_pages`` bounds the pages waiting for the consumer; ``retry`` sets how
    throttling, 5xx and dropped connections are retried. ``transport`` says who sends
    the requests: ``"botocore"`` (``client.scan``, with the client's own retries and
    event hooks), ``"direct"`` (the library, signed with the client's credentials and
    sent on its HTTP session; far less CPU per page), or ``"auto"``: direct unless
    something on the client would see or change its Scan calls (event handlers beyond a
    fresh client's, a ``Stubber``, client-side monitoring, endpoint discovery, a wrapped
    ``_make_api_call``) or its endpoint URL has a path or query string.

    Every option is checked here, before any request: a bad one raises ``TypeError`` or
    ``ValueError`` from this call.
    """
    options = validate(
        client,
        table,
        segments=segments,
        concurrency=concurrency,
        rate_limit=rate_limit,
        deserialize=deserialize,
        resume_from=resume_from,
        buffer_pages=buffer_pages,
        retry=retry,
        transport=transport,
        scan_params=scan_params,
        tuning=_tuning,
    )
    return Scan(client, options)
