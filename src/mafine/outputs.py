"""Outputs a user names never overwrite an input or a file of a run directory, and two
commands never write one output at once."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from mafine.errors import MafineError


def run_directory_of(path: Path) -> Path | None:
    """The run directory that holds `path` (a directory with a manifest), if any."""
    for directory in path.resolve().parents:
        if (directory / "manifest.json").is_file():
            return directory
    return None


def check_output(output: Path, inputs: Iterable[Path], option: str = "--output") -> None:
    """Refuse an output that is an input, a directory, not a regular file (a device node would
    be replaced by the atomic write), or a run directory's file (existing, or named like one
    of its artifacts)."""
    resolved = output.resolve()
    for given in inputs:
        candidates = [given, given / "metrics.json"] if given.is_dir() else [given]
        if any(resolved == c.resolve() for c in candidates):
            raise MafineError(f"{option} {output} is an input of this command; choose another path")
    if output.is_dir():
        raise MafineError(f"{option} {output} is a directory; give a file's path")
    if output.exists() and not output.is_file():  # a device or FIFO: an atomic write replaces it
        raise MafineError(f"{option} {output} is not a regular file; give a file's path")
    run = run_directory_of(output)
    if run is not None and (output.exists() or _artifact_name(output.name)):
        raise MafineError(
            f"{option} {output} would overwrite a file of the run directory {run}; choose a "
            "new file's path"
        )


_ARTIFACT_NAMES = {"metrics.json", "report.md", "config.yaml", "manifest.json", "journal.jsonl"}


def _artifact_name(name: str) -> bool:
    return name in _ARTIFACT_NAMES or name.endswith(("-debate.jsonl", "models.jsonl"))


def hold_lock(lock_path: Path, refusal: Callable[[str], str]) -> IO[str]:
    """`lock_path` opened, locked for this process without waiting and marked with its pid;
    while another process holds it, MafineError(refusal(holder)), the holder as its lock file
    names it."""
    handle = lock_path.open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise MafineError(refusal(holder)) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"mafine pid {os.getpid()}")
    handle.flush()
    return handle


@contextmanager
def exclusive(path: Path, what: str = "--output") -> Iterator[None]:
    """Hold `path` for writing: another process holding it makes this one stop (naming its
    pid) instead of interleaving with it. The lock file `.NAME.lock` exists only while held."""
    lock_path = path.with_name(f".{path.name}.lock")
    path.parent.mkdir(parents=True, exist_ok=True)

    def refusal(holder: str) -> str:
        return (
            f"{path} is being written by {holder}; wait for it to finish or choose another {what}"
        )

    while True:
        handle = hold_lock(lock_path, refusal)
        try:
            same = os.fstat(handle.fileno()).st_ino == lock_path.stat().st_ino
        except FileNotFoundError:
            same = False
        if same:  # not a lock file its last holder removed meanwhile
            break
        handle.close()
    try:
        yield
    finally:
        lock_path.unlink(missing_ok=True)
        handle.close()
