"""The small interface every provider implements: generate text, tune a model, poll the tuning.

A provider declares what else it can do in `capabilities` (scoring, an embedding client,
tuning, batch); callers read the declaration and call the declared method, never probe
with getattr/hasattr. `ProviderBase` gives the refusals for what a provider cannot do.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from mafine.artifacts import Completion, Message
from mafine.errors import MafineError


@dataclass(frozen=True)
class Sampling:
    """Output-relevant sampling parameters; part of every request's journal key."""

    temperature: float
    top_p: float
    max_output_tokens: int


@dataclass(frozen=True)
class GenerationRequest:
    model: str
    messages: tuple[Message, ...]
    sampling: Sampling
    sample_index: int
    seed: int

    def key(self) -> str:
        """Stable identity of the request: model, messages, sampling, sample index and seed.

        Deliberately excludes timeouts, concurrency and anything else that cannot change
        the response, so a rerun with other limits still finds its finished work.
        """
        payload = {
            "model": self.model,
            "messages": [[m.role, m.content] for m in self.messages],
            "sampling": [
                self.sampling.temperature,
                self.sampling.top_p,
                self.sampling.max_output_tokens,
            ],
            "sample_index": self.sample_index,
            "seed": self.seed,
        }
        blob = json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()
        return hashlib.sha256(blob).hexdigest()


@dataclass(frozen=True)
class TuningSpec:
    """One model to tune: the conversational SFT file and the hyperparameters."""

    display_name: str
    start_checkpoint: str
    training_file: Path
    output_dir: Path  # inside the run directory, reserved for this job (e.g. local adapters)
    epochs: int
    learning_rate_multiplier: float
    adapter_size: int
    # The training seed, from the run seed and the model's role (seeds.tuning_seed), for
    # providers that seed their training (local); never from a path.
    seed: int = 0


@dataclass(frozen=True)
class TuningStatus:
    state: Literal["running", "succeeded", "failed"]
    serving_model: str | None = None
    checkpoint: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class CheckOutcome:
    """One preflight check of `mafine check`: passed, or failed with what to do about it."""

    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'ok  ' if self.ok else 'FAIL'} {self.name}: {self.detail}"


@dataclass(frozen=True)
class Capabilities:
    """What a provider can do beyond generating text."""

    tuning: bool = False  # start_tuning / poll_tuning train new models
    scoring: bool = False  # score(): token log-probabilities (likelihood diversity)
    embedding: bool = False  # embedding_client(): a google-genai client for embeddings
    batch: bool = False  # requests go out as batch jobs (cheaper, hours of latency)


class Provider(Protocol):
    """What the stages need from a model backend."""

    name: str
    max_concurrency: int
    capabilities: Capabilities

    async def generate(self, request: GenerationRequest) -> Completion:
        """One response. Raises MafineError for errors a user must act on."""
        ...

    def start_tuning(self, spec: TuningSpec) -> str:
        """Submit a tuning job and return its name; the name is stored before polling."""
        ...

    def poll_tuning(self, job_name: str) -> TuningStatus:
        """The job's state now; called until it is no longer running."""
        ...

    async def score(self, model: str, messages: Sequence[Message], response: str) -> list[float]:
        """Log-probabilities of `response`'s tokens as the reply to `messages` under `model`
        (only where `capabilities.scoring`)."""
        ...

    def embedding_client(self) -> Any:
        """A google-genai client for embeddings (only where `capabilities.embedding`)."""
        ...

    async def aclose(self) -> None:
        """Release clients, threads and memory; called once, inside the event loop."""
        ...


class ProviderBase:
    """The refusals of what a provider has not declared; subclass it and override what the
    provider's `capabilities` say it can do."""

    name: str = "provider"
    capabilities: Capabilities = Capabilities()

    def start_tuning(self, spec: TuningSpec) -> str:
        raise MafineError(f"provider {self.name} cannot tune models")

    def poll_tuning(self, job_name: str) -> TuningStatus:
        raise MafineError(f"provider {self.name} cannot tune models")

    async def score(self, model: str, messages: Sequence[Message], response: str) -> list[float]:
        raise MafineError(f"provider {self.name} cannot score text")

    def embedding_client(self) -> Any:
        raise MafineError(f"provider {self.name} has no embedding client")

    async def aclose(self) -> None:
        return None
