"""The provider section of the config: which backend, its model, limits and its settings.

Each builtin provider's settings are a section of `ProviderConfig`; a provider registered
later brings its own settings model, accepted as `provider.<name>`.
"""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails, InitErrorDetails

from mafine import secrets
from mafine.providers.base import Capabilities
from mafine.providers.fake_gemini.settings import FakeSettings
from mafine.providers.gemini.settings import TUNING_ROUTES, GeminiSettings
from mafine.providers.local.settings import LocalSettings
from mafine.providers.registry import PROVIDERS, ProviderEntry
from mafine.providers.vllm.settings import VllmSettings
from mafine.registry import ERROR_HINTS, ErrorHint
from mafine.schema import Strict, mutable_field, mutable_keys

MAX_CONCURRENCY = 4096  # more requests in flight than any quota or machine serves
GENAI_CLIENT_PROVIDERS = ("gemini", "fake")  # model names pass google-genai's t_model


class ProviderConfig(Strict):
    """`provider`: the backend (a registered name), its model and limits, and the settings of
    each provider; a registered provider with its own settings model adds `provider.<name>`."""

    model_config = ConfigDict(extra="allow")

    name: str = Field("fake", description="a registered provider (`mafine plugins` lists them)")
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
    # The builtin providers' sections (`provider.<name>`, the settings their entries name) are
    # fields, so their keys are typed here; a plugin's section is validated by its entry.
    gemini: GeminiSettings = Field(default_factory=GeminiSettings)
    fake: FakeSettings = Field(default_factory=FakeSettings)
    local: LocalSettings = Field(default_factory=LocalSettings)

    @field_validator("name")
    @classmethod
    def _registered(cls, name: str) -> str:
        PROVIDERS.get(name)
        return name

    @model_validator(mode="after")
    def _model_name(self) -> ProviderConfig:
        """A model name a request could not carry fails only mid-run: refused at load."""
        model = self.model
        if model != model.strip() or any(ord(c) < 32 or ord(c) == 127 for c in model):
            raise ValueError(
                f"provider.model {model!r} has spaces around it or a control character; "
                "write the name alone"
            )
        if self.name in GENAI_CLIENT_PROVIDERS and any(p in model for p in ("..", "?", "&", "#")):
            raise ValueError(
                f"provider.model {model!r}: a Gemini model name has no '..', '?', '&' or '#'; "
                "give a model id such as gemini-3.1-flash-lite"
            )
        return self

    @model_validator(mode="before")
    @classmethod
    def _sections(cls, raw: Any) -> Any:
        """Validate `provider.<name>` sections of registered providers; refuse other keys."""
        if not isinstance(raw, dict):
            return raw
        raw = dict(raw)
        name = raw.get("name")
        if isinstance(name, str) and name not in cls.model_fields and name not in raw:
            chosen = PROVIDERS.get(name) if name in PROVIDERS else None
            if chosen is not None and chosen.settings is not None:
                raw[name] = {}  # stored with its defaults, as the builtins' sections are
        for key, value in raw.items():
            if key in cls.model_fields:
                continue
            entry = PROVIDERS.get(key) if key in PROVIDERS else None
            if entry is None or entry.settings is None:
                raise ValueError(f"unknown key provider.{key}")
            try:
                raw[key] = entry.settings.model_validate(value)
            except ValidationError as exc:  # its errors under provider.<key>, not provider
                raise ValidationError.from_exception_data(
                    exc.title, [_under(key, error) for error in exc.errors()]
                ) from None
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


def _under(section: str, error: ErrorDetails) -> InitErrorDetails:
    """A settings model's validation error, placed under its section's key."""
    details: InitErrorDetails = {
        "type": error["type"],
        "loc": (section, *error["loc"]),
        "input": error["input"],
    }
    if "ctx" in error:
        details["ctx"] = error["ctx"]
    return details


def registered_mutable_keys() -> tuple[str, ...]:
    """The mutable keys of the `provider.<name>` sections that registered providers bring
    (plugins), which are no fields of `ProviderConfig`."""
    keys: list[str] = []
    for entry in PROVIDERS.entries():
        if entry.settings is not None and entry.name not in ProviderConfig.model_fields:
            keys.extend(mutable_keys(entry.settings, f"provider.{entry.name}."))
    return tuple(keys)


PROVIDERS.register(
    ProviderEntry(
        "fake",
        description="the gemini provider against an offline fake Gemini (tests, smoke runs)",
        open="mafine.providers:open_fake",
        capabilities=lambda config: Capabilities(
            tuning=True, embedding=True, batch=config.gemini.batch
        ),
        settings=FakeSettings,  # and the gemini provider's own, which it runs
        priced=True,
        check="mafine.check:check_fake",
        estimate_notes="mafine.providers.gemini.estimate_notes:fake_notes",
    )
)
PROVIDERS.register(
    ProviderEntry(
        "gemini",
        description="Google Gemini through the Gemini API or Vertex AI (docs/gemini.md)",
        open="mafine.providers:open_gemini",
        capabilities=lambda config: Capabilities(
            tuning=config.gemini.vertex, embedding=True, batch=config.gemini.batch
        ),
        settings=GeminiSettings,
        priced=True,
        tuning_hint=TUNING_ROUTES,
        check="mafine.check:check_gemini",
        estimate_notes="mafine.providers.gemini.estimate_notes:gemini_notes",
    )
)
PROVIDERS.register(
    ProviderEntry(
        "local",
        description="an open model with transformers + peft (docs/local.md)",
        open="mafine.providers:open_local",
        capabilities=lambda config: Capabilities(tuning=True, scoring=True),
        settings=LocalSettings,
    )
)
ERROR_HINTS.register(
    ErrorHint(
        "google.auth.exceptions",
        "Google credentials: {error}; for Vertex AI run `gcloud auth application-default "
        "login` or set GOOGLE_APPLICATION_CREDENTIALS, and set provider.gemini.project",
    )
)
PROVIDERS.register(
    ProviderEntry(
        "vllm",
        description="an open model on vLLM servers, one LoRA adapter per agent model "
        "(docs/vllm.md)",
        open="mafine.providers.vllm.opener:open_vllm",
        capabilities=lambda config: Capabilities(tuning=True, scoring=True),
        settings=VllmSettings,
        check="mafine.providers.vllm.check:check",
    )
)
