"""SFT selection on hand-built transcripts: every case of the method's data rules."""

from __future__ import annotations

import random

import pytest

from mafine.artifacts import AgentTrace, Message, SFTExample, Transcript, Turn
from mafine.config import Config
from mafine.grading import get_grader
from mafine.grading.settings import GradingConfig
from mafine.stages.build_sft import mix_critic_data, select_examples

GRADER = get_grader(GradingConfig())


def turn(round_number: int, answer: str | None, agent: int) -> Turn:
    role = "generator" if round_number == 1 else "critic"
    text = f"agent {agent} round {round_number}: " + (f"\\boxed{{{answer}}}" if answer else "?")
    messages = [Message(role="user", content="Q")]
    if round_number > 1:
        messages += [Message(role="assistant", content="R1"), Message(role="user", content="A")]
    return Turn(
        round=round_number, role=role, model="m", messages=messages, response=text, answer=answer
    )


def transcript(
    problem_id: str,
    answers: list[tuple[str | None, str | None]],
    majority: str | None,
    gold: str = "5",
) -> Transcript:
    """answers[n] = (round-1 answer, round-2 answer) of agent n; round-2 None with no critic."""
    agents = []
    for n, (first, final) in enumerate(answers):
        turns = [turn(1, first, n)]
        if final != "-":
            turns.append(turn(2, final, n))
        agents.append(AgentTrace(agent=n, has_critic=final != "-", turns=turns))
    return Transcript(
        problem_id=problem_id, question="Q", gold=gold, agents=agents, majority=majority
    )


def config(**sft: object) -> Config:
    return Config.model_validate(
        {"agents": {"count": 3, "critics": 3}, "sft": sft or {}, "seed": 1}
    )


def kinds(examples: list[SFTExample]) -> list[tuple[str, str]]:
    return [(e.problem_id, e.kind) for e in examples]


def test_every_case_of_the_selection_rules():
    rows = [
        # agent 0 agrees first and last (DC+), agent 1 corrected (DC-), agent 2 wrong to the end
        transcript("p1", [("5", "5"), ("4", "5"), ("7", "6")], majority="5"),
        # agent 0 drifts away from the majority (neither), agent 1 kept, agent 2 no answer first
        transcript("p2", [("5", "3"), ("5", "5"), (None, "5")], majority="5"),
        # no majority at all (every answer missing): nothing is selected from it
        transcript("p3", [(None, None), (None, None), (None, None)], majority=None),
    ]
    selected = select_examples(rows, config(corrected_weight=0.5), GRADER, iteration=1)
    assert kinds(selected[(0, "generator")]) == [("p1", "generation"), ("p2", "generation")]
    assert kinds(selected[(1, "generator")]) == [("p2", "generation")]
    assert kinds(selected[(2, "generator")]) == []
    # agent 0: p1 kept, p2 ended off the majority; with no corrected example the mix asks for
    # no kept one either (kept are drawn in proportion to corrected)
    assert kinds(selected[(0, "critic")]) == []
    # w = 0.5: one kept example per corrected one
    assert kinds(selected[(1, "critic")]) == [("p1", "corrected"), ("p2", "kept")]
    # a missing first answer that ends on the majority counts as corrected
    assert kinds(selected[(2, "critic")]) == [("p2", "corrected")]


def test_examples_hold_the_right_conversation():
    rows = [transcript("p1", [("5", "5"), ("4", "5"), ("5", "5")], majority="5")]
    selected = select_examples(rows, config(), GRADER, iteration=1)
    generation = selected[(0, "generator")][0]
    assert [m.role for m in generation.messages] == ["user", "assistant"]
    assert generation.messages[-1].content == rows[0].agents[0].turns[0].response
    critic = selected[(1, "critic")][0]
    assert [m.role for m in critic.messages] == ["user", "assistant", "user", "assistant"]
    assert critic.messages[-1].content == rows[0].agents[1].turns[1].response


def test_equivalent_answers_agree_with_the_majority():
    rows = [transcript("p1", [("5.0", "5"), (" 5 ", "5"), ("5", "5")], majority="5")]
    selected = select_examples(rows, config(), GRADER, iteration=1)
    assert all(len(selected[(a, "generator")]) == 1 for a in range(3))


