"""How a scan is cut into tasks for a cluster: whole segments per task, and a share of the budget.

A task of a distributed computation can fail or lose its worker at any moment, and the
scheduler then runs it again from scratch. The only unit that can be read again without
losing or repeating an item is a *whole* segment, read from its start: so a partition is a
contiguous group of whole segments, and a retried partition reads them all again.

A task scans only its own segments with the library's ordinary scan, started from a
checkpoint (``resume_from``) that says every *other* segment is already done. That needs no
second code path in the engine: it is exactly what resuming does.

The budget is split the way the EMR DynamoDB connector splits it: a task's share of
``rate_limit`` is proportional to its segments (``budget * task segments / all segments``),
so every task running at once adds up to the budget and never more.
"""

from __future__ import annotations

__all__ = ["Partition", "plan", "resume_value"]

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from . import _checkpoint


@dataclass(frozen=True)
class Partition:
    """Segments ``first`` to ``last`` (inclusive) of ``total``, read by one task.

    ``rate_limit`` is this task's share of the whole computation's budget (RCU/s), or
    ``None`` for unlimited.
    """

    index: int
    first: int
    last: int
    total: int
    rate_limit: float | None

    @property
    def segments(self) -> int:
        return self.last - self.first + 1

    def describe(self) -> str:
        if self.first == self.last:
            return f"segment {self.first} of {self.total}"
        return f"segments {self.first}-{self.last} of {self.total}"


def plan(
    *, segments: int, partitions: int, rate_limit: float | None, slots: int | None = None
) -> list[Partition]:
    """``partitions`` groups of whole segments, as equal as they can be, with their budget.

    The sizes differ by at most one segment; the first groups take the extra ones. With
    ``slots`` (at most that many tasks hold the budget at once, see ``_dask_task``), each
    task's share is ``rate_limit / slots`` instead of its segments' share.
    """
    if partitions > segments:
        raise ValueError(
            f"partitions ({partitions}) cannot exceed segments ({segments}): a partition is "
            "a group of whole segments"
        )
    size, extra = divmod(segments, partitions)
    out: list[Partition] = []
    first = 0
    for index in range(partitions):
        count = size + (1 if index < extra else 0)
        if rate_limit is None:
            share = None
        elif slots:
            share = rate_limit / slots
        else:
            share = rate_limit * count / segments
        out.append(Partition(index, first, first + count - 1, segments, share))
        first += count
    return out


def resume_value(
    partition: Partition, *, table: str, scan_params: Mapping[str, Any]
) -> dict[str, Any]:
    """A checkpoint in which every segment outside ``partition`` is already done.

    Built as ranges, not as a list of segments: a task of a million-segment scan does not
    spell out the other 999,999.
    """
    value = _checkpoint.dump(
        table=table,
        segments=partition.total,
        params=_checkpoint.fingerprint(scan_params),
        done=(),
        positions={},
    )
    done = []
    if partition.first > 0:
        done.append([0, partition.first - 1])
    if partition.last < partition.total - 1:
        done.append([partition.last + 1, partition.total - 1])
    value["done"] = done
    return value
