"""build-sft: each agent's own fine-tuning data, selected from the train debates.

Generation data: round-1 responses that agree with the debate's majority. Critic data: the
whole conversation up to the final response when the agent was corrected (DC-: wrong first,
majority at the end) or kept (DC+: majority first and at the end), mixed so DC- makes up a
share w. No ground truth is used: the method improves on its own consensus.

Two reference methods select differently (`sft.selection`): `single_agent` pools every
agent's generation data into ONE model that all agents then use; `star` agrees with the
ground truth instead of the majority (it uses labels, so it is a reference, not the method).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable

from rich.table import Table

from mafine.artifacts import AgentTrace, Message, SFTCount, SFTExample, Transcript
from mafine.config import Config
from mafine.grading import Grader
from mafine.jsonl import read_rows, write_rows
from mafine.rundir import RunDir
from mafine.seeds import sft_rng
from mafine.stages.roster import model_roles
from mafine.stages.stage import sft_stage
from mafine.ui import console


def select_examples(
    transcripts: Iterable[Transcript], config: Config, grader: Grader, iteration: int
) -> dict[tuple[int, str], list[SFTExample]]:
    """Every agent model's examples, keyed by (agent, role)."""
    selection = config.sft.selection
    generation: dict[int, list[SFTExample]] = {a: [] for a in range(config.agents.count)}
    corrected: dict[int, list[SFTExample]] = {a: [] for a in range(config.agents.critics)}
    kept: dict[int, list[SFTExample]] = {a: [] for a in range(config.agents.critics)}
    for transcript in transcripts:
        majority = transcript.gold if selection == "star" else transcript.majority
        if majority is None:
            continue
        for trace in transcript.agents:
            first_agrees = grader.equivalent(majority, trace.first_answer)
            if first_agrees:
                generation[trace.agent].append(
                    _example(trace, 0, transcript.problem_id, "generation")
                )
            if not trace.has_critic or len(trace.turns) < 2:
                continue
            if not grader.equivalent(majority, trace.final_answer):
                continue
            kind = "kept" if first_agrees else "corrected"
            bucket = kept if first_agrees else corrected
            bucket[trace.agent].append(_example(trace, -1, transcript.problem_id, kind))
    selected: dict[tuple[int, str], list[SFTExample]] = {}
    if selection == "single_agent":
        pooled = sorted(
            (example for examples in generation.values() for example in examples),
            key=lambda example: example.problem_id,
        )
        selected[(0, "generator")] = pooled
        for agent in range(config.agents.count):
            for role in model_roles(config, agent):
                selected.setdefault((agent, role), [])
        return selected
    for agent in range(config.agents.count):
        selected[(agent, "generator")] = generation[agent]
        if agent < config.agents.critics:
            rng = sft_rng(config.seed, iteration, agent)
            selected[(agent, "critic")] = mix_critic_data(
                corrected[agent], kept[agent], config.sft.corrected_weight, rng
            )
    return selected


def mix_critic_data(
    corrected: list[SFTExample], kept: list[SFTExample], weight: float, rng: random.Random
) -> list[SFTExample]:
    """All corrected examples, plus kept ones drawn so corrected make up a share `weight`.

    With the default w = 2/3 that is half as many kept as corrected, as in the paper's code;
    when fewer kept examples exist than the share asks for, all of them are used.
    """
    wanted = math.floor(len(corrected) * (1 - weight) / weight + 0.5)
    drawn = rng.sample(kept, min(wanted, len(kept)))
    order = {id(example): index for index, example in enumerate(kept)}
    return corrected + sorted(drawn, key=lambda example: order[id(example)])


def build_sft(run: RunDir, grader: Grader, iteration: int) -> list[SFTCount]:
    config = run.config
    stage = sft_stage(run, iteration)
    if stage.skip("already built"):
        counts = list(read_rows(run.sft_counts(iteration), SFTCount))
    else:
        with stage.record():
            transcripts = read_rows(run.transcripts(iteration, "train"), Transcript)
            selected = select_examples(transcripts, config, grader, iteration)
            counts = []
            for agent in range(config.agents.count):
                for role in model_roles(config, agent):
                    examples = selected[(agent, role)]
                    write_rows(run.sft_file(iteration, agent, role), examples)
                    counts.append(_count(agent, role, examples))
            write_rows(run.sft_counts(iteration), counts)
    show_counts(counts, iteration)
    return counts


def show_counts(counts: list[SFTCount], iteration: int) -> None:
    table = Table(title=f"fine-tuning examples, iteration {iteration}")
    for column in ("agent", "model", "generation", "corrected (DC-)", "kept (DC+)", "total"):
        table.add_column(column, justify="right" if column != "model" else "left")
    for count in counts:
        table.add_row(
            str(count.agent),
            count.role,
            str(count.generation),
            str(count.corrected),
            str(count.kept),
            str(count.total),
        )
    console.print(table)
    for count in counts:
        if count.total == 0:
            console.print(
                f"[yellow]warning:[/] agent {count.agent} {count.role} has no examples; "
                "it keeps its previous model"
            )


def _example(trace: AgentTrace, turn_index: int, problem_id: str, kind: str) -> SFTExample:
    turn = trace.turns[turn_index]
    messages = [*turn.messages, Message(role="assistant", content=turn.response)]
    return SFTExample(messages=messages, problem_id=problem_id, kind=kind)


def _count(agent: int, role: str, examples: list[SFTExample]) -> SFTCount:
    kinds = [example.kind for example in examples]
    return SFTCount(
        agent=agent,
        role=role,
        generation=kinds.count("generation"),
        corrected=kinds.count("corrected"),
        kept=kinds.count("kept"),
        total=len(examples),
    )
