"""The settings of the example's provider (`provider.calculator`) and data source
(`data.source` with `kind: countdown`): pydantic models that subclass mafine's."""

from __future__ import annotations

from typing import Literal

from mafine.data.settings import SourceSettings
from mafine.schema import Strict, mutable_field


class CalculatorSettings(Strict):
    slip: int = 1  # added to the base model's answers to odd questions; tuned models are exact
    latency_s: float = mutable_field(0.0, ge=0.0)  # paces a run only: may change on resume


class CountdownSource(SourceSettings):
    kind: Literal["countdown"] = "countdown"
    start: int = 100
