"""`calculator`: a provider that answers "What is A minus B?" by arithmetic. The base model is
off by `provider.calculator.slip` when A is odd; a tuned model answers exactly. Tuning finishes
at once."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from typing import Any

from mafine.artifacts import Completion, Usage
from mafine.providers import closing
from mafine.providers.base import (
    Capabilities,
    CheckOutcome,
    GenerationRequest,
    ProviderBase,
    TuningSpec,
    TuningStatus,
)

QUESTION = re.compile(r"What is (-?\d+) minus (-?\d+)\?")
TUNED = "-tuned"


@dataclass
class Calculator(ProviderBase):
    slip: int = 1
    latency_s: float = 0.0
    name: str = "calculator"
    max_concurrency: int = 8
    capabilities: Capabilities = field(default_factory=lambda: Capabilities(tuning=True))

    async def generate(self, request: GenerationRequest) -> Completion:
        await asyncio.sleep(self.latency_s)
        text = " ".join(message.content for message in request.messages)
        found = QUESTION.search(text)
        if found is None:
            reply = "I cannot tell."
        else:
            exact = int(found.group(1)) - int(found.group(2))
            slips = int(found.group(1)) % 2 == 1 and not request.model.endswith(TUNED)
            answer = exact + self.slip if slips else exact
            reply = f"The answer is \\boxed{{{answer}}}."
        tokens = len(reply.split())
        prompt = len(text.split())
        usage = Usage(prompt_tokens=prompt, output_tokens=tokens, total_tokens=prompt + tokens)
        return Completion(text=reply, finish_reason="STOP", usage=usage)

    def start_tuning(self, spec: TuningSpec) -> str:
        return f"jobs/{spec.display_name}"

    def poll_tuning(self, job_name: str) -> TuningStatus:
        return TuningStatus("succeeded", serving_model=job_name.removeprefix("jobs/") + TUNED)


def _make(config: Any, seed: int, state_dir: Any) -> Calculator:
    settings = config.settings_of("calculator")
    return Calculator(slip=settings.slip, latency_s=settings.latency_s)


open_calculator = closing(_make)


def check(config: Any) -> list[CheckOutcome]:
    """`mafine check`: one question, answered offline."""
    reply = asyncio.run(_ask(config))
    return [CheckOutcome("calculator", "boxed" in reply, f"answered {reply!r}")]


async def _ask(config: Any) -> str:
    from mafine.artifacts import Message
    from mafine.providers.base import Sampling

    request = GenerationRequest(
        model=config.provider.model,
        messages=(Message(role="user", content="What is 4 minus 1?"),),
        sampling=Sampling(temperature=0.0, top_p=1.0, max_output_tokens=16),
        sample_index=0,
        seed=0,
    )
    return (await _make(config.provider, 0, None).generate(request)).text
