"""Exports through the library API, against the moto server: formats, folder rules, resume.

The kill, signal and full-disk tests run the command in subprocesses
(tests/test_export_cli.py); these pin down the protocol itself.
"""

from __future__ import annotations

import contextlib
import gzip
import os
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from dynascan_async import arrow, export
from dynascan_async._decode import decode_items
from dynascan_async._export import _layout
from tests.support import tables
from tests.support.arrow_help import assert_same_values
from tests.support.exports import (
    as_cli_json,
    ddb_json_items,
    jsonl_items,
    raw_as_json,
    visible,
)
from tests.support.faultproxy import FaultProxy
from tests.support.helpers import assert_same_items

pytestmark = pytest.mark.anyio


class Stop(Exception):
    """Raised from on_progress to interrupt an export at a chosen point."""


def stop_after(items: int) -> Any:
    def on_progress(progress: export.ExportProgress) -> None:
        if progress.items >= items:
            raise Stop

    return on_progress


async def test_jsonl_parts_are_the_lines_of_dynascan_scan(
    client: Any, tmp_path: Path, loaded: tables.Loaded
) -> None:
    out = tmp_path / "out"
    manifest = await export.export_table(
        client, tables.WEBLOG, out, format="jsonl", segments=4, rows_per_part=250, Limit=100
    )
    assert_same_items(jsonl_items(out), as_cli_json(loaded.weblog))
    assert manifest.items == len(loaded.weblog) == 600
    assert [p.items for p in manifest.parts] == [250, 250, 100]
    assert visible(out) == ["part-000000.jsonl", "part-000001.jsonl", "part-000002.jsonl"]
    assert sorted(p.name for p in out.iterdir()) == ["_manifest.json", *visible(out)]
    on_disk = export.read_manifest(out)
    assert on_disk is not None
    assert on_disk.parts == manifest.parts
    assert on_disk.items == 600
    assert on_disk.bytes == sum(p.stat().st_size for p in out.glob("*.jsonl"))
    assert manifest.stats is not None
    assert manifest.stats.items == 600


async def test_ddb_json_is_dynamodbs_export_format(
    client: Any, tmp_path: Path, loaded: tables.Loaded
) -> None:
    manifest = await export.export_table(
        client, tables.TYPES, tmp_path, format="ddb-json", segments=3, rows_per_part=25
    )
    got = ddb_json_items(tmp_path)
    assert_same_items(got, [raw_as_json(item) for item in loaded.types])
    assert [p.items for p in manifest.parts] == [25, 25, 10]
    assert all(p.name.endswith(".json.gz") for p in manifest.parts)


async def test_a_finished_export_is_not_overwritten_unless_asked(
    client: Any, tmp_path: Path, loaded: tables.Loaded
) -> None:
    await export.export_table(client, tables.TINY, tmp_path, format="jsonl", rows_per_part=2)
    first = sorted(os.listdir(tmp_path))
    with pytest.raises(export.ExportExistsError, match="finished export of table 'tiny'"):
        await export.export_table(client, tables.TINY, tmp_path, format="jsonl")
    assert sorted(os.listdir(tmp_path)) == first
    manifest = await export.export_table(
        client, tables.TINY, tmp_path, format="jsonl", rows_per_part=10, overwrite=True
    )
    assert [p.items for p in manifest.parts] == [5]
    assert visible(tmp_path) == ["part-000000.jsonl"]
    assert_same_items(jsonl_items(tmp_path), as_cli_json(loaded.tiny))


async def test_interrupted_export_resumes_exactly_and_refuses_another_command(
    client: Any, tmp_path: Path, loaded: tables.Loaded
) -> None:
    command: dict[str, Any] = {"format": "jsonl", "segments": 4, "rows_per_part": 40, "Limit": 25}
    with pytest.raises(Stop):
        await export.export_table(
            client,
            tables.WEBLOG,
            tmp_path,
            on_progress=stop_after(100),
            progress_interval=0,
            **command,
        )
    state = _layout.read_state(tmp_path)
    assert state is not None
    # The part being written when the export stopped was committed with it.
    assert state.items == 100
    assert not (tmp_path / "_manifest.json").exists()
    for other in ({"format": "ddb-json"}, {"FilterExpression": "bytessent > :z"}):
        extra: dict[str, Any] = (
            {"ExpressionAttributeValues": {":z": {"N": "0"}}} if "FilterExpression" in other else {}
        )
        with pytest.raises(export.ExportMismatchError, match="unfinished export"):
            await export.export_table(
                client, tables.WEBLOG, tmp_path, **{**command, **other, **extra}
            )
    with pytest.raises(export.ExportMismatchError, match="table 'logfile_scan'"):
        await export.export_table(client, tables.TINY, tmp_path, format="jsonl")
    manifest = await export.export_table(client, tables.WEBLOG, tmp_path, **command)
    assert_same_items(jsonl_items(tmp_path), as_cli_json(loaded.weblog))
    assert manifest.items == 600
    assert not (tmp_path / "_export_state.json").exists()


