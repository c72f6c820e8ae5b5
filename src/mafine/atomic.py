"""Atomic file writes: readers see the old file or the whole new one, never a part.

Every finished artifact is written beside its destination under a temporary name
(`.NAME.tmp`), flushed to disk and renamed over the destination; a write that fails leaves
the destination as it was and removes the temporary file.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


def temporary_path(path: Path) -> Path:
    """Where `path`'s next version is written before it is renamed into place."""
    return path.with_name(f".{path.name}.tmp")


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path to write `path`'s new content to (by any means, e.g. a library's
    `save(tmp)`); renamed over `path` when the block succeeds, removed when it fails."""
    path.parent.mkdir(parents=True, exist_ok=True)
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
