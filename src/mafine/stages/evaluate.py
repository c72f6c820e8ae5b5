"""evaluate: every method's per-problem outcomes on the held-out problems, in one document.

The baselines come from one debate of the BASE models on the eval split, computed once per run:
Base is agent 0's round-1 answer (one sample, no debate), Majority is the vote over the N
round-1 answers (N independent base samples: round 1 sees no other agent), Debate is the
debate's final majority. Every tuned method (multiagent FT per iteration and the compared
variants) is the final majority of its own eval debate; a base-only compared method
(`Tunes.NOTHING`) is the final majority of its own eval debate of the base models (iteration 0).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mafine.analysis.diversity import Embedder, Scorer, embedder_identity, make_embedder, measure
from mafine.analysis.report import as_document, results_table, write_report
from mafine.artifacts import Transcript
from mafine.config import Config, config_dict
from mafine.errors import MafineError
from mafine.grading import Grader
from mafine.grading.vote import TieBreak, majority_vote
from mafine.jsonl import read_rows, write_json
from mafine.methods import MAIN_METHOD, METHODS
from mafine.providers.base import Capabilities, Provider
from mafine.rundir import RunDir
from mafine.stages.prepare import source_name
from mafine.ui import console


@dataclass(frozen=True)
class EvalDebate:
    """An eval-split debate file, the method and iteration it stands for, and the method
    whose run holds it (its tie-breaks' seed: `grading.vote.TieBreak`)."""

    key: str
    iteration: int
    path: Path
    run_method: str = MAIN_METHOD


def debate_outcomes(
    transcripts: Iterable[Transcript], grader: Grader, ties: TieBreak
) -> dict[str, Any]:
    """Per-problem correctness of the first agent, the round-1 vote and the final majority,
    per agent and round accuracy, and responses without an answer.

    Both votes are taken again with `grader` (and the debate's seeded tie-break), so a run
    regraded under another grader groups answers by that grader's equivalence too.
    """
    problem_ids: list[str] = []
    first_agent: list[bool] = []
    first_vote: list[bool] = []
    final_vote: list[bool] = []
    agent_round: dict[str, dict[str, int]] = {}
    no_answer = responses = 0
    finish_reasons: dict[str, int] = {}
    for transcript in transcripts:
        problem_ids.append(transcript.problem_id)
        traces = transcript.agents
        for trace in traces:
            rounds = agent_round.setdefault(str(trace.agent), {})
            for turn in trace.turns:
                correct = grader.equivalent(transcript.gold, turn.answer)
                rounds[str(turn.round)] = rounds.get(str(turn.round), 0) + int(correct)
                responses += 1
                no_answer += int(turn.answer is None)
                reason = turn.finish_reason or "UNKNOWN"
                finish_reasons[reason] = finish_reasons.get(reason, 0) + 1
        first_answers = [trace.first_answer for trace in traces]
        rng = ties.rng(transcript.problem_id, "round1")
        first_majority, _ = majority_vote(first_answers, grader, rng)
        rng = ties.rng(transcript.problem_id)
        final_majority, _ = majority_vote([t.final_answer for t in traces], grader, rng)
        first_agent.append(grader.equivalent(transcript.gold, traces[0].first_answer))
        first_vote.append(grader.equivalent(transcript.gold, first_majority))
        final_vote.append(grader.equivalent(transcript.gold, final_majority))
    count = len(problem_ids) or 1
    return {
        "problem_ids": problem_ids,
        "first_agent": first_agent,
        "first_vote": first_vote,
        "final_vote": final_vote,
        "per_agent_round": {
            agent: {rnd: hits / count for rnd, hits in rounds.items()}
            for agent, rounds in agent_round.items()
        },
        "responses": responses,
        "no_answer": no_answer,
        "finish_reasons": finish_reasons,
    }


def eval_debates(run: RunDir, iteration: int, variants: dict[str, RunDir]) -> list[EvalDebate]:
    """Every finished eval debate up to `iteration`: baseline, base-only compared methods
    (iteration 0), multiagent FT, tuned compared methods."""
    found = []
    if run.config.evaluation.baselines and run.transcripts(0, "eval").exists():
        found.append(EvalDebate("debate", 0, run.transcripts(0, "eval")))
    for name, variant in variants.items():
        if variant.transcripts(0, "eval").exists():  # only base-only methods debate there
            found.append(EvalDebate(name, 0, variant.transcripts(0, "eval"), name))
    for k in range(1, iteration + 1):
        if run.transcripts(k, "eval").exists():
            found.append(EvalDebate("multiagent_ft", k, run.transcripts(k, "eval")))
        for name, variant in variants.items():
            if variant.transcripts(k, "eval").exists():
                found.append(EvalDebate(name, k, variant.transcripts(k, "eval"), name))
    return found


async def metrics_document(
    run: RunDir,
    grader: Grader,
    debates: list[EvalDebate],
    embedder: Embedder | None = None,
    scorer: Scorer | None = None,
) -> dict[str, Any]:
    """The run's results: one entry per method with its per-problem outcomes (the
    statistics are computed from them), per agent and round accuracy, and diversity."""
    config = run.config
    methods: list[dict[str, Any]] = []
    per_agent_round: dict[str, Any] = {}
    diversity: dict[str, Any] = {}
    health: dict[str, Any] = {}
    for debate in debates:
        transcripts = list(read_rows(debate.path, Transcript))
        ties = TieBreak(config.seed, debate.run_method, debate.iteration, "eval")
        outcomes = debate_outcomes(transcripts, grader, ties)
        tag = f"{debate.key}@{debate.iteration}"
        per_agent_round[tag] = outcomes["per_agent_round"]
        measured = await measure(
            transcripts,
            grader,
            round=config.evaluation.diversity_round,
            embedder=embedder,
            scorer=scorer,
        )
        diversity[tag] = measured.model_dump(mode="json", exclude_none=True)
        health[tag] = {key: outcomes[key] for key in ("responses", "no_answer", "finish_reasons")}
        if debate.key == "debate":
            for key, field in (("base", "first_agent"), ("majority", "first_vote")):
                methods.append(_method(config, key, 0, outcomes["problem_ids"], outcomes[field]))
        ids, correct = outcomes["problem_ids"], outcomes["final_vote"]
        methods.append(_method(config, debate.key, debate.iteration, ids, correct))
    return {
        "header": header(config, grader, embedder),
        "methods": methods,
        "per_agent_round": per_agent_round,
        "diversity": diversity,
        "responses": health,
    }


def diversity_tools(
    config: Config, provider: Provider | None = None
) -> tuple[Embedder | None, Scorer | None]:
    """The embedder and likelihood scorer the config asks for and this setup can give."""
    spec = config.evaluation.embedder
    capabilities = provider.capabilities if provider is not None else Capabilities()
    client = provider.embedding_client() if capabilities.embedding else None
    embedder = make_embedder(spec, client=client)
    scorer = provider if config.evaluation.likelihood and capabilities.scoring else None
    return embedder, scorer


async def write_results(
    run: RunDir,
    grader: Grader,
    iteration: int,
    variants: dict[str, RunDir],
    destination: Path | None = None,
    provider: Provider | None = None,
) -> dict[str, Any]:
    """metrics.json and report.md for every eval debate up to `iteration`: in the run
    directory (with each iteration's slice), or in `destination` (a regrade)."""
    embedder, scorer = diversity_tools(run.config, provider)
    debates = eval_debates(run, iteration, variants)
    document = await metrics_document(run, grader, debates, embedder, scorer)
    as_document(document)  # validated before it replaces a good metrics.json
    target = destination or run.root
    write_json(target / "metrics.json", document)
    if destination is None:
        for k in range(iteration + 1):
            if run.iteration_dir(k).exists():
                chosen = [m for m in document["methods"] if m["iteration"] == k]
                write_json(run.metrics(k), {"header": document["header"], "methods": chosen})
    write_report(document, target)
    console.print(results_table(document))
    return document


def refuse_dropping_later_results(run: RunDir, iteration: int) -> None:
    """Evaluating up to `iteration` rewrites metrics.json without the iterations after it."""
    later = last_evaluated_iteration(run)
    if later > iteration:
        raise MafineError(
            f"{run.root} has eval results up to iteration {later}; evaluating up to "
            f"{iteration} would drop the later ones from metrics.json and report.md: use "
            f"--iteration {later} (for `mafine run`: iterations: {later} or more)"
        )


def last_evaluated_iteration(run: RunDir) -> int:
    """The highest iteration with an eval debate (0: baselines only)."""
    k = 0
    while run.transcripts(k + 1, "eval").exists():
        k += 1
    return k


async def regrade(run: RunDir, grader: Grader, variants: dict[str, RunDir]) -> dict[str, Any]:
    """A finished run's results under another grader, from its transcripts: no request."""
    iteration = last_evaluated_iteration(run)
    if iteration == 0 and not run.transcripts(0, "eval").exists():
        raise MafineError(f"{run.root} has no eval debates to regrade yet")
    destination = run.root / "regrade" / grader.name
    return await write_results(run, grader, iteration, variants, destination)


def header(config: Config, grader: Grader, embedder: Embedder | None = None) -> dict[str, Any]:
    data = config.data
    return {
        "provider": config.provider.name,
        "base_model": config.provider.model,
        "grader": {**grader.settings(), "fallbacks": list(config.grading.fallbacks)},
        "data": source_name(data.source),
        "eval_data": source_name(data.eval_source or data.source),
        "train_size": data.train_size,
        "eval_size": data.eval_size,
        "agents": config.agents.count,
        "critics": config.agents.critics,
        "rounds": config.debate.rounds,
        "summarize": config.debate.summarize,
        "seed": config.seed,
        "embedder": embedder_identity(embedder),
        # Without run_dir: the same config gives the same metrics wherever the run lives.
        "config": {k: v for k, v in config_dict(config).items() if k != "run_dir"},
    }


def _method(
    config: Config, key: str, iteration: int, problem_ids: list[str], correct: list[bool]
) -> dict[str, Any]:
    return {
        "key": key,
        "label": METHODS.get(key).label_for(config_dict(config)),
        "iteration": iteration,
        "uses_labels": METHODS.get(key).uses_labels,
        "tuned": METHODS.get(key).tunes.value,
        "reuses": list(METHODS.get(key).reuses),
        "problem_ids": problem_ids,
        "correct": correct,
    }
