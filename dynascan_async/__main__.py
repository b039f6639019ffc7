"""``python -m dynascan_async``: the same as the ``dynascan`` command."""

import sys

from .cli import run

sys.exit(run())
