"""``dynascan export`` as a real subprocess: kill -9, SIGTERM and a full disk at any
moment lose nothing and repeat nothing; the same command continues.

Every kill test slows the export down (the fault proxy's latency, small pages, small
parts) so that the kills land in the middle of it, and picks its kill points from a
fixed seed: each waits until a chosen number of parts has been committed in that run,
then a random few milliseconds more.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from dynascan_async._decode import decode_items
from dynascan_async.cli import main
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
from tests.test_cli import ENV, dynascan, lines

STATE = "_export_state.json"


def export_command(url: str, out: Path, *extra: str, fmt: str = "jsonl") -> list[str]:
    return [
        sys.executable,
        "-m",
        "dynascan_async",
        "export",
        "--table-name",
        tables.WEBLOG,
        "--endpoint-url",
        url,
        "--output",
        str(out),
        "--format",
        fmt,
        "--total-segments",
        "4",
        "--concurrency",
        "2",
        "--page-size",
        "20",
        "--rows-per-part",
        "40",
        *extra,
    ]


def committed(out: Path) -> int:
    """Parts the state lists right now (0 before the first, or once finished)."""
    try:
        return len(json.loads((out / STATE).read_text())["parts"])
    except (FileNotFoundError, ValueError):
        return 0


def run(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, capture_output=True, text=True, env=ENV, timeout=120, check=False
    )


def interrupt_at_random_points(
    command: list[str], out: Path, rng: random.Random, runs: int, sig: signal.Signals
) -> list[subprocess.CompletedProcess[str]]:
    """Start the command ``runs`` times, each stopped by ``sig`` after a random number
    of newly committed parts (0: before its first commit) plus a random moment."""
    results = []
    for _ in range(runs):
        base = committed(out)
        target = base + rng.randint(0, 3)
        process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ENV, text=True
        )
        deadline = time.monotonic() + 60
        while process.poll() is None and time.monotonic() < deadline:
            if committed(out) >= target and (target or (out / STATE).exists()):
                break
            time.sleep(0.005)
        time.sleep(rng.uniform(0, 0.08))
        running = process.poll() is None
        process.send_signal(sig)
        _, stderr = process.communicate(timeout=60)
        results.append(subprocess.CompletedProcess(command, process.returncode, "", stderr))
        assert running, f"the export ended before the {sig.name}: {stderr}"
    return results


def assert_manifest_matches(out: Path, count_items: Any) -> None:
    manifest = json.loads((out / "_manifest.json").read_text())
    assert [p["name"] for p in manifest["parts"]] == visible(out)
    for part in manifest["parts"]:
        assert part["items"] == count_items(out / part["name"])
        assert part["bytes"] == (out / part["name"]).stat().st_size
    assert manifest["items"] == sum(p["items"] for p in manifest["parts"])
    assert not (out / STATE).exists()
    assert sorted(os.listdir(out)) == ["_manifest.json", *visible(out)]


def assert_exact_export(fmt: str, loaded: tables.Loaded, out: Path) -> None:
    """The folder, read as its users read it, holds the table's items, each once."""
    if fmt == "parquet":
        import pyarrow.parquet as pq

        from dynascan_async import arrow

        table = pq.read_table(out)
        assert_same_values(arrow.to_items(table), decode_items(loaded.weblog))
        assert len(set(table.column("requestid").to_pylist())) == table.num_rows
        return
    got, expected = expected_in(fmt, loaded, out)
    assert_same_items(got, expected)


def expected_in(fmt: str, loaded: tables.Loaded, out: Path) -> tuple[list[Any], list[Any]]:
    if fmt == "jsonl":
        return jsonl_items(out), as_cli_json(loaded.weblog)
    return ddb_json_items(out), [raw_as_json(item) for item in loaded.weblog]


def count_lines(fmt: str) -> Any:
    import gzip

    if fmt == "parquet":
        import pyarrow.parquet as pq

        return lambda path: pq.ParquetFile(path).metadata.num_rows
    if fmt == "jsonl":
        return lambda path: len(path.read_bytes().splitlines())
    return lambda path: len(gzip.decompress(path.read_bytes()).splitlines())


