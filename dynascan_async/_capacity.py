"""How fast the scan may read: a share of the table's capacity, and adaptive control.

One object, :class:`Controller`, decides the rate of the one token bucket the engine
already has (``_limiter.TokenBucket``); every segment draws from that bucket, so what is
decided here holds for the scan as a whole. It has two jobs.

**The ceiling.** ``rate_limit=1000`` is a ceiling of 1,000 RCU/s. ``rate_limit="50%"``
is half of what DescribeTable reports: ``ProvisionedThroughput.ReadCapacityUnits`` of
the table, or of the index named by ``IndexName`` (an index has its own capacity), and
``OnDemandThroughput.MaxReadRequestUnits`` for an on-demand table or index. An
on-demand table without that maximum has no capacity figure at all, and guessing one
(the EMR connector assumes 40,000 for every on-demand table) either starves the scan or
floods the table; so that is a ``ValueError`` that asks for a number. DescribeTable is
asked once before the first Scan request, then again every ``refresh`` seconds (two
minutes) by whichever worker notices it is due, so that a table resized by auto scaling
or by hand is followed; it is never asked per page, and a failed refresh keeps the
previous figure.

**Adaptive control.** A throttled request means that the table (or one of its
partitions) is being read faster than it serves, by this scan and whatever else reads
it. The scan then lowers its rate multiplicatively and climbs back along a cubic curve,
as TCP CUBIC does, never above the ceiling:

* The drop is to ``beta`` (0.7) times the lower of the current rate and the *measured*
  rate (capacity actually consumed, smoothed over half-second bins). The measured rate
  matters when the bucket is not what limits the scan (a scan held back by latency, or
  one that had no rate yet): cutting a rate that is not binding changes nothing.
* One drop per congestion event, not one per throttled response: a throttle only counts
  if its request was sent after the last drop (requests already in flight were sent at
  the old rate and say nothing about the new one) and at least ``min_interval`` (half a
  second, one measuring bin) after it. Otherwise a burst of sixteen throttled responses
  would cut the rate to 0.7**16 of itself, far below what the table serves. The one
  exception is a rate still far too high, which only the first episode of a scan can
  have (a rate read off the table's burst, or a ceiling above what the table serves):
  there, when most of the requests sent since the last drop (and at least three pages;
  a page retried into the same partition's debt counts once) were throttled, the next
  drop comes at once and quarters the rate. That is what a scan meets when the table's
  burst capacity runs out under sixteen segments reading flat out; half a second per
  drop would cost a hundred throttled requests there. Later, most requests failing
  right after a drop says only that the table is repaying the debt an overshoot left,
  and dropping again would take the rate to the floor.
* After such a fast drop the rate probes: it doubles every half second until the next
  throttle, which is a regular drop. The episode's ``w_max`` came from the burst and is
  no guide (a cubic climb aimed at it would be back above the table within half a
  second), and the fast drops went through the debt, when the table serves nothing at
  all, so the rate is usually far below the table: doubling finds it in a few steps,
  and the regular drop that ends the probe starts the cubic climb from a ``w_max`` the
  table really served.
* A throttled attempt keeps the estimate it drew from the bucket (the engine refunds
  other failures): a retry is a request at the table too, and retries that cost nothing
  would go out as fast as the backoff allows, all of them refused while the table is in
  debt.
* The climb: ``rate(t) = w_max * (1 + c * (t - K)**3)`` with ``t`` the time since the
  drop, ``w_max`` the rate at which the table throttled, and ``c`` chosen so that
  ``rate(0) = beta * w_max``. The curve rises quickly at first, flattens out around
  ``w_max`` (reached after ``K`` = ``recover`` seconds, 6 s) and only then probes beyond
  it, ever faster. Compared with an additive climb this spends most of its time close
  to the rate the table was last seen to serve, which is where a scan wants to be: the
  average over the concave part is 92.5% of ``w_max``, where a linear climb from 70%
  averages 85%. Unlike botocore's CUBIC, ``c`` is scaled by ``w_max``, so the time to
  recover is the same for a 5 RCU table and a 40,000 RCU one (botocore counts requests
  per second with a fixed constant, which makes large rates recover slowly).
* Without ``rate_limit`` the scan starts unlimited (no bucket at all) and the first
  throttle engages the bucket at ``beta`` times the measured rate. Once the climb has
  taken the rate to twice ``w_max`` with no throttle (about 15 s after the last one),
  the bucket is dropped again and the scan is unlimited, as it began: the table has
  shown it serves far more than the rate that last throttled (its load went away, or it
  grew), and a rate nobody needs only costs a wake-up per page.

What counts as a throttle: a response with ``ProvisionedThroughputExceededException``,
``ThrottlingException`` or ``RequestLimitExceeded`` that reaches the library, which is
every one of them with the direct transport. With ``transport="botocore"`` the client's
own retries hide the throttled attempts inside one ``client.scan`` call; all that shows
is the response's ``ResponseMetadata.RetryAttempts``. A successful page with
``RetryAttempts > 0`` is therefore taken as a throttle too: on a healthy endpoint
throttling is by far the most common reason botocore retries, and a 5xx or a dropped
connection is no reason to speed up either.

Adaptive control needs the capacity each page consumed; with
``ReturnConsumedCapacity="NONE"`` (possible only without ``rate_limit``) it is off.
"""

