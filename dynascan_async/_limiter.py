"""A read-capacity budget shared by all the segments of one scan."""

from __future__ import annotations

__all__ = ["TokenBucket"]

import math
import time
from collections.abc import Awaitable, Callable

import anyio

# Added to every computed sleep so that, after sleeping, the balance is strictly above
# zero rather than landing on 0.0 (or a rounding error below it) and sleeping again.
_EPSILON = 1e-6


def _check_finite(name: str, value: float, *, positive: bool) -> float:
    value = float(value)
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        need = "a finite number > 0" if positive else "a finite number >= 0"
        raise ValueError(f"{name} must be {need}, not {value!r}")
    return value


class TokenBucket:
    """A token bucket counted in DynamoDB read capacity units, settled after the fact.

    A classic limiter charges a request *before* it runs. DynamoDB cannot be driven that
    way: a Scan page costs whatever the items it happened to read cost (up to 128 RCU,
    256 with ``ConsistentRead``), and the price is only known from the response's
    ``ConsumedCapacity``. So this bucket works on credit:

    * :meth:`acquire` lets a request go as soon as the balance is positive and deducts
      an *estimate* on the spot. Without that, every segment waiting on the same
      positive balance would be let through at once and the bucket would admit N pages
      for the price of one.
    * :meth:`settle` books the difference between the real cost and the estimate once
      the response is in. The balance may go negative; that debt is repaid by the
      refill before anyone else is let through, so over time the read rate converges on
      ``rate`` whatever the pages really cost.
    * Waiters are served strictly first come, first served. A caller that arrives while
      others wait queues behind them even if the balance is positive, so a segment that
      loops quickly cannot starve the others.

    Each page goes through the pair; a request that fails or is cancelled after
    :meth:`acquire` returned gives its estimate back with ``settle(estimate, 0.0)``::

        await bucket.acquire(estimate)
        try:
            page = await client.scan(**request, ReturnConsumedCapacity="TOTAL")
        except BaseException:
            bucket.settle(estimate, 0.0)
            raise
        bucket.settle(estimate, page["ConsumedCapacity"]["CapacityUnits"])

    :meth:`acquire` either returns having deducted the estimate or raises having
    deducted nothing, so cancelling a waiter needs no cleanup.

    Attributes:
        rate: read capacity units added per second. Settable while the bucket is in use
            (the adaptive control of ``_capacity`` does so): time already elapsed is
            credited at the old rate, and the head waiter re-times its sleep at the new
            one, keeping its place in the queue.
        burst: the most the balance can hold; also its starting value (read-only). When
            not given, one second's worth, following ``rate`` when it is changed.
        level: the balance right now, refill included; negative while in debt.
        waiting: how many tasks are inside :meth:`acquire` and not yet let through.

    ``clock`` and ``sleep`` are injectable so that tests can run on a fake clock; they
    must agree with each other (``sleep(dt)`` returns once ``clock()`` has advanced by
    at least ``dt``), and ``sleep`` must be cancellable, because a refund interrupts it.
    Like anyio's own primitives, a bucket belongs to one event loop and is not
    thread-safe.
    """

    __slots__ = (
        "_auto_burst",
        "_burst",
        "_clock",
        "_last",
        "_level",
        "_queue",
        "_rate",
        "_sleep",
        "_waiting",
        "_wakeup",
    )

    def __init__(
        self,
        rate: float,
        *,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        self._rate = _check_finite("rate", rate, positive=True)
        # Default: one second's worth, but never less than one unit.
        self._auto_burst = burst is None
        self._burst = (
            max(self._rate, 1.0) if burst is None else _check_finite("burst", burst, positive=True)
        )
        self._clock = clock
        self._sleep = sleep
        self._level = self._burst
        self._last = clock()
        # FIFO: anyio's Lock hands itself straight to the longest waiter on release, so
        # a newcomer can never grab it in between.
        self._queue = anyio.Lock()
        self._waiting = 0
        # The cancel scope around the head waiter's sleep, while it sleeps.
        self._wakeup: anyio.CancelScope | None = None

    @property
    def rate(self) -> float:
        """Read capacity units added per second."""
        return self._rate

    @rate.setter
    def rate(self, rate: float) -> None:
        rate = _check_finite("rate", rate, positive=True)
        # Credit the time that has passed at the rate that held during it.
        level = self._refill()
        self._rate = rate
        if self._auto_burst:
            self._burst = max(rate, 1.0)
        # A lower rate lowers the burst: savings made at the old rate do not carry over.
        self._level = min(self._burst, level)
        # The head waiter timed its sleep with the old rate: wake it to re-time it. It
        # stays the head (it holds the lock), so the order of service is unchanged.
        if self._wakeup is not None:
            self._wakeup.cancel()

    @property
    def burst(self) -> float:
        """The most the balance can hold."""
        return self._burst

    @property
    def level(self) -> float:
        """The balance right now, refill included; negative while in debt."""
        return self._refill()

    @property
    def waiting(self) -> int:
        """How many tasks are inside :meth:`acquire` and have not been let through."""
        return self._waiting

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} rate={self._rate!r} level={self._refill():.2f}"
            f" waiting={self._waiting}>"
        )

    def _refill(self) -> float:
        now = self._clock()
        elapsed = max(0.0, now - self._last)
        self._last = now
        self._level = min(self._burst, self._level + self._rate * elapsed)
        return self._level

    async def acquire(self, estimate: float = 0.0) -> None:
        """Wait for a positive balance, behind everyone already waiting; deduct ``estimate``.

        Raises ``ValueError`` for a negative or non-finite ``estimate``. If cancelled
        while waiting, nothing is charged and the next waiter is served as usual.
        """
        estimate = _check_finite("estimate", estimate, positive=False)
        self._waiting += 1
        try:
            # The scheduling trick: only the task holding the lock (the head of the
            # queue) ever sleeps on the clock, and it sleeps exactly until the balance
            # turns positive. Everyone behind it is parked in the lock's FIFO queue and
            # needs no timer at all: when the head is let through it releases the lock,
            # which wakes precisely the next task in line. So there is no polling, no
            # thundering herd, and the order of service is the order of arrival. A
            # refund from settle() cancels the head's sleep so that a balance that
            # turned positive early is not left unused.
            await self._queue.acquire()
            try:
                while (level := self._refill()) <= 0:
                    with anyio.CancelScope() as wakeup:
                        self._wakeup = wakeup
                        try:
                            await self._sleep(-level / self._rate + _EPSILON)
                        finally:
                            self._wakeup = None
                    # Loop: a settle() during the sleep may have added more debt.
                # No await between here and the release: once charged, the caller is
                # let through, and a cancellation can no longer arrive in between.
                self._level = level - estimate
            finally:
                self._queue.release()
        finally:
            self._waiting -= 1

    def settle(self, estimate: float, actual: float) -> None:
        """Book the real cost of a request that :meth:`acquire` let through.

        The balance changes by ``estimate - actual``: more debt if the request cost more
        than estimated, a refund (capped at ``burst``) if it cost less. A request that
        never reached DynamoDB settles with ``actual=0.0``.
        """
        estimate = _check_finite("estimate", estimate, positive=False)
        actual = _check_finite("actual", actual, positive=False)
        level = self._refill()
        self._level = min(self._burst, level + estimate - actual)
        if self._level > 0 and self._wakeup is not None:
            self._wakeup.cancel()
