"""The benchmark's report: a Markdown table for the README, a PNG plot, the raw JSON.

Kept apart from the runner so that a report can be rebuilt from ``bench.json`` without
scanning again (``python benchmarks/run.py --report-only``).
"""

from __future__ import annotations

import datetime
import importlib
import importlib.metadata
import os
import platform
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PACKAGES = (
    "dynascan-async",
    "aiobotocore",
    "botocore",
    "boto3",
    "aioboto3",
    "aiodynamo",
    "aiohttp",
    "orjson",
)


@dataclass
class Row:
    """One client on one server: every repetition's figures, and the medians reported.

    ``repeats`` is how many runs were asked for; ``runs`` holds those that finished. A row
    is ``ok`` only when every run asked for finished with the right count and checksum:
    a median over the runs that happened to survive is not the figure that was asked for,
    and the report says how many finished (its ``runs`` column).
    """

    client: str
    settings: str
    runs: list[dict[str, Any]] = field(default_factory=list)
    expected_items: int = 0
    expected_checksum: int = 0
    note: str = ""
    repeats: int = 0

    def _right(self, run: dict[str, Any]) -> bool:
        return (
            run.get("items") == self.expected_items
            and run.get("checksum") == self.expected_checksum
        )

    @property
    def ok(self) -> bool:
        return (
            bool(self.runs)
            and len(self.runs) >= self.repeats
            and all(self._right(run) for run in self.runs)
        )

    @property
    def survived(self) -> str:
        """``finished/asked``, for the report."""
        return f"{len(self.runs)}/{max(self.repeats, len(self.runs))}"

    def median(self, key: str) -> float:
        return statistics.median(float(run[key]) for run in self.runs)

    @property
    def wall(self) -> float:
        return self.median("wall")

    @property
    def items_per_second(self) -> float:
        return self.median("items") / self.wall if self.wall else 0.0

    @property
    def cpu_us_per_item(self) -> float:
        return statistics.median(
            float(run["cpu"]) / max(1, int(run["items"])) * 1e6 for run in self.runs
        )

    @property
    def rss_mib(self) -> float:
        return self.median("max_rss_kib") / 1024

    def failure(self) -> str:
        """Why the row is not ok, in words, or empty."""
        reasons = []
        if not self.runs:
            reasons.append("no run finished")
        elif len(self.runs) < self.repeats:
            reasons.append(f"only {len(self.runs)} of {self.repeats} runs finished")
        bad = [run for run in self.runs if not self._right(run)]
        if bad:
            counts = ", ".join(f"{run.get('items', '?'):,}" for run in bad)
            reasons.append(
                f"WRONG: {counts} items (expected {self.expected_items:,}) or checksum differs"
            )
        return "; ".join(reasons)


@dataclass
class Goal:
    """One goal of the benchmark; ``passed`` None when it could not be computed (why is in
    ``measured``). Only a PASS counts as met: a full run exits non-zero otherwise."""

    name: str
    target: str
    measured: str
    passed: bool | None  # None: not computed in this run

    @property
    def verdict(self) -> str:
        return "NOT COMPUTED" if self.passed is None else ("PASS" if self.passed else "FAIL")


def not_computed(name: str, target: str, why: str) -> Goal:
    """A goal that this run could not compute, and why (a failed row, a missing server)."""
    return Goal(name, target, f"not computed: {why}", None)


def _version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "(not installed)"


def machine() -> dict[str, str]:
    """Cores, CPU model and memory as Linux reports them; Python and package versions."""
    cpu = platform.processor() or platform.machine()
    memory = "?"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("MemTotal:"):
                    memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                    break
    except OSError:
        pass
    versions = [f"{name} {_version(name)}" for name in PACKAGES]
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": str(os.cpu_count()),
        "cpu": cpu,
        "memory": memory,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "packages": ", ".join(versions),
    }


def _fmt(value: float, digits: int = 1) -> str:
    return f"{value:,.{digits}f}"


