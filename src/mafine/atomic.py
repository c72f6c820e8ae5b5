"""Atomic file writes: readers see the old file or the whole new one, never a part.

Every finished artifact is written beside its destination under a temporary name of its own
(`.NAME.<pid>-<random>.tmp`: two writers of one file never share one), flushed to disk and
renamed over the destination; a write that fails leaves the destination as it was and removes
the temporary file. A temporary file left by a process killed mid-write (SIGKILL) is removed by
the next write of the same file, or by `remove_stale` (a run directory's opening does it):
only files named like ours, and only those whose process is gone.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

_SUFFIX = ".tmp"
_OURS = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)-[0-9a-f]{8}\.tmp$")


def temporary_path(path: Path) -> Path:
    """Where `path`'s next version is written before it is renamed into place: a name no other
    writer (process or thread) of `path` uses."""
    return path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}{_SUFFIX}")


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path to write `path`'s new content to (by any means, e.g. a library's
    `save(tmp)`); renamed over `path` when the block succeeds, removed when it fails."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_of(path)
    tmp = temporary_path(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def atomic_open(path: Path, encoding: str = "utf-8") -> Iterator[IO[str]]:
    """A text handle whose content replaces `path` (flushed and fsynced) when the block
    succeeds; on failure `path` is untouched."""
    with atomic_path(path) as tmp, tmp.open("w", encoding=encoding) as handle:
        yield handle
        handle.flush()
        os.fsync(handle.fileno())


def write_text_atomic(path: Path, text: str, encoding: str = "utf-8") -> None:
    """Replace `path` with `text`, atomically."""
    with atomic_open(path, encoding=encoding) as handle:
        handle.write(text)


def remove_stale(directory: Path) -> list[Path]:
    """Remove the temporary files under `directory` that killed mafine processes left behind
    (named like ours, their process gone); returns what was removed."""
    removed = []
    for tmp in directory.rglob(f".*{_SUFFIX}"):
        if _is_stale(tmp):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def _remove_stale_of(path: Path) -> None:
    for tmp in path.parent.glob(f".{path.name}.*{_SUFFIX}"):
        if _is_stale(tmp):
            tmp.unlink(missing_ok=True)


def _is_stale(tmp: Path) -> bool:
    match = _OURS.match(tmp.name)
    if match is None or not tmp.is_file():
        return False
    pid = int(match["pid"])
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False
