"""An output that knows exactly which bytes have reached it.

A checkpoint may only count an item once its line is in the output. With a text stream
(``sys.stdout``) that cannot be known: its buffer holds lines that a failing ``write``
(a full disk, a closed pipe) never delivers, yet the consumer has already moved past
them. So the command writes through :class:`Output` instead: lines collect in a buffer
the command flushes itself with ``os.write`` on the file descriptor; only when
:meth:`Output.flush` has returned has everything added before it reached the output,
and that is the moment to take a checkpoint.

A write can also fail half-way (a full disk takes what fits, then refuses the rest).
On a regular file :meth:`Output.flush` then cuts the file back to where the flush
started, so the file ends at a whole line that the last checkpoint counts, instead of
a half line that every JSON reader would stumble on. (It does so only when the file
ends exactly where this process's writes put it, so it never cuts what another
process wrote.) On a pipe nothing can be taken back; what the reader got of the failed
flush is delivered again on resume, and nothing is lost.
"""

from __future__ import annotations

__all__ = ["Output", "OutputError", "open_output"]

import contextlib
import errno
import os
import select
import stat
from pathlib import Path

FLUSH_BYTES = 1 << 16


class OutputError(Exception):
    """Writing the output failed; what was in the failed flush is not delivered."""

    def __init__(self, where: str, error: OSError) -> None:
        self.where = where
        self.errno = error.errno
        super().__init__(f"cannot write to {where}: {error.strerror or error}")


class Output:
    """A buffer in front of a file descriptor, flushed only by :meth:`flush`.

    ``length`` is the size of the file up to the last byte a successful flush wrote
    (``None`` when the descriptor is not a regular file, e.g. a pipe or a terminal).
    ``owned``: the file is ``--output``'s, opened (and closed) by the command, which
    records ``length`` in its checkpoint; stdout is not owned.
    """

    def __init__(
        self, fd: int, where: str, *, length: int | None = None, owned: bool = False
    ) -> None:
        self.fd = fd
        self.where = where
        self.owned = owned
        self.parts: list[str] = []  # appended to directly by the command's hot loop
        self.length = length if length is not None else _end(fd)

    def flush(self) -> None:
        """Write out the buffer; raises :class:`OutputError` (the buffer is then lost)."""
        if not self.parts:
            return
        data = memoryview("".join(self.parts).encode())
        self.parts.clear()
        done = 0
        try:
            while done < len(data):
                done += _write_some(self.fd, data[done:])
        except OSError as exc:
            self._take_back(done)
            raise OutputError(self.where, exc) from None
        if self.length is not None:
            self.length += done

    def sync(self) -> None:
        """Put what was flushed on disk (a no-op for pipes and terminals)."""
        try:
            os.fsync(self.fd)
        except OSError as exc:
            if exc.errno not in (errno.EINVAL, errno.EROFS, errno.ENOTSUP, errno.EBADF):
                raise OutputError(self.where, exc) from None

    def _take_back(self, written: int) -> None:
        if not written or self.length is None:
            return
        with contextlib.suppress(OSError):
            if _end(self.fd) == self.length + written:  # only our own bytes are past it
                os.ftruncate(self.fd, self.length)
                if not _appends(self.fd):
                    os.lseek(self.fd, self.length, os.SEEK_SET)


def _write_some(fd: int, data: memoryview) -> int:
    try:
        return os.write(fd, data)
    except BlockingIOError:
        # A descriptor another program left non-blocking (O_NONBLOCK belongs to the
        # open file, shared by every process holding the pipe): wait until it takes more.
        select.select([], [fd], [])
        return 0


def _appends(fd: int) -> bool:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        return False
    return bool(fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_APPEND)


def _end(fd: int) -> int | None:
    """Where the next write to ``fd`` lands, for a regular file; ``None`` otherwise."""
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        if _appends(fd):
            return os.fstat(fd).st_size
        return os.lseek(fd, 0, os.SEEK_CUR)
    except OSError:
        return None


def open_output(path: Path, *, resume_length: int | None) -> Output:
    """Open ``--output FILE`` for appending; on resume, cut it back to ``resume_length``.

    The file is created with mode 0600: it holds the table's data. Raises
    :class:`OSError`, or :class:`ValueError` when the file is shorter than the checkpoint
    says (then it is not the file the checkpoint was written for).
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_CLOEXEC", 0), 0o600)
    try:
        size = os.fstat(fd).st_size
        if resume_length is not None:
            if size < resume_length:
                raise ValueError(
                    f"{path} holds {size:,} bytes but the checkpoint counts {resume_length:,}: "
                    "it is not the output this checkpoint was written for"
                )
            if size > resume_length:
                # What an interrupted run wrote after its last checkpoint (perhaps half
                # a line): the resumed scan writes those items again.
                os.ftruncate(fd, resume_length)
                os.fsync(fd)
            size = resume_length
        return Output(fd, str(path), length=size, owned=True)
    except BaseException:
        os.close(fd)
        raise