@pytest.mark.parametrize("fmt", ["parquet", "jsonl", "ddb-json"])
def test_kill_9_at_random_points_then_the_same_command_finishes_exactly(
    faults: FaultProxy, tmp_path: Path, loaded: tables.Loaded, fmt: str
) -> None:
    faults.latency = 0.03
    out = tmp_path / "out"
    command = export_command(faults.url, out, fmt=fmt)
    rng = random.Random(f"kill-9-{fmt}")
    for result in interrupt_at_random_points(command, out, rng, 2, signal.SIGKILL):
        assert result.returncode == -signal.SIGKILL
    assert committed(out) > 0
    faults.latency = 0.0
    final = run(command)
    assert final.returncode == 0, final.stderr
    assert_exact_export(fmt, loaded, out)
    assert_manifest_matches(out, count_lines(fmt))


def test_sigterm_commits_the_part_being_written_and_the_same_command_continues(
    faults: FaultProxy, tmp_path: Path, loaded: tables.Loaded
) -> None:
    # 0.1 s per page: the scan takes well over a second however fast the machine, so
    # the SIGTERM, 0.3 s after the first item, lands in the middle of it.
    faults.latency = 0.1
    out = tmp_path / "out"
    command = export_command(faults.url, out, "--rows-per-part", "1000")
    # One part of 1,000 rows: everything before the SIGTERM is in the part being written.
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ENV, text=True
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(out.glob(".part-*.tmp")):
        time.sleep(0.01)
    time.sleep(0.3)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM, stderr
    assert stderr.strip().splitlines()[-1].startswith("dynascan: interrupted by SIGTERM")
    assert "Traceback" not in stderr
    state = json.loads((out / STATE).read_text())
    kept = jsonl_items(out)
    assert 0 < len(kept) < len(loaded.weblog)
    assert [p["items"] for p in state["parts"]] == [len(kept)]
    faults.latency = 0.0
    final = run(command)
    assert final.returncode == 0, final.stderr
    assert_same_items(jsonl_items(out), as_cli_json(loaded.weblog))
    assert_manifest_matches(out, count_lines("jsonl"))


_LIMITED = (
    "import os, resource, sys; "
    "resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[1]),) * 2); "
    "os.execv(sys.executable, [sys.executable, *sys.argv[2:]])"
)


def test_a_write_that_fails_after_a_part_is_renamed_loses_and_repeats_nothing(
    moto_server: Any, tmp_path: Path, loaded: tables.Loaded
) -> None:
    """RLIMIT_FSIZE lets every part through but not the state once it has grown past
    the limit: the run fails in the one step between a part's rename and the state
    that lists it, and the next run must drop that part and read its items again."""
    out = tmp_path / "out"
    command = export_command(moto_server.endpoint_url, out, "--rows-per-part", "10")
    limited = run([sys.executable, "-c", _LIMITED, "4096", *command[1:]])
    assert limited.returncode == 1, limited.stderr
    message = limited.stderr.strip().splitlines()
    assert len(message) == 1
    assert message[0].startswith(f"dynascan: cannot write the export to {out}: [Errno 27]")
    state = json.loads((out / STATE).read_text())
    listed = {p["name"] for p in state["parts"]}
    assert len(listed) > 5
    unlisted = set(visible(out)) - listed
    assert len(unlisted) == 1, unlisted  # renamed, never listed
    final = run(command)
    assert final.returncode == 0, final.stderr
    assert_same_items(jsonl_items(out), as_cli_json(loaded.weblog))
    assert_manifest_matches(out, count_lines("jsonl"))


