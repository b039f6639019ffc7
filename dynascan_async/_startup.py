"""The ``dynascan`` process's garbage collection: none while it starts, then the usual.

A command spends a large share of a short run starting: importing aiohttp, botocore and
pyarrow and loading botocore's service model make a few hundred thousand objects that
live as long as the process. The cyclic collector, triggered every few hundred to two
thousand new container objects (by Python version), walks them again and again while they
are made; each full collection later in the run walks them once more, and the interpreter
walks them a last time as it exits. None of them is ever garbage. On a 100,000-item table,
on one core, holding the collector took a fifth off a Parquet export's time and a third
off a scan's (``benchmarks/export.py``, run against the same code without it).

So the command entry point (:func:`hold`) turns the collector off, and the command turns it
back on (:func:`release`) once its start-up is over (its client made, the modules it needs
imported): what exists then is frozen (``gc.freeze``: set aside, never walked again) and
everything made afterwards, the scan's own objects, is collected as usual. The small
amount of cyclic garbage that start-up leaves is frozen with the rest; that is the price
of the freeze, paid once.

This is the program's choice, not the library's: ``import dynascan_async`` in a service and
``cli.main()`` called in-process (the tests) never touch the collector, because only the
entry point holds it and :func:`release` does nothing unless it was held.
"""

from __future__ import annotations

__all__ = ["hold", "release"]

import gc


class _Held:
    """Whether :func:`hold` turned the collector off and nothing has turned it back on."""

    __slots__ = ("held",)

    def __init__(self) -> None:
        self.held = False


_STATE = _Held()


def hold() -> None:
    """Turn the collector off for start-up, if it is on."""
    if gc.isenabled():
        gc.disable()
        _STATE.held = True


def release() -> None:
    """Start-up is over: freeze what it made and collect as usual. Safe to call again."""
    if not _STATE.held:
        return
    _STATE.held = False
    gc.freeze()
    gc.enable()
