"""Settings of the offline fake Gemini (`provider.fake` in the config, `mafine fake-gemini`).

Plain pydantic: the config assembles this model, the fake reads it.
"""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import Field

from mafine.schema import Strict, mutable_field

FaultKind = Literal[
    "rate_limit", "server_error", "unavailable", "hang", "drop", "empty", "safety", "malformed",
    "cancelled",
]  # fmt: skip
FAULT_KINDS: tuple[str, ...] = get_args(FaultKind)


class FakeSettings(Strict):
    """Behaviour of the offline fake Gemini (see `mafine fake-gemini`)."""

    error_rate: float = Field(0.25, ge=0.0, le=1.0)
    adopt_majority: float = Field(0.8, ge=0.0, le=1.0)
    tuning_polls: int = mutable_field(
        1, ge=0, description="polls before a fake tuning job finishes (paces the run only)"
    )
    tuning_queued_polls: int = mutable_field(
        0,
        ge=0,
        description="polls a tuning job first answers JOB_STATE_QUEUED (waiting for quota; paces "
        "the run only)",
    )
    max_example_tokens: int = Field(
        131_072,
        ge=1,
        description="longest training example (words); longer ones are dropped and counted in "
        "the job's tuningDataStats, as Vertex AI does",
    )
    models: list[str] = Field(
        default_factory=lambda: [
            "gemini-3.1-flash-lite",
            "gemini-3.5-flash-lite",
            "gemini-3.5-flash",
            "gemini-3.6-flash",
            "gemini-3.7-flash",
            "gemini-3.8-flash",
        ],
        description="base models the fake serves; others answer 404 like a retired model",
    )
    api_key: str | None = Field(
        None, description="the only API key generation accepts (400 API_KEY_INVALID); None: any"
    )
    regional_serving: bool = Field(
        True,
        description="serve each base model on Vertex only from the locations Google lists "
        "for it (mafine.providers.gemini.models.TABLE), as Vertex does: elsewhere 404",
    )
    batch_polls: int = mutable_field(1, ge=0, description="polls before a fake batch job finishes")
    batch_incomplete_rate: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="share of a Vertex batch job's requests left unattempted (the job ends "
        "JOB_STATE_PARTIALLY_SUCCEEDED)",
    )
    # Latency and fault injection (all deterministic per request and attempt).
    latency_s: float = mutable_field(0.0, ge=0.0, description="added to every generation request")
    fault_rate: float = mutable_field(
        0.0, ge=0.0, le=1.0, description="share of generation attempts answered with a fault"
    )
    fault_kinds: list[FaultKind] = mutable_field(
        default_factory=lambda: list(FAULT_KINDS),
        description="faults drawn from (uniformly) when an attempt is faulty",
    )
    fault_seed: int = mutable_field(0, description="seeds the draw of faulty attempts")
    retry_delay_s: float = mutable_field(
        1.0, ge=0.0, description="RetryInfo delay of an injected 429"
    )
    hang_s: float = mutable_field(30.0, ge=0.0, description="how long an injected hang lasts")
    daily_quota: bool = mutable_field(
        False, description="answer every generation with a per-day 429"
    )
    requests_per_minute: int | None = mutable_field(
        None, ge=1, description="server-side limit: 429 past this many requests in 60 s"
    )