async def test_resume_removes_what_a_crash_between_rename_and_state_left(
    client: Any, tmp_path: Path, loaded: tables.Loaded
) -> None:
    command: dict[str, Any] = {"format": "ddb-json", "segments": 2, "rows_per_part": 50}
    with pytest.raises(Stop):
        await export.export_table(
            client,
            tables.WEBLOG,
            tmp_path,
            on_progress=stop_after(120),
            progress_interval=0,
            **command,
        )
    state = _layout.read_state(tmp_path)
    assert state is not None
    committed = {p.name for p in state.parts}
    # A part renamed into place whose state was never written (it holds items the
    # checkpoint does not cover; numbered past the next part, as an old export's part
    # is after an interrupted overwrite), and temporary files of a killed writer.
    orphan = tmp_path / _layout.part_name("ddb-json", state.next_part + 7)
    orphan.write_bytes((tmp_path / min(committed)).read_bytes())
    (tmp_path / f".{orphan.name}.x1y2z3.tmp").write_bytes(b"half")
    (tmp_path / "._export_state.json.abc.tmp").write_bytes(b"{")
    await export.export_table(client, tables.WEBLOG, tmp_path, **command)
    assert_same_items(ddb_json_items(tmp_path), [raw_as_json(i) for i in loaded.weblog])
    assert [name for name in os.listdir(tmp_path) if name.startswith(".")] == []


async def test_folder_with_other_files_of_the_format_is_refused(
    client: Any, tmp_path: Path
) -> None:
    (tmp_path / "mine.jsonl").write_text("{}\n")
    with pytest.raises(export.ExportExistsError, match=r"mine\.jsonl and no dynascan export"):
        await export.export_table(client, tables.TINY, tmp_path, format="jsonl")
    assert sorted(os.listdir(tmp_path)) == ["mine.jsonl"]


