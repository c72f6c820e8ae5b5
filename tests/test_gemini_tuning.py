"""Vertex tuning through the fake: idempotent submission, transient errors, cost and estimate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mafine.artifacts import Message, SFTExample
from mafine.config import FakeSettings, GeminiSettings, ProviderConfig, load_config
from mafine.jsonl import write_rows
from mafine.pricing import usage_totals
from mafine.providers import FAKE_TUNING_BUCKET, fake_connection
from mafine.providers.base import TuningSpec
from mafine.providers.fake_gemini import FakeGemini, Reply
from mafine.providers.gemini import GeminiProvider

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
ROOT = Path(__file__).resolve().parent.parent


def vertex(fake: FakeGemini) -> GeminiProvider:
    settings = GeminiSettings(
        vertex=True, tier="none", tuning_bucket=FAKE_TUNING_BUCKET, retry_initial_s=0.01
    )
    return GeminiProvider(ProviderConfig(name="gemini", gemini=settings), fake_connection(fake.url))


def spec(tmp_path: Path, answer: str = "\\boxed{3}") -> TuningSpec:
    data = tmp_path / "agent-0-generator.jsonl"
    example = SFTExample(
        messages=[
            Message(role="user", content="What is 1 + 2?"),
            Message(role="assistant", content=answer),
        ],
        problem_id="train-0",
        kind="generation",
    )
    write_rows(data, [example])
    return TuningSpec(
        display_name="exp-i1-a0-generator",
        start_checkpoint="gemini-3.1-flash-lite",
        training_file=data,
        output_dir=tmp_path / "tuning",
        epochs=2,
        learning_rate_multiplier=1.0,
        adapter_size=4,
    )


def test_a_job_submitted_but_not_recorded_is_found_not_resubmitted(tmp_path):
    with FakeGemini(FakeSettings()) as fake:
        provider = vertex(fake)
        first = provider.start_tuning(spec(tmp_path))
        again = provider.start_tuning(spec(tmp_path))  # the record was lost: same job
        assert again == first
        assert fake.stats()["by_kind"]["tuning_create"] == 1
        other = provider.start_tuning(spec(tmp_path, "\\boxed{4}"))  # other data: a new job
        assert other != first and fake.stats()["by_kind"]["tuning_create"] == 2
        assert provider.poll_tuning(first).state in ("running", "succeeded")


def test_a_failed_job_is_not_reused(tmp_path):
    with FakeGemini(FakeSettings()) as fake:
        provider = vertex(fake)
        first = provider.start_tuning(spec(tmp_path))
        fake.tuning.jobs[int(first.rsplit("/", 1)[1])].state = "JOB_STATE_FAILED"
        assert provider.start_tuning(spec(tmp_path)) != first


class FlakyPolls(FakeGemini):
    def __init__(self) -> None:
        super().__init__(FakeSettings())
        self.failures = 2

    def intercept(self, kind, request):
        if kind == "tuning_get" and self.failures:
            self.failures -= 1
            return Reply.error(503, "The service is currently unavailable.")
        return super().intercept(kind, request)


def test_polling_survives_transient_errors(tmp_path):
    with FlakyPolls() as fake:
        provider = vertex(fake)
        job = provider.start_tuning(spec(tmp_path))
        states = [provider.poll_tuning(job).state for _ in range(3)]
        assert states[-1] == "succeeded" and fake.failures == 0


def test_the_manifest_totals_stages_iterations_and_the_run(cli, config_path):
    assert cli("prepare", config_path).exit_code == 0
    result = cli("evaluate", config_path, "-i", "0")
    assert result.exit_code == 0, result.output
    assert "priced as gemini-3.1-flash-lite" in result.output and "$" in result.output
    manifest = json.loads((config_path.parent / "runs/exp/manifest.json").read_text())
    stage = manifest["stages"]["baseline/eval-debate"]
    assert stage["cost_usd"] > 0 and stage["prices_as_of"]
    totals = manifest["totals"]
    assert totals["run"]["cost_usd"] == pytest.approx(stage["cost_usd"])
    assert totals["iterations"]["baseline"]["usage"] == stage["usage"]
    assert usage_totals(manifest["stages"]) == totals


def test_estimate_the_paper_config(cli):
    result = cli("estimate", ROOT / "configs/paper.yaml", "--json")
    assert result.exit_code == 0, result.output
    estimate = json.loads(result.stdout)
    total = estimate["lines"][-1]
    # (500 eval baseline + 5 iterations x 1000) problems x (3 + 3 critics x (summary + critic))
    assert total["requests"] == (500 + 5 * 1000) * 9
    assert total["input_tokens"] > 0 and total["output_tokens"] == total["requests"] * 300 - (
        (500 + 5 * 1000) * 3 * 100
    )
    assert total["batch_cost_usd"] == pytest.approx(total["cost_usd"] / 2, rel=1e-3)
    assert estimate["tuning"]["jobs"] == 5 * 6
    table = cli("estimate", ROOT / "configs/paper.yaml")
    assert table.exit_code == 0
    for word in ("requests", "input tokens", "standard", "batch", "49,500"):
        assert word in table.stdout


def test_estimate_changes_with_the_config(tmp_path):
    from mafine.estimate import estimate

    config = load_config(ROOT / "configs/paper.yaml", [f"run_dir={tmp_path / 'none'}"])
    fewer = load_config(
        ROOT / "configs/paper.yaml",
        [f"run_dir={tmp_path / 'none'}", "debate.summarize=false", "iterations=1"],
    )
    assert estimate(fewer).total.requests == (500 + 1000) * (3 + 3)
    assert estimate(fewer).total.input_tokens < estimate(config).total.input_tokens
