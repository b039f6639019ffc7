"""The benchmark's verdicts: a goal that is missed or cannot be computed fails the run.

Pure logic over made-up rows (no client is run): the benchmark itself is run by
``nox -s bench`` and, tiny, by ``nox -s bench_smoke``.
"""

from __future__ import annotations

from typing import Any

import pytest

# The benchmark's data loader uses orjson (the ``fast`` extra), which the compat session
# leaves out on purpose; the tests session has it.
pytest.importorskip("orjson")

from benchmarks import _report, run


def finished(items: int = 100, checksum: int = 7, cpu: float = 1.0) -> dict[str, Any]:
    return {"items": items, "checksum": checksum, "cpu": cpu, "wall": 1.0, "max_rss_kib": 1024}


def row(client: str, runs: list[dict[str, Any]], repeats: int = 2) -> _report.Row:
    return _report.Row(client, "sequential", runs, 100, 7, repeats=repeats)


def test_a_row_is_ok_only_when_every_run_asked_for_finished_right() -> None:
    assert row("a", [finished(), finished()]).ok
    survivor = row("a", [finished()])
    assert not survivor.ok
    assert survivor.failure() == "only 1 of 2 runs finished"
    assert survivor.survived == "1/2"
    wrong = row("a", [finished(), finished(items=99)])
    assert not wrong.ok
    assert "WRONG: 99 items" in wrong.failure()
    assert not row("a", []).ok


def verdicts(rows: list[_report.Row], server: str = "model") -> dict[str, _report.Goal]:
    bench = run.Run()
    bench.servers[server] = {"rows": rows}
    run.main_goals(bench)
    return {goal.name: goal for goal in bench.goals}


def test_a_failed_competitor_leaves_its_goal_not_computed_not_dropped() -> None:
    goals = verdicts(
        [
            row("dynascan", [finished(cpu=1.0), finished(cpu=1.0)]),
            row("aiodynamo", [finished(cpu=2.0)]),  # one of its two runs failed
            row("aioboto3_table", [finished(cpu=8.0), finished(cpu=8.0)]),
        ]
    )
    missed = goals["CPU/item vs aiodynamo (model)"]
    assert missed.passed is None
    assert "aiodynamo: only 1 of 2 runs finished" in missed.measured
    assert goals["CPU/item vs aioboto3 Table.scan (model)"].passed is True
    bench = run.Run(goals=list(goals.values()))
    assert [line.split(":")[0] for line in run.unmet(bench)] == ["CPU/item vs aiodynamo (model)"]


def test_a_missed_goal_is_listed() -> None:
    goals = verdicts(
        [
            row("dynascan", [finished(cpu=3.0), finished(cpu=3.0)]),
            row("aiodynamo", [finished(cpu=2.0), finished(cpu=2.0)]),
        ]
    )
    assert goals["CPU/item vs aiodynamo (model)"].passed is False
    assert run.unmet(run.Run(goals=list(goals.values())))


def test_a_goal_whose_rows_were_not_asked_for_is_left_out() -> None:
    goals = verdicts([row("dynascan", [finished(), finished()])])
    assert goals == {}


def test_an_unavailable_server_is_not_computed() -> None:
    bench = run.Run(unavailable={"dynalite": "dynalite needs Node.js 20+"})
    run.main_goals(bench)
    assert [goal.passed for goal in bench.goals] == [None]
    assert "Node.js" in run.unmet(bench)[0]


def test_wrong_paired_runs_fail_the_run() -> None:
    bench = run.Run(pair_failures=["model/paired pair 3, dynascan: WRONG: 99 items"])
    assert run.failures(bench) == ["model/paired pair 3, dynascan: WRONG: 99 items"]
