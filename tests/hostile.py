"""Helpers of the hostile-input and fault tests: the promise each of them checks.

A refused invocation prints exactly one line on stderr, exits non-zero, shows no traceback, and
leaves every file of the run directory byte-identical (`.lock` aside: it names the last pid to
hold the directory).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import write_config


def files(root: Path) -> dict[str, bytes]:
    """Every file under `root` (the run directory) but the lock, with its bytes."""
    if not root.exists():
        return {}
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


def assert_refused(result: Any, *fragments: str) -> str:
    """One line on stderr starting `error:`, a non-zero exit, no traceback; returns the line."""
    assert result.exit_code != 0, result.output
    everything = result.output + (result.stderr or "")
    assert "Traceback" not in everything, everything
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert line.startswith("error: "), line
    for fragment in fragments:
        assert fragment in line, line
    return line


def refused_unchanged(
    invoke: Callable[..., Any], root: Path, *args: Any, fragments: tuple[str, ...] = ()
) -> str:
    """Run a command that must be refused; the run directory must not change."""
    before = files(root)
    line = assert_refused(invoke(*args), *fragments)
    assert files(root) == before
    return line


def run_dir(config: Path) -> Path:
    return Path(yaml.safe_load(config.read_text())["run_dir"])


def copy_run(finished: Path, directory: Path, name: str = "copy") -> Path:
    """A copy of a finished run, with a config pointing at it (run_dir may change)."""
    raw = yaml.safe_load(finished.read_text())
    target = directory / "runs" / name
    shutil.copytree(run_dir(finished), target)
    (target / ".lock").unlink(missing_ok=True)
    raw["run_dir"] = str(target)
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def small_config(directory: Path, name: str = "exp", **changes: Any) -> Path:
    """The tests' smallest full run: 6 train and 4 eval problems, one iteration."""
    changes.setdefault("data__train_size", 6)
    changes.setdefault("data__eval_size", 4)
    return write_config(directory, name, **changes)
