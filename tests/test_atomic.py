"""The atomic-write helper: a failed write leaves the old file whole and no temporary behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from mafine.atomic import atomic_open, atomic_path, temporary_path, write_text_atomic


def test_write_replaces_whole_file(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "out.txt"
    write_text_atomic(target, "one\n")
    write_text_atomic(target, "two\n")
    assert target.read_text() == "two\n"
    assert list(target.parent.iterdir()) == [target]


def test_failed_write_keeps_old_content_and_cleans_up(tmp_path: Path) -> None:
    target = tmp_path / "out.jsonl"
    write_text_atomic(target, "old\n")
    with pytest.raises(RuntimeError), atomic_open(target) as handle:
        handle.write("half a ro")
        raise RuntimeError("killed")
    assert target.read_text() == "old\n"
    assert not temporary_path(target).exists()


def test_atomic_path_lets_a_library_write(tmp_path: Path) -> None:
    target = tmp_path / "plot.png"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp.name.startswith(".")
        tmp.write_bytes(b"\x89PNG")
    assert target.read_bytes() == b"\x89PNG"
