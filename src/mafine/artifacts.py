"""Row types of every JSONL artifact in a run directory (see docs/artifacts.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Row(BaseModel):
    """Base of every artifact row: unknown fields are an error, so a corrupt file is caught."""

    model_config = ConfigDict(extra="forbid")


Role = Literal["user", "assistant"]
ModelRole = Literal["generator", "critic"]
ExampleKind = Literal["generation", "corrected", "kept"]


class Message(Row):
    role: Role
    content: str


class Problem(Row):
    id: str
    question: str
    answer: str
    source: str


class Usage(Row):
    prompt_tokens: int = 0
    output_tokens: int = 0
    thoughts_tokens: int = 0
    total_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            thoughts_tokens=self.thoughts_tokens + other.thoughts_tokens,
            total_tokens=self.total_tokens + other.total_tokens,
        )


class Completion(Row):
    """One model response as a provider returns it."""

    text: str
    finish_reason: str | None = None
    usage: Usage = Field(default_factory=Usage)
    # The model that answered, as the service names it (Gemini's `modelVersion`); None where
    # the provider does not say.
    model_version: str | None = None


class JournalEntry(Row):
    """One finished response, written the moment it arrives, keyed by the request."""

    key: str
    model: str
    completion: Completion


class Turn(Row):
    """One agent's response in one debate round."""

    round: int
    role: ModelRole
    model: str
    messages: list[Message]
    response: str
    answer: str | None
    answer_rule: str = "boxed"
    finish_reason: str | None = None
    usage: Usage = Field(default_factory=Usage)


class Summary(Row):
    """The summariser's digest of the other agents' responses, given to one agent before a round."""

    round: int
    agent: int
    model: str
    messages: list[Message]
    text: str
    usage: Usage = Field(default_factory=Usage)


class AgentTrace(Row):
    agent: int
    has_critic: bool
    turns: list[Turn]

    @property
    def first_answer(self) -> str | None:
        return self.turns[0].answer

    @property
    def final_answer(self) -> str | None:
        return self.turns[-1].answer


class Transcript(Row):
    """One debate on one problem."""

    problem_id: str
    question: str
    gold: str
    agents: list[AgentTrace]
    summaries: list[Summary] = Field(default_factory=list)
    majority: str | None
    votes: dict[str, int] = Field(default_factory=dict)


class SFTExample(Row):
    """One conversational fine-tuning example (the trl `messages` format), tagged."""

    messages: list[Message]
    problem_id: str
    kind: ExampleKind


class ModelRecord(Row):
    """One agent model of one iteration: what it was tuned from, the job, and what to use next.

    `serving_model` is the name generation uses; `checkpoint` is the name a later tuning
    continues from (on Vertex AI an endpoint serves, a model resource continues). `kept`
    keeps the previous model; `shared` uses agent 0's generator (single-agent fine-tuning).
    """

    agent: int
    role: ModelRole
    base_model: str
    start_checkpoint: str
    examples: int = 0
    job_name: str | None = None
    state: Literal["kept", "shared", "pending", "submitted", "succeeded", "failed"]
    serving_model: str | None = None
    checkpoint: str | None = None
    error: str | None = None


class SFTCount(Row):
    agent: int
    role: ModelRole
    generation: int = 0
    corrected: int = 0
    kept: int = 0
    total: int = 0


class BatchRecord(Row):
    """One line of `batches.jsonl`: a job submitted (with its request keys), finished (with
    how many rows it answered, i.e. billed, and how many failed), or failed (`keys`: the
    requests it left without an answer, which a later run submits again; none listed: all)."""

    event: Literal["submitted", "finished", "failed"]
    job: str
    model: str = ""
    display_name: str = ""
    keys: list[str] = Field(default_factory=list)
    error: str | None = None
    answered: int | None = None
    failed: int | None = None
    time: str = ""


def made_by(path: Path) -> str | None:
    """The command that writes the run-directory artifact at `path` (None: not one of them),
    so an error about a missing artifact can say how to make it."""
    name, folder = path.name, path.parent.name
    if folder == "sft":
        name, folder = f"sft/{name}", path.parent.parent.name
    if folder == "problems" and name in ("train.jsonl", "eval.jsonl"):
        return "mafine prepare CONFIG"
    if folder == "baseline":
        iteration = "0"
    elif folder.startswith("iter-") and folder[5:].isdigit():
        iteration = folder[5:]
    else:
        return None
    if name in ("train-debate.jsonl", "eval-debate.jsonl"):
        split = name.split("-")[0]
        return f"mafine debate CONFIG -i {iteration} --split {split}"
    if name.startswith("sft/"):
        return f"mafine build-sft CONFIG -i {iteration}"
    if name == "models.jsonl":
        return f"mafine finetune CONFIG -i {iteration}"
    if name == "metrics.json":
        return f"mafine evaluate CONFIG -i {iteration}"
    return None
