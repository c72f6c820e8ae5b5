"""The provider section of the config: which backend, its model, limits and its settings.

Each builtin provider's settings are a section of `ProviderConfig`; a provider registered
later brings its own settings model, accepted as `provider.<name>`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from mafine.providers.base import Capabilities
from mafine.providers.local.settings import LocalSettings
from mafine.providers.registry import PROVIDERS, ProviderEntry
from mafine.schema import Strict, mutable_field


class GeminiSettings(Strict):
    api_key_env: str = mutable_field(
        "GEMINI_API_KEY", description="environment variable with the key"
    )
    vertex: bool = Field(False, description="use Vertex AI (needed for tuning)")
    project: str | None = None
    location: str = "us-central1"
    base_url: str | None = Field(None, description="another endpoint, e.g. `mafine fake-gemini`")
    tuning_bucket: str | None = Field(None, description="gs://bucket/prefix for tuning files")
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
        900.0, gt=0, description="longest total wait on per-minute 429s for one request"
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
    batch_polls: int = mutable_field(1, ge=0, description="polls before a fake batch job finishes")
    # Latency and fault injection (all deterministic per request and attempt).
    latency_s: float = mutable_field(0.0, ge=0.0, description="added to every generation request")
    fault_rate: float = mutable_field(
        0.0, ge=0.0, le=1.0, description="share of generation attempts answered with a fault"
    )
    fault_kinds: list[
        Literal[
            "rate_limit", "server_error", "unavailable", "hang", "drop", "empty", "safety",
            "malformed",
        ]
    ] = mutable_field(
        default_factory=lambda: [
            "rate_limit", "server_error", "unavailable", "hang", "drop", "empty", "safety",
            "malformed",
        ],
        description="faults drawn from (uniformly) when an attempt is faulty"
    )  # fmt: skip
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


class ProviderConfig(Strict):
    """`provider`: the backend (a registered name), its model and limits, and the settings of
    each provider; a registered provider with its own settings model adds `provider.<name>`."""

    model_config = ConfigDict(extra="allow")

    name: str = Field("fake", description="a registered provider: fake, gemini, local, ...")
    model: str = "gemini-3.1-flash-lite"
    max_concurrency: int = mutable_field(8, ge=1)
    timeout_s: float = mutable_field(120.0, gt=0.0)
    gemini: GeminiSettings = Field(default_factory=GeminiSettings)
    fake: FakeSettings = Field(default_factory=FakeSettings)
    local: LocalSettings = Field(default_factory=LocalSettings)

    @field_validator("name")
    @classmethod
    def _registered(cls, name: str) -> str:
        PROVIDERS.get(name)
        return name

    @model_validator(mode="before")
    @classmethod
    def _sections(cls, raw: Any) -> Any:
        """Validate `provider.<name>` sections of registered providers; refuse other keys."""
        if not isinstance(raw, dict):
            return raw
        raw = dict(raw)
        for key, value in raw.items():
            if key in cls.model_fields:
                continue
            entry = PROVIDERS.get(key) if key in PROVIDERS else None
            if entry is None or entry.settings is None:
                raise ValueError(f"unknown key provider.{key}")
            raw[key] = entry.settings.model_validate(value)
        return raw

    @property
    def entry(self) -> ProviderEntry:
        return PROVIDERS.get(self.name)

    @property
    def capabilities(self) -> Capabilities:
        """What the configured provider can do with these settings (before it is opened)."""
        return self.entry.capabilities(self)

    def settings_of(self, name: str) -> Any:
        """The `provider.<name>` section of a registered provider with its own settings (its
        defaults when the config leaves it out)."""
        if name in type(self).model_fields:
            return getattr(self, name)
        given = (self.__pydantic_extra__ or {}).get(name)
        if given is not None:
            return given
        settings = PROVIDERS.get(name).settings
        return settings() if settings is not None else None


PROVIDERS.register(
    ProviderEntry(
        "fake",
        open="mafine.providers:open_fake",
        capabilities=lambda config: Capabilities(
            tuning=True, embedding=True, batch=config.gemini.batch
        ),
        priced=True,
    )
)
PROVIDERS.register(
    ProviderEntry(
        "gemini",
        open="mafine.providers:open_gemini",
        capabilities=lambda config: Capabilities(
            tuning=config.gemini.vertex, embedding=True, batch=config.gemini.batch
        ),
        priced=True,
        tuning_hint="Gemini tuning runs on Vertex AI only: set provider.gemini.vertex=true with "
        "a project and provider.gemini.tuning_bucket, or use provider.name=local to tune an "
        "open model",
    )
)
PROVIDERS.register(
    ProviderEntry(
        "local",
        open="mafine.providers:open_local",
        capabilities=lambda config: Capabilities(tuning=True, scoring=True),
    )
)