from __future__ import annotations

__all__ = ["Controller", "Tuning", "capacity_of", "parse_share", "table_capacity"]

import math
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import anyio

from ._limiter import TokenBucket
from ._stats import Counters

_SHARE = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*%\s*")


def parse_share(value: str) -> float:
    """``"50%"`` -> 0.5; a ``ValueError`` for anything that is not a percentage in (0, 100]."""
    match = _SHARE.fullmatch(value)
    percent = float(match.group(1)) if match else math.nan
    if not 0 < percent <= 100:
        raise ValueError(
            "rate_limit must be read capacity units per second (a number > 0) or a share "
            f"of the table's capacity such as '50%' (more than 0%, at most 100%), got {value!r}"
        )
    return percent / 100


def _positive(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    return None


def capacity_of(described: Mapping[str, Any], *, table: str, index: str | None) -> float:
    """The read capacity (RCU/s) DescribeTable's answer gives the table or index.

    A ``ValueError`` where there is none to read: an on-demand table or index without
    ``MaxReadRequestUnits`` (AWS reports ``-1`` or nothing), or an unknown index.
    """
    node: Mapping[str, Any] = described.get("Table", {})
    billing = node.get("BillingModeSummary", {}).get("BillingMode", "PROVISIONED")
    what = f"table {table!r}"
    if index is not None:
        what = f"index {index!r} of table {table!r}"
        indexes = {i.get("IndexName"): i for i in node.get("GlobalSecondaryIndexes") or []}
        local = {i.get("IndexName") for i in node.get("LocalSecondaryIndexes") or []}
        if index in indexes:
            node = indexes[index]
        elif index not in local:  # a local index reads the table's own capacity
            raise ValueError(
                f"cannot read the capacity of {what}: DescribeTable lists no such index"
            )
    if billing != "PAY_PER_REQUEST":
        units = _positive(node.get("ProvisionedThroughput", {}).get("ReadCapacityUnits"))
        if units is not None:
            return units
    units = _positive((node.get("OnDemandThroughput") or {}).get("MaxReadRequestUnits"))
    if units is not None:
        return units
    raise ValueError(
        f"rate_limit as a share needs the read capacity of {what}, but {what} is on-demand "
        "(PAY_PER_REQUEST) with no OnDemandThroughput.MaxReadRequestUnits, so it has no "
        "capacity figure to take a share of: pass rate_limit as read capacity units per "
        "second instead (for example rate_limit=1000), or set MaxReadRequestUnits on it"
    )


async def table_capacity(client: Any, table: str, index: str | None) -> float:
    """The read capacity (RCU/s) of ``table`` or its ``index``: one DescribeTable call.

    For callers that need the figure once, up front (``dask`` splits it between its
    tasks before any runs); a scan's own :class:`Controller` keeps it up to date instead.
    """
    return capacity_of(await client.describe_table(TableName=table), table=table, index=index)


@dataclass(frozen=True)
class Tuning:
    """The controller's constants (private: ``scan(..., _tuning=Tuning(...))``).

    Attributes:
        adaptive: react to throttling at all (off: the benchmarks' comparison).
        refresh: seconds between DescribeTable calls of a ``"P%"`` scan.
        beta: what a drop multiplies the rate by.
        recover: seconds from a drop back to the rate that throttled (CUBIC's ``K``).
        min_interval: the least time between two drops.
        floor: the lowest rate a drop goes to, RCU/s (or the ceiling, if lower).
        step: the least time between two rate changes while climbing.
        clock: monotonic seconds; tests pass a fake one.
    """

    adaptive: bool = True
    refresh: float = 120.0
    beta: float = 0.7
    recover: float = 6.0
    min_interval: float = 0.5
    floor: float = 1.0
    step: float = 0.1
    clock: Callable[[], float] = time.monotonic


# The measured rate: capacity consumed per half-second bin, smoothed as botocore does.
_BIN = 0.5
_SMOOTHING = 0.8
# Without a ceiling, the bucket is dropped once the climb is this far above w_max.
_RELEASE = 2.0
# Drop again before min_interval when at least this many requests sent since the last
# drop were throttled, and more of them than were read: the rate is still far too high.
_FAST_DROP = 3
_FAST_BETA = 0.25
# After a fast drop the rate doubles every this many seconds until the next throttle.
_PROBE_DOUBLING = 0.5


class Controller:
    """The rate of one scan's token bucket: its ceiling, its drops and its climbs.

    The engine calls :meth:`due`/:meth:`refresh` before a request, notes
    :meth:`now` when sending it, then :meth:`succeeded` or :meth:`throttled`.
    ``bucket`` is the token bucket to draw from, ``None`` while the scan is unlimited.

    Attributes:
        bucket: the scan's token bucket, or ``None`` while unlimited.
        ceiling: the most the rate may be (RCU/s), ``None`` for no ceiling.
        rate: the rate right now, ``None`` while unlimited.
        measured: capacity consumed per second, smoothed.
    """

    __slots__ = (
        "_bin_cost",
        "_bin_start",
        "_c",
        "_counters",
        "_describe",
        "_dropped_at",
        "_fresh_reads",
        "_fresh_throttles",
        "_index",
        "_k",
        "_next_change",
        "_next_refresh",
        "_probe_from",
        "_reading",
        "_ready",
        "_regular_drops",
        "_share",
        "_started",
        "_table",
        "_total",
        "_tuning",
        "adaptive",
        "bucket",
        "ceiling",
        "measured",
        "rate",
        "w_max",
    )

    def __init__(
        self,
        *,
        rate_limit: float | None,
        share: float | None,
        table: str,
        index: str | None,
        counters: Counters,
        describe: Callable[[], Awaitable[Mapping[str, Any]]] | None,
        adaptive: bool,
        tuning: Tuning,
    ) -> None:
        self._tuning = tuning
        self._counters = counters
        self._table = table
        self._index = index
        self._share = share
        self._describe = describe
        self.adaptive = adaptive and tuning.adaptive
        self.ceiling: float | None = rate_limit
        self.rate: float | None = None
        self.bucket: TokenBucket | None = None
        self.w_max = 0.0
        # c of the cubic, relative to w_max: rate(0) = beta * w_max, rate(K) = w_max.
        self._c = (1.0 - tuning.beta) / tuning.recover**3
        # CUBIC's K: seconds from the last drop until the climb is back at w_max.
        self._k = tuning.recover
        # After a fast drop, the rate the climb doubles from; None: the cubic climb.
        self._probe_from: float | None = None
        # Regular drops since the scan began or was last let go unlimited: fast drops
        # only follow the first (see throttled).
        self._regular_drops = 0
        now = tuning.clock()
        self._started = now
        self._dropped_at = -math.inf
        # Requests sent since the last drop that came back read / throttled.
        self._fresh_reads = 0
        self._fresh_throttles = 0
        self._next_change = -math.inf
        self.measured = 0.0
        self._bin_start = now
        self._bin_cost = 0.0
        self._total = 0.0
        # Only a share needs DescribeTable: due at once, then every `refresh` seconds.
        self._next_refresh = -math.inf if share is not None else math.inf
        self._ready: anyio.Event | None = None  # set once the first reading is in
        self._reading = False
        if rate_limit is not None:
            self._set(rate_limit)

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} rate={self.rate!r} ceiling={self.ceiling!r} "
            f"w_max={self.w_max:.1f} measured={self.measured:.1f}>"
        )

    def now(self) -> float:
        return self._tuning.clock()

    # -- the ceiling ----------------------------------------------------------------

    def due(self) -> bool:
        """Whether DescribeTable is to be asked before the next request."""
        return self._next_refresh <= self._tuning.clock()

    async def refresh(self) -> None:
        """Read the capacity, unless another worker is doing it; the first time, wait for it.

        The first reading raises what DescribeTable raises, and a ``ValueError`` if there
        is no capacity to take a share of: the engine fails the scan with it, before any
        Scan request (every worker waits here for the first reading). Later readings keep
        the old figure on any error, and only one worker makes each.
        """
        if self._ready is None:  # made here, not in __init__: it needs the event loop
            self._ready = anyio.Event()
        ready = self._ready
        if self._reading:
            await ready.wait()  # returns at once unless this is the first reading
            return
        first = not ready.is_set()
        self._reading = True
        if not first:
            self._next_refresh = math.inf  # the others go on scanning meanwhile
        try:
            capacity: float | None = await self._read_capacity()
        except Exception:
            if first:
                raise
            capacity = None
        finally:
            self._reading = False
            self._next_refresh = self._tuning.clock() + self._tuning.refresh
        if capacity is not None:
            self.set_capacity(capacity)
        ready.set()

    async def _read_capacity(self) -> float:
        assert self._describe is not None
        described = await self._describe()
        return capacity_of(described, table=self._table, index=self._index)

    def set_capacity(self, capacity: float) -> None:
        """A (new) capacity from DescribeTable: the ceiling is the scan's share of it.

        A changed capacity is followed at once. Raised, it ends any recovery from an
        earlier throttle: that throttle was the old capacity's answer, and if the new one
        is still too much (other traffic), the next throttle says so. Lowered, the rate
        is capped by the new ceiling and any recovery goes on below it.
        """
        assert self._share is not None
        old, self.ceiling = self.ceiling, self._share * capacity
        if self.ceiling == old:
            return
        if old is None or self.ceiling > old:
            self.w_max = 0.0  # at the ceiling, not recovering
            self._regular_drops = 0  # a new ceiling may be far too high: a first episode
            self._set(self.ceiling)
        elif self.rate is None or self.rate > self.ceiling:
            self._set(self.ceiling)

    # -- adaptive control -----------------------------------------------------------

    def _set(self, rate: float | None) -> None:
        self.rate = rate
        self._counters.rate_limit = rate
        if rate is None:
            self.bucket = None
        elif self.bucket is None:
            self.bucket = TokenBucket(rate, clock=self._tuning.clock)
        else:
            self.bucket.rate = rate

    def _measure(self, cost: float, now: float) -> None:
        self._total += cost
        elapsed = now - self._bin_start
        if elapsed >= _BIN:
            current = self._bin_cost / elapsed
            self.measured = _SMOOTHING * current + (1 - _SMOOTHING) * self.measured
            self._bin_start = now
            self._bin_cost = 0.0
        self._bin_cost += cost

    def succeeded(self, cost: float, sent_at: float) -> None:
        """A page came back, ``cost`` RCU; climb if recovering from a throttle."""
        if not self.adaptive:
            return
        now = self._tuning.clock()
        self._measure(cost, now)
        if sent_at >= self._dropped_at:
            self._fresh_reads += 1
        if self.w_max <= 0 or now < self._next_change:
            return
        self._next_change = now + self._tuning.step
        since = now - self._dropped_at
        if self._probe_from is not None:
            target = self._probe_from * 2.0 ** (since / _PROBE_DOUBLING)
        else:
            t = since - self._k
            target = self.w_max * (1.0 + self._c * t * t * t)
        ceiling = self.ceiling
        if ceiling is None:
            if target >= _RELEASE * self.w_max:
                self.w_max = 0.0  # done: unlimited again until the next throttle
                self._regular_drops = 0
                self._set(None)
                return
        elif target >= ceiling:
            self.w_max = 0.0  # done: back at the ceiling
            self._set(ceiling)
            return
        if self.rate is None or target > self.rate:
            self._set(target)

    @property
    def dropped_at(self) -> float:
        """When the rate last dropped (on the controller's clock)."""
        return self._dropped_at

    def throttled(self, sent_at: float, *, again: bool = False) -> None:
        """A request sent at ``sent_at`` was throttled: drop, once per congestion event.

        ``again``: this page was already throttled since the last drop (a retry of it).
        It still counts as a throttle, but not twice towards a fast drop: one page whose
        partition is in debt, retried three times, is not three pages failing.
        """
        if not self.adaptive:
            return
        now = self._tuning.clock()
        dropped_at = self._dropped_at
        if sent_at < dropped_at:
            return  # sent at the old rate: part of the event that caused the last drop
        if not again:
            self._fresh_throttles += 1
        fast = now - dropped_at < self._tuning.min_interval
        if fast and not (
            self._regular_drops <= 1
            and self._fresh_throttles >= _FAST_DROP
            and self._fresh_throttles > self._fresh_reads
        ):
            # Too soon after the last drop, unless most requests since have failed in
            # the first episode: only then can the rate be far too high (read off the
            # table's burst, or a ceiling above what the table serves). Later, a rate
            # has come from a climb the table served, and most requests failing right
            # after a drop means the table is repaying the debt of that overshoot.
            return
        if not fast:
            self._regular_drops += 1
        self._fresh_throttles = self._fresh_reads = 0
        self._measure(0.0, now)
        measured = self.measured
        if measured <= 0 < self._bin_cost:  # no bin finished yet: the bin so far
            measured = self._bin_cost / max(now - self._bin_start, 1e-3)
        if measured <= 0 and self._total > 0:
            measured = self._total / max(now - self._started, 1e-3)
        basis = self.rate if self.rate is not None else math.inf
        if measured > 0:
            basis = min(basis, measured)
        floor = self._tuning.floor
        if self.ceiling is not None:
            floor = min(floor, self.ceiling)
        if basis == math.inf:  # throttled before anything was read: start from the floor
            basis = floor / self._tuning.beta
        # A rate far too high is halved (as TCP leaves slow start): fewer rounds of
        # sixteen throttled requests before it is below what the table serves.
        rate = max(floor, (_FAST_BETA if fast else self._tuning.beta) * basis)
        if not fast or self.w_max <= rate:
            self.w_max = max(basis, floor)
        self._k = ((self.w_max - rate) / (self._c * self.w_max)) ** (1 / 3)
        # A fast drop keeps the w_max its episode began with, but that figure is no
        # guide: it was read off the table's burst, and the drops that followed went
        # through the debt the burst left, when the table serves nothing at all. So the
        # rate neither knows where the table is nor aims at the old w_max (the cubic
        # would race back there); it probes, doubling every half second from the low
        # rate, and the next throttle is a regular drop that starts a cubic climb at a
        # w_max the table really served.
        self._probe_from = rate if fast else None
        self._dropped_at = now
        self._next_change = now + self._tuning.step
        self._set(rate)
        if self.bucket is not None and self.bucket.level > 0:
            # The table is in debt now: what the bucket saved at the old rate must not
            # go out as one more burst.
            self.bucket.settle(0.0, self.bucket.level)
