"""The metrics document of a run (`metrics.json`): what `evaluate` writes and reports read.

A validated pydantic model: the header (who and what produced the numbers), every method's
per-problem outcomes, accuracy per agent and round, and diversity.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from mafine.analysis import stats
from mafine.analysis.diversity import Diversity
from mafine.errors import MafineError
from mafine.methods import METHODS, tuned
from mafine.readable import dangling_link, require_file
from mafine.schema import describe_validation_error

METRICS_FILE = "metrics.json"


class Header(BaseModel):
    """Who and what produced the numbers. Extra keys are kept (and shown nowhere)."""

    model_config = ConfigDict(extra="allow")

    provider: str
    base_model: str
    grader: dict[str, Any]
    data: str
    eval_data: str | None = None
    train_size: int
    eval_size: int
    agents: int
    critics: int
    rounds: int
    summarize: bool
    seed: int
    # The embedder of the diversity metrics: its name and package versions (diversity.py).
    embedder: dict[str, Any] | None = None
    config: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _grader_named(self) -> Header:
        if not isinstance(self.grader.get("name"), str):
            raise ValueError("grader must have a name")
        return self


class MethodResult(BaseModel):
    """One method at one iteration: its per-problem outcomes on the eval split."""

    model_config = ConfigDict(extra="allow")

    key: str
    label: str
    iteration: int = Field(0, ge=0)
    uses_labels: bool = False
    tuned: str | None = None  # what it fine-tuned: nothing, one model, every agent
    reuses: list[str] = Field(default_factory=list)  # methods whose responses it reused
    correct: list[bool]
    problem_ids: list[str] | None = None

    @property
    def id(self) -> str:
        return stats.method_id(self.key, self.iteration)

    @property
    def what_was_tuned(self) -> str:
        """`tuned`, or for a document written before it was recorded, the registered
        method's."""
        return self.tuned or tuned(self.key)

    @model_validator(mode="after")
    def _ids_match(self) -> MethodResult:
        if self.problem_ids is not None:
            if len(self.problem_ids) != len(self.correct):
                raise ValueError(
                    f"{self.key}@{self.iteration}: {len(self.correct)} outcomes but "
                    f"{len(self.problem_ids)} problem ids"
                )
            if len(set(self.problem_ids)) != len(self.problem_ids):
                raise ValueError(f"{self.key}@{self.iteration}: repeated problem ids")
        if not self.correct:
            raise ValueError(f"{self.key}@{self.iteration}: no outcomes")
        return self


class MetricsDocument(BaseModel):
    """`metrics.json`: header, methods, per agent per round accuracy, diversity.

    `per_agent_round[method@iteration][agent][round]` is an accuracy in [0, 1];
    `diversity[method@iteration]` is a `diversity.Diversity`.
    """

    model_config = ConfigDict(extra="allow")

    header: Header
    methods: list[MethodResult]
    per_agent_round: dict[str, dict[str, dict[str, float]]] = Field(default_factory=dict)
    diversity: dict[str, Diversity] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _unique_methods(self) -> MetricsDocument:
        ids = [m.id for m in self.methods]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise ValueError(f"methods repeated: {', '.join(repeated)}")
        return self

    def method(self, name: str) -> MethodResult:
        return stats.find_method(self.methods, name)  # type: ignore[return-value]


def as_document(document: MetricsDocument | dict[str, Any]) -> MetricsDocument:
    """A metrics document from the dict `evaluate` builds (validated), or as given."""
    if isinstance(document, MetricsDocument):
        return document
    try:
        return MetricsDocument.model_validate(document)
    except ValidationError as exc:
        raise MafineError(f"metrics document: {describe_validation_error(exc)}") from None


def load_metrics(path: Path) -> MetricsDocument:
    """Read and validate a metrics document; errors name the file and the field."""
    if path.is_dir():
        path = path / METRICS_FILE
    if not path.is_file():
        if path.exists() or dangling_link(path):  # a device, a broken link: say which
            require_file(path, "metrics document")
        raise MafineError(f"no metrics document at {path}: has `mafine evaluate` run there?")
    try:
        raw = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise MafineError(
            f"{path} is not valid JSON, so no metrics document; give a run directory or its "
            "metrics.json"
        ) from None
    if isinstance(raw, dict) and "methods" not in raw and "baselines" in raw:
        raise MafineError(
            f"{path} is an older metrics file (no per-problem methods): run "
            "`mafine evaluate` on that run again with this version of mafine"
        )
    try:
        return MetricsDocument.model_validate(raw)
    except ValidationError as exc:
        raise MafineError(f"{path}: {describe_validation_error(exc)}") from None


def method_label(key: str) -> str:
    """How reports name a method key that a document names without a label: its registered
    label, else the key made readable."""
    return METHODS.get(key).label if key in METHODS else key.replace("_", " ").capitalize()
