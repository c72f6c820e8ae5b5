"""prepare: draw the train and eval problems, disjoint by normalised question text."""

from __future__ import annotations

import re
from collections.abc import Iterator

from mafine.artifacts import Problem
from mafine.config import Config
from mafine.data.registry import SOURCES, Record
from mafine.data.settings import SourceSettings
from mafine.errors import MafineError
from mafine.jsonl import read_rows, write_rows
from mafine.registry import resolve
from mafine.rundir import RunDir
from mafine.stages.stage import prepare_stage
from mafine.ui import console


def normalize_question(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().rstrip(".?!").lower()


def prepare(run: RunDir) -> None:
    config = run.config
    if prepare_stage(run).skip("problems already drawn"):
        return
    train, evaluation = draw_problems(config)  # bad data is refused before the manifest
    with prepare_stage(run).record():
        write_rows(run.problems("eval"), evaluation)
        write_rows(run.problems("train"), train)
    console.print(
        f"prepare: {len(train)} train problems from {source_name(config.data.source)}, "
        f"{len(evaluation)} eval problems from {evaluation[0].source}"
    )


def prepared(run: RunDir) -> bool:
    return prepare_stage(run).done()


def load_problems(run: RunDir, split: str) -> list[Problem]:
    if not prepared(run):
        raise MafineError(f"no problems in {run.root}: run `mafine prepare` first")
    problems = list(read_rows(run.problems(split), Problem))
    if split == "eval":
        check_disjoint(list(read_rows(run.problems("train"), Problem)), problems)
    return problems


def draw_problems(config: Config) -> tuple[list[Problem], list[Problem]]:
    """Unique problems in a seeded order: eval first, then train, never sharing a question.

    With one source the first `eval_size` distinct problems go to eval and the next
    `train_size` to train; with `data.eval_source` (zero-shot transfer) eval comes from it.
    """
    data = config.data
    seen: set[str] = set()
    eval_source = data.eval_source or data.source
    evaluation_records = _draw(source_records(eval_source, config.seed), data.eval_size, seen)
    if len(evaluation_records) < data.eval_size:
        raise MafineError(
            f"{source_name(eval_source)} has {len(evaluation_records)} distinct problems; "
            f"data.eval_size asks for {data.eval_size}"
        )
    # From one source, train is the same seeded stream without the eval questions.
    train_records = _draw(source_records(data.source, config.seed), data.train_size, seen)
    if len(train_records) < data.train_size:
        raise MafineError(
            f"{source_name(data.source)} has {len(train_records)} distinct problems left after "
            f"the eval split; data.train_size asks for {data.train_size}"
        )
    evaluation = [
        _problem(record, "eval", i, source_name(eval_source))
        for i, record in enumerate(evaluation_records)
    ]
    train = [
        _problem(record, "train", i, source_name(data.source))
        for i, record in enumerate(train_records)
    ]
    check_disjoint(train, evaluation)
    check_unique_ids(train)
    check_unique_ids(evaluation)
    return train, evaluation


def check_unique_ids(problems: list[Problem]) -> None:
    """Every problem id once: transcripts and fine-tuning data are keyed by it."""
    seen: set[str] = set()
    for problem in problems:
        if problem.id in seen:
            raise MafineError(
                f"problem id {problem.id!r} appears twice in the data ({problem.source}); "
                "ids must be unique (fix the id column, or set data.source.id_field: null)"
            )
        seen.add(problem.id)


# A generator's stream is endless: one that repeats this many questions in a row has run out
# of new ones (a module with few distinct problems), and the draw stops instead of spinning.
MAX_REPEATS_IN_A_ROW = 100_000


def _draw(records: Iterator[Record], wanted: int, seen: set[str]) -> list[Record]:
    drawn: list[Record] = []
    repeats = 0
    for record in records:
        if len(drawn) == wanted or repeats == MAX_REPEATS_IN_A_ROW:
            break
        key = normalize_question(record[1])
        if key in seen:
            repeats += 1
            continue
        repeats = 0
        seen.add(key)
        drawn.append(record)
    return drawn


def check_disjoint(train: list[Problem], evaluation: list[Problem]) -> None:
    overlap = {normalize_question(p.question) for p in train} & {
        normalize_question(p.question) for p in evaluation
    }
    if overlap:
        raise MafineError(
            f"train and eval share {len(overlap)} question(s), e.g. {sorted(overlap)[0]!r}"
        )


def source_name(source: SourceSettings) -> str:
    return resolve(SOURCES.get(source.kind).describe)(source)


def source_records(source: SourceSettings, seed: int) -> Iterator[Record]:
    """The source's records in its seeded order (read by the reader its kind registers)."""
    return resolve(SOURCES.get(source.kind).records)(source, seed)


def _problem(record: Record, split: str, index: int, source: str) -> Problem:
    given_id, question, answer = record
    return Problem(
        id=given_id or f"{split}-{index:05d}", question=question, answer=answer, source=source
    )
