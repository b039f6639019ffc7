"""Files that are either wholly there or not there at all, whatever stops the process.

Everything the library writes to disk that a later run relies on (the CLI's checkpoint,
an export's part files, its state and manifest) goes through here, so that the one
recipe lives in one place:

1. a *new* temporary file in the same folder as the target (``O_CREAT | O_EXCL``, so a
   symlink planted at a predictable name is never followed, and mode 0600, because a
   checkpoint holds the table's key values);
2. the data, flushed and ``fsync``-ed, so the rename below can never make a file
   visible whose blocks are not on disk yet;
3. ``os.replace`` onto the target (atomic within one file system, hence the same
   folder), then an ``fsync`` of the folder so that the rename itself survives a crash.

A failure at any step (a full disk, a signal, an exception in the caller's writer)
removes the temporary file and leaves the target as it was. A ``kill -9`` between 1
and 3 can leave a temporary file behind; its name starts with ``.`` and ends in
``.tmp``, so readers of the folder skip it, and :func:`remove_stale` clears them.
"""

from __future__ import annotations

__all__ = ["atomic_file", "fsync_dir", "remove_stale", "write_atomic"]

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

TMP_SUFFIX = ".tmp"


def fsync_dir(folder: str | os.PathLike[str]) -> None:
    """Make a rename or an unlink in ``folder`` durable (a no-op where folders cannot be)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:  # pragma: no cover - e.g. Windows, where folders cannot be opened
        return
    try:
        with contextlib.suppress(OSError):  # some file systems refuse fsync on a folder
            os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike[str], *, mode: int = 0o600) -> Iterator[BinaryIO]:
    """Write ``path`` through a temporary file: it appears whole when the block ends.

    The block gets a binary file object. If the block raises (or the process dies), the
    target is untouched and the temporary file is removed (or left with a name that
    :func:`remove_stale` recognises).
    """
    target = Path(path)
    folder = target.parent
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=TMP_SUFFIX, dir=folder if str(folder) else "."
    )
    try:
        if mode != 0o600:
            os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            fd = -1  # owned by ``handle`` now
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, target)
        tmp_name = ""
        fsync_dir(folder if str(folder) else ".")
    finally:
        if fd != -1:
            os.close(fd)
        if tmp_name:
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)


def write_atomic(path: str | os.PathLike[str], data: bytes, *, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data``, all or nothing (see the module docstring)."""
    with atomic_file(path, mode=mode) as handle:
        handle.write(data)


def remove_stale(folder: str | os.PathLike[str], name: str) -> int:
    """Remove temporary files that :func:`atomic_file` left for ``folder/name``.

    Only call this when no other process can be writing ``name`` (the caller holds the
    folder). Returns how many were removed.
    """
    removed = 0
    prefix = f".{name}."
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(folder):
            if entry.name.startswith(prefix) and entry.name.endswith(TMP_SUFFIX):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
                    removed += 1
    return removed
