"""The provider section of the config: which backend, its model, limits and its settings.

Each builtin provider's settings are a section of `ProviderConfig`; a provider registered
later brings its own settings model, accepted as `provider.<name>`.
"""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, Field, field_validator, model_validator

from mafine import secrets
from mafine.providers.base import Capabilities
from mafine.providers.fake_gemini.settings import FakeSettings
from mafine.providers.gemini.settings import TUNING_ROUTES, GeminiSettings
from mafine.providers.local.settings import LocalSettings
from mafine.providers.registry import PROVIDERS, ProviderEntry
from mafine.providers.vllm.settings import VllmSettings
from mafine.schema import Strict, mutable_field

MAX_CONCURRENCY = 4096  # more requests in flight than any quota or machine serves


class ProviderConfig(Strict):
    """`provider`: the backend (a registered name), its model and limits, and the settings of
    each provider; a registered provider with its own settings model adds `provider.<name>`."""

    model_config = ConfigDict(extra="allow")

    name: str = Field("fake", description="a registered provider: fake, gemini, local, ...")
    model: str = "gemini-3.1-flash-lite"
    max_concurrency: int = mutable_field(8, ge=1, le=MAX_CONCURRENCY)
    timeout_s: float = mutable_field(120.0, gt=0.0, le=86400.0)
    empty_response_limit: float = mutable_field(
        0.5,
        ge=0.0,
        le=1.0,
        description="share of a stage's responses that may have no text (blocked, no "
        "candidates) before it stops; 1: never stop",
    )
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

    @model_validator(mode="after")
    def _no_secret_stored(self) -> ProviderConfig:
        """A key pasted into the config would be written to config.yaml and the manifest."""
        if secrets.looks_like_a_key(self.gemini.api_key_env):
            raise ValueError(
                "provider.gemini.api_key_env expects the NAME of the environment variable "
                "holding the key (e.g. GEMINI_API_KEY), not the key itself; export the key in "
                "that variable"
            )
        if self.gemini.base_url and secrets.url_secret_parameters(self.gemini.base_url):
            raise ValueError(
                "provider.gemini.base_url must not carry a key in its query (it would be "
                "stored in the run directory); put the key in the variable named by "
                "provider.gemini.api_key_env"
            )
        return self

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
        tuning_hint=TUNING_ROUTES,
    )
)
PROVIDERS.register(
    ProviderEntry(
        "local",
        open="mafine.providers:open_local",
        capabilities=lambda config: Capabilities(tuning=True, scoring=True),
    )
)
PROVIDERS.register(
    ProviderEntry(
        "vllm",
        open="mafine.providers.vllm.opener:open_vllm",
        capabilities=lambda config: Capabilities(tuning=True, scoring=True),
        settings=VllmSettings,
        check="mafine.providers.vllm.check:check",
    )
)
