"""Every method of the paper in one run: each baseline and variant means what it says."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mafine.artifacts import ModelRecord, Problem, SFTExample, Transcript
from mafine.grading import get_grader
from mafine.grading.extract import extract_boxed
from mafine.grading.settings import GradingConfig
from mafine.grading.vote import majority_vote
from mafine.jsonl import read_rows
from mafine.seeds import vote_rng
from tests.conftest import write_config

ALL = ["single_agent_ft", "no_summary", "no_critic", "star"]


@pytest.fixture(scope="module")
def full_run(tmp_path_factory) -> Path:
    from typer.testing import CliRunner

    from mafine.cli import app

    directory = tmp_path_factory.mktemp("methods")
    config = write_config(directory, evaluation={"compare": ALL, "embedder": "auto"})
    result = CliRunner().invoke(app, ["run", str(config)])
    assert result.exit_code == 0, result.output
    return directory / "runs" / "exp"


def rows(path: Path, row_type: type) -> list:
    return list(read_rows(path, row_type))


def methods(root: Path) -> dict[tuple[str, int], dict]:
    document = json.loads((root / "metrics.json").read_text())
    return {(m["key"], m["iteration"]): m for m in document["methods"]}


def test_the_document_holds_every_method(full_run):
    found = methods(full_run)
    expected = {("base", 0), ("majority", 0), ("debate", 0), ("multiagent_ft", 1)}
    expected |= {(name, 1) for name in ALL}
    assert set(found) == expected
    assert found[("star", 1)]["uses_labels"] is True
    assert not found[("multiagent_ft", 1)]["uses_labels"]
    eval_ids = [p.id for p in rows(full_run / "problems/eval.jsonl", Problem)]
    assert all(m["problem_ids"] == eval_ids for m in found.values())


def test_base_and_majority_are_round_one_samples_without_debate(full_run):
    transcripts = rows(full_run / "baseline/eval-debate.jsonl", Transcript)
    grader = get_grader(GradingConfig())
    found = methods(full_run)
    majority, base = [], []
    for transcript in transcripts:
        firsts = [trace.turns[0] for trace in transcript.agents]
        for turn in firsts:
            assert len(turn.messages) == 1  # round 1 sees the question only, no other agent
            assert turn.model == "gemini-3.1-flash-lite"
        assert len({turn.response for turn in firsts}) > 1 or len(firsts) == 1
        rng = vote_rng(0, transcript.problem_id, "round1")
        winner, _ = majority_vote([t.answer for t in firsts], grader, rng)
        majority.append(grader.equivalent(transcript.gold, winner))
        base.append(grader.equivalent(transcript.gold, firsts[0].answer))
    assert found[("majority", 0)]["correct"] == majority
    assert found[("base", 0)]["correct"] == base
    debate = [grader.equivalent(t.gold, t.majority) for t in transcripts]
    assert found[("debate", 0)]["correct"] == debate


def test_single_agent_ft_gives_every_agent_the_same_tuned_model(full_run):
    root = full_run / "variants/single_agent_ft"
    records = rows(root / "iter-1/models.jsonl", ModelRecord)
    served = {r.serving_model for r in records}
    assert len(served) == 1 and "/endpoints/" in served.pop()
    pooled = rows(root / "iter-1/sft/agent-0-generator.jsonl", SFTExample)
    per_agent = sum(
        len(rows(full_run / f"iter-1/sft/agent-{a}-generator.jsonl", SFTExample)) for a in range(3)
    )
    assert len(pooled) == per_agent  # all agents' majority-agreeing first answers
    for transcript in rows(root / "iter-1/eval-debate.jsonl", Transcript):
        assert {turn.model for trace in transcript.agents for turn in trace.turns} == {
            records[0].serving_model
        }


def test_no_critic_keeps_the_base_critics(full_run):
    records = rows(full_run / "variants/no_critic/iter-1/models.jsonl", ModelRecord)
    for record in records:
        if record.role == "critic":
            assert record.state == "kept" and record.serving_model == "gemini-3.1-flash-lite"
        else:
            assert record.state == "succeeded"


def test_no_summary_shows_the_other_responses_verbatim(full_run):
    for transcript in rows(full_run / "variants/no_summary/iter-1/train-debate.jsonl", Transcript):
        assert transcript.summaries == []
        for trace in transcript.agents:
            advice = trace.turns[1].messages[-1].content
            others = [t.turns[0].response for t in transcript.agents if t.agent != trace.agent]
            assert all(text in advice for text in others)


def test_star_tunes_on_ground_truth_matches(full_run):
    grader = get_grader(GradingConfig())
    root = full_run / "variants/star"
    gold = {t.problem_id: t.gold for t in rows(root / "iter-1/train-debate.jsonl", Transcript)}
    majority_based = rows(full_run / "iter-1/sft/agent-0-generator.jsonl", SFTExample)
    seen = 0
    for agent in range(3):
        for example in rows(root / f"iter-1/sft/agent-{agent}-generator.jsonl", SFTExample):
            answer = extract_boxed(example.messages[-1].content)
            assert grader.equivalent(gold[example.problem_id], answer)
            seen += 1
    assert seen > 0 and majority_based  # both selections found data


def test_the_first_train_debate_is_shared_through_the_journal(full_run):
    main = (full_run / "iter-1/train-debate.jsonl").read_bytes()
    for name in ("single_agent_ft", "no_critic", "star"):
        assert (full_run / "variants" / name / "iter-1/train-debate.jsonl").read_bytes() == main
        manifest = json.loads((full_run / "variants" / name / "manifest.json").read_text())
        assert manifest["stages"]["iter-1/train-debate"]["requests"] == 0


def test_the_report_has_intervals_plots_and_diversity(full_run):
    report = (full_run / "report.md").read_text()
    assert report.index("provider") < report.index("| method")
    assert "95% CI" in report and "not research results" in report
    for label in ("Single-agent FT", "no summary", "critics not tuned", "STaR"):
        assert label in report
    document = json.loads((full_run / "metrics.json").read_text())
    diversity = document["diversity"]["multiagent_ft@1"]
    assert 0.0 <= diversity["consensus"] <= 1.0
    pytest.importorskip("sentence_transformers")
    assert diversity["embedding_dissimilarity"] > 0.0
    pytest.importorskip("matplotlib")
    for name in ("accuracy.png", "diversity.png"):
        assert (full_run / "plots" / name).read_bytes().startswith(b"\x89PNG")
        assert f"plots/{name}" in report
