"""The experiment's one config: a pydantic schema, YAML loading and `--set` overrides."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from mafine import prompts
from mafine.errors import MafineError
from mafine.grading.settings import GradingConfig
from mafine.providers.fake_gemini.settings import FakeSettings
from mafine.providers.gemini.settings import GeminiSettings
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
            try:
                template.format(question="", summary="", responses="")
            except (KeyError, IndexError, ValueError):
                raise ValueError(
                    f"prompts.{field} has an unknown {{placeholder}}; "
                    "write literal braces as {{ and }}"
                ) from None
        return self


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
    poll_seconds: float = Field(30.0, gt=0.0)
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


class ProviderConfig(Strict):
    name: Literal["gemini", "fake", "local"] = "fake"
    model: str = "gemini-3.1-flash-lite"
    max_concurrency: int = Field(8, ge=1)
    timeout_s: float = Field(120.0, gt=0.0)
    gemini: GeminiSettings = Field(default_factory=GeminiSettings)
    fake: FakeSettings = Field(default_factory=FakeSettings)
    local: LocalSettings = Field(default_factory=LocalSettings)


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
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise MafineError(f"{path}: not valid YAML{where}") from None
    if not isinstance(raw, dict):
        raise MafineError(f"{path}: the top level must be a mapping of config keys")
    for item in overrides or []:
        apply_override(raw, item)
    raw.setdefault("run_dir", str(Path("runs") / path.stem))
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        raise MafineError(f"{path}: {describe_validation_error(exc)}") from None


def apply_override(raw: dict[str, Any], item: str) -> None:
    """Set `a.b.c=value` in a raw config mapping; the value is parsed as YAML (typed)."""
    key, sep, text = item.partition("=")
    if not sep or not key.strip():
        raise MafineError(f"--set expects key.path=value, got {item!r}")
    try:
        value = yaml.safe_load(text) if text.strip() else text
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
        elif "input" in error and error["type"] not in {"missing"}:
            shown = repr(error["input"])
            if len(shown) <= 40:
                message = f"{message} (got {shown})"
        parts.append(f"{loc}: {message}" if loc else message)
    return "; ".join(parts)


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