def test_agents_without_critics_get_generation_data_only():
    cfg = Config.model_validate({"agents": {"count": 3, "critics": 1}})
    rows = [transcript("p1", [("5", "5"), ("5", "-"), ("4", "-")], majority="5")]
    selected = select_examples(rows, cfg, GRADER, iteration=1)
    assert set(selected) == {(0, "generator"), (0, "critic"), (1, "generator"), (2, "generator")}
    assert kinds(selected[(1, "generator")]) == [("p1", "generation")]
    assert selected[(2, "generator")] == []


def test_a_tie_is_whatever_majority_the_debate_recorded():
    # The debate broke the 1-1-1 tie (seeded); selection follows the recorded winner.
    rows = [transcript("p1", [("1", "1"), ("2", "2"), ("3", "3")], majority="2")]
    selected = select_examples(rows, config(), GRADER, iteration=1)
    assert [len(selected[(a, "generator")]) for a in range(3)] == [0, 1, 0]
    assert kinds(selected[(1, "critic")]) == []  # kept, but w=2/3 of zero corrected is zero


def test_each_agent_gets_only_its_own_responses():
    rows = [
        transcript(f"p{i}", [("5", "5"), ("5", "5"), ("5", "5")], majority="5") for i in range(4)
    ]
    selected = select_examples(rows, config(), GRADER, iteration=1)
    for agent in range(3):
        for example in selected[(agent, "generator")]:
            assert example.messages[-1].content.startswith(f"agent {agent} ")
    files = [tuple(e.model_dump_json() for e in selected[(a, "generator")]) for a in range(3)]
    assert len(set(files)) == 3


@pytest.mark.parametrize(
    ("weight", "corrected", "kept", "expected_kept"),
    [(2 / 3, 6, 10, 3), (0.5, 4, 10, 4), (1.0, 4, 10, 0), (2 / 3, 6, 1, 1), (2 / 3, 0, 9, 0)],
)
def test_mixing_keeps_every_corrected_example(weight, corrected, kept, expected_kept):
    make = [SFTExample(messages=[], problem_id=f"c{i}", kind="corrected") for i in range(corrected)]
    pool = [SFTExample(messages=[], problem_id=f"k{i}", kind="kept") for i in range(kept)]
    mixed = mix_critic_data(make, pool, weight, random.Random(0))
    assert mixed[:corrected] == make
    assert len(mixed) - corrected == expected_kept


def test_mixing_is_seeded():
    pool = [SFTExample(messages=[], problem_id=f"k{i}", kind="kept") for i in range(20)]
    corrected = [SFTExample(messages=[], problem_id=f"c{i}", kind="corrected") for i in range(8)]
    draws = {
        tuple(e.problem_id for e in mix_critic_data(corrected, pool, 2 / 3, random.Random(s)))
        for s in (3, 3)
    }
    assert len(draws) == 1
    other = mix_critic_data(corrected, pool, 2 / 3, random.Random(4))
    assert tuple(e.problem_id for e in other) not in draws


def test_star_selects_by_the_ground_truth():
    rows = [transcript("p1", [("5", "5"), ("4", "4"), ("4", "4")], majority="4", gold="5")]
    majority = select_examples(rows, config(), GRADER, iteration=1)
    star = select_examples(rows, config(selection="star"), GRADER, iteration=1)
    assert [len(majority[(a, "generator")]) for a in range(3)] == [0, 1, 1]
    assert [len(star[(a, "generator")]) for a in range(3)] == [1, 0, 0]


def test_single_agent_pools_every_agents_generation_data():
    rows = [transcript("p1", [("5", "5"), ("5", "5"), ("4", "5")], majority="5")]
    selected = select_examples(rows, config(selection="single_agent"), GRADER, iteration=1)
    assert len(selected[(0, "generator")]) == 2
    others = {key: value for key, value in selected.items() if key != (0, "generator")}
    assert all(value == [] for value in others.values())
