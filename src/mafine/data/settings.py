"""The data section of the config: where problems come from and how many (docs/datasets.md).

A source's settings model is chosen by its `kind` from the registry (`mafine.data.registry`),
so a newly registered kind is accepted without a change here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SerializeAsAny, field_validator, model_validator

from mafine.data.registry import HUB_DATASETS, SOURCES, HubDataset, SourceKind
from mafine.schema import Strict

MATH_SUBJECTS = (
    "algebra",
    "counting_and_probability",
    "geometry",
    "intermediate_algebra",
    "number_theory",
    "prealgebra",
    "precalculus",
)
MATH_LEVELS = (1, 2, 3, 4, 5)
GSM8K_CONFIG = "main"


class SourceSettings(Strict):
    """What every source's settings have: the `kind` that picks its registry entry."""

    kind: str


class DeepMindSource(SourceSettings):
    """Problems generated offline by DeepMind's `mathematics-dataset` generator."""

    kind: Literal["deepmind"] = "deepmind"
    module: str = "arithmetic__add_or_sub"
    difficulty: Literal["easy", "medium", "hard", "interpolate", "extrapolate"] = "interpolate"


class FileSource(SourceSettings):
    """Problems from a local JSONL, CSV or parquet file, read through `datasets`."""

    kind: Literal["file"] = "file"
    path: Path
    question_field: str = "question"
    answer_field: str = "answer"
    id_field: str | None = None


class HubSource(SourceSettings):
    """A data set from the Hugging Face hub, or a local copy of one (see docs/datasets.md)."""

    kind: Literal["hub"] = "hub"
    dataset: str = Field(description="a registered hub data set (`mafine plugins` lists them)")
    split: str = Field(
        "test",
        description="one of the data set's splits (train, test); "
        "deepmind: train = easy+medium+hard, test = interpolate",
    )
    module: str | None = Field(None, description="deepmind only: the module, its hub config")
    subjects: list[str] | None = Field(
        None, description="math, math500 only: MATH subjects, e.g. [algebra]; default all"
    )
    levels: list[int] | None = Field(
        None, description="math, math500 only: difficulty levels 1-5; default all"
    )
    repo: str | None = Field(None, description="another hub repository (a mirror)")
    revision: str | None = Field(None, description="a hub branch, tag or commit")
    path: Path | None = Field(
        None, description="a local copy (file, or directory laid out like the hub's): no network"
    )

    @field_validator("dataset")
    @classmethod
    def _registered(cls, name: str) -> str:
        HUB_DATASETS.get(name)
        return name

    @property
    def entry(self) -> HubDataset:
        return HUB_DATASETS.get(self.dataset)

    @model_validator(mode="after")
    def _fits_dataset(self) -> HubSource:
        name, entry = self.dataset, self.entry
        if entry.needs_module:
            if not self.module:
                raise ValueError(f"dataset {name} needs a module, e.g. arithmetic__add_or_sub")
        elif self.module is not None:
            raise ValueError(f"module is for {_datasets_with('needs_module')} only, not {name}")
        if not entry.filters:
            for key in ("subjects", "levels"):
                if getattr(self, key) is not None:
                    raise ValueError(f"{key} is for {_datasets_with('filters')} only, not {name}")
        if self.split not in entry.splits:
            splits = " or ".join(entry.splits)
            raise ValueError(f"dataset {name} has no split {self.split!r}; use {splits}")
        if self.subjects is not None:
            if not self.subjects:
                raise ValueError("subjects is empty; name at least one or leave it out")
            for subject in self.subjects:
                if subject not in MATH_SUBJECTS:
                    raise ValueError(
                        f"unknown MATH subject {subject!r}; use {', '.join(MATH_SUBJECTS)}"
                    )
        if self.levels is not None:
            if not self.levels:
                raise ValueError("levels is empty; name at least one or leave it out")
            for level in self.levels:
                if level not in MATH_LEVELS:
                    raise ValueError(f"unknown MATH level {level}; levels are 1 to 5")
        return self


def _datasets_with(flag: str) -> str:
    """The registered hub data sets whose entry sets `flag`, as a message names them."""
    names = [entry.name for entry in HUB_DATASETS.entries() if getattr(entry, flag)]
    return f"dataset{'s' if len(names) > 1 else ''} {' and '.join(names)}"


def source_settings(value: Any) -> Any:
    """A raw source mapping validated by the settings model its `kind` names."""
    if not isinstance(value, dict):
        return value
    kind = value.get("kind")
    if kind is None:
        raise ValueError(f"a source needs a kind: {', '.join(SOURCES.names())}")
    return SOURCES.get(kind).settings.model_validate(value)


class DataConfig(Strict):
    source: SerializeAsAny[SourceSettings] = Field(default_factory=DeepMindSource)
    eval_source: SerializeAsAny[SourceSettings] | None = Field(
        None, description="another data set for eval (zero-shot transfer); default: source"
    )
    # At most a million problems per split (the paper uses 500): a typo such as 1e11 would
    # otherwise generate problems for days before sending a request.
    train_size: int = Field(100, ge=1, le=1_000_000)
    eval_size: int = Field(20, ge=1, le=1_000_000)

    @field_validator("source", "eval_source", mode="before")
    @classmethod
    def _by_kind(cls, value: Any) -> Any:
        return source_settings(value)


# The builtin kinds and hub data sets (readers imported on first use).
for _kind, _model, _reader, _description in (
    ("deepmind", DeepMindSource, "mafine.data.deepmind", "DeepMind's generator, offline"),
    ("file", FileSource, "mafine.data.files", "a local JSONL, JSON, CSV or parquet file"),
    ("hub", HubSource, "mafine.data.hub", "a Hugging Face hub data set, or a local copy"),
):
    SOURCES.register(
        SourceKind(
            _kind,
            _model,
            records=f"{_reader}:source_records",
            describe=f"{_reader}:describe",
            description=_description,
        )
    )

_BOTH = ("train", "test")
for _dataset in (
    HubDataset(
        "deepmind",
        "deepmind/math_dataset",
        _BOTH,
        "mafine.data.hub:parse_deepmind",
        lambda source: [source.module],
        needs_module=True,
    ),
    HubDataset(
        "math",
        "EleutherAI/hendrycks_math",
        _BOTH,
        "mafine.data.hub:parse_math",
        lambda source: list(dict.fromkeys(source.subjects or MATH_SUBJECTS)),
        filters=True,
        subject_configs=True,
    ),
    HubDataset(
        "math500",
        "HuggingFaceH4/MATH-500",
        ("test",),
        "mafine.data.hub:parse_math",
        lambda source: [None],
        filters=True,
    ),
    HubDataset(
        "gsm8k",
        "openai/gsm8k",
        _BOTH,
        "mafine.data.hub:parse_gsm8k",
        lambda source: [GSM8K_CONFIG],
    ),
):
    HUB_DATASETS.register(_dataset)
