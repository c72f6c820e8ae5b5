"""What mafine knows about Gemini model families: how thinking is controlled, where a base
model is served on Vertex AI, which families Vertex AI tunes.

Sources (read 2026-11; docs/gemini.md keeps the list):
* thinking: https://ai.google.dev/gemini-api/docs/thinking and
  https://cloud.google.com/vertex-ai/generative-ai/docs/thinking — Gemini 3 and later take a
  `thinking_level` (Pro: low or high; Flash and Flash-Lite also minimal and medium; default
  high), Gemini 2.5 a `thinking_budget` in tokens (Flash and Flash-Lite: 0 turns thinking
  off; Pro cannot turn it off, its smallest budget is 128). Sending both is a 400.
* locations: https://cloud.google.com/vertex-ai/generative-ai/docs/learn/locations — Gemini 3
  base models are served from the `global` endpoint (and the `us`/`eu` multi-regions), not
  from single regions (a regional call answers 404 "Publisher Model ... was not found":
  google-gemini/gemini-cli#14262, pollinations/pollinations#6148); Gemini 2.5 from both.
* tuning: https://cloud.google.com/vertex-ai/generative-ai/docs/models/gemini-use-supervised-tuning
  — supervised tuning runs in a region (never `global`), and a tuned model's endpoint lives
  in the region that tuned it; Vertex recommends thinking off or minimal for tuned models.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

MULTI_REGIONS = frozenset({"global", "us", "eu"})
LEVELS = ("minimal", "low", "medium", "high")

_NAME = re.compile(r"gemini-(?P<major>\d+)(?:\.(?P<minor>\d+))?-(?P<size>pro|flash-lite|flash)")
_LOCATION_IN_NAME = re.compile(r"(?:^|/)locations/(?P<location>[^/]+)/")


@dataclass(frozen=True)
class Family:
    """A Gemini model family, from its name (`gemini-3.5-flash-lite`, `gemini-2.5-pro`)."""

    major: int
    size: Literal["pro", "flash", "flash-lite"]

    @property
    def thinking_control(self) -> Literal["level", "budget"]:
        return "level" if self.major >= 3 else "budget"

    @property
    def lowest_level(self) -> str:
        return "low" if self.size == "pro" else "minimal"

    @property
    def lowest_budget(self) -> int:
        return 128 if self.size == "pro" else 0

    def served_in(self, location: str) -> bool:
        """Whether Vertex AI serves this family's base models from `location`."""
        return self.major < 3 or location in MULTI_REGIONS


def family(model: str) -> Family | None:
    """The family of a base model name (`models/...` and version suffixes allowed), or None
    for a name that is no Gemini model mafine knows (a tuned endpoint, another model)."""
    match = _NAME.search(model.rsplit("/", 1)[-1])
    if not match:
        return None
    return Family(int(match.group("major")), match.group("size"))  # type: ignore[arg-type]


def location_in_name(model: str) -> str | None:
    """The location inside a resource name (`projects/P/locations/L/endpoints/N`), or None."""
    match = _LOCATION_IN_NAME.search(model)
    return match.group("location") if match else None
