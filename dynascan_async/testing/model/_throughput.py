"""Read capacity: what a read costs, and the token buckets that refuse reads over a limit.

DynamoDB limits reads in two places, and the model keeps both:

* the **table or index as a whole**: provisioned ``ReadCapacityUnits``, or an on-demand
  table's ``OnDemandThroughput.MaxReadRequestUnits`` (an on-demand table without one has no
  whole-table limit here);
* each **partition** (a slice of the key space): ``partition_rcu`` units per second, 3,000 on
  DynamoDB, in both billing modes.

A request is refused, before it reads anything, while a bucket it needs is not positive; the
page is charged what it really cost once it has been read (debt allowed), split over the
partitions its items came from. So a bucket's long-run rate is exactly its limit, whatever
the page sizes, as on DynamoDB, where a Scan is priced only after it has read. UpdateTable
changes a limit at once, keeping the balance.
"""

from __future__ import annotations

__all__ = ["READ_UNIT_BYTES", "Bucket", "Capacity", "read_units"]

import bisect
import math
from collections.abc import Sequence
from typing import Final

from ._errors import throttled
from ._keys import partition_of, segment_hashes

READ_UNIT_BYTES: Final = 4096


def read_units(size: int, consistent: bool) -> float:
    """What reading ``size`` bytes costs: 4 KB units, half price when eventually consistent,
    never less than one unit's worth per request."""
    units = max(1, math.ceil(size / READ_UNIT_BYTES))
    return units * (1.0 if consistent else 0.5)


class Bucket:
    """A token bucket in read units: refuses while the balance is not positive; charged
    after the fact, so the balance may go negative (debt paid off by refill)."""

    __slots__ = ("burst_seconds", "level", "rate", "stamp")

    def __init__(self, rate: float, burst_seconds: float, now: float) -> None:
        self.rate = rate
        self.burst_seconds = burst_seconds
        self.level = rate * burst_seconds  # a new bucket starts full
        self.stamp = now

    @property
    def burst(self) -> float:
        return self.rate * self.burst_seconds

    def _refill(self, now: float) -> None:
        self.level = min(self.burst, self.level + (now - self.stamp) * self.rate)
        self.stamp = now

    def has_credit(self, now: float) -> bool:
        self._refill(now)
        return self.level > 0

    def charge(self, units: float, now: float) -> None:
        self._refill(now)
        self.level -= units

    def set_rate(self, rate: float, now: float) -> None:
        """A new rate from now on: what was saved up stays, capped at the new burst.

        A raise forgives what the old rate left owing and brings the added capacity's own
        burst, as a new bucket starts full: DynamoDB serves at a raised capacity as soon as
        UpdateTable returns, where a debt carried over (or an empty balance refilled only
        as fast as back-to-back reads spend it) would refuse reads after the raise.
        """
        self._refill(now)
        if rate > self.rate:
            self.level = max(self.level, 0.0) + (rate - self.rate) * self.burst_seconds
        self.rate = rate
        self.level = min(self.level, self.burst)

    def __repr__(self) -> str:
        return f"<Bucket rate={self.rate:g}/s level={self.level:.1f}>"


class Capacity:
    """The read limits of one table or one index: a whole-resource bucket, if any, and one
    bucket per partition, if partitions are limited.

    ``resource`` is ``Table`` or ``Index`` and ``arn`` its ARN, for the throttling reasons;
    ``on_demand`` says which error a whole-resource refusal is (on-demand maximum:
    ``ThrottlingException``; provisioned: ``ProvisionedThroughputExceededException``).
    """

    __slots__ = ("arn", "burst_seconds", "limit", "on_demand", "partitions", "resource")

    def __init__(
        self,
        *,
        resource: str,
        arn: str,
        rcu: float | None,
        on_demand: bool,
        partitions: int,
        partition_rcu: float | None,
        burst_seconds: float,
        now: float,
    ) -> None:
        self.resource = resource
        self.arn = arn
        self.on_demand = on_demand
        self.burst_seconds = burst_seconds
        self.limit = None if rcu is None else Bucket(rcu, burst_seconds, now)
        self.partitions = (
            None
            if partition_rcu is None
            else [Bucket(partition_rcu, burst_seconds, now) for _ in range(partitions)]
        )

    def set_limit(self, rcu: float | None, *, on_demand: bool, now: float) -> None:
        """UpdateTable: a new whole-resource limit (None: none), effective at once."""
        self.on_demand = on_demand
        if rcu is None:
            self.limit = None
        elif self.limit is None:
            self.limit = Bucket(rcu, self.burst_seconds, now)
        else:
            self.limit.set_rate(rcu, now)

    def admit(self, key_hash: int, now: float) -> None:
        """Refuse a read, before it reads anything, if its resource or the partition of
        ``key_hash`` (where the read starts) is out of capacity."""
        if self.limit is not None and not self.limit.has_credit(now):
            kind = (
                "MaxOnDemandThroughputExceeded"
                if self.on_demand
                else "ProvisionedThroughputExceeded"
            )
            raise throttled(self.resource, self.arn, kind)
        if self.partitions is not None:
            partition = partition_of(key_hash, len(self.partitions))
            if not self.partitions[partition].has_credit(now):
                raise throttled(
                    self.resource,
                    self.arn,
                    "KeyRangeThroughputExceeded",
                    f" (partition {partition} is over its capacity)",
                )

    def charge(self, units: float, shares: Sequence[tuple[int, float]], now: float) -> None:
        """Charge a read: ``units`` to the resource, each ``(key_hash, units)`` share to the
        partition holding that hash."""
        if self.limit is not None:
            self.limit.charge(units, now)
        if self.partitions is not None:
            for hashed, share in shares:
                self.partitions[partition_of(hashed, len(self.partitions))].charge(share, now)

    def page_shares(
        self,
        hashes: Sequence[int],
        cum: Sequence[int],
        start: int,
        end: int,
        units: float,
        first_hash: int,
    ) -> list[tuple[int, float]]:
        """A page's cost split over the partitions its items came from, by bytes.

        ``hashes[i]`` is the key hash of the i-th item in scan order and ``cum[i]`` the size
        of the first ``i`` items; the page is items ``start`` to ``end``.
        """
        if self.partitions is None:
            return []
        read = cum[end] - cum[start]
        if start == end or read == 0:
            return [(first_hash, units)]
        count = len(self.partitions)
        shares = []
        first = partition_of(hashes[start], count)
        last = partition_of(hashes[end - 1], count)
        for partition in range(first, last + 1):
            low_hash, high_hash = segment_hashes(partition, count)  # the same slicing
            low = bisect.bisect_left(hashes, low_hash, start, end)
            high = bisect.bisect_left(hashes, high_hash, start, end)
            if high > low:
                shares.append((hashes[low], units * (cum[high] - cum[low]) / read))
        return shares

    def __repr__(self) -> str:
        return f"<Capacity {self.arn} limit={self.limit!r} partitions={self.partitions!r}>"