@pytest.fixture
def small_disk(tmp_path: Path) -> Any:
    """A 40 kB tmpfs, and a way to give it more room; skipped where mounting is refused."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if not shutil.which("mount") or os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (the RLIMIT_FSIZE test covers the rest)")
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=40k,mode=0700", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if made.returncode != 0:
        pytest.skip(f"this sandbox does not allow mounting a tmpfs: {made.stderr.strip()}")

    def grow() -> None:
        subprocess.run(["mount", "-o", "remount,size=4m", str(mount)], check=True)

    try:
        yield mount, grow
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_then_the_same_command_with_room_finishes_exactly(
    moto_server: Any, small_disk: Any, loaded: tables.Loaded
) -> None:
    mount, grow = small_disk
    out = mount / "out"
    command = export_command(moto_server.endpoint_url, out, "--rows-per-part", "50")
    full = run(command)
    assert full.returncode == 1, full.stderr
    message = full.stderr.strip().splitlines()
    assert len(message) == 1
    assert "[Errno 28] No space left on device" in message[0]
    kept = jsonl_items(out)
    assert 0 < len(kept) < len(loaded.weblog)
    assert not list(out.glob(".*.tmp"))  # the failed part's temporary file is gone
    grow()
    final = run(command)
    assert final.returncode == 0, final.stderr
    assert_same_items(jsonl_items(out), as_cli_json(loaded.weblog))
    assert_manifest_matches(out, count_lines("jsonl"))


def test_jsonl_export_equals_dynascan_scan_and_the_folder_rules(
    moto_server: Any, tmp_path: Path, loaded: tables.Loaded
) -> None:
    url = moto_server.endpoint_url
    out = tmp_path / "out"
    filters = [
        "--filter-expression",
        "responsecode <> :f",
        "--expression-attribute-values",
        '{":f":{"N":"200"}}',
    ]
    exported = dynascan(
        *export_command(url, out, *filters, "--progress", "always")[3:],
    )
    assert exported.returncode == 0, exported.stderr
    summary = exported.stderr.strip().splitlines()[-1]
    assert summary.startswith("\x1b[Kdynascan: exported ")  # after the cleared progress line
    assert "items/s" in summary
    assert " written, " in exported.stderr  # the progress line, with bytes written
    scanned = dynascan("scan", "--table-name", tables.WEBLOG, "--endpoint-url", url, *filters)
    assert scanned.returncode == 0, scanned.stderr
    assert_same_items(jsonl_items(out), lines(scanned.stdout))
    # Byte for byte: the same lines (in another order).
    exported_lines = [
        line for p in sorted(out.glob("*.jsonl")) for line in p.read_text().splitlines()
    ]
    assert sorted(exported_lines) == sorted(scanned.stdout.splitlines())
    assert 0 < len(jsonl_items(out)) < len(loaded.weblog)

    again = dynascan(*export_command(url, out, *filters)[3:])
    assert again.returncode == 1
    assert again.stderr.count("\n") == 1
    assert "holds a finished export of table 'logfile_scan'" in again.stderr

    replaced = dynascan(*export_command(url, out, "--overwrite", "--rows-per-part", "1000")[3:])
    assert replaced.returncode == 0, replaced.stderr
    assert visible(out) == ["part-000000.jsonl"]
    assert_same_items(jsonl_items(out), as_cli_json(loaded.weblog))


def test_another_commands_unfinished_export_is_refused_with_one_line(
    moto_server: Any, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / STATE).write_text(
        json.dumps(
            {
                "dynascan_export_state": 1,
                "table": tables.WEBLOG,
                "format": "ddb-json",
                "params": "0" * 64,
                "segments": 4,
                "checkpoint": None,
                "parts": [],
                "next_part": 0,
            }
        )
    )
    result = dynascan(*export_command(moto_server.endpoint_url, out)[3:])
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert "holds an unfinished export with format ddb-json" in result.stderr


def test_parquet_without_pyarrow_says_which_extra_in_one_line(
    moto_server: Any, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    command = export_command(moto_server.endpoint_url, out, fmt="parquet")
    no_pyarrow = (
        "import sys; sys.modules['pyarrow'] = None; "
        "from dynascan_async.cli import run; sys.exit(run(sys.argv[1:]))"
    )
    result = run([sys.executable, "-c", no_pyarrow, *command[3:]])
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "pip install 'dynascan-async[arrow]'" in result.stderr
    assert not out.exists()  # refused before anything was made


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--checkpoint", "x"], "unrecognized arguments"),
        (["--raw"], "unrecognized arguments"),
        (["--count"], "unrecognized arguments"),
        (["--format", "csv"], "invalid choice"),
        (["--rows-per-part", "0"], ">= 1"),
    ],
)
def test_bad_export_flags_exit_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    status = main(["export", "--table-name", "t", "--output", str(tmp_path / "x"), *args])
    assert status == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert message in err
    assert not (tmp_path / "x").exists()


def test_the_export_takes_scans_flags_but_not_those_of_its_output() -> None:
    """Flags added to `scan` later become export flags, except those about scan's output
    (a scan `--output FILE` must not collide with the export's `--output DIR`)."""
    import argparse

    from dynascan_async._export._cli import add_parser

    parser = argparse.ArgumentParser()
    commands = parser.add_subparsers(dest="command")
    scan = commands.add_parser("scan")
    for flag in ("--table-name", "--output", "--checkpoint", "--checkpoint-interval", "--new"):
        scan.add_argument(flag)
    add_parser(commands, scan, int)
    args = parser.parse_args(["export", "--table-name", "t", "--output", "d", "--new", "x"])
    assert (args.table_name, args.output, args.new) == ("t", "d", "x")
    with pytest.raises(SystemExit):
        parser.parse_args(["export", "--table-name", "t", "--output", "d", "--checkpoint", "f"])
