"""`mafine run` end to end on the local provider: a tiny model, LoRA adapters, two iterations."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("peft")

from mafine.artifacts import ModelRecord, Transcript
from mafine.jsonl import read_rows
from tests.conftest import write_config
from tests.local_fixtures import build_tiny_model, one_torch_thread, tiny_settings


@pytest.fixture(scope="module")
def local_run(tmp_path_factory) -> tuple[Path, Path]:
    from typer.testing import CliRunner

    from mafine.cli import app

    directory = tmp_path_factory.mktemp("local")
    model = build_tiny_model(directory / "tiny", answer_steps=150)
    config = write_config(
        directory,
        iterations=2,
        agents={"count": 2, "critics": 1},
        data={
            "source": {"kind": "deepmind", "module": "arithmetic__add_or_sub"},
            "train_size": 6,
            "eval_size": 3,
        },
        sampling={"temperature": 1.0, "top_p": 0.9, "max_output_tokens": 24},
        finetune={"epochs": 2, "start_from": "continue"},
        provider={
            "name": "local",
            "model": str(model),
            "max_concurrency": 8,
            "local": tiny_settings().model_dump(mode="json"),
        },
    )
    with one_torch_thread():
        result = CliRunner().invoke(app, ["run", str(config)])
    assert result.exit_code == 0, result.output
    return config, directory / "runs" / "exp"


def test_two_iterations_complete_with_an_adapter_per_agent_model(local_run):
    _, root = local_run
    for iteration in (1, 2):
        records = list(read_rows(root / f"iter-{iteration}/models.jsonl", ModelRecord))
        roles = {(r.agent, r.role) for r in records}
        assert roles == {(0, "generator"), (0, "critic"), (1, "generator")}
        assert any(r.state == "succeeded" for r in records)
        for record in records:
            if record.state == "succeeded":
                # Named relative to the run directory, wherever it lives.
                assert not Path(record.serving_model).is_absolute()
                assert record.serving_model.startswith(f"iter-{iteration}/tuning/")
                assert (root / record.serving_model / "adapter_config.json").is_file()
    assert "provider: **local**" in (root / "report.md").read_text()
    document = json.loads((root / "metrics.json").read_text())
    likelihood = document["diversity"]["multiagent_ft@1"]["likelihood"]
    assert likelihood["nll"]  # the local provider scores text: NLL and KL between agents


def test_the_adapter_written_is_the_one_used_at_evaluation(local_run):
    _, root = local_run
    records = {(r.agent, r.role): r for r in read_rows(root / "iter-1/models.jsonl", ModelRecord)}
    for transcript in read_rows(root / "iter-1/eval-debate.jsonl", Transcript):
        for trace in transcript.agents:
            for turn in trace.turns:
                assert turn.model == records[(trace.agent, turn.role)].serving_model


def test_rerun_retrains_nothing(local_run):
    from typer.testing import CliRunner

    from mafine.cli import app

    config, root = local_run
    done = sorted(root.rglob("DONE.json"))
    assert done
    stamps = [path.stat().st_mtime_ns for path in done]
    journal = (root / "journal.jsonl").read_bytes()
    with one_torch_thread():
        result = CliRunner().invoke(app, ["run", str(config)])
    assert result.exit_code == 0, result.output
    assert [path.stat().st_mtime_ns for path in done] == stamps
    assert (root / "journal.jsonl").read_bytes() == journal


def test_the_settings_travel_through_the_config(local_run):
    config, _ = local_run
    from mafine.config import load_config

    loaded = load_config(config)
    assert loaded.provider.local == tiny_settings()
    assert loaded.provider.name == "local"


def test_the_same_results_wherever_the_run_lives(local_run, tmp_path):
    """The same config and seed in a run directory at another path, under another name:
    the same adapters (bit for bit), models files, debates and grades."""
    from typer.testing import CliRunner

    from mafine.cli import app

    config, root = local_run
    moved = tmp_path / "elsewhere" / "deeper" / "another-name"
    with one_torch_thread():
        result = CliRunner().invoke(app, ["run", str(config), "--set", f"run_dir={moved}"])
    assert result.exit_code == 0, result.output
    compared = sorted(
        path.relative_to(root)
        for pattern in ("iter-*/*.jsonl", "iter-*/tuning/*/adapter/*", "*.jsonl")
        for path in root.glob(pattern)
    )
    assert any(path.suffix == ".safetensors" for path in compared)
    differ = [str(p) for p in compared if (root / p).read_bytes() != (moved / p).read_bytes()]
    assert differ == []
