"""report.md, the terminal table, the plots and `mafine report`, on hand-made metrics documents."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from rich.console import Console

from mafine.analysis import compare, metrics, plots, report
from mafine.config import PACE_KEYS
from mafine.errors import MafineError
from mafine.methods import METHODS

T, F = True, False
IDS = [f"eval-{i:05d}" for i in range(10)]
OUTCOMES = {
    ("base", 0): [T, T, T, F, F, F, F, F, F, F],  # 3/10
    ("majority", 0): [T, T, T, T, T, F, F, F, F, F],  # 5/10
    ("debate", 0): [T, T, T, T, T, T, F, F, F, F],  # 6/10
    ("multiagent_ft", 1): [F, T, T, T, T, T, T, T, F, F],  # 7/10
    ("multiagent_ft", 2): [T, T, T, T, T, T, T, T, F, F],  # 8/10
    ("single_agent_ft", 1): [T, T, T, T, T, T, F, F, F, F],
    ("no_summary", 1): [T, T, T, T, T, F, F, F, F, F],
    ("no_critic", 1): [T, T, T, T, F, F, F, F, F, F],
    ("star", 1): [T, T, T, T, T, T, T, T, T, F],
}


def header(**changes: Any) -> dict[str, Any]:
    config = {"seed": 0, "agents": {"count": 3, "critics": 3}, "provider": {"name": "fake"}}
    values = {
        "provider": "fake",
        "base_model": "gemini-3.1-flash-lite",
        "grader": {"name": "string", "normalization": "whitespace"},
        "data": "deepmind/arithmetic__add_or_sub",
        "eval_data": "deepmind/arithmetic__add_or_sub",
        "train_size": 20,
        "eval_size": 10,
        "agents": 3,
        "critics": 3,
        "rounds": 2,
        "summarize": True,
        "seed": 0,
        "config": config,
    }
    return values | changes


def diversity_entry(consensus: float, dissimilarity: float, kl: float) -> dict[str, Any]:
    return {
        "round": 1,
        "problems": 10,
        "agents": 3,
        "consensus": consensus,
        "embedding_dissimilarity": dissimilarity,
        "embedder": "all-MiniLM-L6-v2",
        "likelihood": {
            "agents": [0, 1, 2],
            "nll": [[0.5, 0.9, 0.9], [0.9, 0.5, 0.9], [0.9, 0.9, 0.5]],
            "kl": kl,
            "kl_per_token": kl / 10,
            "responses": 30,
        },
    }


def document(outcomes: dict[tuple[str, int], list[bool]] = OUTCOMES, **header_changes: Any):
    """A metrics document in the shape `evaluate` writes."""
    methods = [
        {
            "key": key,
            "label": METHODS.get(key).label,
            "iteration": iteration,
            "uses_labels": key == "star",
            "correct": correct,
            "problem_ids": IDS,
        }
        for (key, iteration), correct in outcomes.items()
    ]
    return {
        "header": header(**header_changes),
        "methods": methods,
        "per_agent_round": {
            "debate@0": {"0": {"1": 0.3, "2": 0.6}, "1": {"1": 0.4, "2": 0.6}},
            "multiagent_ft@1": {"0": {"1": 0.5, "2": 0.7}, "1": {"1": 0.6, "2": 0.7}},
        },
        "diversity": {
            "debate@0": diversity_entry(0.70, 0.20, 1.0),
            "multiagent_ft@1": diversity_entry(0.72, 0.19, 1.4),
            "multiagent_ft@2": diversity_entry(0.74, 0.18, 1.6),
            "single_agent_ft@1": diversity_entry(0.90, 0.08, 0.2),
        },
    }


def write_run(root: Path, doc: dict[str, Any], config: dict[str, Any] | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "metrics.json").write_text(json.dumps(doc))
    (root / "config.yaml").write_text(yaml.safe_dump(config or doc["header"]["config"]))
    return root


# The document -----------------------------------------------------------------------------
def test_document_validates_outcomes_and_ids():
    doc = metrics.MetricsDocument.model_validate(document())
    assert doc.method("multiagent_ft@2").correct == OUTCOMES[("multiagent_ft", 2)]
    assert doc.diversity["debate@0"].likelihood.kl == 1.0
    bad = document()
    bad["methods"][0]["problem_ids"] = IDS[:3]
    with pytest.raises(ValueError, match="10 outcomes but 3 problem ids"):
        metrics.MetricsDocument.model_validate(bad)
    twice = document()
    twice["methods"].append(dict(twice["methods"][0]))
    with pytest.raises(ValueError, match="methods repeated: base@0"):
        metrics.MetricsDocument.model_validate(twice)


def test_load_metrics_errors_name_the_file(tmp_path):
    path = tmp_path / "metrics.json"
    with pytest.raises(MafineError, match="no metrics document"):
        metrics.load_metrics(tmp_path)
    path.write_text("{not json")
    with pytest.raises(MafineError, match="not valid JSON"):
        metrics.load_metrics(path)
    path.write_text(json.dumps({"provider": "fake", "baselines": {}, "iterations": {}}))
    with pytest.raises(MafineError, match="older metrics file"):
        metrics.load_metrics(path)
    doc = document()
    del doc["header"]["base_model"]
    path.write_text(json.dumps(doc))
    with pytest.raises(MafineError, match=r"header.base_model: Field required"):
        metrics.load_metrics(path)


# report.md --------------------------------------------------------------------------------
def test_report_names_provider_models_grader_and_data_at_the_top(tmp_path):
    text = report.render_report(metrics.MetricsDocument.model_validate(document()))
    top = text.split("## Accuracy")[0]
    assert "provider: **fake**, base model `gemini-3.1-flash-lite`" in top
    assert "grader: **string** (normalization=whitespace)" in top
    assert "train data: deepmind/arithmetic__add_or_sub, 20 problems" in top
    assert "eval data: deepmind/arithmetic__add_or_sub, 10 problems" in top
    assert "not research results" in top
    real = report.render_report(
        metrics.MetricsDocument.model_validate(
            document(provider="gemini", eval_data="gsm8k (openai/gsm8k, test)")
        )
    )
    assert "not research results" not in real
    assert "eval data: gsm8k (openai/gsm8k, test), 10 problems (zero-shot transfer)" in real


def test_report_table_values_by_hand():
    text = report.render_report(metrics.MetricsDocument.model_validate(document()))
    lines = text.splitlines()
    row = next(line for line in lines if line.startswith("| Multiagent FT | 1 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    # 7/10: SE = sqrt(.7 * .3 / 10) = 14.5 points
    assert cells[2:5] == ["every agent", "70.0 (7/10)", "14.5"]
    # vs Base (3/10): only the method right on 5 problems, only Base on 1:
    # p = 2 * P(X <= 1), X ~ Bin(6, 1/2) = 2 * 7/64 = 0.21875
    assert cells[6] == "+40.0 (p=0.22)"
    assert cells[7] == "+20.0 (p=0.62)"  # vs Majority: b=3, c=1 -> 2 * 5/16 = 0.625
    assert cells[8] == "+10.0 (p=1.00)"  # vs Debate: b=2, c=1
    base = next(line for line in lines if line.startswith("| Base |"))
    assert base.rstrip().endswith("|  |  |  |")  # a reference is not compared with itself
    debate = next(line for line in lines if line.startswith("| Debate |"))
    assert "+30.0 (p=0.25)" in debate  # vs Base: b=3, c=0 -> 2 * 1/8
    assert "STaR (uses ground truth) †" in text and "† uses the ground-truth" in text
    paired = text.split("## Paired comparisons")[1]
    assert "| Multiagent FT | 1 | Base | +40.0 | [" in paired and "| 5 | 1 | 0.22 |" in paired
    assert "## Accuracy per agent and round" in text
    assert "| Multiagent FT, iteration 1 | 1 | 60.0 | 70.0 |" in text
    assert "| Single-agent FT, iteration 1 | 1 | 10 | 0.900 | 0.080 (all-MiniLM-L6-v2)" in text
    assert "0.900 | 0.200 |" in text  # cross NLL 0.9, KL 0.2


def test_terminal_table_has_the_same_numbers():
    table = report.results_table(metrics.MetricsDocument.model_validate(document()))
    console = Console(file=io.StringIO(), width=100, record=True)
    console.print(table)
    text = console.export_text()
    assert "70.0 ±14.5" in text and "+40.0" in text and "p=0.22" in text
    assert "not research results" in text


# Plots ------------------------------------------------------------------------------------
needs_matplotlib = pytest.mark.skipif(not plots.available(), reason="needs the report extra")


@needs_matplotlib
def test_write_report_draws_labelled_plots(tmp_path, monkeypatch):
    figures = []
    save = plots._save

    def keep(plt, figure, path):
        figures.append(
            [
                (a.get_xlabel(), a.get_ylabel(), a.get_title())
                for a in figure.axes
                if a.get_visible()
            ]
            + [("suptitle", figure._suptitle.get_text() if figure._suptitle else "", "")]
        )
        return save(plt, figure, path)

    monkeypatch.setattr(plots, "_save", keep)
    path = report.write_report(metrics.MetricsDocument.model_validate(document()), tmp_path)
    text = path.read_text()
    assert "![accuracy](plots/accuracy.png)" in text
    assert "![diversity](plots/diversity.png)" in text
    for name in ("accuracy.png", "diversity.png"):
        data = (tmp_path / "plots" / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    accuracy, diversity = figures
    assert accuracy[0][0] == "fine-tuning iteration"
    assert accuracy[0][1] == "accuracy on eval problems (%)"
    assert "Accuracy per iteration" in accuracy[0][2]
    panels = [p for p in diversity if p[0] != "suptitle"]
    assert [p[2] for p in panels] == [
        "Consensus",
        "Embedding dissimilarity",
        "Cross-agent NLL",
        "Symmetric KL between agents",
    ]
    assert all(p[0] and p[1] for p in panels)
    assert "Diversity" in diversity[-1][1]


def test_report_without_matplotlib_has_no_plots(tmp_path, monkeypatch):
    monkeypatch.setattr(plots, "available", lambda: False)
    doc = document()
    doc["diversity"] = {}
    path = report.write_report(doc, tmp_path)
    assert "## Plots" not in path.read_text() and not (tmp_path / "plots").exists()
    with pytest.raises(MafineError, match=r"mafine\[report\]"):
        plots.accuracy_plot(metrics.MetricsDocument.model_validate(doc), tmp_path / "a.png")


@needs_matplotlib
def test_no_diversity_means_no_diversity_plot(tmp_path):
    doc = document()
    doc["diversity"] = {}
    written = plots.render_plots(metrics.MetricsDocument.model_validate(doc), tmp_path)
    assert [p.name for p in written] == ["accuracy.png"]


# mafine report ----------------------------------------------------------------------------
def shifted(offset: int) -> dict[tuple[str, int], list[bool]]:
    """OUTCOMES with `offset` more problems right for multiagent_ft@1 (never fewer)."""
    changed = dict(OUTCOMES)
    ma = list(changed[("multiagent_ft", 1)])
    for index in range(len(ma)):
        if offset and not ma[index]:
            ma[index] = True
            offset -= 1
    changed[("multiagent_ft", 1)] = ma
    return changed


def test_report_command_on_one_run(cli, tmp_path):
    run = write_run(tmp_path / "one", document())
    result = cli("report", run)
    assert result.exit_code == 0, result.output
    assert "70.0 ±14.5" in result.output
    assert not (run / "comparison.md").exists()  # one run: its table, a file only on request
    result = cli("report", run, "--output", tmp_path / "one.md")
    assert result.exit_code == 0, result.output
    one = (tmp_path / "one.md").read_text()
    assert "| Multiagent FT, iteration 1 | every agent | 70.0 [" in one


def test_report_command_groups_by_differing_keys_and_aggregates_seeds(cli, tmp_path):
    runs = []
    for count in (2, 3):
        for seed, offset in ((0, 0), (1, 1), (2, 2)):
            config = {
                "seed": seed,
                "agents": {"count": count},
                "provider": {"max_concurrency": seed + 1},  # pace only: not a group key
                "run_dir": f"runs/x-{count}-{seed}",
            }
            doc = document(shifted(offset if count == 3 else 0), seed=seed)
            runs.append(write_run(tmp_path / "sweep" / f"c{count}s{seed}", doc, config))
    result = cli("report", *runs)
    assert result.exit_code == 0, result.output
    text = (tmp_path / "sweep" / "comparison.md").read_text()
    assert "differing config keys: `agents.count`, `seed`" in text
    assert "| agents.count=2 | `c2s0`, `c2s1`, `c2s2` | 0, 1, 2 |" in text
    row = next(
        line for line in text.splitlines() if line.startswith("| Multiagent FT, iteration 1 |")
    )
    # count=2: 70, 70, 70 -> sd 0, interval [70, 70]; count=3: 70, 80, 90 -> mean 80, sd 10,
    # t(0.975, 2) * 10 / sqrt(3) = 24.84 -> [55.2, 104.8], shown clipped to 100
    assert "70.0 ± 0.0 [70.0, 70.0] (n=3)" in row
    assert "80.0 ± 10.0 [55.2, 100.0] (n=3)" in row  # clipped to 100
    change = text.split("## Change against Base")[1]
    row = "| Multiagent FT, iteration 1 | every agent | +40.0 ± 0.0 (n=3) | +50.0 ± 10.0 (n=3) |"
    assert row in change
    assert "80.0 ± 10.0 (n=3)" in result.output


def test_single_seed_groups_show_bootstrap_intervals(tmp_path):
    a = write_run(tmp_path / "a", document(), {"seed": 0, "debate": {"summarize": True}})
    b = write_run(tmp_path / "b", document(), {"seed": 0, "debate": {"summarize": False}})
    path, comparison = compare.write_comparison(
        [a, b], tmp_path / "out" / "cmp.md", pace_keys=PACE_KEYS
    )
    assert comparison.keys == ["debate.summarize"]
    assert [g.name for g in comparison.groups] == [
        "debate.summarize=true",
        "debate.summarize=false",
    ]
    text = path.read_text()
    assert "| Multiagent FT, iteration 1 | every agent | 70.0 [" in text
    assert "+40.0 (p=0.22)" in text
    assert "`../a`" in text  # run paths relative to the comparison file


def test_report_command_errors_are_one_line(cli, tmp_path):
    result = cli("report", tmp_path / "nowhere")
    assert result.exit_code == 1
    assert result.output.startswith("error: no metrics document at")
    assert len(result.output.strip().splitlines()) == 1
    result = cli("report", write_run(tmp_path / "a", document()), tmp_path / "nowhere")
    assert result.exit_code == 1
    assert "not a run directory" in result.output


def test_consensus_only_diversity_renders_only_its_column(tmp_path):
    doc = document()
    doc["diversity"] = {"debate@0": {"consensus": 0.75}, "multiagent_ft@1": {"consensus": 0.5}}
    text = report.render_report(metrics.MetricsDocument.model_validate(doc))
    section = text.split("## Diversity")[1]
    assert "| method | round | problems | consensus |" in section
    assert "| Multiagent FT, iteration 1 | — | — | 0.500 |" in section
    assert "embedding" not in section.split("\n\n")[2] and "KL" not in section
    if plots.available():
        written = plots.render_plots(metrics.MetricsDocument.model_validate(doc), tmp_path)
        assert [p.name for p in written] == ["accuracy.png", "diversity.png"]
