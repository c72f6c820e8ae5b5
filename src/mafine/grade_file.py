"""`mafine grade`: grade a JSONL of responses, or a run's transcripts, with any grader.

An application of the graders (it reads files, extracts, votes and writes), not grading logic.

Two input shapes, told apart per row:
- a response row `{"gold": ..., "response": ...}` (other fields are copied to the output);
- a transcript row (`mafine.artifacts.Transcript`): `gold`, `problem_id` and
  `agents[].turns[].response`. Answers are extracted again from the responses (the config's
  fallbacks apply), the agents' final answers are voted again under this grader, and the row is
  correct when the new majority is.
Each input row gives one output row, in order, with `correct`, `answer`, `rule`, `reason` and
`grader` (the grader that decided: under `auto`, the one it asked; transcript rows also carry
`votes` and the per-agent grades). No request is ever made.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mafine.artifacts import Transcript
from mafine.atomic import atomic_open
from mafine.errors import MafineError
from mafine.grading import Grader, get_grader
from mafine.grading.extract import extract_answer
from mafine.grading.settings import GradingConfig
from mafine.grading.vote import TieBreak, majority_vote_many
from mafine.jsonl import parse_objects
from mafine.methods import MAIN_METHOD
from mafine.readable import require_file

TieRng = Callable[[str], random.Random]


@dataclass(frozen=True)
class ResponseGrade:
    correct: bool
    answer: str | None
    rule: str
    reason: str
    grader: str


@dataclass(frozen=True)
class TranscriptGrade:
    """A debate regraded: the new majority's grade, the votes, and every agent's grades."""

    problem_id: str
    gold: str
    correct: bool
    answer: str | None
    reason: str
    grader: str
    votes: dict[str, int]
    agents: list[int]
    final: list[ResponseGrade]
    first: list[ResponseGrade]


@dataclass
class GradeSummary:
    path: Path
    output: Path | None
    kind: str  # "responses" | "transcripts" | "empty"
    rows: int
    correct: int
    no_answer: int
    timeouts: int
    grader: dict[str, Any]
    agent_accuracy: list[float] = field(default_factory=list)

    @property
    def accuracy(self) -> float:
        return self.correct / self.rows if self.rows else 0.0

    def describe(self) -> str:
        """One line for the terminal."""
        what = "debates (majority vote)" if self.kind == "transcripts" else "responses"
        text = (
            f"{self.path}: {self.correct}/{self.rows} {what} correct "
            f"({100 * self.accuracy:.2f}%) with the {self.grader['name']} grader"
        )
        if self.no_answer:
            text += f"; {self.no_answer} without an answer"
        if self.timeouts:
            text += f"; {self.timeouts} timed out"
        if self.agent_accuracy:
            per_agent = ", ".join(f"{100 * value:.2f}%" for value in self.agent_accuracy)
            text += f"; per agent: {per_agent}"
        return text

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["path"], data["output"] = str(self.path), self.output and str(self.output)
        data["accuracy"] = self.accuracy
        return data


def grade_file(
    path: Path,
    config: GradingConfig,
    output: Path | None = None,
    *,
    seed: int = 0,
    tie_rng: TieRng | None = None,
) -> GradeSummary:
    """Grade every row of `path`, write `output` (atomically) if given, and summarise.

    Ties in a re-vote are broken by `tie_rng(problem_id)`; by default by the debate stage's
    own seeding for the debate the file's place in a run directory names (`debate_ties`), so
    that with the run's seed and grader a regrade reproduces the stored majorities. A corrupt
    line raises MafineError naming the file and line.
    """
    rows = read_rows(path)
    if not rows:
        raise MafineError(f"{path}: no rows to grade (an empty file?)")
    kinds = {kind for _, kind, _ in rows}
    if len(kinds) > 1:
        raise MafineError(f"{path}: mixes response rows and transcript rows")
    kind = kinds.pop() if kinds else "empty"
    tie_rng = tie_rng or debate_ties(path, seed).rng
    with get_grader(config) as grader:
        settings = {**grader.settings(), "fallbacks": list(config.fallbacks)}
        if kind == "transcripts":
            out_rows, summary = _transcripts(rows, grader, config, tie_rng, path, settings)
        else:
            out_rows, summary = _responses(rows, grader, config, path, settings)
    if output is not None:
        write_jsonl(output, out_rows)
        summary.output = output
    return summary


def debate_ties(path: Path, seed: int) -> TieBreak:
    """The tie-breaks of the debate a transcripts file holds, read from its place in a run
    directory: `[variants/<method>/]{baseline|iter-K}/{split}-debate.jsonl`. A file elsewhere
    is taken for the main run's base-model eval debate."""
    split, dash, rest = path.name.partition("-")
    folder = path.parent.name
    iteration = 0 if folder == "baseline" else folder.removeprefix("iter-")
    if rest != "debate.jsonl" or not dash or not str(iteration).isdigit():
        return TieBreak(seed, MAIN_METHOD, 0, "eval")
    run = path.parent.parent
    method = run.name if run.parent.name == "variants" else MAIN_METHOD
    return TieBreak(seed, method, int(iteration), split)


