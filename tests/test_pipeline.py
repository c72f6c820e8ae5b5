"""The whole pipeline against the fake Gemini: artifacts, reruns, determinism, resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mafine.artifacts import ModelRecord, Problem, SFTExample, Transcript
from mafine.errors import MafineError
from mafine.jsonl import read_rows
from mafine.providers.gemini import GeminiProvider
from tests.conftest import write_config

ARTIFACTS = [
    "config.yaml",
    "manifest.json",
    "journal.jsonl",
    "problems/train.jsonl",
    "problems/eval.jsonl",
    "baseline/eval-debate.jsonl",
    "baseline/metrics.json",
    "iter-1/train-debate.jsonl",
    "iter-1/sft/counts.jsonl",
    "iter-1/sft/agent-0-generator.jsonl",
    "iter-1/sft/agent-0-critic.jsonl",
    "iter-1/models.jsonl",
    "iter-1/eval-debate.jsonl",
    "iter-1/metrics.json",
    "metrics.json",
    "report.md",
]


def run_dir(config: Path) -> Path:
    return config.parent / "runs" / config.stem


def rows(path: Path, row_type: type) -> list:
    return list(read_rows(path, row_type))


def test_run_writes_every_documented_artifact(cli, config_path, traffic):
    result = cli("run", config_path)
    assert result.exit_code == 0, result.output
    root = run_dir(config_path)
    for artifact in ARTIFACTS:
        assert (root / artifact).is_file(), artifact
    documented = (Path(__file__).parent.parent / "docs" / "artifacts.md").read_text()
    for artifact in ARTIFACTS:
        generic = artifact.replace("iter-1", "iter-K").replace("agent-0", "agent-N")
        assert f"`{generic}`" in documented, artifact
    assert "provider: **fake**" in (root / "report.md").read_text()
    assert "fake provider" in result.output
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["seed"] == 0
    invocation = manifest["invocations"][-1]
    assert "git_revision" in invocation and invocation["packages"]["google-genai"]
    assert {stage["status"] for stage in manifest["stages"].values()} == {"done"}
    assert manifest["stages"]["iter-1/train-debate"]["requests"] > 0
    assert manifest["stages"]["iter-1/train-debate"]["usage"]["total_tokens"] > 0
    metrics = json.loads((root / "metrics.json").read_text())
    header = metrics["header"]
    assert header["provider"] == "fake" and header["grader"]["name"] == "string"
    assert header["config"]["seed"] == 0
    keys = {(m["key"], m["iteration"]) for m in metrics["methods"]}
    assert keys == {("base", 0), ("majority", 0), ("debate", 0), ("multiagent_ft", 1)}
    assert all(len(m["correct"]) == 6 for m in metrics["methods"])


def test_rerun_sends_no_request(cli, config_path, traffic):
    assert cli("run", config_path).exit_code == 0
    first = traffic.requests()
    assert first > 0
    journal = (run_dir(config_path) / "journal.jsonl").read_bytes()
    result = cli("run", config_path)
    assert result.exit_code == 0, result.output
    assert traffic.requests() == first
    assert (run_dir(config_path) / "journal.jsonl").read_bytes() == journal
    assert "skipped" in result.output


def test_same_config_and_seed_give_identical_bytes(cli, tmp_path):
    first = write_config(tmp_path, "first")
    second = write_config(tmp_path, "second")
    assert cli("run", first).exit_code == 0
    assert cli("run", second).exit_code == 0
    compared = [
        "problems/train.jsonl",
        "problems/eval.jsonl",
        "iter-1/train-debate.jsonl",
        "baseline/eval-debate.jsonl",
        "iter-1/eval-debate.jsonl",
    ]
    sft = sorted(p.relative_to(run_dir(first)) for p in (run_dir(first) / "iter-1/sft").iterdir())
    for name in [*compared, *map(str, sft)]:
        assert (run_dir(first) / name).read_bytes() == (run_dir(second) / name).read_bytes(), name


def test_another_seed_draws_other_problems(cli, tmp_path):
    first = write_config(tmp_path, "first")
    other = write_config(tmp_path, "other", seed=7)
    assert cli("prepare", first).exit_code == 0
    assert cli("prepare", other).exit_code == 0
    questions = [
        {p.question for p in rows(run_dir(path) / "problems/train.jsonl", Problem)}
        for path in (first, other)
    ]
    assert questions[0] != questions[1]


def test_train_and_eval_are_disjoint(cli, config_path):
    assert cli("prepare", config_path).exit_code == 0
    root = run_dir(config_path)
    train = rows(root / "problems/train.jsonl", Problem)
    evaluation = rows(root / "problems/eval.jsonl", Problem)
    assert (len(train), len(evaluation)) == (12, 6)
    assert not {p.question for p in train} & {p.question for p in evaluation}
    assert len({p.id for p in train + evaluation}) == 18


def test_each_agent_is_tuned_on_its_own_debate_slice(cli, config_path):
    assert cli("run", config_path).exit_code == 0
    root = run_dir(config_path)
    transcripts = {t.problem_id: t for t in rows(root / "iter-1/train-debate.jsonl", Transcript)}
    files = {}
    for agent in range(3):
        for role in ("generator", "critic"):
            examples = rows(root / f"iter-1/sft/agent-{agent}-{role}.jsonl", SFTExample)
            files[(agent, role)] = [e.model_dump_json() for e in examples]
            for example in examples:
                trace = transcripts[example.problem_id].agents[agent]
                turn = trace.turns[0 if role == "generator" else -1]
                assert example.messages[-1].content == turn.response
                assert example.messages[:-1] == turn.messages
    generator_files = [tuple(files[(a, "generator")]) for a in range(3)]
    assert len(set(generator_files)) == 3, "agents received identical generation data"


def test_critic_continues_its_own_agents_conversation(cli, config_path):
    assert cli("prepare", config_path).exit_code == 0
    assert cli("debate", config_path).exit_code == 0
    for transcript in rows(run_dir(config_path) / "iter-1/train-debate.jsonl", Transcript):
        assert len(transcript.summaries) == 3
        for trace in transcript.agents:
            first, second = trace.turns
            assert (first.role, second.role) == ("generator", "critic")
            assert second.messages[0] == first.messages[0]
            assert second.messages[1].role == "assistant"
            assert second.messages[1].content == first.response
            summary = next(s for s in transcript.summaries if s.agent == trace.agent)
            assert summary.text in second.messages[2].content
            others = [t.turns[0].response for t in transcript.agents if t.agent != trace.agent]
            assert all(text in summary.messages[0].content for text in others)
            if first.response not in others:
                assert first.response not in summary.messages[0].content


def test_tuned_models_are_used_after_finetune(cli, tmp_path, traffic):
    config = write_config(tmp_path, iterations=2)
    result = cli("run", config)
    assert result.exit_code == 0, result.output
    root = run_dir(config)
    records = rows(root / "iter-1/models.jsonl", ModelRecord)
    tuned = {(r.agent, r.role): r for r in records}
    assert all(r.state == "succeeded" and "/endpoints/" in r.serving_model for r in records)
    for path in ("iter-1/eval-debate.jsonl", "iter-2/train-debate.jsonl"):
        for transcript in rows(root / path, Transcript):
            for trace in transcript.agents:
                assert trace.turns[0].model == tuned[(trace.agent, "generator")].serving_model
                assert trace.turns[1].model == tuned[(trace.agent, "critic")].serving_model
    # The fake's tuned models answer what they were tuned on verbatim: iteration 2 sees it.
    second = {t.problem_id: t for t in rows(root / "iter-2/train-debate.jsonl", Transcript)}
    for agent in range(3):
        for example in rows(root / f"iter-1/sft/agent-{agent}-generator.jsonl", SFTExample):
            answer = second[example.problem_id].agents[agent].turns[0].response
            assert answer == example.messages[-1].content
    iteration_2 = rows(root / "iter-2/models.jsonl", ModelRecord)
    for record in iteration_2:
        if record.state == "succeeded":
            assert record.start_checkpoint == tuned[(record.agent, record.role)].checkpoint


def test_interrupted_debate_resumes_without_resending(cli, tmp_path, traffic, monkeypatch):
    whole = write_config(tmp_path, "whole")
    broken = write_config(tmp_path, "broken")
    for config in (whole, broken):
        assert cli("prepare", config).exit_code == 0
    assert cli("debate", whole).exit_code == 0
    uninterrupted = traffic.generate_requests()

    original = GeminiProvider.generate
    calls = {"n": 0}

    async def failing(self, request):
        calls["n"] += 1
        if calls["n"] > 80:
            raise MafineError("connection lost (simulated)")
        return await original(self, request)

    monkeypatch.setattr(GeminiProvider, "generate", failing)
    result = cli("debate", broken)
    assert result.exit_code == 1 and "connection lost" in result.output
    root = run_dir(broken)
    partial = root / "iter-1/train-debate.partial.jsonl"
    finished = len(partial.read_text().splitlines())
    assert 0 < finished < 12
    assert not (root / "iter-1/train-debate.jsonl").exists()
    journaled = len((root / "journal.jsonl").read_text().splitlines())

    monkeypatch.setattr(GeminiProvider, "generate", original)
    before = traffic.generate_requests()
    assert cli("debate", broken).exit_code == 0
    resent = traffic.generate_requests() - before
    assert resent == uninterrupted - journaled
    assert not partial.exists()
    assert (root / "iter-1/train-debate.jsonl").read_bytes() == (
        run_dir(whole) / "iter-1/train-debate.jsonl"
    ).read_bytes()


@pytest.mark.parametrize("start_from", ["continue", "from_base"])
def test_start_from_decides_the_tuning_checkpoint(cli, tmp_path, start_from):
    config = write_config(tmp_path, iterations=2, finetune__start_from=start_from)
    assert cli("run", config).exit_code == 0
    root = run_dir(config)
    first = {(r.agent, r.role): r for r in rows(root / "iter-1/models.jsonl", ModelRecord)}
    for record in rows(root / "iter-2/models.jsonl", ModelRecord):
        if record.state != "succeeded":
            continue
        previous = first[(record.agent, record.role)].checkpoint
        expected = previous if start_from == "continue" else "gemini-3.1-flash-lite"
        assert record.start_checkpoint == expected
