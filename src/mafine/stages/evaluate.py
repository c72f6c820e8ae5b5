"""evaluate: accuracy of the agents, the debate and the baselines on the held-out problems.

The baselines come from one debate of the BASE models on the eval split, computed once per run:
Base is agent 0's round-1 answer (one sample, no debate), Majority is the vote over the N
round-1 answers (N independent base samples: round 1 sees no other agent), Debate is the
debate's final majority.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Any

from rich.table import Table

from mafine.artifacts import Transcript
from mafine.config import Config
from mafine.grading import Grader
from mafine.grading.vote import majority_vote
from mafine.jsonl import read_rows, write_json
from mafine.rundir import RunDir
from mafine.stages.prepare import source_name
from mafine.ui import console

BASELINES = ("base", "majority", "debate")


def debate_metrics(transcripts: Iterable[Transcript], grader: Grader, seed: int) -> dict[str, Any]:
    """Accuracy per agent and round, of the round-1 vote and of the final majority."""
    problems = 0
    agent_round: dict[str, dict[str, int]] = {}
    first_vote = final_vote = no_answer = responses = 0
    finish_reasons: dict[str, int] = {}
    for transcript in transcripts:
        problems += 1
        first_answers = []
        for trace in transcript.agents:
            first_answers.append(trace.first_answer)
            rounds = agent_round.setdefault(str(trace.agent), {})
            for turn in trace.turns:
                correct = grader.equivalent(transcript.gold, turn.answer)
                rounds[str(turn.round)] = rounds.get(str(turn.round), 0) + int(correct)
                responses += 1
                no_answer += int(turn.answer is None)
                reason = turn.finish_reason or "UNKNOWN"
                finish_reasons[reason] = finish_reasons.get(reason, 0) + 1
        rng = random.Random(f"mafine-vote-round1:{seed}:{transcript.problem_id}")
        first_majority, _ = majority_vote(first_answers, grader, rng)
        first_vote += int(grader.equivalent(transcript.gold, first_majority))
        final_vote += int(grader.equivalent(transcript.gold, transcript.majority))
    share = (lambda count: count / problems) if problems else (lambda count: 0.0)
    return {
        "problems": problems,
        "per_agent_round": {
            agent: {rnd: share(count) for rnd, count in rounds.items()}
            for agent, rounds in agent_round.items()
        },
        "round1_majority": share(first_vote),
        "final_majority": share(final_vote),
        "responses": responses,
        "no_answer": no_answer,
        "finish_reasons": finish_reasons,
    }


def baseline_metrics(run: RunDir, grader: Grader) -> dict[str, Any]:
    debate = debate_metrics(
        read_rows(run.transcripts(0, "eval"), Transcript), grader, run.config.seed
    )
    return {
        "base": debate["per_agent_round"].get("0", {}).get("1", 0.0),
        "majority": debate["round1_majority"],
        "debate": debate["final_majority"],
        "details": debate,
    }


def evaluate_iteration(run: RunDir, grader: Grader, iteration: int) -> dict[str, Any]:
    """Write the iteration's metrics.json, the run's metrics.json and report.md."""
    config = run.config
    baselines = baseline_metrics(run, grader)
    write_json(run.metrics(0), _header(config, grader) | {"baselines": baselines})
    iterations: dict[str, Any] = {}
    for k in range(1, iteration + 1):
        path = run.transcripts(k, "eval")
        if not path.exists():
            continue
        debate = debate_metrics(read_rows(path, Transcript), grader, config.seed)
        accuracy = debate["final_majority"]
        iterations[str(k)] = {
            "multiagent_ft": accuracy,
            "change": {name: accuracy - baselines[name] for name in BASELINES},
            "details": debate,
        }
        write_json(run.metrics(k), _header(config, grader) | {"iteration": k, **iterations[str(k)]})
    summary = _header(config, grader) | {"baselines": baselines, "iterations": iterations}
    write_json(run.run_metrics, summary)
    run.report.write_text(render_report(summary))
    console.print(results_table(summary))
    if config.provider.name == "fake":
        console.print(FAKE_WARNING)
    return summary


FAKE_WARNING = (
    "[yellow]These numbers come from the fake provider (an offline test double): "
    "they are not research results.[/]"
)


def _header(config: Config, grader: Grader) -> dict[str, Any]:
    return {
        "provider": config.provider.name,
        "base_model": config.provider.model,
        "grader": grader.settings(),
        "data": source_name(config),
        "eval_size": config.data.eval_size,
        "train_size": config.data.train_size,
        "agents": config.agents.count,
        "critics": config.agents.critics,
        "rounds": config.debate.rounds,
        "summarize": config.debate.summarize,
        "seed": config.seed,
    }


def results_table(summary: dict[str, Any]) -> Table:
    table = Table(
        title=f"accuracy on {summary['eval_size']} eval problems "
        f"({summary['provider']}: {summary['base_model']}, grader {summary['grader']['name']})"
    )
    table.add_column("method")
    table.add_column("accuracy", justify="right")
    for name in ("change vs base", "vs majority", "vs debate"):
        table.add_column(name, justify="right")
    baselines = summary["baselines"]
    for name in BASELINES:
        table.add_row(name.capitalize(), _pct(baselines[name]), "", "", "")
    for k, result in summary["iterations"].items():
        changes = [_signed(result["change"][name]) for name in BASELINES]
        table.add_row(f"Multiagent FT (iteration {k})", _pct(result["multiagent_ft"]), *changes)
    return table


def render_report(summary: dict[str, Any]) -> str:
    lines = [
        "# mafine report",
        "",
        f"- provider: **{summary['provider']}**, base model `{summary['base_model']}`",
        f"- data: {summary['data']}, {summary['train_size']} train / "
        f"{summary['eval_size']} eval problems",
        f"- agents: {summary['agents']} ({summary['critics']} with critics), "
        f"{summary['rounds']} rounds, summary {'on' if summary['summarize'] else 'off'}",
        f"- grader: {summary['grader']['name']}; seed {summary['seed']}",
        "",
    ]
    if summary["provider"] == "fake":
        lines += [
            "> These numbers come from the fake provider, an offline test double. "
            "They test the pipeline and are not research results.",
            "",
        ]
    lines += ["| method | accuracy | vs base | vs majority | vs debate |", "|---|---|---|---|---|"]
    for name in BASELINES:
        lines.append(f"| {name.capitalize()} | {_pct(summary['baselines'][name])} | | | |")
    for k, result in summary["iterations"].items():
        changes = " | ".join(_signed(result["change"][name]) for name in BASELINES)
        lines.append(
            f"| Multiagent FT (iteration {k}) | {_pct(result['multiagent_ft'])} | {changes} |"
        )
    return "\n".join(lines) + "\n"


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def _signed(value: float) -> str:
    return f"{100 * value:+.1f}"
