"""The experiment's one config: a pydantic schema, YAML loading and `--set` overrides."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from mafine import prompts, secrets
from mafine.config_checks import check_raw, parse_yaml, read_yaml_file
from mafine.errors import MafineError
from mafine.grading.settings import GradingConfig
from mafine.providers.local.settings import LocalSettings


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DeepMindSource(Strict):
    """Problems generated offline by DeepMind's `mathematics-dataset` generator."""

    kind: Literal["deepmind"] = "deepmind"
    module: str = "arithmetic__add_or_sub"
    difficulty: Literal["easy", "medium", "hard", "interpolate", "extrapolate"] = "interpolate"


class FileSource(Strict):
    """Problems from a local JSONL, CSV or parquet file, read through `datasets`."""

    kind: Literal["file"] = "file"
    path: Path
    question_field: str = "question"
    answer_field: str = "answer"
    id_field: str | None = None


class HubSource(Strict):
    """A data set from the Hugging Face hub, or a local copy of one (see docs/datasets.md)."""

    kind: Literal["hub"] = "hub"
    dataset: Literal["deepmind", "math", "math500", "gsm8k"]
    split: Literal["train", "test"] = Field(
        "test", description="deepmind: train = easy+medium+hard, test = interpolate"
    )
    module: str | None = Field(None, description="deepmind only: the module, its hub config")
    subjects: list[str] | None = Field(
        None, description="math, math500 only: MATH subjects, e.g. [algebra]; default all"
    )
    levels: list[int] | None = Field(
        None, description="math, math500 only: difficulty levels 1-5; default all"
    )
    repo: str | None = Field(None, description="another hub repository (a mirror)")
    revision: str | None = Field(None, description="a hub branch, tag or commit")
    path: Path | None = Field(
        None, description="a local copy (file, or directory laid out like the hub's): no network"
    )

    @model_validator(mode="after")
    def _fits_dataset(self) -> HubSource:
        from mafine.data.hub import MATH_LEVELS, MATH_SUBJECTS, SPLITS

        name = self.dataset
        if name == "deepmind":
            if not self.module:
                raise ValueError("dataset deepmind needs a module, e.g. arithmetic__add_or_sub")
        elif self.module is not None:
            raise ValueError(f"module is for dataset deepmind only, not {name}")
        if name not in ("math", "math500"):
            for key in ("subjects", "levels"):
                if getattr(self, key) is not None:
                    raise ValueError(f"{key} is for datasets math and math500 only, not {name}")
        if self.split not in SPLITS[name]:
            raise ValueError(f"dataset {name} has no split {self.split!r}; use {SPLITS[name][0]}")
        if self.subjects is not None:
            if not self.subjects:
                raise ValueError("subjects is empty; name at least one or leave it out")
            for subject in self.subjects:
                if subject not in MATH_SUBJECTS:
                    raise ValueError(
                        f"unknown MATH subject {subject!r}; use {', '.join(MATH_SUBJECTS)}"
                    )
        if self.levels is not None:
            if not self.levels:
                raise ValueError("levels is empty; name at least one or leave it out")
            for level in self.levels:
                if level not in MATH_LEVELS:
                    raise ValueError(f"unknown MATH level {level}; levels are 1 to 5")
        return self


DataSource = Annotated[DeepMindSource | FileSource | HubSource, Field(discriminator="kind")]


class DataConfig(Strict):
    source: DataSource = Field(default_factory=DeepMindSource)
    eval_source: DataSource | None = Field(
        None, description="another data set for eval (zero-shot transfer); default: source"
    )
    train_size: int = Field(100, ge=1)
    eval_size: int = Field(20, ge=1)


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
    poll_seconds: float = Field(30.0, gt=0.0, le=3600.0)
    tune_critics: bool = Field(True, description="false: critics keep their previous model")


Variant = Literal["single_agent_ft", "no_summary", "no_critic", "star"]


class EvaluationConfig(Strict):
    compare: list[Variant] = Field(
        default_factory=list,
        description="methods run beside multiagent FT in the same run, on the same problems",
    )
    baselines: bool = Field(True, description="Base, Majority and Debate on the eval split")
    embedder: str = Field(
        "auto",
        description="embedding dissimilarity: auto (MiniLM offline when the embeddings extra is "
        "installed, else none), minilm, none, gemini[:MODEL], or a sentence-transformers model",
    )
    diversity_round: int = Field(1, ge=1, description="debate round the diversity metrics read")
    likelihood: bool = Field(
        True, description="likelihood diversity (NLL, KL) where the provider scores text (local)"
    )


