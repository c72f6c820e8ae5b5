"""Why an input file cannot be read, in words: not found, a dangling symlink, a directory, not
readable. Every command that reads a file a user names checks it here, so "not found" is never
said of a path that exists."""

from __future__ import annotations

import os
from pathlib import Path

from mafine.errors import MafineError


def dangling_link(path: Path) -> str | None:
    """`"L is a symlink to T, which leads nowhere"` for the first link on `path` (itself or a
    directory above it) whose target is missing or a loop of links; None when there is none."""
    for candidate in (path, *path.parents):
        try:
            if candidate.is_symlink() and not candidate.exists():
                return (
                    f"{candidate} is a symlink to {os.readlink(candidate)}, which leads nowhere "
                    "(missing, or a loop of links)"
                )
        except OSError:
            return None
    return None


def require_file(path: Path, what: str) -> None:
    """Refuse `path` in one line naming it (as `what`, e.g. "config file") unless it is a
    readable regular file."""
    try:
        if not path.exists() and (link := dangling_link(path)):
            raise MafineError(f"{what} {path}: {link}; fix the link or give the file itself")
        if not path.exists():
            parent = path.parent
            where = "" if parent.is_dir() else f" (no directory {parent})"
            raise MafineError(f"{what} not found: {path}{where}")
        if path.is_dir():
            raise MafineError(f"{what} {path} is a directory; give a file's path")
        if not path.is_file():
            raise MafineError(f"{what} {path} is not a regular file; give a file's path")
        with path.open("rb"):
            pass
    except PermissionError:
        raise MafineError(
            f"{what} {path} cannot be read: permission denied; check the permissions of the "
            "file and of its directories"
        ) from None
    except OSError as exc:
        raise MafineError(f"{what} {path} cannot be read: {exc.strerror or exc}") from None
