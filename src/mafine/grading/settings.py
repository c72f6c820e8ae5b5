"""The grading section of the config (see docs/grading.md)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    field_validator,
    model_serializer,
)

from mafine.grading.registry import GRADERS
from mafine.schema import Strict, describe_validation_error, mutable_field

FallbackRule = Literal["final_answer", "last_number"]
SymbolicGrader = Literal["sympy", "math_verify"]  # what auto asks about non-numbers


class GradingConfig(Strict):
    grader: str = Field(
        "string",
        description="a registered grader (`mafine plugins` lists them; docs/grading.md)",
    )
    fallbacks: list[FallbackRule] = Field(
        default_factory=list,
        description="extraction rules tried, in order, when a response has no \\boxed{} answer",
    )
    timeout_s: float = Field(
        5.0, gt=0.0, le=600.0, description="per-pair limit of a symbolic check; then not equal"
    )
    workers: int | None = mutable_field(
        None,
        ge=0,
        le=256,
        description="processes for symbolic graders; None: one per core; 0: in this process",
    )
    answer_style: Literal["detect", "numeric", "latex"] = Field(
        "detect",
        description="auto only: numeric (DeepMind, GSM8K), latex (MATH), or detect per answer",
    )
    auto_symbolic: SymbolicGrader = Field(
        "sympy",
        description="auto only: the grader for answers that are not plain numbers (the other "
        "one, when installed, judges what it cannot)",
    )
    max_answer_chars: int = Field(
        1000, ge=1, description="longer answers are judged not equal without a symbolic check"
    )
    cache_size: int = mutable_field(100_000, ge=0, description="verdicts remembered per grader")
    options: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="options of the graders that take them, by grader name (checked against "
        "the settings model the grader registered)",
    )

    @field_validator("grader")
    @classmethod
    def _registered(cls, value: str) -> str:
        if value not in GRADERS:  # read now: graders registered after import count
            raise ValueError(GRADERS.unknown(value))
        return value

    @field_validator("options")
    @classmethod
    def _options_valid(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        for name, raw in value.items():
            model = GRADERS.get(name).options_model()  # ValueError for an unknown grader
            if model is None:
                raise ValueError(f"the {name} grader takes no options")
            try:
                model.model_validate(raw)
            except ValidationError as exc:
                raise ValueError(f"{name}: {describe_validation_error(exc)}") from None
        return value

    @model_serializer(mode="wrap")
    def _without_empty_options(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data = handler(self)
        if not self.options:  # configs without grader options dump as they always did
            data.pop("options", None)
        return data

    def grader_options(self, name: str | None = None) -> Any:
        """The validated options of grader `name` (default: the chosen one); None when its
        entry has no settings model."""
        name = name or self.grader
        model = GRADERS.get(name).options_model()
        return None if model is None else model.model_validate(self.options.get(name, {}))

    @field_validator("fallbacks")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("each fallback rule may appear once")
        return value