class GeminiSettings(Strict):
    api_key_env: str = Field("GEMINI_API_KEY", description="environment variable with the key")
    vertex: bool = Field(False, description="use Vertex AI (needed for tuning)")
    project: str | None = None
    location: str = "us-central1"
    base_url: str | None = Field(None, description="another endpoint, e.g. `mafine fake-gemini`")

    tuning_bucket: str | None = Field(None, description="gs://bucket/prefix for tuning files")
    # Pacing (docs/gemini.md lists each tier's defaults); none of these changes a response.
    tier: Literal["free", "tier1", "tier2", "tier3", "none"] = Field(
        "tier1", description="usage tier whose limits pace requests; none: no client-side pacing"
    )
    requests_per_minute: float | None = Field(
        None, gt=0, description="client-side request limit (overrides the tier's)"
    )
    tokens_per_minute: float | None = Field(
        None, gt=0, description="client-side input-token limit (overrides the tier's)"
    )
    max_attempts: int = Field(
        8, ge=1, description="tries per request on 5xx, timeouts and dropped connections"
    )
    retry_initial_s: float = Field(1.0, gt=0, description="first backoff; doubles, with jitter")
    retry_max_s: float = Field(60.0, gt=0, description="longest single backoff")
    rate_limit_wait_s: float = Field(
        900.0, gt=0, description="longest total wait on per-minute 429s for one request"
    )
    reask_blocked: int = Field(
        2,
        ge=0,
        description="re-asks of a response with no text (blocked, no candidates) before it is "
        "recorded as it is",
    )
    # Batch mode: half price, hours of latency.
    batch: bool = Field(False, description="send requests as Gemini batch jobs (half price)")
    batch_bucket: str | None = Field(
        None, description="gs://bucket/prefix for Vertex batch files (default: tuning_bucket)"
    )
    batch_poll_s: float = Field(30.0, gt=0, description="seconds between batch job polls")
    batch_window_s: float = Field(
        1.0, gt=0, description="requests arriving within this quiet time share one batch job"
    )
    batch_max_requests: int = Field(
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
    batch_polls: int = Field(1, ge=0, description="polls before a fake batch job finishes")
    # Latency and fault injection (all deterministic per request and attempt).
    latency_s: float = Field(0.0, ge=0.0, description="added to every generation request")
    fault_rate: float = Field(
        0.0, ge=0.0, le=1.0, description="share of generation attempts answered with a fault"
    )
    fault_kinds: list[
        Literal[
            "rate_limit", "server_error", "unavailable", "hang", "drop", "empty", "safety",
            "malformed",
        ]
    ] = Field(
        default_factory=lambda: [
            "rate_limit", "server_error", "unavailable", "hang", "drop", "empty", "safety",
            "malformed",
        ],
        description="faults drawn from (uniformly) when an attempt is faulty",
    )  # fmt: skip
    fault_seed: int = Field(0, description="seeds the draw of faulty attempts")
    retry_delay_s: float = Field(1.0, ge=0.0, description="RetryInfo delay of an injected 429")
    hang_s: float = Field(30.0, ge=0.0, description="how long an injected hang lasts")
    daily_quota: bool = Field(False, description="answer every generation with a per-day 429")
    requests_per_minute: int | None = Field(
        None, ge=1, description="server-side limit: 429 past this many requests in 60 s"
    )


MAX_CONCURRENCY = 4096  # more requests in flight than any quota or machine serves


class ProviderConfig(Strict):
    name: Literal["gemini", "fake", "local"] = "fake"
    model: str = "gemini-3.1-flash-lite"
    max_concurrency: int = Field(8, ge=1, le=MAX_CONCURRENCY)
    timeout_s: float = Field(120.0, gt=0.0, le=86400.0)
    empty_response_limit: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="share of a stage's responses that may have no text (blocked, no "
        "candidates) before it stops; 1: never stop",
    )
    gemini: GeminiSettings = Field(default_factory=GeminiSettings)
    fake: FakeSettings = Field(default_factory=FakeSettings)
    local: LocalSettings = Field(default_factory=LocalSettings)

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


class Config(Strict):
    seed: int = 0
    iterations: int = Field(1, ge=1)
    run_dir: Path | None = Field(None, description="defaults to runs/<config file stem>")
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


