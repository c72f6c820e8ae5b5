"""What the provider hands the engine: plain data, no torch."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from mafine.artifacts import Message


def row_seed(key: str) -> int:
    """A 63-bit seed from a request's key, which covers its model, messages, sampling, sample
    index and seed: each request has its own random stream, whatever it is batched with."""
    digest = hashlib.sha256(f"mafine-local:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


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
