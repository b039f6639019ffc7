"""The ``dynascan`` command stopped in every way a real run is stopped, then resumed.

Each test runs the real command in a subprocess against moto (through the fault proxy,
whose latency keeps the scan running long enough to be hit mid-way), stops it with a
real signal, a real write error or ``kill -9``, runs the same command again, and
compares the *multiset* of items delivered by all runs with a reference scan: nothing
lost, nothing twice.
"""

from __future__ import annotations

import json
import os
import random
import signal
import stat
import struct
import subprocess
import sys
import time
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from dynascan_async.cli import main
from tests.support import tables
from tests.support.faultproxy import FaultProxy
from tests.support.helpers import assert_same_items
from tests.test_cli import ENV, as_cli_json, lines

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and /dev/full")


def command(faults: FaultProxy, *extra: str) -> list[str]:
    return [
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
        *extra,
    ]


def limited(argv: Sequence[str], max_bytes: int) -> list[str]:
    """``argv`` with files limited to ``max_bytes``: writes past it fail (EFBIG) half-way."""
    code = (
        "import os, resource, signal, sys; "
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
        f"resource.setrlimit(resource.RLIMIT_FSIZE, ({max_bytes}, {max_bytes})); "
        "os.execv(sys.argv[1], sys.argv[1:])"
    )
    return [sys.executable, "-c", code, *argv]


def wait_for_output(path: Path, process: subprocess.Popen[str], size: int = 1) -> None:
    """Until the command has written ``size`` bytes (it flushes at least every 0.5 s)."""
    deadline = time.monotonic() + 60
    while path.stat().st_size < size:
        assert process.poll() is None, "the scan ended before it could be interrupted"
        assert time.monotonic() < deadline
        time.sleep(0.02)


def unread(fd: int) -> int:
    """Bytes waiting in a pipe."""
    import fcntl
    import termios

    (count,) = struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))
    return int(count)


def run_to_end(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, env=ENV, timeout=120, check=False)


def one_line(stderr: str) -> str:
    assert "Traceback" not in stderr
    got = stderr.strip().splitlines()
    assert len(got) == 1, stderr
    return got[0]


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_sigterm_and_sighup_save_the_checkpoint_like_ctrl_c(
    faults: FaultProxy, tmp_path: Path, loaded: tables.Loaded, signum: int, status: int
) -> None:
    faults.latency = 0.1  # the scan takes seconds: the signal lands mid-way even on a busy machine
    state = tmp_path / "state.json"
    # A symlink planted at the fixed temporary name the checkpoint used to be written to.
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    (tmp_path / "state.json.tmp").symlink_to(victim)
    argv = command(faults, "--checkpoint", str(state))
    first_out = tmp_path / "first.jsonl"
    with first_out.open("w") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.PIPE, env=ENV, text=True)
        wait_for_output(first_out, process)
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == status, stderr
    line = one_line(stderr)
    assert f"interrupted by {signal.Signals(signum).name}" in line
    assert str(state) in line
    # Written through a new file: the symlink was not followed, nothing is left over.
    assert victim.read_text() == "precious\n"
    assert not state.is_symlink()
    assert stat.S_IMODE(state.stat().st_mode) == 0o600  # it holds the table's key values
    assert json.loads(state.read_text())["scan"]["table"] == tables.WEBLOG
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".state.json.")]
    first = lines(first_out.read_text())
    assert 0 < len(first) < len(loaded.weblog)

    faults.latency = 0.0
    second = run_to_end(argv)
    assert second.returncode == 0, second.stderr
    assert not state.exists()
    assert_same_items(first + lines(second.stdout), as_cli_json(loaded.weblog))


def test_full_disk_on_stdout_counts_nothing_that_was_not_written(
    faults: FaultProxy, tmp_path: Path, loaded: tables.Loaded
) -> None:
    state = tmp_path / "state.json"
    argv = command(faults, "--checkpoint", str(state))
    with open("/dev/full", "w") as full:  # every write: ENOSPC
        first = subprocess.run(
            argv, stdout=full, stderr=subprocess.PIPE, text=True, env=ENV, timeout=120, check=False
        )
    assert first.returncode == 1
    line = one_line(first.stderr)
    assert "No space left on device" in line
    assert state.exists()

    second = run_to_end(argv)
    assert second.returncode == 0, second.stderr
    assert_same_items(lines(second.stdout), as_cli_json(loaded.weblog))


def test_a_write_that_fails_half_way_leaves_whole_lines_and_an_exact_checkpoint(
    faults: FaultProxy, tmp_path: Path, loaded: tables.Loaded
) -> None:
    # RLIMIT_FSIZE makes a write to a regular file stop short at the limit and the next
    # one fail, as a filling disk does: the failed flush was partly written.
    state = tmp_path / "state.json"
    argv = command(faults, "--checkpoint", str(state))
    first_out = tmp_path / "first.jsonl"
    with first_out.open("w") as out:
        first = subprocess.run(
            limited(argv, 100_003),
            stdout=out,
            stderr=subprocess.PIPE,
            text=True,
            env=ENV,
            timeout=120,
            check=False,
        )
    assert first.returncode == 1
    assert "File too large" in one_line(first.stderr)
    text = first_out.read_text()
    assert 0 < len(text) < 100_003
    assert text.endswith("\n")  # the torn line was taken back
    second = run_to_end(argv)
    assert second.returncode == 0, second.stderr
    assert_same_items(lines(text) + lines(second.stdout), as_cli_json(loaded.weblog))


