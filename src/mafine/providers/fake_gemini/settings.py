"""Settings of the offline fake Gemini (`provider.fake` in the config, `mafine fake-gemini`).

Plain pydantic: the config assembles this model, the fake reads it.
"""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import Field

from mafine.schema import MUTABLE, Strict

FaultKind = Literal[
    "rate_limit", "server_error", "unavailable", "hang", "drop", "empty", "safety", "malformed",
]  # fmt: skip
FAULT_KINDS: tuple[str, ...] = get_args(FaultKind)


class FakeSettings(Strict):
    """Behaviour of the offline fake Gemini (see `mafine fake-gemini`)."""

    error_rate: float = Field(0.25, ge=0.0, le=1.0)
    adopt_majority: float = Field(0.8, ge=0.0, le=1.0)
    tuning_polls: int = Field(1, ge=0, description="polls before a fake tuning job finishes")
    models: list[str] = Field(
        default_factory=lambda: [
            "gemini-3.1-flash-lite",
            "gemini-3.5-flash-lite",
            "gemini-3.5-flash",
        ],
        description="base models the fake serves; others answer 404 like a retired model",
    )
    api_key: str | None = Field(
        None, description="the only API key generation accepts (400 API_KEY_INVALID); None: any"
    )
    regional_serving: bool = Field(
        False,
        description="serve Gemini 3 base models on Vertex only from global/us/eu, as Vertex "
        "does (a single region answers 404)",
    )
    batch_polls: int = Field(
        1, ge=0, description="polls before a fake batch job finishes", json_schema_extra=MUTABLE
    )
    batch_incomplete_rate: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="share of a Vertex batch job's requests left unattempted (the job ends "
        "JOB_STATE_PARTIALLY_SUCCEEDED)",
    )
    # Latency and fault injection (all deterministic per request and attempt).
    latency_s: float = Field(
        0.0, ge=0.0, description="added to every generation request", json_schema_extra=MUTABLE
    )
    fault_rate: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="share of generation attempts answered with a fault",
        json_schema_extra=MUTABLE,
    )
    fault_kinds: list[FaultKind] = Field(
        default_factory=lambda: list(FAULT_KINDS),
        description="faults drawn from (uniformly) when an attempt is faulty",
        json_schema_extra=MUTABLE,
    )
    fault_seed: int = Field(
        0, description="seeds the draw of faulty attempts", json_schema_extra=MUTABLE
    )
    retry_delay_s: float = Field(
        1.0, ge=0.0, description="RetryInfo delay of an injected 429", json_schema_extra=MUTABLE
    )
    hang_s: float = Field(
        30.0, ge=0.0, description="how long an injected hang lasts", json_schema_extra=MUTABLE
    )
    daily_quota: bool = Field(
        False, description="answer every generation with a per-day 429", json_schema_extra=MUTABLE
    )
    requests_per_minute: int | None = Field(
        None,
        ge=1,
        description="server-side limit: 429 past this many requests in 60 s",
        json_schema_extra=MUTABLE,
    )
