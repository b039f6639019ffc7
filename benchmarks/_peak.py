"""The peak RSS of a process since it started its program, not its parent's.

``ru_maxrss`` (from ``getrusage`` in the child, or ``wait4`` in the parent) is no measure
of a child's memory on Linux: exec folds the high-water mark of the image it replaces
into it, and a forked child's image *is* its parent's. A child of a 170 MiB benchmark
driver reports at least 170 MiB whatever it does, which hides exactly what the RSS
goals look for (an export's memory growing with the table). ``VmHWM`` in
``/proc/self/status`` belongs to the current address space only, made at exec.

    python benchmarks/_peak.py OUT -m dynascan_async export ...
    python benchmarks/_peak.py OUT path/to/script.py args ...

runs the module or script as ``python`` would, and writes its ``VmHWM`` (KiB) to OUT as
it exits normally.
"""

from __future__ import annotations

import atexit
import re
import resource
import runpy
import sys
from pathlib import Path

__all__ = ["peak_rss_kib", "read_peak"]

_HWM = re.compile(r"^VmHWM:\s+(\d+)\s+kB", re.MULTILINE)


def peak_rss_kib() -> int:
    """This process's peak RSS in KiB since its exec (``ru_maxrss`` off Linux)."""
    try:
        match = _HWM.search(Path("/proc/self/status").read_text())
    except OSError:
        match = None
    if match is not None:
        return int(match.group(1))
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def read_peak(path: Path) -> int | None:
    """What the wrapper wrote to ``path``, or ``None`` if the child never got that far."""
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _main(argv: list[str]) -> None:
    out, *rest = argv
    atexit.register(lambda: Path(out).write_text(f"{peak_rss_kib()}\n"))
    if rest[:1] == ["-m"]:
        sys.argv = [rest[1], *rest[2:]]
        runpy.run_module(rest[1], run_name="__main__", alter_sys=True)
    else:
        sys.argv = rest
        sys.path[0] = str(Path(rest[0]).resolve().parent)
        runpy.run_path(rest[0], run_name="__main__")


if __name__ == "__main__":
    _main(sys.argv[1:])