def test_output_file_survives_kill_9_at_random_moments(
    faults: FaultProxy, tmp_path: Path, loaded: tables.Loaded
) -> None:
    faults.latency = 0.08
    state = tmp_path / "state.json"
    output = tmp_path / "items.jsonl"
    argv = command(
        faults, "--output", str(output), "--checkpoint", str(state), "--checkpoint-interval", "0.1"
    )
    rng = random.Random(8)
    kills = 0
    kept: list[int] = []  # bytes of the output each kill's checkpoint counts
    finished = False
    for attempt in range(4):
        process = subprocess.Popen(
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV
        )
        if attempt == 0:
            # Wait for the first bytes, so that at least one kill lands mid-scan.
            deadline = time.monotonic() + 60
            while not output.exists() or output.stat().st_size == 0:
                assert process.poll() is None
                assert time.monotonic() < deadline
                time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.8))
        if process.poll() is None:
            process.kill()
            kills += 1
        if process.wait(timeout=60) == 0:
            finished = True  # this run got to the end before its kill: nothing to resume
            break
        kept.append(json.loads(state.read_text())["output"]["length"])
        if attempt == 1:
            # A write torn by the crash: half a line at the end of the file.
            with output.open("a") as torn:
                torn.write('{"requestid": "req-torn", "ho')
    assert kills >= 1
    assert max(kept, default=0) > 0  # saved while running: a kill -9 kept the progress
    if not finished:
        faults.latency = 0.0
        last = run_to_end(argv)
        assert last.returncode == 0, last.stderr
        assert last.stdout == ""
    assert not state.exists()
    text = output.read_text()
    assert text.endswith("\n")
    got = lines(text)  # every line valid JSON
    assert_same_items(got, as_cli_json(loaded.weblog))
    assert stat.S_IMODE(output.stat().st_mode) == 0o600


def test_output_that_fails_half_way_resumes_exactly(
    faults: FaultProxy, tmp_path: Path, loaded: tables.Loaded
) -> None:
    state = tmp_path / "state.json"
    output = tmp_path / "items.jsonl"
    argv = command(faults, "--output", str(output), "--checkpoint", str(state))
    first = subprocess.run(
        limited(argv, 70_001), capture_output=True, text=True, env=ENV, timeout=120, check=False
    )
    assert first.returncode == 1
    assert f"cannot write to {output}" in one_line(first.stderr)
    second = run_to_end(argv)
    assert second.returncode == 0, second.stderr
    assert_same_items(lines(output.read_text()), as_cli_json(loaded.weblog))


def test_output_appends_and_resume_refuses_a_shorter_file(
    moto_server: Any, tmp_path: Path, loaded: tables.Loaded
) -> None:
    output = tmp_path / "items.jsonl"
    output.write_text('{"before": 1}\n')
    state = tmp_path / "state.json"
    base = [
        sys.executable,
        "-m",
        "dynascan_async",
        "scan",
        "--table-name",
        tables.TINY,
        "--endpoint-url",
        moto_server.endpoint_url,
        "--output",
        str(output),
    ]
    done = run_to_end(base)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    got = lines(output.read_text())
    assert got[0] == {"before": Decimal(1)}
    assert_same_items(got[1:], as_cli_json(loaded.tiny))

    # A checkpoint that counts more of the file than there is: not this file's.
    state.write_text(
        json.dumps(
            {"dynascan_cli": 1, "scan": None, "output": {"path": str(output), "length": 1 << 20}}
        )
    )
    refused = run_to_end([*base, "--checkpoint", str(state)])
    assert refused.returncode == 2
    assert "not the output this checkpoint was written for" in one_line(refused.stderr)
    # A checkpoint written for --output, resumed to stdout: refused, not guessed.
    to_stdout = run_to_end([*base[:-2], "--checkpoint", str(state)])
    assert to_stdout.returncode == 2
    assert "--output" in one_line(to_stdout.stderr)


def test_closed_pipe_is_not_a_traceback(faults: FaultProxy, tmp_path: Path) -> None:
    faults.latency = 0.02
    process = subprocess.Popen(
        command(faults), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV
    )
    assert process.stdout is not None
    assert process.stderr is not None
    head = [process.stdout.readline() for _ in range(3)]  # `| head -n 3`
    assert all(json.loads(line) for line in head)
    process.stdout.close()
    stderr = process.stderr.read().decode()
    process.wait(timeout=60)
    process.stderr.close()
    assert process.returncode == 0, stderr
    assert stderr == ""


@pytest.mark.parametrize("args", [["--help"], ["scan", "--help"], ["demo", "--help"]])
def test_help_is_plain_text(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(args)
    assert exited.value.code == 0
    shown = capsys.readouterr().out
    assert "--" in shown
    assert "``" not in shown  # reStructuredText markup from a docstring
    assert "seed" not in shown.lower()  # names from the project's notes, unknown to a user


def test_stdout_left_non_blocking_by_another_program(
    moto_server: Any, tmp_path: Path, loaded: tables.Loaded
) -> None:
    # Some parents hand over a pipe in O_NONBLOCK mode; a full pipe then answers EAGAIN,
    # which is a reason to wait, not a failed write.
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dynascan_async",
            "scan",
            "--table-name",
            tables.WEBLOG,
            "--endpoint-url",
            moto_server.endpoint_url,
        ],
        stdout=write_end,
        stderr=subprocess.PIPE,
        env=ENV,
        text=True,
    )
    os.close(write_end)
    deadline = time.monotonic() + 60
    # Until the pipe is full (the command must wait), or the command ended (it did not).
    while unread(read_end) < 65_536 and process.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    time.sleep(0.3)
    with os.fdopen(read_end) as reader:
        text = reader.read()
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    assert_same_items(lines(text), as_cli_json(loaded.weblog))
