"""The grader registry: a grader registered from this file alone runs through the CLI, the
corpus tool gives it a column, and an unknown name is refused in one line at validation."""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict, ValidationError

from mafine.grading import Grader, GradingConfig, Pair, Verdict, get_grader
from mafine.grading.base import NO_ANSWER
from mafine.grading.registry import GRADERS, GraderEntry
from tests.conftest import write_config
from tests.data.grading import relabel

NAME = "same_length"


class SameLengthSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    slack: int = 0  # characters the lengths may differ by


class SameLengthGrader(Grader):
    """Equal when the answer is as long as the gold (give or take `slack` characters): what no
    built-in grader says."""

    name = NAME

    def __init__(self, config: GradingConfig | None = None) -> None:
        super().__init__(config)
        self.slack = self.config.grader_options(NAME).slack

    def equivalent_many(self, pairs: Sequence[Pair]) -> list[Verdict]:
        return [
            NO_ANSWER
            if answer is None
            else Verdict(abs(len(answer) - len(gold)) <= self.slack, "lengths compared")
            for gold, answer in pairs
        ]

    def settings(self) -> dict[str, object]:
        return {"name": self.name, "slack": self.slack}


@pytest.fixture
def same_length() -> Iterator[None]:
    entry = GraderEntry(NAME, SameLengthGrader, "answers as long as the gold", SameLengthSettings)
    with GRADERS.registered(entry):
        yield


def test_a_registered_grader_is_accepted_and_built(same_length: None) -> None:
    config = GradingConfig(grader=NAME)
    with get_grader(config) as grader:
        assert isinstance(grader, SameLengthGrader) and grader.config is config
        assert grader.equivalent("12", "34") and not grader.equivalent("12", "345")
    assert NAME in GRADERS.names()
    loose = GradingConfig(grader=NAME, options={NAME: {"slack": 1}})
    assert get_grader(loose).equivalent("12", "345")
    assert loose.model_dump()["options"] == {NAME: {"slack": 1}}
    assert "options" not in config.model_dump()  # configs without options dump as before


def test_grader_options_are_checked_at_validation(same_length: None) -> None:
    for options, message in (
        ({NAME: {"slack": "wide"}}, f"{NAME}: slack: Input should be a valid integer"),
        ({NAME: {"slak": 1}}, f"{NAME}: slak: unknown key"),
        ({"string": {"x": 1}}, "the string grader takes no options"),
        ({"exact": {}}, "unknown grader 'exact'"),
    ):
        with pytest.raises(ValidationError, match=message):
            GradingConfig(grader=NAME, options=options)


def test_mafine_grade_uses_a_registered_grader(cli, tmp_path: Path, same_length: None) -> None:
    source = tmp_path / "responses.jsonl"
    rows = [{"gold": "12", "response": r"\boxed{34}"}, {"gold": "12", "response": r"\boxed{345}"}]
    source.write_text("".join(json.dumps(row) + "\n" for row in rows))
    output = tmp_path / "graded.jsonl"
    result = cli("grade", source, "--grader", NAME, "--output", output)
    assert result.exit_code == 0, result.output
    assert f"1/2 responses correct (50.00%) with the {NAME} grader" in result.output
    graded = [json.loads(line) for line in output.read_text().splitlines()]
    assert [(row["correct"], row["grader"]) for row in graded] == [(True, NAME), (False, NAME)]


def test_a_run_grades_with_a_registered_grader(cli, tmp_path: Path, same_length: None) -> None:
    config = write_config(tmp_path, grading__grader=NAME, grading__options={NAME: {"slack": 2}})
    result = cli("run", config)
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "runs" / "exp" / "metrics.json").read_text())
    assert metrics["header"]["grader"] == {"name": NAME, "slack": 2, "fallbacks": []}
    regraded = cli("evaluate", config, "--regrade", "--grader", NAME)
    assert regraded.exit_code == 0, regraded.output


def test_an_unknown_grader_is_refused_in_one_line(cli, tmp_path: Path, traffic) -> None:
    source = tmp_path / "responses.jsonl"
    source.write_text(json.dumps({"gold": "1", "response": "1"}) + "\n")
    for result in (
        cli("grade", source, "--grader", "exact"),
        cli("run", write_config(tmp_path, grading__grader="exact")),
        cli("run", write_config(tmp_path, grading__options={"exact": {}})),
    ):
        assert result.exit_code != 0
        lines = result.output.strip().splitlines()
        assert len(lines) == 1, result.output
        assert "unknown grader 'exact'; use one of: string, numeric, sympy" in lines[0]
        assert "Traceback" not in result.output
    assert traffic.requests() == 0
    assert not (tmp_path / "runs" / "exp").exists()


def test_the_corpus_tool_adds_a_column_for_a_new_grader(tmp_path: Path, same_length: None) -> None:
    corpus = tmp_path / "corpus.tsv"
    shutil.copy(relabel.CORPUS, corpus)
    before = relabel.read_corpus(corpus)
    assert relabel.relabel(corpus, write=True) == len(before)  # every row gets a new verdict
    after = relabel.read_corpus(corpus)
    with corpus.open(newline="") as handle:
        header = next(csv.reader(handle, delimiter="\t"))
    assert header[-2:] == [NAME, "note"]
    assert [{k: v for k, v in row.items() if k != NAME} for row in after] == before
    for row in after:
        answer = relabel.extract_answer(row["response"]).answer
        expected = answer is not None and len(answer) == len(row["gold"])
        assert row[NAME] == ("y" if expected else "n"), row["id"]
    assert relabel.relabel(corpus) == 0  # written: nothing left to change


def test_the_docs_table_names_every_registered_grader() -> None:
    text = (Path(__file__).parent.parent / "docs" / "grading.md").read_text()
    table = text.split("## Graders", 1)[1].split("\n\n", 2)[1]
    documented = [line.split("`")[1] for line in table.splitlines() if line.startswith("| `")]
    assert documented == list(GRADERS.names())
