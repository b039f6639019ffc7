"""Read a whole DynamoDB table (or index) from asyncio, as fast as the table allows.

::

    async for item in dynascan_async.scan(client, "logfile_scan", segments=8):
        ...
"""

__all__ = [
    "CheckpointError",
    "RetryPolicy",
    "Scan",
    "ScanStats",
    "scan",
]

from ._errors import CheckpointError
from ._retry import RetryPolicy
from ._scan import Scan, scan
from ._stats import ScanStats


def __getattr__(name: str) -> str:
    # Read lazily: importing importlib.metadata costs more than the rest of the package.
    if name == "__version__":
        from importlib.metadata import version

        return version("dynascan-async")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
