"""The all-or-nothing file writes every durable file of the library goes through."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from dynascan_async._durable import atomic_file, remove_stale, write_atomic


def test_write_atomic_replaces_whole_file_with_private_mode(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    target.write_text("old")
    write_atomic(target, b"new")
    assert target.read_bytes() == b"new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_failed_write_leaves_target_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_file(target) as handle:
        handle.write(b"half")
        raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_planted_symlink_is_never_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious")
    # The old code wrote to a fixed FILE.tmp name; plant links at every such name.
    os.symlink(victim, tmp_path / "state.json.tmp")
    os.symlink(victim, tmp_path / ".state.json.tmp")
    write_atomic(tmp_path / "state.json", b"{}")
    assert victim.read_text() == "precious"
    assert (tmp_path / "state.json").read_bytes() == b"{}"
    assert not (tmp_path / "state.json").is_symlink()


def test_remove_stale_clears_leftovers_of_a_killed_writer(tmp_path: Path) -> None:
    (tmp_path / ".part-1.parquet.abc123.tmp").write_text("x")
    (tmp_path / ".other.abc.tmp").write_text("x")
    (tmp_path / "part-1.parquet").write_text("keep")
    assert remove_stale(tmp_path, "part-1.parquet") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".other.abc.tmp",
        "part-1.parquet",
    ]
