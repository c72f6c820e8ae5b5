"""Settings of the Gemini provider (`provider.gemini` in the config): pydantic only."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from mafine.schema import Strict, mutable_field

# What an API-key user who asks for tuning is told (the registry's tuning hint too).
TUNING_ROUTES = (
    "Gemini tuning runs on Vertex AI only: set provider.gemini.vertex=true with a project "
    "and provider.gemini.tuning_bucket, or use provider.name=local to tune an open model"
)


class GeminiSettings(Strict):
    """How the gemini provider reaches Gemini, paces, retries and thinks. Keys marked MUTABLE
    change how a run proceeds, never what it produces (`mafine.schema`)."""

    api_key_env: str = mutable_field(
        "GEMINI_API_KEY", description="environment variable with the key"
    )
    vertex: bool = Field(False, description="use Vertex AI (needed for tuning)")
    project: str | None = None
    location: str = Field(
        "global",
        description="Vertex AI location serving the base models (global serves every Gemini 3 "
        "model; most are not served from single regions)",
    )
    tuning_location: str = Field(
        "us-central1",
        description="Vertex AI region for tuning jobs and their tuned endpoints (not global)",
    )
    base_url: str | None = Field(None, description="another endpoint, e.g. `mafine fake-gemini`")
    tuning_bucket: str | None = Field(None, description="gs://bucket/prefix for tuning files")
    # Thinking (docs/gemini.md): off or as low as the model allows, for base and tuned alike.
    thinking_level: Literal["lowest", "minimal", "low", "medium", "high", "model_default"] = Field(
        "lowest",
        description="Gemini 3 and later; lowest: the lowest level the model accepts (minimal "
        "for Flash-Lite, low for 3.5-3.8 Flash and Pro); model_default sends none",
    )
    thinking_budget: Annotated[int, Field(ge=-1)] | Literal["lowest", "model_default"] = Field(
        "lowest",
        description="Gemini 2.5, thinking tokens; lowest: 0 (off; Pro: 128); -1: dynamic",
    )
    max_tokens_warn_share: float = mutable_field(
        0.1,
        ge=0.0,
        le=1.0,
        description="warn once this share of responses ends at max_output_tokens",
    )
    # Pacing (docs/gemini.md lists each tier's defaults); none of these changes a response.
    tier: Literal["free", "tier1", "tier2", "tier3", "none"] = mutable_field(
        "tier1", description="usage tier whose limits pace requests; none: no client-side pacing"
    )
    requests_per_minute: float | None = mutable_field(
        None, gt=0, description="client-side request limit (overrides the tier's)"
    )
    tokens_per_minute: float | None = mutable_field(
        None, gt=0, description="client-side input-token limit (overrides the tier's)"
    )
    max_attempts: int = mutable_field(
        8, ge=1, description="tries per request on 5xx, timeouts and dropped connections"
    )
    retry_initial_s: float = mutable_field(
        1.0, gt=0, description="first backoff; doubles, with jitter"
    )
    retry_max_s: float = mutable_field(60.0, gt=0, description="longest single backoff")
    rate_limit_wait_s: float = mutable_field(
        900.0, gt=0, description="longest total wait on 429s naming a quota, for one request"
    )
    capacity_wait_s: float = mutable_field(
        300.0,
        gt=0,
        description="longest total wait on 429s naming no quota (Vertex AI shared capacity, "
        "or a spend cap that waiting does not lift), for one request",
    )
    reask_blocked: int = Field(
        2,
        ge=0,
        description="re-asks of a response with no text (blocked, no candidates) before it is "
        "recorded as it is",
    )
    # Batch mode: half price, hours of latency.
    batch: bool = mutable_field(
        False, description="send requests as Gemini batch jobs (half price)"
    )
    batch_bucket: str | None = mutable_field(
        None, description="gs://bucket/prefix for Vertex batch files (default: tuning_bucket)"
    )
    batch_poll_s: float = mutable_field(30.0, gt=0, description="seconds between batch job polls")
    batch_window_s: float = mutable_field(
        1.0, gt=0, description="requests arriving within this quiet time share one batch job"
    )
    batch_max_requests: int = mutable_field(
        5000, ge=1, description="most requests in one batch job (and in flight in batch mode)"
    )
