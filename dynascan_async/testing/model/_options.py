"""The model server's knobs beyond DynamoDB's API: latency, partitions, their capacity."""

from __future__ import annotations

__all__ = ["ModelOptions"]

import math
from dataclasses import dataclass

from ._keys import MAX_SEGMENTS


@dataclass(frozen=True, slots=True)
class ModelOptions:
    """How the model server behaves beyond DynamoDB's API rules.

    Attributes:
        latency: seconds added to every Scan answer, slept without blocking (a round trip).
        partitions: how many partitions each table and index is cut into, by key hash.
        partition_rcu: read capacity units per second each partition serves (DynamoDB:
            3,000), in both billing modes; a read starting in a partition that is over it is
            refused with ProvisionedThroughputExceededException (reason
            ``KeyRangeThroughputExceeded``). None: no partition limit.
        burst_seconds: how many seconds of capacity a bucket (a table's or index's
            provisioned capacity or on-demand maximum, or a partition) can save up; also its
            starting balance.
    """

    latency: float = 0.0
    partitions: int = 1
    partition_rcu: float | None = None
    burst_seconds: float = 1.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.latency) and self.latency >= 0):
            raise ValueError(f"latency must be a finite number >= 0, not {self.latency!r}")
        if isinstance(self.partitions, bool) or not isinstance(self.partitions, int):
            raise TypeError(f"partitions must be an int, not {self.partitions!r}")
        if not 1 <= self.partitions <= MAX_SEGMENTS:
            raise ValueError(f"partitions must be 1 to {MAX_SEGMENTS}, not {self.partitions}")
        if self.partition_rcu is not None and not (
            math.isfinite(self.partition_rcu) and self.partition_rcu > 0
        ):
            raise ValueError(f"partition_rcu must be > 0 or None, not {self.partition_rcu!r}")
        if not (math.isfinite(self.burst_seconds) and self.burst_seconds > 0):
            raise ValueError(f"burst_seconds must be > 0, not {self.burst_seconds!r}")

    def to_args(self) -> list[str]:
        """The command-line flags of ``python -m dynascan_async.testing.model`` for these."""
        args = [
            f"--latency={self.latency!r}",
            f"--partitions={self.partitions}",
            f"--burst-seconds={self.burst_seconds!r}",
        ]
        if self.partition_rcu is not None:
            args.append(f"--partition-rcu={self.partition_rcu!r}")
        return args
