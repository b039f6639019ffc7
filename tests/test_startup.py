"""The program holds the cyclic collector during its start-up only (``_startup``).

The command-level tests run the program in this process (``cli.run``), against the real
server behind the fault proxy, and compare two clocks: when a watching thread saw the
collector on or off, and when the server was asked.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dynascan_async import _startup, cli
from tests.support import tables
from tests.support.faultproxy import FaultProxy


@pytest.fixture
def restore_gc() -> Iterator[None]:
    """The collector as it was, afterwards."""
    was_enabled = gc.isenabled()
    frozen = gc.get_freeze_count()
    try:
        yield
    finally:
        _startup.release()
        if gc.get_freeze_count() > frozen:
            gc.unfreeze()
        if was_enabled:
            gc.enable()
        else:
            gc.disable()


def test_release_without_hold_leaves_the_collector_alone(restore_gc: None) -> None:
    frozen = gc.get_freeze_count()
    _startup.release()
    assert gc.isenabled()
    assert gc.get_freeze_count() == frozen


def test_hold_then_release_freezes_start_up_and_collects_again(restore_gc: None) -> None:
    _startup.hold()
    assert not gc.isenabled()
    made_during_start_up: list[list[int]] = [
        [] for _ in range(10_000)
    ]  # containers: tracked by the collector
    _startup.release()
    assert gc.isenabled()
    assert gc.get_freeze_count() >= len(made_during_start_up)
    frozen = gc.get_freeze_count()
    _startup.release()  # a second release (main's own, at the end) changes nothing
    assert gc.get_freeze_count() == frozen


def test_a_collector_the_user_turned_off_stays_off(restore_gc: None) -> None:
    gc.disable()
    frozen = gc.get_freeze_count()
    _startup.hold()
    _startup.release()
    assert not gc.isenabled()
    assert gc.get_freeze_count() == frozen


def test_main_from_python_never_touches_the_collector(
    restore_gc: None, capsys: pytest.CaptureFixture[str]
) -> None:
    frozen = gc.get_freeze_count()
    assert cli.main(["scan", "--table-name", "t", "--total-segments", "0"]) == 2
    assert gc.isenabled()
    assert gc.get_freeze_count() == frozen
    assert "total-segments" in capsys.readouterr().err


def test_a_command_that_fails_at_once_gives_the_collector_back(
    restore_gc: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.run(["scan", "--table-name", "t", "--total-segments", "0"]) == 2
    assert gc.isenabled()
    assert "total-segments" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["scan", "export"])
def test_the_program_collects_as_usual_while_it_reads(
    command: str,
    restore_gc: None,
    faults: FaultProxy,
    loaded: tables.Loaded,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    faults.record = True
    faults.latency = 0.02  # pages come in over a while, not all at once
    out = tmp_path / "out"
    where = ["--output", str(out)]
    if command == "export":
        where += ["--format", "parquet"]
    samples: list[tuple[float, bool]] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            at = time.monotonic()  # before the reading: a False seen here came before `at`
            samples.append((at, gc.isenabled()))
            done.wait(0.002)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        status = cli.run(
            [
                command,
                "--table-name",
                tables.WEBLOG,
                "--endpoint-url",
                faults.url,
                "--region",
                "us-east-1",
                "--total-segments",
                "2",
                "--page-size",
                "50",
                *where,
            ]
        )
    finally:
        done.set()
        watcher.join()
    assert status == 0
    assert gc.isenabled()
    received = sorted(scan.received for scan in faults.scans)
    assert len(received) >= tables.WEBLOG_ROWS // 50
    while_reading = [enabled for at, enabled in samples if received[0] <= at <= received[-1]]
    assert len(while_reading) > 10
    assert all(while_reading), "the collector was off while the pages came in"
    assert not all(enabled for _, enabled in samples)  # and held while the program started
