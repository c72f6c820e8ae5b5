"""Outputs a user names never overwrite an input or a file of a run directory."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

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
