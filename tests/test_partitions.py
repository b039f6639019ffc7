"""Cutting a scan into tasks of whole segments, and each task's share of the budget.

No Dask here: this is the plan a cluster's tasks follow, checked on its own, and the one
mechanism a task uses to read only its segments (a checkpoint that marks the others done)
checked against a real server.
"""

from __future__ import annotations

from typing import Any

import pytest

import dynascan_async
from dynascan_async._partitions import plan, resume_value
from tests.support import tables
from tests.support.helpers import assert_same_items


@pytest.mark.parametrize(("segments", "partitions"), [(1, 1), (8, 3), (64, 64), (1000, 7)])
def test_groups_cover_every_segment_once_and_split_the_budget(
    segments: int, partitions: int
) -> None:
    groups = plan(segments=segments, partitions=partitions, rate_limit=100.0)
    assert len(groups) == partitions
    covered = [s for g in groups for s in range(g.first, g.last + 1)]
    assert covered == list(range(segments))
    sizes = {g.segments for g in groups}
    assert max(sizes) - min(sizes) <= 1
    # The EMR connector's rule: budget * task segments / all segments; all at once = budget.
    for g in groups:
        assert g.rate_limit == pytest.approx(100.0 * g.segments / segments)
    assert sum(g.rate_limit or 0 for g in groups) == pytest.approx(100.0)


def test_no_budget_and_too_many_partitions() -> None:
    assert all(g.rate_limit is None for g in plan(segments=4, partitions=2, rate_limit=None))
    with pytest.raises(ValueError, match="cannot exceed segments"):
        plan(segments=4, partitions=5, rate_limit=None)


def test_resume_value_is_two_ranges_whatever_the_segments() -> None:
    (_, middle, _) = plan(segments=1_000_000, partitions=3, rate_limit=None)
    value = resume_value(middle, table="t", scan_params={})
    assert value["done"] == [[0, middle.first - 1], [middle.last + 1, 999_999]]
    assert value["positions"] == []


@pytest.mark.anyio
async def test_the_tasks_of_a_plan_read_every_item_once(client: Any, loaded: tables.Loaded) -> None:
    params: dict[str, Any] = {"Limit": 40}
    got: list[Any] = []
    for group in plan(segments=7, partitions=3, rate_limit=None):
        resume = resume_value(group, table=tables.WEBLOG, scan_params=params)
        async with dynascan_async.scan(
            client, tables.WEBLOG, resume_from=resume, deserialize=False, **params
        ) as scan:
            part = [item async for item in scan]
        # The other groups' segments count as done from the start.
        assert scan.stats.segments_done == 7
        got += part
    assert_same_items(got, loaded.weblog)
