"""What the provider hands the engine: plain data, no torch."""

from __future__ import annotations

from dataclasses import dataclass

from mafine.artifacts import Message


@dataclass(frozen=True)
class GenRow:
    """One generation request as the engine sees it."""

    messages: tuple[Message, ...]
    temperature: float
    top_p: float
    max_output_tokens: int
    seed: int


@dataclass(frozen=True)
class GenResult:
    text: str
    finish_reason: str  # "stop" (end of turn) or "length" (max_output_tokens reached)
    prompt_tokens: int
    output_tokens: int  # including the end-of-turn token when there is one


@dataclass(frozen=True)
class ScoreRow:
    messages: tuple[Message, ...]
    response: str