async def test_two_exports_into_one_folder_at_once_are_refused(client: Any, tmp_path: Path) -> None:
    fd = _layout.acquire(tmp_path)
    try:
        with pytest.raises(export.ExportLockedError, match="another export is writing"):
            await export.export_table(client, tables.TINY, tmp_path, format="jsonl")
    finally:
        _layout.release(fd)
    manifest = await export.export_table(client, tables.TINY, tmp_path, format="jsonl")
    assert manifest.items == 5


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"format": "csv"}, ValueError, "format must be one of"),
        ({"rows_per_part": 0}, ValueError, "rows_per_part must be >= 1"),
        ({"row_group_size": "9"}, TypeError, "row_group_size must be an int"),
        ({"segments": 0}, ValueError, "segments"),
        ({"TableName": "x"}, TypeError, "TableName"),
    ],
)
async def test_bad_options_fail_before_the_folder_is_touched(
    client: Any, tmp_path: Path, kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    out = tmp_path / "never"
    with pytest.raises(error, match=match):
        await export.export_table(client, tables.TINY, out, **{"format": "jsonl", **kwargs})
    assert not out.exists()


def test_a_failed_part_leaves_nothing(tmp_path: Path) -> None:
    part = export.open_part("jsonl", tmp_path, "part-000000.jsonl")
    part.add({"a": Decimal(1)})
    with pytest.raises(TypeError, match=r"not JSON serializable|cannot write"):
        part.add({"b": object()})
    part.abort()
    assert os.listdir(tmp_path) == []
    part = export.open_part("ddb-json", tmp_path, "part-x.json.gz")
    part.add({"a": {"B": b"\x00\xff"}, "n": {"N": "1E-130"}})
    info = part.commit()
    assert info == export.PartInfo(
        "part-x.json.gz", 1, (tmp_path / "part-x.json.gz").stat().st_size
    )
    with gzip.open(tmp_path / "part-x.json.gz", "rb") as f:
        assert f.read() == b'{"Item":{"a":{"B":"AP8="},"n":{"N":"1E-130"}}}\n'
    assert os.listdir(tmp_path) == ["part-x.json.gz"]


async def test_parquet_is_read_as_one_table_by_pyarrow_duckdb_polars_and_pandas(
    client: Any, tmp_path: Path, loaded: tables.Loaded
) -> None:
    import duckdb
    import pandas
    import polars
    import pyarrow.parquet as pq

    manifest = await export.export_table(
        client, tables.WEBLOG, tmp_path, segments=4, rows_per_part=200, row_group_size=64, Limit=50
    )
    assert manifest.format == "parquet"
    assert sum(p.items for p in manifest.parts) == 600
    assert all(p.items >= 200 for p in manifest.parts[:-1])
    assert visible(tmp_path) == [p.name for p in manifest.parts]
    assert all(name.endswith(".parquet") for name in visible(tmp_path))

    expected_sum = sum(int(item["bytessent"]["N"]) for item in loaded.weblog)
    table = pq.read_table(tmp_path)
    assert table.num_rows == 600
    assert_same_values(arrow.to_items(table), decode_items(loaded.weblog))
    assert table.schema.field("bytessent").type == "int64"

    glob = str(tmp_path / "*.parquet")
    with duckdb.connect() as con:
        answer = con.execute(f"SELECT sum(bytessent), count(*) FROM read_parquet('{glob}')")
        assert answer.fetchall() == [(expected_sum, 600)]
    frame = polars.read_parquet(glob)
    assert frame.height == 600
    assert frame["bytessent"].sum() == expected_sum
    pandas_frame = pandas.read_parquet(tmp_path)
    assert len(pandas_frame) == 600
    assert int(pandas_frame["bytessent"].sum()) == expected_sum

    for part in manifest.parts:
        meta = pq.ParquetFile(tmp_path / part.name).metadata
        assert meta.num_rows == part.items
        groups = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
        assert groups[:-1] == [64] * (len(groups) - 1)
        assert meta.row_group(0).column(0).compression == "ZSTD"


async def test_parquet_keeps_every_type_and_one_schema_across_resumed_runs(
    client: Any, tmp_path: Path, loaded: tables.Loaded
) -> None:
    import pyarrow.parquet as pq

    command: dict[str, Any] = {"segments": 3, "rows_per_part": 10, "Limit": 7}
    with pytest.raises(Stop):
        await export.export_table(
            client,
            tables.TYPES,
            tmp_path,
            on_progress=stop_after(20),
            progress_interval=0,
            **command,
        )
    state = _layout.read_state(tmp_path)
    assert state is not None
    assert state.parts
    assert state.schema is not None
    await export.export_table(client, tables.TYPES, tmp_path, **command)
    schemas = {pq.read_schema(tmp_path / name) for name in visible(tmp_path)}
    assert len(schemas) == 1
    table = pq.read_table(tmp_path)
    assert_same_values(arrow.to_items(table), decode_items(loaded.types))


async def test_a_dynamodb_error_keeps_what_was_read_and_the_same_call_continues(
    proxied_client: Any, faults: FaultProxy, tmp_path: Path, loaded: tables.Loaded
) -> None:
    from botocore.exceptions import ClientError

    command: dict[str, Any] = {"format": "jsonl", "segments": 4, "rows_per_part": 1000, "Limit": 20}
    faults.fail_after = 8
    with pytest.raises(ClientError) as raised:
        await export.export_table(proxied_client, tables.WEBLOG, tmp_path, **command)
    assert raised.value.response["Error"]["Code"] == "AccessDeniedException"
    state = _layout.read_state(tmp_path)
    assert state is not None
    kept = jsonl_items(tmp_path)
    # The part being written when the error came was committed with the checkpoint.
    assert [p.items for p in state.parts] == [len(kept)]
    assert 0 < len(kept) < 600
    faults.fail_after = None
    faults.throttle_rate = 0.2
    faults.error_rate = 0.1
    await export.export_table(proxied_client, tables.WEBLOG, tmp_path, **command)
    assert faults.injected["throttle"] + faults.injected["error"] > 0
    assert_same_items(jsonl_items(tmp_path), as_cli_json(loaded.weblog))


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
async def test_an_export_of_nothing_is_a_manifest_of_no_parts(
    client: Any, tmp_path: Path, fmt: str
) -> None:
    manifest = await export.export_table(
        client,
        tables.TINY,
        tmp_path,
        format=fmt,
        FilterExpression="v > :x",
        ExpressionAttributeValues={":x": {"N": "100"}},
    )
    assert (manifest.items, manifest.parts) == (0, ())
    assert os.listdir(tmp_path) == ["_manifest.json"]


def only_segments(table: str, total: int, mine: set[int], **scan_params: Any) -> Any:
    """A checkpoint in which every segment but ``mine`` is done: a partition's share."""
    from dynascan_async import _checkpoint

    return _checkpoint.dump(
        table=table,
        segments=total,
        params=_checkpoint.fingerprint(scan_params),
        done=set(range(total)) - mine,
        positions={},
    )


async def test_write_part_writes_one_partition_whole_and_a_retry_replaces_it(
    client: Any, proxied_client: Any, faults: FaultProxy, tmp_path: Path, loaded: tables.Loaded
) -> None:
    import pyarrow.parquet as pq

    schema = arrow.infer_schema(loaded.weblog[:50])
    shares = [{0, 1}, {2}, {3}]
    parts = []
    for n, mine in enumerate(shares):
        resume = only_segments(tables.WEBLOG, 4, mine, Limit=40)
        part = await export.write_part(
            client,
            tables.WEBLOG,
            tmp_path,
            f"part-p{n:05d}.parquet",
            segments=4,
            resume_from=resume,
            schema=schema,
            Limit=40,
        )
        assert part is not None
        parts.append(part)
    # The same partition again (a retried task): its part is replaced, not added.
    again = await export.write_part(
        client,
        tables.WEBLOG,
        tmp_path,
        "part-p00001.parquet",
        segments=4,
        resume_from=only_segments(tables.WEBLOG, 4, {2}, Limit=40),
        schema=schema,
        Limit=40,
    )
    assert again is not None
    assert again.items == parts[1].items
    # A task that fails half-way leaves nothing of its own behind.
    faults.fail_after = 3
    with pytest.raises(Exception, match="AccessDenied"):
        await export.write_part(
            proxied_client,
            tables.WEBLOG,
            tmp_path,
            "part-p00009.parquet",
            segments=4,
            schema=schema,
            Limit=20,
        )
    assert visible(tmp_path) == [p.name for p in parts]
    assert [n for n in os.listdir(tmp_path) if n.startswith(".")] == []
    table = pq.read_table(tmp_path)
    assert_same_values(arrow.to_items(table), decode_items(loaded.weblog))
    assert sum(p.items for p in parts) == 600


def test_the_public_names_are_the_modules_all() -> None:
    public = {name for name in dir(export) if not name.startswith("_")}
    public -= {"annotations", "os", "Path"}
    assert public == set(export.__all__)


async def test_an_output_that_is_a_file_is_refused(client: Any, tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("mine")
    with pytest.raises(export.ExportError, match="is not a folder"):
        await export.export_table(client, tables.TINY, target, format="jsonl")
    assert target.read_text() == "mine"


async def test_overwrite_continues_an_unfinished_export_of_the_same_command(
    client: Any, tmp_path: Path, loaded: tables.Loaded
) -> None:
    command: dict[str, Any] = {
        "format": "jsonl",
        "segments": 2,
        "rows_per_part": 50,
        "overwrite": True,
    }
    with pytest.raises(Stop):
        await export.export_table(
            client,
            tables.WEBLOG,
            tmp_path,
            on_progress=stop_after(120),
            progress_interval=0,
            **command,
        )
    state = _layout.read_state(tmp_path)
    assert state is not None
    manifest = await export.export_table(client, tables.WEBLOG, tmp_path, **command)
    assert manifest.stats is not None
    assert manifest.stats.items == 600 - state.items  # continued, not started over
    assert_same_items(jsonl_items(tmp_path), as_cli_json(loaded.weblog))


async def test_a_damaged_state_is_refused_unless_overwritten(
    client: Any, tmp_path: Path, loaded: tables.Loaded
) -> None:
    with pytest.raises(Stop):
        await export.export_table(
            client,
            tables.TINY,
            tmp_path,
            format="jsonl",
            rows_per_part=2,
            on_progress=stop_after(3),
            progress_interval=0,
        )
    (tmp_path / "_export_state.json").write_text('{"dynascan_export_state": 1}')
    with pytest.raises(export.ExportError, match="is damaged"):
        await export.export_table(client, tables.TINY, tmp_path, format="jsonl")
    manifest = await export.export_table(
        client, tables.TINY, tmp_path, format="jsonl", rows_per_part=10, overwrite=True
    )
    assert manifest.items == 5
    assert visible(tmp_path) == ["part-000000.jsonl"]
    assert_same_items(jsonl_items(tmp_path), as_cli_json(loaded.tiny))


async def test_a_resumed_parquet_export_keeps_the_first_runs_schema(
    client: Any, sync_client: Any, tmp_path: Path
) -> None:
    """Every item has an attribute of its own, so each page would infer another schema:
    the resumed run must write its parts with the schema of the first run's parts."""
    name = "export_sparse"
    with contextlib.suppress(sync_client.exceptions.ResourceInUseException):
        sync_client.create_table(
            TableName=name,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        for n in range(30):
            sync_client.put_item(
                TableName=name, Item={"pk": {"S": f"k{n:02d}"}, f"a{n}": {"N": str(n)}}
            )
    reference = tables.reference_scan(sync_client, name)
    command: dict[str, Any] = {"segments": 1, "rows_per_part": 5, "Limit": 5}
    with pytest.raises(Stop):
        await export.export_table(
            client, name, tmp_path, on_progress=stop_after(10), progress_interval=0, **command
        )
    await export.export_table(client, name, tmp_path, **command)
    import pyarrow.parquet as pq

    assert len({pq.read_schema(tmp_path / part) for part in visible(tmp_path)}) == 1
    table = pq.read_table(tmp_path)
    assert_same_values(arrow.to_items(table), decode_items(reference))
