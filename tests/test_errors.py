"""Bad input: one line on stderr, a non-zero exit, no traceback, and the run directory intact."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mafine.config import FakeSettings
from mafine.providers.fake_gemini import FakeGemini
from tests.conftest import write_config


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file of a run directory but the manifest (which records failed attempts)."""
    if not root.exists():
        return {}
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name not in {"manifest.json", ".lock"}
    }


def assert_one_line_error(result, *fragments: str) -> str:
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    output = result.stderr.strip()
    assert len(output.splitlines()) == 1, result.output
    assert output.startswith("error:"), output
    for fragment in fragments:
        assert fragment in output, output
    return output


@pytest.fixture
def prepared(cli, config_path) -> Path:
    assert cli("prepare", config_path).exit_code == 0
    return config_path


def test_unknown_key(cli, config_path):
    result = cli("prepare", config_path, "--set", "agents.cuont=3")
    assert_one_line_error(result, "agents.cuont", "unknown key", str(config_path))


def test_unknown_key_in_the_file(cli, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("seed: 0\ndebate:\n  round: 2\n")
    assert_one_line_error(cli("prepare", path), "debate.round", "unknown key")


def test_wrong_type(cli, config_path):
    result = cli("prepare", config_path, "--set", "agents.count=three")
    assert_one_line_error(result, "agents.count", "integer", "'three'")


def test_missing_config_file(cli, tmp_path):
    assert_one_line_error(cli("run", tmp_path / "nope.yaml"), "config file not found")


def test_invalid_yaml(cli, tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("seed: [0\n")
    assert_one_line_error(cli("run", path), "not valid YAML")


def test_malformed_set(cli, config_path):
    assert_one_line_error(cli("prepare", config_path, "--set", "seed"), "key.path=value")


def test_more_critics_than_agents(cli, config_path):
    result = cli("prepare", config_path, "--set", "agents.critics=5")
    assert_one_line_error(result, "critics (5) cannot exceed count (3)")


def test_prompt_without_its_placeholder(cli, config_path):
    result = cli("prepare", config_path, "--set", "prompts.question=Solve it.")
    assert_one_line_error(result, "prompts.question must contain {question}")


def test_corrupt_jsonl_line_names_file_and_line(cli, prepared):
    root = prepared.parent / "runs" / prepared.stem
    problems = root / "problems" / "train.jsonl"
    lines = problems.read_text().splitlines(keepends=True)
    lines[2] = '{"id": "train-00002", "question": \n'
    problems.write_text("".join(lines))
    before = snapshot(root)
    output = assert_one_line_error(cli("debate", prepared), str(problems), "line 3")
    assert "corrupt" in output
    assert snapshot(root) == before


def test_run_directory_of_another_config(cli, prepared):
    root = prepared.parent / "runs" / prepared.stem
    before = snapshot(root)
    result = cli("prepare", prepared, "--set", "seed=3", "--set", "debate.rounds=3")
    assert_one_line_error(result, "another config", "seed", "debate.rounds")
    assert snapshot(root) == before


def test_missing_api_key(cli, config_path, monkeypatch):
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    result = cli("debate", config_path, "--set", "provider.name=gemini")
    assert_one_line_error(result, "GEMINI_API_KEY")


def test_retired_model_name(cli, tmp_path):
    config = write_config(tmp_path, provider__model="gemini-2.0-flash-exp")
    result = cli("run", config)
    assert_one_line_error(result, "gemini-2.0-flash-exp is not available", "provider.model")


def test_tuning_with_an_api_key_names_the_working_routes(cli, tmp_path, monkeypatch):
    secret = "AIza-test-secret-key-0123456789"
    monkeypatch.setenv("GEMINI_API_KEY", secret)
    with FakeGemini(FakeSettings()) as fake:
        config = write_config(
            tmp_path,
            provider__name="gemini",
            provider__gemini={"base_url": fake.url, "tier": "none"},
        )
        for stage in ("prepare", "debate", "build-sft"):
            assert cli(stage, config).exit_code == 0
        output = assert_one_line_error(cli("finetune", config), "Vertex AI", "provider.name=local")
    root = config.parent / "runs" / config.stem
    assert secret not in output
    for path in root.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


def test_evaluate_before_finetune(cli, prepared):
    assert_one_line_error(cli("evaluate", prepared, "-i", "1"), "no tuned models", "finetune")


def test_debate_before_prepare(cli, config_path):
    assert_one_line_error(cli("debate", config_path), "mafine prepare")


def test_second_process_on_the_same_run_directory_is_refused(cli, prepared):
    root = prepared.parent / "runs" / prepared.stem
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys, time
                from pathlib import Path
                from mafine.config import load_config
                from mafine.rundir import RunDir
                with RunDir.open(load_config(Path({str(prepared)!r}))):
                    print("locked", flush=True)
                    time.sleep(60)
                """
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        before = snapshot(root)
        assert_one_line_error(cli("debate", prepared), "in use by mafine pid")
        assert snapshot(root) == before
    finally:
        holder.kill()
        holder.wait()
    assert cli("debate", prepared).exit_code == 0


def test_help_is_fast_because_heavy_packages_load_lazily():
    probe = (
        "import sys; from typer.testing import CliRunner; from mafine.cli import app; "
        "r = CliRunner().invoke(app, ['--help']); assert r.exit_code == 0, r.output; "
        "heavy = ['google.genai', 'datasets', 'torch', 'sympy', 'numpy', 'transformers']; "
        "print([m for m in heavy if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
