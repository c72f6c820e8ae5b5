"""The import-linter contract of `make lint` (pyproject.toml) holds on the tree, and fails as
soon as a module imports up the layers (checked on a copy of the package)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

pytestmark = pytest.mark.skipif(not LINT_IMPORTS.exists(), reason="import-linter not installed")


def lint_copy(tmp_path: Path, edit: tuple[str, str] | None = None) -> subprocess.CompletedProcess:
    shutil.copytree(ROOT / "src" / "mafine", tmp_path / "mafine")
    if edit is not None:
        module, line = edit
        path = tmp_path / "mafine" / module
        path.write_text(path.read_text() + f"\n{line}\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_tree_keeps_the_layers(tmp_path: Path) -> None:
    result = lint_copy(tmp_path)
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        ("config.py", "import mafine.stages.debate", "Layers"),
        ("providers/base.py", "import mafine.pipeline", "Layers"),
        ("data/hub.py", "import mafine.config", "Components never import the config"),
    ],
)
def test_an_upward_import_breaks_the_contract(
    tmp_path: Path, module: str, line: str, broken: str
) -> None:
    result = lint_copy(tmp_path, (module, line))
    assert result.returncode != 0
    assert f"{broken}" in result.stdout and "BROKEN" in result.stdout
