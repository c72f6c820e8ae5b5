"""`grade_file`: response rows and transcripts, output rows in order, corrupt lines named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mafine.artifacts import AgentTrace, Message, Transcript, Turn
from mafine.errors import MafineError
from mafine.grade_file import grade_file, grade_transcripts
from mafine.grading import GradingConfig, get_grader


def write_jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


RESPONSES = [
    {"id": "a", "gold": "-2.4", "response": r"so \boxed{-12/5}"},
    {"id": "b", "gold": "5", "response": "I think it is 5."},
    {"id": "c", "gold": r"\frac{1}{2}", "response": r"\boxed{0.5}"},
    {"id": "d", "gold": 18, "response": r"\boxed{\$18.00}"},
    {"id": "e", "gold": "7", "response": None},
]


@pytest.mark.parametrize(
    ("grader", "correct"),
    [
        ("string", [False, False, False, False, False]),
        ("numeric", [True, False, True, True, False]),
        ("sympy", [True, False, True, True, False]),
    ],
)
def test_response_rows(tmp_path: Path, grader: str, correct: list[bool]) -> None:
    source = write_jsonl(tmp_path / "responses.jsonl", RESPONSES)
    output = tmp_path / "out" / "graded.jsonl"
    summary = grade_file(source, GradingConfig(grader=grader), output)
    rows = read_jsonl(output)
    assert [row["id"] for row in rows] == ["a", "b", "c", "d", "e"]
    assert [row["correct"] for row in rows] == correct
    assert rows[0]["answer"] == "-12/5" and rows[0]["rule"] == "boxed"
    assert rows[1] == {
        "id": "b",
        "gold": "5",
        "correct": False,
        "answer": None,
        "rule": "none",
        "reason": "no answer",
        "grader": grader,
    }
    assert all("response" not in row and row["reason"] for row in rows)
    assert summary.rows == 5 and summary.correct == sum(correct)
    assert summary.no_answer == 2
    assert summary.grader["name"] == grader
    assert summary.output == output
    assert f"{sum(correct)}/5" in summary.describe()
    assert not list(output.parent.glob(".*.tmp"))


def test_fallbacks_apply(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "r.jsonl", RESPONSES[1:2])
    config = GradingConfig(grader="numeric", fallbacks=["last_number"])
    summary = grade_file(source, config, tmp_path / "o.jsonl")
    row = read_jsonl(tmp_path / "o.jsonl")[0]
    assert (row["correct"], row["answer"], row["rule"]) == (True, "5", "last_number")
    assert summary.grader["fallbacks"] == ["last_number"]


def transcript(problem_id: str, gold: str, finals: list[str], first: str = "0") -> Transcript:
    def turn(round_: int, text: str) -> Turn:
        message = Message(role="user", content="q")
        role = "generator" if round_ == 1 else "critic"
        return Turn(
            round=round_, role=role, model="m", messages=[message], response=text, answer=None
        )

    agents = [
        AgentTrace(
            agent=index,
            has_critic=True,
            turns=[turn(1, rf"\boxed{{{first}}}"), turn(2, rf"\boxed{{{final}}}")],
        )
        for index, final in enumerate(finals)
    ]
    return Transcript(
        problem_id=problem_id,
        question="q",
        gold=gold,
        agents=agents,
        majority="stale",
        votes={"stale": 3},
    )


def test_transcripts_are_revoted_under_the_grader(tmp_path: Path) -> None:
    transcripts = [
        transcript("p1", r"\frac{1}{2}", [r"\frac{1}{2}", "0.5", "3"]),
        transcript("p2", "4", ["5", "5", "4"], first="4"),
    ]
    source = write_jsonl(
        tmp_path / "transcripts.jsonl", [item.model_dump(mode="json") for item in transcripts]
    )
    output = tmp_path / "graded.jsonl"
    string = grade_file(source, GradingConfig(grader="string"), output)
    sympy = grade_file(source, GradingConfig(grader="sympy"), output)
    rows = read_jsonl(output)
    assert string.kind == sympy.kind == "transcripts"
    assert string.rows == 2 and sympy.correct == 1
    assert rows[0]["correct"] is True and rows[0]["answer"] == r"\frac{1}{2}"
    assert rows[0]["votes"] == {r"\frac{1}{2}": 2, "3": 1}
    assert rows[0]["rule"] == "vote"
    assert [agent["correct"] for agent in rows[0]["agents"]] == [True, True, False]
    assert rows[1]["answer"] == "5" and rows[1]["correct"] is False
    assert [agent["first"]["correct"] for agent in rows[1]["agents"]] == [True] * 3
    assert sympy.agent_accuracy == pytest.approx([0.5, 0.5, 0.5])


def test_grade_transcripts_takes_objects(tmp_path: Path) -> None:
    grades = grade_transcripts(
        [transcript("p", "2", ["2", "2.0", "3"])], get_grader(GradingConfig(grader="numeric"))
    )
    assert grades[0].correct and grades[0].votes == {"2": 2, "3": 1}
    assert grades[0].agents == [0, 1, 2]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"gold": "1", "response": ', "line 2: not valid JSON"),
        ("[1, 2]", "line 2: expected a JSON object"),
        ('{"response": "x"}', "line 2: no 'gold' field"),
        ('{"gold": "1"}', "line 2: needs 'response'"),
        ('{"gold": "1", "agents": [{"turns": []}]}', "line 2: 'agents' must list agents"),
    ],
)
def test_corrupt_line_names_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(RESPONSES[0]) + "\n" + line + "\n")
    with pytest.raises(MafineError, match=message) as error:
        grade_file(path, GradingConfig(), tmp_path / "out.jsonl")
    assert str(path) in str(error.value)
    assert not (tmp_path / "out.jsonl").exists()


def test_missing_file_and_mixed_rows(tmp_path: Path) -> None:
    with pytest.raises(MafineError, match="file not found"):
        grade_file(tmp_path / "nope.jsonl", GradingConfig())
    mixed = [RESPONSES[0], transcript("p", "1", ["1"]).model_dump(mode="json")]
    with pytest.raises(MafineError, match="mixes"):
        grade_file(write_jsonl(tmp_path / "mixed.jsonl", mixed), GradingConfig())


def test_empty_file(tmp_path: Path) -> None:
    """0 of 0 correct would read as an accuracy of 0%: an empty file is an error instead."""
    path = tmp_path / "empty.jsonl"
    path.write_text("\n")
    with pytest.raises(MafineError, match="no rows to grade"):
        grade_file(path, GradingConfig(), tmp_path / "out.jsonl")
    assert not (tmp_path / "out.jsonl").exists()


def test_regrade_with_the_runs_seed_reproduces_the_debate_tie_break(tmp_path: Path) -> None:
    from mafine.grade_file import debate_ties
    from mafine.grading import majority_vote
    from mafine.grading.vote import TieBreak
    from mafine.jsonl import write_rows

    grader = get_grader(GradingConfig(grader="numeric"))
    finals = ["1", "2", "3"]
    path = tmp_path / "run" / "variants" / "star" / "iter-1" / "eval-debate.jsonl"
    path.parent.mkdir(parents=True)
    write_rows(path, [transcript("p7", "1", finals)])
    assert debate_ties(path, 4) == TieBreak(4, "star", 1, "eval")
    assert debate_ties(tmp_path / "run/baseline/eval-debate.jsonl", 4) == TieBreak(
        4, "multiagent_ft", 0, "eval"
    )
    assert debate_ties(tmp_path / "run/iter-2/train-debate.jsonl", 4) == TieBreak(
        4, "multiagent_ft", 2, "train"
    )
    for seed in range(5):
        # what the debate stage does (stages/debate.py) in variants/star/iter-1/eval
        ties = TieBreak(seed, "star", 1, "eval")
        stored, _ = majority_vote(finals, grader, ties.rng("p7"))
        graded = tmp_path / f"graded-{seed}.jsonl"
        grade_file(path, GradingConfig(grader="numeric"), graded, seed=seed)
        assert json.loads(graded.read_text())["answer"] == stored