def read_rows(path: Path) -> list[tuple[int, str, dict[str, Any]]]:
    """(line number, "responses" | "transcripts", row) for every non-blank line."""
    require_file(path, "file")
    with path.open(encoding="utf-8") as handle:
        return [
            (number, _kind(row, path, number), row) for number, row in parse_objects(handle, path)
        ]


def _kind(row: dict[str, Any], path: Path, number: int) -> str:
    if "gold" not in row or row["gold"] is None:
        raise MafineError(f"{path}, line {number}: no 'gold' field")
    gold = row["gold"]
    if isinstance(gold, bool) or not isinstance(gold, str | int | float):
        kind = {bool: "a yes/no (true/false)", list: "a list", dict: "a mapping"}[type(gold)]
        raise MafineError(
            f"{path}, line {number}: 'gold' is {kind}, not text or a number; write the answer "
            "as text (in quotes)"
        )
    if "agents" in row:
        agents = row["agents"]
        if not isinstance(agents, list) or not all(
            isinstance(agent, dict)
            and isinstance(agent.get("turns"), list)
            and agent["turns"]
            and all(isinstance(turn, dict) and "response" in turn for turn in agent["turns"])
            for agent in agents
        ):
            raise MafineError(f"{path}, line {number}: 'agents' must list agents with turns")
        return "transcripts"
    if "response" not in row:
        raise MafineError(f"{path}, line {number}: needs 'response' (or a transcript's 'agents')")
    if row["response"] is not None and not isinstance(row["response"], str):
        raise MafineError(f"{path}, line {number}: 'response' must be a string")
    return "responses"


def grade_responses(
    items: Sequence[tuple[str, str | None]], grader: Grader, fallbacks: Sequence[str] = ()
) -> list[ResponseGrade]:
    """Extract and grade (gold, response) pairs in one batch."""
    extractions = [extract_answer(response, fallbacks) for _, response in items]
    verdicts = grader.equivalent_many(
        [
            (str(gold), extraction.answer)
            for (gold, _), extraction in zip(items, extractions, strict=True)
        ]
    )
    return [
        ResponseGrade(
            verdict.equal,
            extraction.answer,
            extraction.rule,
            verdict.reason,
            verdict.grader or grader.name,
        )
        for extraction, verdict in zip(extractions, verdicts, strict=True)
    ]


