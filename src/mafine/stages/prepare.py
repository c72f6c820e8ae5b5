"""prepare: draw the train and eval problems, disjoint by normalised question text."""

from __future__ import annotations

import random
import re
from collections.abc import Iterator

from mafine.artifacts import Problem
from mafine.config import Config, DeepMindSource
from mafine.errors import MafineError
from mafine.jsonl import read_rows, write_rows
from mafine.rundir import RunDir
from mafine.ui import console

SPLITS = ("train", "eval")


def normalize_question(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().rstrip(".?!").lower()


def prepare(run: RunDir) -> None:
    config = run.config
    if prepared(run):
        console.print("prepare: problems already drawn, skipped")
        return
    with run.stage("prepare"):
        train, evaluation = draw_problems(config)
        write_rows(run.problems("eval"), evaluation)
        write_rows(run.problems("train"), train)
    source = source_name(config)
    console.print(f"prepare: {len(train)} train and {len(evaluation)} eval problems from {source}")


def prepared(run: RunDir) -> bool:
    return run.stage_status("prepare") == "done" and all(
        run.problems(split).exists() for split in SPLITS
    )


def load_problems(run: RunDir, split: str) -> list[Problem]:
    if not prepared(run):
        raise MafineError(f"no problems in {run.root}: run `mafine prepare` first")
    problems = list(read_rows(run.problems(split), Problem))
    if split == "eval":
        check_disjoint(list(read_rows(run.problems("train"), Problem)), problems)
    return problems


def draw_problems(config: Config) -> tuple[list[Problem], list[Problem]]:
    """Unique problems in a seeded order: the first `eval_size` for eval, the next for train."""
    wanted = config.data.eval_size + config.data.train_size
    seen: set[str] = set()
    drawn: list[tuple[str | None, str, str]] = []
    for record in _candidates(config):
        key = normalize_question(record[1])
        if key in seen:
            continue
        seen.add(key)
        drawn.append(record)
        if len(drawn) == wanted:
            break
    if len(drawn) < wanted:
        raise MafineError(
            f"{source_name(config)} has {len(drawn)} distinct problems; data.train_size + "
            f"data.eval_size asks for {wanted}"
        )
    name = source_name(config)
    evaluation = [
        _problem(record, "eval", i, name) for i, record in enumerate(drawn[: config.data.eval_size])
    ]
    train = [
        _problem(record, "train", i, name)
        for i, record in enumerate(drawn[config.data.eval_size :])
    ]
    check_disjoint(train, evaluation)
    return train, evaluation


def check_disjoint(train: list[Problem], evaluation: list[Problem]) -> None:
    overlap = {normalize_question(p.question) for p in train} & {
        normalize_question(p.question) for p in evaluation
    }
    if overlap:
        raise MafineError(
            f"train and eval share {len(overlap)} question(s), e.g. {sorted(overlap)[0]!r}"
        )


def source_name(config: Config) -> str:
    source = config.data.source
    if isinstance(source, DeepMindSource):
        return f"deepmind/{source.module} ({source.difficulty})"
    return str(source.path)


def _candidates(config: Config) -> Iterator[tuple[str | None, str, str]]:
    source = config.data.source
    if isinstance(source, DeepMindSource):
        from mafine.data.deepmind import iter_deepmind

        for question, answer in iter_deepmind(source.module, source.difficulty, config.seed):
            yield None, question, answer
        return
    from mafine.data.files import iter_file

    rows = list(iter_file(source))
    random.Random(f"mafine-split:{config.seed}").shuffle(rows)
    yield from rows


def _problem(record: tuple[str | None, str, str], split: str, index: int, source: str) -> Problem:
    given_id, question, answer = record
    return Problem(
        id=given_id or f"{split}-{index:05d}", question=question, answer=answer, source=source
    )