def client_table(rows: list[Row], baseline: str = "paginator") -> list[str]:
    """Markdown lines: one row per client, the ratio against the paginator's speed."""
    base = next((row for row in rows if row.client == baseline and row.runs), None)
    lines = [
        (
            "| client | settings | runs | items/s | wall s | CPU µs/item | peak RSS MiB "
            "| vs paginator |"
        ),
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        if not row.runs:
            lines.append(
                f"| {row.client} | {row.settings} | {row.survived} | — | — | — | — | "
                f"**{row.failure()}** {row.note} |"
            )
            continue
        ratio = f"{row.items_per_second / base.items_per_second:.2f}x" if base else "—"
        flag = "" if row.ok else f" **{row.failure()}**"
        note = f" ({row.note})" if row.note else ""
        lines.append(
            f"| {row.client}{note} | {row.settings} | {row.survived} | "
            f"{_fmt(row.items_per_second, 0)} | "
            f"{row.wall:.2f} | {_fmt(row.cpu_us_per_item)} | {_fmt(row.rss_mib, 0)} | "
            f"{ratio}{flag} |"
        )
    return lines


def markdown(
    info: dict[str, str],
    servers: dict[str, dict[str, Any]],
    scenarios: list[str],
    goals: list[Goal],
    descriptions: dict[str, str],
) -> str:
    lines = [
        "# dynascan_async benchmark",
        "",
        f"- date: {info['date']}",
        f"- machine: {info['cores']} cores, {info['cpu']}, {info['memory']} memory",
        f"- {info['python']}; {info['packages']}",
        (
            "- every client in its own process; CPU = that process's user + system time "
            "around the scan (threads included); medians of the runs that finished "
            "(column runs: finished of asked; a row where any run failed is flagged and "
            "fails the benchmark)"
        ),
        f"- {info.get('pinning', 'clients and servers share every CPU')}",
        "",
    ]
    for server, section in servers.items():
        lines += [
            f"## {server}: {section['items']:,} items, {section['repeat']} repetition(s)",
            "",
            f"Server: {section['version']}.",
            "",
            *client_table(section["rows"]),
            "",
        ]
    lines += scenarios
    lines += ["## Goals", "", "| goal | target | measured | verdict |", "| --- | --- | --- | --- |"]
    lines += [f"| {g.name} | {g.target} | {g.measured} | {g.verdict} |" for g in goals]
    if not goals:
        lines += ["", "_No goal checked in this run (a smoke run checks item counts only)._"]
    lines += ["", "## Clients", ""]
    lines += [f"- `{name}`: {text}" for name, text in descriptions.items()]
    return "\n".join(lines) + "\n"


def plot(servers: dict[str, dict[str, Any]], path: Path) -> bool:
    """Items/s and CPU µs/item per client, one row of two bar charts per server."""
    try:
        # By name: the project's type check runs without the bench group (no matplotlib).
        matplotlib: Any = importlib.import_module("matplotlib")
        matplotlib.use("Agg")
        plt: Any = importlib.import_module("matplotlib.pyplot")
    except ImportError:
        print("matplotlib is not installed: no plot")
        return False
    sections = [(name, s) for name, s in servers.items() if any(r.runs for r in s["rows"])]
    if not sections:
        return False
    figure, axes = plt.subplots(len(sections), 2, figsize=(12, 3.6 * len(sections)), squeeze=False)
    for (name, section), (speed, cpu) in zip(sections, axes, strict=True):
        rows = [row for row in section["rows"] if row.runs]
        labels = [row.client for row in rows]
        colors = ["tab:green" if row.client.startswith("dynascan") else "tab:gray" for row in rows]
        speed.barh(labels, [row.items_per_second for row in rows], color=colors)
        speed.set_title(f"{name}: items/s (higher is better)")
        speed.invert_yaxis()
        cpu.barh(labels, [row.cpu_us_per_item for row in rows], color=colors)
        cpu.set_title(f"{name}: client CPU µs/item (lower is better)")
        cpu.invert_yaxis()
        for axis in (speed, cpu):
            axis.grid(axis="x", alpha=0.3)
            for bar in axis.patches:
                axis.annotate(
                    f"{bar.get_width():,.0f}" if axis is speed else f"{bar.get_width():.1f}",
                    (bar.get_width(), bar.get_y() + bar.get_height() / 2),
                    xytext=(3, 0),
                    textcoords="offset points",
                    va="center",
                    fontsize=8,
                )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True
