"""The atomic-write helper: a failed write leaves the old file whole and no temporary behind."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from mafine.atomic import (
    atomic_open,
    atomic_path,
    remove_stale,
    temporary_path,
    write_text_atomic,
)
from mafine.errors import MafineError
from mafine.outputs import exclusive


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
    assert list(tmp_path.iterdir()) == [target]


def test_atomic_path_lets_a_library_write(tmp_path: Path) -> None:
    target = tmp_path / "plot.png"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp.name.startswith(".")
        tmp.write_bytes(b"\x89PNG")
    assert target.read_bytes() == b"\x89PNG"


def test_two_writers_of_one_file_never_share_a_temporary_file(tmp_path: Path) -> None:
    """Each writer (thread or process) writes under a name of its own, so the file is always
    one writer's whole content, never a mix."""
    target = tmp_path / "out.txt"
    assert temporary_path(target) != temporary_path(target)
    started = threading.Barrier(2)

    def write(letter: str) -> None:
        with atomic_open(target) as handle:
            started.wait()
            for _ in range(2000):
                handle.write(letter * 50 + "\n")

    threads = [threading.Thread(target=write, args=(letter,)) for letter in "ab"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    lines = set(target.read_text().splitlines())
    assert lines in ({"a" * 50}, {"b" * 50})
    assert list(tmp_path.iterdir()) == [target]


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_stale_temporary_files_are_removed_only_when_ours_and_stale(tmp_path: Path) -> None:
    """A SIGKILL mid-write leaves `.NAME.<pid>-<random>.tmp`; the next write of NAME (or a run
    directory's opening, through `remove_stale`) removes it once its process is gone; files
    of a live process and files named otherwise are kept."""
    target = tmp_path / "sub" / "out.jsonl"
    target.parent.mkdir()
    dead = target.with_name(f".out.jsonl.{_dead_pid()}-0123abcd.tmp")
    live = target.with_name(f".out.jsonl.{os.getppid()}-0123abcd.tmp")
    foreign = target.with_name(".out.jsonl.tmp")
    elsewhere = target.with_name(f".other.jsonl.{_dead_pid()}-89abcdef.tmp")
    for path in (dead, live, foreign, elsewhere):
        path.write_text("half")
    write_text_atomic(target, "whole\n")
    assert not dead.exists() and live.exists() and foreign.exists() and elsewhere.exists()
    assert remove_stale(tmp_path) == [elsewhere]
    assert sorted(p.name for p in target.parent.iterdir()) == sorted(
        [live.name, foreign.name, target.name]
    )


def test_a_second_writer_of_one_output_is_refused_naming_the_first(tmp_path: Path) -> None:
    target = tmp_path / "graded.jsonl"
    refused = pytest.raises(MafineError, match=r"graded.jsonl is being written by mafine pid")
    with exclusive(target), refused, exclusive(target):
        pass
    assert list(tmp_path.iterdir()) == []
    with exclusive(target):  # free again
        pass
