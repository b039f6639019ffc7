"""Turn SIGINT, SIGTERM and SIGHUP into an orderly stop of one asyncio task.

``timeout``, ``docker stop``, Kubernetes and systemd stop a process with SIGTERM; a closed
terminal sends SIGHUP; a person presses Ctrl-C (SIGINT). A command that keeps state
(``dynascan scan --checkpoint``, ``dynascan export``) must save it in every one of these
cases, not only on Ctrl-C. Python's default handling differs per signal (SIGINT raises
``KeyboardInterrupt`` wherever the interpreter happens to be, even between two lines
that must go together; SIGTERM and SIGHUP end the process at once), so the commands
handle all three the same way here:

* the first signal *cancels the task* that entered :func:`stop_on_signals`. A
  cancellation only lands at an ``await``, so the task's ``except``/``finally`` blocks
  (flush the output, save the checkpoint) run with the state consistent;
* when the cancellation has unwound out of the block, :class:`Interrupted` is raised in
  its place, carrying the signal, so the command exits with ``128 + signal number`` (130
  for SIGINT, 143 for SIGTERM, 129 for SIGHUP), what a shell reports for a process that
  a signal ended;
* a second signal while the first one's cleanup runs ends the process at once, with the
  signal's default action: the way out if a cleanup ever hangs;
* the previous handlers are restored when the block ends;
* a signal that is ignored when the block starts stays ignored: ``nohup`` ignores SIGHUP
  and a shell's background job ignores SIGINT, so that the command outlives a closed
  terminal or a Ctrl-C meant for the foreground.

Where the event loop cannot install signal handlers (Windows, a thread other than the
main one) the block does nothing and the old behaviour stays.
"""

from __future__ import annotations

__all__ = ["Interrupted", "stop_on_signals"]

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator, Callable, Sequence
from types import FrameType
from typing import Any, TypeAlias

# What signal.getsignal returns: a function, SIG_DFL/SIG_IGN, or None (not set from Python).
_Handler: TypeAlias = Callable[[int, FrameType | None], Any] | int | None

STOP_SIGNALS: tuple[int, ...] = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)


class Interrupted(Exception):
    """The block was stopped by a signal; the cleanup in the block has run."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.name = signal.Signals(signum).name
        super().__init__(f"interrupted by {self.name}")

    @property
    def exit_status(self) -> int:
        """``128 + signal number``: the status a shell shows for a process a signal ended."""
        return 128 + self.signum


def _die(signum: int) -> None:
    """End the process now, as the signal's default action would have."""
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


@contextlib.asynccontextmanager
async def stop_on_signals(signums: Sequence[int] = STOP_SIGNALS) -> AsyncIterator[None]:
    """Within the block, the first of ``signums`` cancels this task; see the module doc.

    Raises :class:`Interrupted` when a signal stopped the block (after the block's own
    cleanup has run), whether the cancellation landed inside the block or not.
    """
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None  # an ``async with`` always runs in a task
    received: list[int] = []
    active = True

    def on_signal(signum: int) -> None:
        if not active:
            return  # delivered after the block ended: its cleanup is no longer there to run
        if received:
            _die(signum)  # a second signal: the person (or supervisor) insists
        received.append(signum)
        task.cancel(f"dynascan: {signal.Signals(signum).name}")

    installed: dict[int, _Handler] = {}
    for signum in signums:
        try:
            previous = signal.getsignal(signum)
            if previous == signal.SIG_IGN:
                # Ignored on purpose (``nohup`` ignores SIGHUP, a shell's background job
                # SIGINT): the person asked for the command to outlive it. Keep it so.
                continue
            loop.add_signal_handler(signum, on_signal, signum)
        except (NotImplementedError, RuntimeError, ValueError):  # pragma: no cover - Windows
            continue
        installed[signum] = previous
    try:
        try:
            yield
        except asyncio.CancelledError:
            if not received:
                raise  # someone else's cancellation: not ours to turn into anything
            _uncancel(task)
            raise Interrupted(received[0]) from None
        if received:
            # The signal came after the block's last await: its cancellation is still
            # pending and would hit the caller's next await. Take it here instead.
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(0)
            _uncancel(task)
            raise Interrupted(received[0])
    finally:
        active = False
        for signum, previous in installed.items():
            loop.remove_signal_handler(signum)  # sets SIG_DFL, whatever was there before
            if previous is not None:  # None: a handler not set from Python, left as it is
                signal.signal(signum, previous)


def _uncancel(task: asyncio.Task[object]) -> None:
    # Python 3.11+ counts cancellation requests; the one we made is handled now, so an
    # ``asyncio.timeout`` further out does not mistake it for its own.
    uncancel = getattr(task, "uncancel", None)
    if uncancel is not None:
        uncancel()