# Keys that may change between invocations on one run directory: they change how a run
# proceeds, never what it produces (more iterations extend a run; limits pace it).
MUTABLE_KEYS = (
    "iterations",
    "run_dir",
    "provider.max_concurrency",
    "provider.timeout_s",
    "provider.empty_response_limit",
    "provider.gemini.api_key_env",
    "provider.gemini.tier",
    "provider.gemini.requests_per_minute",
    "provider.gemini.tokens_per_minute",
    "provider.gemini.max_attempts",
    "provider.gemini.retry_initial_s",
    "provider.gemini.retry_max_s",
    "provider.gemini.rate_limit_wait_s",
    "provider.gemini.batch",
    "provider.gemini.batch_bucket",
    "provider.gemini.batch_poll_s",
    "provider.gemini.batch_window_s",
    "provider.gemini.batch_max_requests",
    "provider.fake.batch_polls",
    "provider.fake.latency_s",
    "provider.fake.fault_rate",
    "provider.fake.fault_kinds",
    "provider.fake.fault_seed",
    "provider.fake.retry_delay_s",
    "provider.fake.hang_s",
    "provider.fake.daily_quota",
    "provider.fake.requests_per_minute",
    "finetune.poll_seconds",
    "grading.workers",
    "grading.cache_size",
    "provider.local.batch_window_ms",
    "provider.local.score_batch_size",
    "provider.local.log_every",
    "provider.local.max_adapters",
)


def load_config(path: Path, overrides: list[str] | None = None) -> Config:
    """Read a YAML config, apply `key.path=value` overrides, validate; one-line errors."""
    if not path.is_file():
        raise MafineError(f"config file not found: {path}")
    raw = read_yaml_file(path) or {}
    if not isinstance(raw, dict):
        raise MafineError(f"{path}: the top level must be a mapping of config keys")
    for item in overrides or []:
        apply_override(raw, item)
    if raw.get("run_dir") is None:
        raw["run_dir"] = str(Path("runs") / path.stem)
    if not isinstance(raw["run_dir"], str) or not raw["run_dir"].strip():
        raise MafineError(
            f"{path}: run_dir: give a directory path, or leave the key out for runs/{path.stem}"
        )
    try:
        check_raw(raw, Config)
        return Config.model_validate(raw)
    except MafineError as exc:
        raise MafineError(f"{path}: {exc}") from None
    except ValidationError as exc:
        raise MafineError(f"{path}: {describe_validation_error(exc)}") from None


def apply_override(raw: dict[str, Any], item: str) -> None:
    """Set `a.b.c=value` in a raw config mapping; the value is parsed as YAML (typed)."""
    key, sep, text = item.partition("=")
    if not sep or not key.strip():
        raise MafineError(f"--set expects key.path=value, got {item!r}")
    try:
        value = parse_yaml(text) if text.strip() else text
    except yaml.YAMLError:
        value = text
    parts = key.strip().split(".")
    node = raw
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise MafineError(f"--set {key}: {part} is not a section")
        node = child
    node[parts[-1]] = value


def describe_validation_error(exc: ValidationError) -> str:
    """Pydantic's errors as one line: `key.path: message` for each."""
    parts = []
    for error in exc.errors():
        loc = ".".join(str(p) for p in error["loc"] if not _is_union_tag(p))
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        elif "input" in error and error["type"] not in {"missing"} and not _secret_key(loc):
            shown = repr(error["input"])
            if len(shown) <= 40:
                message = f"{message} (got {shown})"
        parts.append(f"{loc}: {message}" if loc else message)
    return "; ".join(parts)


def _secret_key(loc: str) -> bool:
    """Keys whose bad values may be secrets: never echoed."""
    return loc.endswith(("api_key_env", "base_url"))


def _is_union_tag(part: object) -> bool:
    return part in {"deepmind", "file", "hub"}


def config_dict(config: Config) -> dict[str, Any]:
    """The resolved config as plain data (what the run directory stores)."""
    return config.model_dump(mode="json")


def config_differences(stored: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Dotted keys whose values differ, ignoring the keys that may change between runs."""
    diffs: list[str] = []
    _diff(stored, current, "", diffs)
    return [key for key in diffs if key not in MUTABLE_KEYS]


def _diff(a: Any, b: Any, prefix: str, out: list[str]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            _diff(a.get(key), b.get(key), f"{prefix}{key}.", out)
        return
    if a != b:
        out.append(prefix.rstrip("."))
