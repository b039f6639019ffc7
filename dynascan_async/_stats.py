"""Counters of a running scan, and the frozen snapshot users read.

The workers bump plain integer attributes on one mutable object (cheap on the hot
path, and safe because everything runs on one event loop); ``ScanStats`` is the
immutable value handed out, so a caller can keep one and compare it with a later one.
"""

from __future__ import annotations

__all__ = ["Counters", "ScanStats"]

import time
from dataclasses import dataclass


@dataclass(frozen=True)
class ScanStats:
    """A snapshot of a scan's progress.

    ``items`` counts what the consumer has received; ``count`` and ``scanned`` are
    DynamoDB's own ``Count`` and ``ScannedCount`` summed over the pages read (with a
    filter, ``scanned`` exceeds ``count``; with ``Select="COUNT"`` no item is yielded and
    ``count`` is the answer). ``retries`` includes attempts botocore made inside a call.
    ``rate_limit`` is the RCU per second the scan holds itself to right now: the
    ``rate_limit`` it was given (a share worked out from DescribeTable), lower while it
    recovers from throttling, ``None`` while unlimited.
    """

    items: int
    count: int
    scanned: int
    pages: int
    consumed_capacity: float
    retries: int
    throttles: int
    elapsed: float
    items_per_second: float
    segments: int
    segments_done: int
    rate_limit: float | None = None

    def __str__(self) -> str:
        return (
            f"{self.items:,} items ({self.scanned:,} scanned) in {self.pages:,} pages, "
            f"{self.consumed_capacity:,.1f} RCU, {self.elapsed:.2f} s, "
            f"{self.items_per_second:,.0f} items/s, segments {self.segments_done}/{self.segments}, "
            f"{self.retries} retries ({self.throttles} throttled)"
            + ("" if self.rate_limit is None else f", rate {self.rate_limit:,.1f} RCU/s")
        )


class Counters:
    __slots__ = (
        "consumed_capacity",
        "count",
        "finished_at",
        "items",
        "pages",
        "rate_limit",
        "retries",
        "scanned",
        "segments",
        "segments_done",
        "started_at",
        "throttles",
    )

    def __init__(self, segments: int, segments_done: int) -> None:
        self.items = 0
        self.count = 0
        self.scanned = 0
        self.pages = 0
        self.consumed_capacity = 0.0
        self.retries = 0
        self.throttles = 0
        self.rate_limit: float | None = None
        self.segments = segments
        self.segments_done = segments_done
        self.started_at: float | None = None
        self.finished_at: float | None = None

    def start(self) -> None:
        if self.started_at is None:
            self.started_at = time.perf_counter()

    def finish(self) -> None:
        if self.started_at is not None and self.finished_at is None:
            self.finished_at = time.perf_counter()

    def snapshot(self, items: int) -> ScanStats:
        if self.started_at is None:
            elapsed = 0.0
        else:
            end = self.finished_at if self.finished_at is not None else time.perf_counter()
            elapsed = end - self.started_at
        return ScanStats(
            items=items,
            count=self.count,
            scanned=self.scanned,
            pages=self.pages,
            consumed_capacity=self.consumed_capacity,
            retries=self.retries,
            throttles=self.throttles,
            elapsed=elapsed,
            items_per_second=items / elapsed if elapsed > 0 else 0.0,
            segments=self.segments,
            segments_done=self.segments_done,
            rate_limit=self.rate_limit,
        )
