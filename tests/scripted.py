"""A scripted provider for fast unit tests of the stages: no server, no model, no thread.

Each reply is `reply(request)` (by default a fixed boxed answer); tuning jobs succeed on the
first poll and serve `<display name>-tuned`. It counts what it was asked.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from mafine.artifacts import Completion, Usage
from mafine.providers.base import (
    Capabilities,
    GenerationRequest,
    ProviderBase,
    TuningSpec,
    TuningStatus,
)


def boxed(answer: str) -> Callable[[GenerationRequest], str]:
    return lambda request: f"The answer is \\boxed{{{answer}}}."


@dataclass
class ScriptedProvider(ProviderBase):
    reply: Callable[[GenerationRequest], str] = field(default_factory=lambda: boxed("7"))
    capabilities: Capabilities = field(default_factory=lambda: Capabilities(tuning=True))
    name: str = "scripted"
    max_concurrency: int = 4
    requests: list[GenerationRequest] = field(default_factory=list)
    tuned: list[TuningSpec] = field(default_factory=list)
    closed: bool = False

    async def generate(self, request: GenerationRequest) -> Completion:
        self.requests.append(request)
        text = self.reply(request)
        tokens = len(text.split())
        usage = Usage(prompt_tokens=1, output_tokens=tokens, total_tokens=1 + tokens)
        return Completion(text=text, finish_reason="STOP", usage=usage)

    def start_tuning(self, spec: TuningSpec) -> str:
        if not self.capabilities.tuning:
            return super().start_tuning(spec)
        self.tuned.append(spec)
        return f"jobs/{spec.display_name}"

    def poll_tuning(self, job_name: str) -> TuningStatus:
        model = job_name.removeprefix("jobs/") + "-tuned"
        return TuningStatus(state="succeeded", serving_model=model, checkpoint=model)

    async def aclose(self) -> None:
        self.closed = True
