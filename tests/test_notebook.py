"""The Colab notebook runs end to end against the fake provider, so it never rots."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "mafine_colab.ipynb"


def outputs(notebook, kind: str) -> list:
    found = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if kind == "stream" and output.get("output_type") == "stream":
                found.append(output["text"])
            elif kind in output.get("data", {}):
                found.append(output["data"][kind])
    return found


def test_notebook_runs_on_the_fake(tmp_path, monkeypatch):
    run_dir = tmp_path / "nb-run"
    monkeypatch.setenv("MAFINE_NOTEBOOK_FAKE", "1")
    monkeypatch.setenv("MAFINE_NOTEBOOK_RUN_DIR", str(run_dir))
    monkeypatch.setenv(
        "MAFINE_NOTEBOOK_ARGS",
        "--set iterations=1 --set data.train_size=8 --set data.eval_size=4",
    )
    # the shell cells call `mafine`: the one installed beside this interpreter
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("COLUMNS", "100")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(ROOT)}},
    )
    client.execute()  # raises CellExecutionError, naming the cell, if any cell fails

    assert (run_dir / "report.md").is_file() and (run_dir / "metrics.json").is_file()
    markdown = "\n".join(outputs(notebook, "text/markdown"))
    assert "provider: **fake**" in markdown and "not research results" in markdown
    streams = "".join(outputs(notebook, "stream"))
    assert "offline self-test" in streams and "no credentials needed" in streams
    assert "Multiagent FT" in streams  # the `mafine report` table
    assert "error" not in streams.lower()
    from mafine.analysis import plots

    if plots.available():
        images = outputs(notebook, "image/png")
        assert len(images) >= 1
        assert (run_dir / "plots" / "accuracy.png").is_file()


def test_notebook_guards_colab_only_steps():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    source = "\n".join(cell.source for cell in notebook.cells if cell.cell_type == "code")
    assert 'userdata.get("GEMINI_API_KEY")' in source
    assert "auth.authenticate_user()" in source
    assert "!mafine run {CONFIG}" in source
    assert "configs/mvp.yaml" in source
    for line in source.splitlines():
        if "google.colab import" in line:
            assert line.startswith("        "), "Colab imports run only inside their guards"
    nbformat.validate(notebook)
