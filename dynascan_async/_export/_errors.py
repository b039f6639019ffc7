"""The export's own conditions (DynamoDB's errors pass through unchanged, as for scan())::

    Exception
    └── ExportError                  one line a person can act on
        ├── ExportExistsError        the folder holds a finished export (overwrite=False)
        ├── ExportMismatchError      its unfinished export was made by another command
        │                            (also a ValueError, as for a checkpoint that does not fit)
        └── ExportLockedError        another process is writing the folder right now

A full disk is the ``OSError`` the file system raised: the export keeps what it had
committed, and the same call continues it once there is space.
"""

from __future__ import annotations

__all__ = ["ExportError", "ExportExistsError", "ExportLockedError", "ExportMismatchError"]


class ExportError(Exception):
    """An export folder that cannot take this export; the message is one line."""


class ExportExistsError(ExportError):
    """The folder holds a finished export; pass ``overwrite=True`` to replace it."""


class ExportMismatchError(ExportError, ValueError):
    """The folder's unfinished export is of another table, format or Scan parameters."""


class ExportLockedError(ExportError):
    """Another process holds the folder (two writers would corrupt each other's state)."""
