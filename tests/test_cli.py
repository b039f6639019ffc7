"""The ``dynascan`` command, run as a real subprocess against the moto server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from dynascan_async._decode import decode_items
from dynascan_async._encode import dumps_item
from tests.support import tables
from tests.support.faultproxy import FaultProxy
from tests.support.helpers import assert_same_items

ENV = {
    **os.environ,
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "PYTHONWARNINGS": "error",
}


def dynascan(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dynascan_async", *args],
        capture_output=True,
        text=True,
        env=env or ENV,
        timeout=120,
        check=False,
    )


def lines(stdout: str) -> list[Any]:
    return [
        json.loads(line, parse_float=Decimal, parse_int=Decimal) for line in stdout.splitlines()
    ]


def as_cli_json(raw_items: list[dict[str, Any]]) -> list[Any]:
    """What the command should print for these raw items, read back the same way."""
    # decode_items is proven equal to boto3's TypeDeserializer in test_decode.py, and is
    # exact on the numbers TypeDeserializer raises on (the all_types table has some).
    return lines("".join(dumps_item(item) for item in decode_items(raw_items)))


@pytest.mark.parametrize("transport", ["auto", "botocore", "direct"])
def test_output_equals_a_boto3_scan(
    moto_server: Any, loaded: tables.Loaded, transport: str
) -> None:
    result = dynascan(
        "scan",
        "--transport",
        transport,
        "--table-name",
        tables.WEBLOG,
        "--endpoint-url",
        moto_server.endpoint_url,
        "--total-segments",
        "4",
        "--concurrency",
        "2",
        "--page-size",
        "100",
    )
    assert result.returncode == 0, result.stderr
    assert_same_items(lines(result.stdout), as_cli_json(loaded.weblog))
    summary = result.stderr.strip().splitlines()[-1]
    assert summary.startswith(f"dynascan: {len(loaded.weblog):,} items")
    assert "items/s" in summary


def test_raw_output_and_lossless_numbers_and_binary(
    moto_server: Any, loaded: tables.Loaded
) -> None:
    raw = dynascan(
        "scan",
        "--table-name",
        tables.TYPES,
        "--endpoint-url",
        moto_server.endpoint_url,
        "--raw",
    )
    assert raw.returncode == 0, raw.stderr
    assert_same_items(lines(raw.stdout), lines("".join(dumps_item(i) for i in loaded.types)))
    plain = dynascan(
        "scan", "--table-name", tables.TYPES, "--endpoint-url", moto_server.endpoint_url
    )
    assert plain.returncode == 0, plain.stderr
    got = lines(plain.stdout)
    assert_same_items(got, as_cli_json(loaded.types))
    # 40 digits, and 1E-130: exact, not rounded through float.
    assert all(item["n_wide"] == Decimal("1" + "0" * 39) for item in got)
    assert all(str(item["n_tiny"]) == "1E-130" for item in got)


def test_aws_cli_flag_forms(
    moto_server: Any, sync_client: Any, tmp_path: Path, loaded: tables.Loaded
) -> None:
    names = tmp_path / "names.json"
    names.write_text('{"#b": "bytessent"}')
    result = dynascan(
        "scan",
        "--table-name",
        tables.WEBLOG,
        "--endpoint-url",
        moto_server.endpoint_url,
        "--region",
        "us-east-1",
        "--filter-expression",
        "responsecode <> :f",
        "--expression-attribute-values",
        '{":f":{"N":"200"}}',
        "--projection-expression",
        "#b, requestid",
        "--expression-attribute-names",
        f"file://{names}",
        "--page-size",
        "40",
        "--total-segments",
        "3",
        "--consistent-read",
    )
    assert result.returncode == 0, result.stderr
    expected = tables.reference_scan(
        sync_client,
        tables.WEBLOG,
        FilterExpression="responsecode <> :f",
        ExpressionAttributeValues={":f": {"N": "200"}},
        ProjectionExpression="#b, requestid",
        ExpressionAttributeNames={"#b": "bytessent"},
    )
    assert_same_items(lines(result.stdout), as_cli_json(expected))


def test_index_scan(moto_server: Any, sync_client: Any) -> None:
    result = dynascan(
        "scan",
        "--table-name",
        tables.WEBLOG,
        "--index-name",
        tables.WEBLOG_INDEX,
        "--endpoint-url",
        moto_server.endpoint_url,
    )
    assert result.returncode == 0, result.stderr
    expected = tables.reference_scan(sync_client, tables.WEBLOG, IndexName=tables.WEBLOG_INDEX)
    assert_same_items(lines(result.stdout), as_cli_json(expected))


def test_count_prints_only_the_totals(moto_server: Any, loaded: tables.Loaded) -> None:
    result = dynascan(
        "scan",
        "--table-name",
        tables.WEBLOG,
        "--endpoint-url",
        moto_server.endpoint_url,
        "--count",
        "--filter-expression",
        "responsecode = :c",
        "--expression-attribute-values",
        '{":c": {"N": "404"}}',
    )
    assert result.returncode == 0, result.stderr
    expected = sum(1 for i in loaded.weblog if i["responsecode"]["N"] == "404")
    assert json.loads(result.stdout) == {"Count": expected, "ScannedCount": len(loaded.weblog)}


def test_interrupt_then_resume_gives_every_item_once(
    faults: FaultProxy, tmp_path: Path, loaded: tables.Loaded
) -> None:
    faults.latency = 0.05
    state = tmp_path / "state.json"
    command = [
        sys.executable,
        "-m",
        "dynascan_async",
        "scan",
        "--table-name",
        tables.WEBLOG,
        "--endpoint-url",
        faults.url,
        "--page-size",
        "10",
        "--total-segments",
        "4",
        "--concurrency",
        "2",
        "--checkpoint",
        str(state),
    ]
    first_out = tmp_path / "first.jsonl"
    with first_out.open("w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.PIPE, env=ENV, text=True)
        deadline = time.monotonic() + 60
        while first_out.stat().st_size < 2_000 and time.monotonic() < deadline:
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "interrupted" in stderr
    assert "Traceback" not in stderr
    assert state.exists()
    first = lines(first_out.read_text())
    assert 0 < len(first) < len(loaded.weblog)

    faults.latency = 0.0
    second = subprocess.run(
        command, capture_output=True, text=True, env=ENV, timeout=120, check=False
    )
    assert second.returncode == 0, second.stderr
    assert not state.exists()  # finished: the next run starts afresh
    assert_same_items(first + lines(second.stdout), as_cli_json(loaded.weblog))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["scan"], "--table-name"),
        (["scan", "--table-name", "t", "--bogus"], "unrecognized arguments"),
        (["scan", "--table-name", "t", "--expression-attribute-values", "{nope"], "JSON"),
        (["scan", "--table-name", "t", "--total-segments", "0"], ">= 1"),
        (["scan", "--table-name", "t", "--page-size", "x"], "whole number"),
        (["scan", "--table-name", "t", "--rate-limit", "-5"], "> 0"),
        (["scan", "--table-name", "t", "--rate-limit", "150%"], "share of the capacity"),
        (["scan", "--table-name", "t", "--rate-limit", "half%"], "share of the capacity"),
        (["scan", "--table-name", "t", "--transport", "fast"], "invalid choice"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_flags_exit_2_with_one_line(args: list[str], message: str) -> None:
    result = dynascan(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_missing_table(moto_server: Any) -> None:
    result = dynascan(
        "scan",
        "--table-name",
        "no_such_table",
        "--endpoint-url",
        moto_server.endpoint_url,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == result.stderr.strip().splitlines()[0]
    assert "'no_such_table' not found" in result.stderr


def test_missing_credentials(moto_server: Any, tmp_path: Path) -> None:
    env = {k: v for k, v in ENV.items() if not k.startswith("AWS_")}
    env |= {
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    result = dynascan(
        "scan", "--table-name", tables.TINY, "--endpoint-url", moto_server.endpoint_url, env=env
    )
    assert result.returncode == 1
    assert "no AWS credentials" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_mismatched_checkpoint_is_refused(moto_server: Any, tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    state.write_text(
        json.dumps(
            {
                "dynascan_checkpoint": 1,
                "table": "other",
                "segments": 2,
                "params": "x",
                "done": [],
                "positions": [],
            }
        )
    )
    result = dynascan(
        "scan",
        "--table-name",
        tables.TINY,
        "--endpoint-url",
        moto_server.endpoint_url,
        "--checkpoint",
        str(state),
    )
    assert result.returncode == 2
    assert "does not fit" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert state.exists()  # never overwritten by a refused run


def test_debug_shows_the_traceback(moto_server: Any) -> None:
    result = dynascan(
        "--debug",
        "scan",
        "--table-name",
        "no_such_table",
        "--endpoint-url",
        moto_server.endpoint_url,
    )
    assert result.returncode == 1
    assert "Traceback" in result.stderr
    assert "ResourceNotFoundException" in result.stderr


@pytest.mark.parametrize("server", ["model", "moto"])
def test_demo_runs_at_a_small_size(server: str) -> None:
    result = dynascan("demo", "--server", server, "--rows", "1500", "--segments", "4")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "sequential scan (1 segment)" in out
    assert "parallel scan (4 segments)" in out
    assert "parallel is" in out
    assert "(matches the loaded data" in out
    assert ("round trip" in out) == (server == "model")


def test_quiet_when_piped_and_progress_on_request(moto_server: Any, loaded: tables.Loaded) -> None:
    common = ["scan", "--table-name", tables.WEBLOG, "--endpoint-url", moto_server.endpoint_url]
    piped = dynascan(*common)
    assert piped.returncode == 0, piped.stderr
    assert len(piped.stderr.splitlines()) == 1  # only the summary
    assert "\x1b[K" not in piped.stderr
    shown = dynascan(*common, "--progress", "always")
    assert shown.returncode == 0, shown.stderr
    # text mode turns the carriage returns into newlines: one line per redraw.
    drawn = [line for line in shown.stderr.splitlines() if line.endswith("\x1b[K")]
    assert drawn
    assert "items/s" in drawn[0]
    assert "segments" in drawn[0]
    assert f"scanned of ~{tables.WEBLOG_ROWS:,}" in drawn[0]  # DescribeTable's estimate


def test_rate_limit_as_a_share(moto_server: Any, sync_client: Any, loaded: tables.Loaded) -> None:
    name = "cli_provisioned"
    sync_client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        ProvisionedThroughput={"ReadCapacityUnits": 40, "WriteCapacityUnits": 5},
    )
    sync_client.put_item(TableName=name, Item={"pk": {"S": "a"}})
    endpoint = ["--endpoint-url", moto_server.endpoint_url]
    shown = dynascan(
        "scan", "--table-name", name, "--rate-limit", "50%", "--progress", "always", *endpoint
    )
    assert shown.returncode == 0, shown.stderr
    assert lines(shown.stdout) == [{"pk": "a"}]
    drawn = [line for line in shown.stderr.splitlines() if line.endswith("\x1b[K")]
    assert drawn
    assert "(rate 20.0/s)" in drawn[-1]
    # An on-demand table has no capacity to take a share of: one line, exit 1.
    refused = dynascan("scan", "--table-name", tables.WEBLOG, "--rate-limit", "50%", *endpoint)
    assert refused.returncode == 1
    assert "on-demand" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    assert refused.stdout == ""
