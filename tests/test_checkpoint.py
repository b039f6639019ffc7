"""Checkpoints are exact at item granularity: a resume re-delivers nothing, loses nothing."""

from __future__ import annotations

import json
from typing import Any

import pytest

import dynascan_async
from tests.support import tables
from tests.support.helpers import assert_same_items

pytestmark = pytest.mark.anyio


async def take(client: Any, table: str, n: int, **kwargs: Any) -> tuple[list[Any], Any]:
    """Read ``n`` items, stop (break), and return them with a JSON round trip of the state."""
    got: list[Any] = []
    async with dynascan_async.scan(client, table, **kwargs) as scan:
        async for item in scan:
            got.append(item)
            if len(got) == n:
                break
        state = scan.checkpoint()
    return got, json.loads(json.dumps(state))


@pytest.mark.parametrize("stop_after", [1, 37, 250, 599])
async def test_break_then_resume_is_exact(
    client: Any, loaded: tables.Loaded, stop_after: int
) -> None:
    options: dict[str, Any] = {"segments": 6, "concurrency": 3, "deserialize": False, "Limit": 45}
    first, state = await take(client, tables.WEBLOG, stop_after, **options)
    assert len(first) == stop_after
    async with dynascan_async.scan(client, tables.WEBLOG, resume_from=state, **options) as scan:
        rest = [item async for item in scan]
    assert_same_items(first + rest, loaded.weblog)


async def test_many_interruptions_add_up(client: Any, loaded: tables.Loaded) -> None:
    options: dict[str, Any] = {"segments": 5, "concurrency": 2, "deserialize": False, "Limit": 33}
    seen: list[Any] = []
    state = None
    for chunk in (50, 7, 120, 1, 200):
        got, state = await take(client, tables.WEBLOG, chunk, resume_from=state, **options)
        seen += got
    async with dynascan_async.scan(client, tables.WEBLOG, resume_from=state, **options) as scan:
        seen += [item async for item in scan]
    assert_same_items(seen, loaded.weblog)


async def test_binary_keys_survive_json(client: Any, loaded: tables.Loaded) -> None:
    options: dict[str, Any] = {"segments": 3, "deserialize": False, "Limit": 20}
    first, state = await take(client, tables.BINARY_KEYS, 111, **options)
    assert any(position[1] for position in state["positions"])  # a key was recorded
    rest = [
        item
        async for item in dynascan_async.scan(
            client, tables.BINARY_KEYS, resume_from=state, **options
        )
    ]
    assert_same_items(first + rest, loaded.binary_keys)


async def test_resume_with_segments_none_takes_them_from_the_checkpoint(
    client: Any, loaded: tables.Loaded
) -> None:
    first, state = await take(client, tables.WEBLOG, 100, segments=7, deserialize=False)
    async with dynascan_async.scan(
        client, tables.WEBLOG, resume_from=state, deserialize=False
    ) as scan:
        rest = [item async for item in scan]
    assert scan.stats.segments == 7
    assert_same_items(first + rest, loaded.weblog)


async def test_checkpoint_of_a_finished_scan_resumes_to_nothing(client: Any) -> None:
    async with dynascan_async.scan(client, tables.TINY, segments=3) as scan:
        assert len([item async for item in scan]) == 5
    state = scan.checkpoint()
    assert state["done"] == [[0, 2]]
    assert state["positions"] == []
    again = [item async for item in dynascan_async.scan(client, tables.TINY, resume_from=state)]
    assert again == []


async def test_checkpoint_before_any_item(client: Any, loaded: tables.Loaded) -> None:
    scan = dynascan_async.scan(client, tables.WEBLOG, segments=4, deserialize=False)
    state = scan.checkpoint()
    items = [
        item
        async for item in dynascan_async.scan(
            client, tables.WEBLOG, segments=4, deserialize=False, resume_from=state
        )
    ]
    assert_same_items(items, loaded.weblog)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"table": tables.TINY}, "table"),
        ({"segments": 5}, "segments"),
        ({"Limit": 44}, "Scan parameters"),
        ({"FilterExpression": "bytessent > :b"}, "Scan parameters"),
    ],
)
async def test_mismatched_resume_is_refused(
    client: Any, change: dict[str, Any], message: str
) -> None:
    _, state = await take(client, tables.WEBLOG, 10, segments=4, Limit=45)
    options: dict[str, Any] = {"segments": 4, "Limit": 45}
    table = change.pop("table", tables.WEBLOG)
    options.update(change)
    if "FilterExpression" in options:
        options["ExpressionAttributeValues"] = {":b": {"N": "1"}}
    with pytest.raises(dynascan_async.CheckpointError, match=message) as info:
        dynascan_async.scan(client, table, resume_from=state, **options)
    assert isinstance(info.value, ValueError)


async def test_tampered_checkpoint_is_refused(client: Any) -> None:
    _, state = await take(client, tables.WEBLOG, 10, segments=4)
    broken = dict(state, done=[[3, 9]])
    with pytest.raises(ValueError, match="done"):
        dynascan_async.scan(client, tables.WEBLOG, segments=4, resume_from=broken)


async def test_break_and_loop_again_in_async_with(client: Any, loaded: tables.Loaded) -> None:
    seen: list[Any] = []
    async with dynascan_async.scan(client, tables.WEBLOG, segments=4, deserialize=False) as scan:
        async for item in scan:
            seen.append(item)
            if len(seen) == 100:
                break
        middle = scan.checkpoint()
        seen.extend([item async for item in scan])
    assert_same_items(seen, loaded.weblog)
    assert middle != scan.checkpoint()
