"""``_signals.stop_on_signals`` in a real process that gets real signals."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator

import pytest

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

# A task that prints "ready", waits, and on cancellation runs a cleanup that prints
# "cleanup" (and, with a second argument, then waits a long time). The exit status is
# Interrupted's, and the handlers are checked to be restored afterwards.
SCRIPT = textwrap.dedent(
    """
    import asyncio, signal, sys
    from dynascan_async._signals import Interrupted, stop_on_signals

    slow_cleanup = "slow" in sys.argv[1:]
    if "nohup" in sys.argv[1:]:  # as nohup starts a command (conftest gives the defaults)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)

    async def work():
        try:
            print("ready", flush=True)
            await asyncio.sleep(60)
        finally:
            print("cleanup", flush=True)
            if slow_cleanup:
                await asyncio.sleep(60)

    async def main():
        before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
        try:
            async with stop_on_signals():
                await work()
        except Interrupted as exc:
            after = {s: signal.getsignal(s) for s in before}
            print(f"interrupted {exc.name} restored={after == before}", flush=True)
            return exc.exit_status
        return 0

    sys.exit(asyncio.run(main()))
    """
)


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen[str]]]:
    """The processes a test started, killed if the test left one running (a failure)."""
    processes: list[subprocess.Popen[str]] = []
    yield processes
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.communicate()


def start(started: list[subprocess.Popen[str]], *args: str) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    started.append(process)
    assert process.stdout is not None
    assert process.stdout.readline() == "ready\n"
    return process


@pytest.mark.parametrize(
    ("signum", "status"),
    [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)],
)
def test_a_signal_runs_the_cleanup_and_exits_128_plus_its_number(
    started: list[subprocess.Popen[str]], signum: int, status: int
) -> None:
    process = start(started)
    process.send_signal(signum)
    out, err = process.communicate(timeout=30)
    assert err == ""
    assert out.splitlines() == [
        "cleanup",
        f"interrupted {signal.Signals(signum).name} restored=True",
    ]
    assert process.returncode == status


def test_a_second_signal_ends_a_cleanup_that_hangs(started: list[subprocess.Popen[str]]) -> None:
    process = start(started, "slow")
    process.send_signal(signal.SIGTERM)
    assert process.stdout is not None
    assert process.stdout.readline() == "cleanup\n"  # the first signal's cleanup is running
    process.send_signal(signal.SIGTERM)
    out, _ = process.communicate(timeout=30)
    assert out == ""
    assert process.returncode == -signal.SIGTERM  # ended by the signal itself, at once


def test_a_signal_ignored_before_stays_ignored(started: list[subprocess.Popen[str]]) -> None:
    # Under nohup, a closed terminal's SIGHUP must not stop an export: the person who
    # typed nohup asked for the opposite. SIGTERM still stops it, and SIGHUP is still
    # ignored afterwards.
    process = start(started, "nohup")
    process.send_signal(signal.SIGHUP)
    with pytest.raises(subprocess.TimeoutExpired):
        process.communicate(timeout=1)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=30)
    assert err == ""
    assert out.splitlines() == ["cleanup", "interrupted SIGTERM restored=True"]
    assert process.returncode == 128 + signal.SIGTERM