def grade_transcripts(
    transcripts: Sequence[Transcript | dict[str, Any]],
    grader: Grader,
    fallbacks: Sequence[str] = (),
    tie_rng: TieRng | None = None,
    *,
    seed: int = 0,
) -> list[TranscriptGrade]:
    """Regrade debates (Transcript objects or their dicts): re-extract, re-vote, grade.

    Answers are extracted again from each agent's first and final responses (the stored
    `answer` fields are not trusted: the fallbacks may differ), the final answers are voted
    again under `grader` (ties: `tie_rng(problem_id)`, by default the main run's base-model
    eval debate's, `TieBreak(seed, "multiagent_ft", 0, "eval")`),
    and the new majority is graded. All comparisons go to the grader in a few batches, so a
    symbolic grader keeps its workers busy.
    """
    tie_rng = tie_rng or TieBreak(seed, MAIN_METHOD, 0, "eval").rng
    rows = [_as_dict(transcript) for transcript in transcripts]
    golds = [str(row["gold"]) for row in rows]
    finals, firsts, owners, agent_ids = [], [], [], []
    for number, row in enumerate(rows):
        for index, agent in enumerate(row["agents"]):
            agent_ids.append(int(agent.get("agent", index)))
            finals.append((golds[number], agent["turns"][-1]["response"]))
            firsts.append((golds[number], agent["turns"][0]["response"]))
            owners.append(number)
    final_grades = grade_responses(finals, grader, fallbacks)
    first_grades = grade_responses(firsts, grader, fallbacks)
    per_row: list[list[int]] = [[] for _ in rows]
    for position, number in enumerate(owners):
        per_row[number].append(position)
    problem_ids = [str(row.get("problem_id", number)) for number, row in enumerate(rows)]
    votes = majority_vote_many(
        [[final_grades[position].answer for position in positions] for positions in per_row],
        grader,
        [tie_rng(problem_id) for problem_id in problem_ids],
    )
    verdicts = grader.equivalent_many(
        [(gold, winner) for gold, (winner, _) in zip(golds, votes, strict=True)]
    )
    return [
        TranscriptGrade(
            problem_id=problem_ids[number],
            gold=golds[number],
            correct=verdict.equal,
            answer=winner,
            reason=verdict.reason,
            grader=verdict.grader or grader.name,
            votes=counts,
            agents=[agent_ids[position] for position in per_row[number]],
            final=[final_grades[position] for position in per_row[number]],
            first=[first_grades[position] for position in per_row[number]],
        )
        for number, ((winner, counts), verdict) in enumerate(zip(votes, verdicts, strict=True))
    ]


def write_jsonl(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    """Write rows as JSONL, atomically (a temporary file renamed into place)."""
    with atomic_open(path) as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def _responses(
    rows: list[tuple[int, str, dict[str, Any]]],
    grader: Grader,
    config: GradingConfig,
    path: Path,
    settings: dict[str, Any],
) -> tuple[list[dict[str, Any]], GradeSummary]:
    grades = grade_responses(
        [(row["gold"], row["response"]) for _, _, row in rows], grader, config.fallbacks
    )
    out_rows = []
    for (_, _, row), grade in zip(rows, grades, strict=True):
        copied = {key: value for key, value in row.items() if key != "response"}
        out_rows.append({**copied, **asdict(grade)})
    summary = GradeSummary(
        path=path,
        output=None,
        kind="responses" if rows else "empty",
        rows=len(grades),
        correct=sum(grade.correct for grade in grades),
        no_answer=sum(grade.answer is None for grade in grades),
        timeouts=sum(grade.reason.startswith("timeout") for grade in grades),
        grader=settings,
    )
    return out_rows, summary


def _transcripts(
    rows: list[tuple[int, str, dict[str, Any]]],
    grader: Grader,
    config: GradingConfig,
    tie_rng: TieRng,
    path: Path,
    settings: dict[str, Any],
) -> tuple[list[dict[str, Any]], GradeSummary]:
    grades = grade_transcripts([row for _, _, row in rows], grader, config.fallbacks, tie_rng)
    out_rows = []
    for grade in grades:
        out_rows.append(
            {
                "problem_id": grade.problem_id,
                "gold": grade.gold,
                "correct": grade.correct,
                "answer": grade.answer,
                "rule": "vote",
                "reason": grade.reason,
                "grader": grade.grader,
                "votes": grade.votes,
                "agents": [
                    {"agent": agent, **asdict(final), "first": asdict(first)}
                    for agent, final, first in zip(
                        grade.agents, grade.final, grade.first, strict=True
                    )
                ],
            }
        )
    agent_count = max((len(grade.final) for grade in grades), default=0)
    agent_accuracy = []
    for index in range(agent_count):
        graded = [grade.final[index].correct for grade in grades if index < len(grade.final)]
        agent_accuracy.append(sum(graded) / len(graded))
    finals = [final for grade in grades for final in grade.final]
    summary = GradeSummary(
        path=path,
        output=None,
        kind="transcripts",
        rows=len(grades),
        correct=sum(grade.correct for grade in grades),
        no_answer=sum(grade.answer is None for grade in grades),
        timeouts=sum(final.reason.startswith("timeout") for final in finals),
        grader=settings,
        agent_accuracy=agent_accuracy,
    )
    return out_rows, summary


def _as_dict(transcript: Transcript | dict[str, Any]) -> dict[str, Any]:
    if isinstance(transcript, dict):
        return transcript
    if not isinstance(transcript, Transcript):
        raise TypeError(f"not a transcript: {type(transcript).__name__}")
    return transcript.model_dump()
