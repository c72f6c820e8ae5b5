"""The grading section of the config (see docs/grading.md)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from mafine.schema import MUTABLE

GraderName = Literal["string", "numeric", "sympy", "math_verify", "auto"]
FallbackRule = Literal["final_answer", "last_number"]


class GradingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    grader: GraderName = Field(
        "string",
        description="string | numeric | sympy | math_verify | auto (see docs/grading.md)",
    )
    fallbacks: list[FallbackRule] = Field(
        default_factory=list,
        description="extraction rules tried, in order, when a response has no \\boxed{} answer",
    )
    timeout_s: float = Field(
        5.0, gt=0.0, le=600.0, description="per-pair limit of a symbolic check; then not equal"
    )
    workers: int | None = Field(
        None,
        ge=0,
        description="processes for symbolic graders; None: one per core; 0: in this process",
        json_schema_extra=MUTABLE,
    )
    answer_style: Literal["detect", "numeric", "latex"] = Field(
        "detect",
        description="auto only: numeric (DeepMind, GSM8K), latex (MATH), or detect per answer",
    )
    auto_symbolic: Literal["sympy", "math_verify"] = Field(
        "sympy", description="auto only: the grader for answers that are not plain numbers"
    )
    max_answer_chars: int = Field(
        1000, ge=1, description="longer answers are judged not equal without a symbolic check"
    )
    cache_size: int = Field(
        100_000, ge=0, description="verdicts remembered per grader", json_schema_extra=MUTABLE
    )

    @field_validator("fallbacks")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("each fallback rule may appear once")
        return value
