"""What mafine knows about each Gemini model, in one dated table: where Vertex AI serves it,
the thinking levels it accepts, whether Vertex AI tunes it, when it retires, and the source of
each fact. The fake Gemini imitates this table, `mafine check` and the config tests read it.

Checked on `TABLE_AS_OF` (each row names its sources; docs/gemini.md keeps the list):
* locations: https://docs.cloud.google.com/vertex-ai/generative-ai/docs/models/gemini/3-1-flash-lite
  and https://docs.cloud.google.com/vertex-ai/docs/generative-ai/learn/locations — Gemini 3.x
  base models are listed on the `global` endpoint (and the `us`/`eu` multi-regions); a
  single region answers 404 "Publisher Model ... was not found" (google-gemini/gemini-cli#14262,
  DefangLabs/samples#652 for gemini-3.5-flash). Issue 18 reports regional endpoints for 3.5
  Flash; no page read here confirms which, so the safe value (multi-regions only) is kept.
* thinking: https://ai.google.dev/gemini-api/docs/thinking#thinking-levels — Flash-Lite models
  take minimal..high; Gemini 3.6/3.7/3.8 Flash refuse MINIMAL with a 400 "Thinking level
  MINIMAL is not supported for this model" (vercel/ai#18986, can1357/oh-my-pi#10543,
  fishjar/kiss-translator#1051); Pro takes low or high. 3.5 Flash: no source seen either way,
  so the safe lowest level (low, accepted by every Gemini 3 text model) is used. Gemini 2.5
  takes a `thinking_budget` (Flash/Flash-Lite: 0 is off; Pro: 128 at least).
* tuning: https://docs.cloud.google.com/gemini-enterprise-agent-platform/reference/models/tuning.md.txt
  — supervised tuning supports 3.5 Flash-Lite, 3.5 Flash, 3.1 Flash-Lite (and 2.5, now
  retired); tuning runs in a region (never `global`) whatever the base model's serving
  locations. Adapter sizes 1, 2, 4, 8, 16 (tune-text-models-supervised, "Limitations").
* retirement: Vertex AI retired Gemini 2.5 on 2026-10-16, tuning and tuned models included
  (mozilla/sumo#2794, gcpstudyhub.com "Google is retiring Gemini 2.5 on Vertex AI"); the
  Gemini API closed 2.5 to new users (404 "This model models/gemini-2.5-flash is no longer
  available to new users": thedotmack/claude-mem#3278) and from 2026-12-01 routes 2.5 calls to
  3.x models at their prices (https://ai.google.dev/gemini-api/docs/deprecations via
  dev.to/aideprecations, read 2026-11-10). `gemini-3.5-flash` on the Gemini API is answered
  by 3.6 Flash (https://docs.cloud.google.com/gemini-enterprise-agent-platform/models/guides/gemini-3-5-flash.md.txt
  links the Gemini API page of gemini-3.6-flash).
* sampling: https://docs.cloud.google.com/vertex-ai/generative-ai/docs/models/gemini/3-5-flash-lite
  — 3.5 Flash-Lite ignores custom temperature, top-K and top-P.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

TABLE_AS_OF = "2026-12-06"
MULTI_REGIONS = frozenset({"global", "us", "eu"})
LEVELS = ("minimal", "low", "medium", "high")
# Accepted by every Gemini 3 text model in the table: what a model mafine does not know gets.
SAFEST_LEVEL = "low"
# Vertex AI's adapter sizes for Gemini supervised tuning ("Limitations" of
# https://cloud.google.com/vertex-ai/generative-ai/docs/models/gemini-supervised-tuning).
ADAPTER_SIZES = (1, 2, 4, 8, 16)
# Vertex AI recommends "at least 100 to 500 examples" for supervised tuning
# (https://cloud.google.com/vertex-ai/generative-ai/docs/models/gemini-use-supervised-tuning,
# checked 2026-12-06); no page read names a hard floor for Gemini 3, so fewer is warned about,
# not refused (a refusal could stop a job Vertex AI would run).
RECOMMENDED_TUNING_EXAMPLES = 100
# Most input and output tokens of one training example; longer ones are dropped by Vertex AI
# and counted in the job's tuningDataStats ("Limitations", gemini-supervised-tuning page).
MAX_EXAMPLE_TOKENS = 131_072
VERTEX_2_5_RETIRED = date(2026, 10, 16)
API_2_5_ROUTED = date(2026, 12, 1)

_NAME = re.compile(r"gemini-(?P<major>\d+)(?:\.(?P<minor>\d+))?-(?P<size>pro|flash-lite|flash)")
_LOCATION_IN_NAME = re.compile(r"(?:^|/)locations/(?P<location>[^/]+)/")
_SERVING = "https://docs.cloud.google.com/vertex-ai/docs/generative-ai/learn/locations"
_THINKING = "https://ai.google.dev/gemini-api/docs/thinking#thinking-levels"
_TUNING = (
    "https://docs.cloud.google.com/gemini-enterprise-agent-platform/reference/models/tuning.md.txt"
)
_RETIRED = "mozilla/sumo#2794; https://ai.google.dev/gemini-api/docs/deprecations"


@dataclass(frozen=True)
class ModelFacts:
    """One base model as Google documents it (see the module docstring for sources)."""

    name: str
    # Vertex AI locations serving the base model; None: every Gemini region.
    locations: frozenset[str] | None
    # Gemini 3 and later: accepted thinking levels, lowest first; 2.5: empty (budgets).
    levels: tuple[str, ...]
    tunable: bool
    sources: tuple[str, ...]
    lowest_budget: int | None = None  # Gemini 2.5 only
    vertex_retired: date | None = None
    api_closed_to_new_users: bool = False
    api_served_by: str | None = None  # the model the Gemini API answers with, if another
    ignores_sampling: bool = False  # temperature and top_p are ignored
    adapter_sizes: tuple[int, ...] = ADAPTER_SIZES  # for tuning

    def served_in(self, location: str) -> bool:
        return self.locations is None or location in self.locations

    def retired_on_vertex(self, today: date | None = None) -> bool:
        return self.vertex_retired is not None and (today or date.today()) >= self.vertex_retired

    @property
    def lowest_level(self) -> str | None:
        return self.levels[0] if self.levels else None


_FLASH_LITE = ("minimal", "low", "medium", "high")
_FLASH = ("low", "medium", "high")
_PRO = ("low", "high")

TABLE: dict[str, ModelFacts] = {
    facts.name: facts
    for facts in (
        ModelFacts(
            "gemini-3.1-flash-lite",
            MULTI_REGIONS,
            _FLASH_LITE,
            tunable=True,
            sources=(
                "https://docs.cloud.google.com/vertex-ai/generative-ai/docs/models/gemini/3-1-flash-lite",
                _TUNING,
            ),
        ),
        ModelFacts(
            "gemini-3.5-flash-lite",
            MULTI_REGIONS,
            _FLASH_LITE,
            tunable=True,
            ignores_sampling=True,
            sources=(
                "https://docs.cloud.google.com/vertex-ai/generative-ai/docs/models/gemini/3-5-flash-lite",
                _TUNING,
            ),
        ),
        ModelFacts(
            "gemini-3.5-flash",
            MULTI_REGIONS,  # issue 18 reports regional endpoints: unconfirmed, safe value kept
            _FLASH,  # no source for MINIMAL either way: the safe lowest level
            tunable=True,
            api_served_by="gemini-3.6-flash",
            sources=(_SERVING, "DefangLabs/samples#652", _TUNING),
        ),
        ModelFacts(
            "gemini-3.6-flash",
            MULTI_REGIONS,
            _FLASH,
            tunable=False,
            sources=("fishjar/kiss-translator#1051", _THINKING),
        ),
        ModelFacts(
            "gemini-3.7-flash",
            MULTI_REGIONS,
            _FLASH,
            tunable=False,
            sources=("vercel/ai#18986", "can1357/oh-my-pi#10543", _THINKING),
        ),
        ModelFacts(
            "gemini-3.8-flash",
            MULTI_REGIONS,
            _FLASH,
            tunable=False,
            sources=("issue 18 (400 on MINIMAL)", _THINKING),
        ),
        ModelFacts(
            "gemini-3-flash",
            MULTI_REGIONS,
            _FLASH_LITE,  # all four levels: docs.litellm.ai/blog/gemini_3_flash
            tunable=False,
            sources=(
                _SERVING,
                "https://hexdocs.pm/gemini_ex/Gemini.Types.Enums.ThinkingLevel.html",
            ),
        ),
        ModelFacts(
            "gemini-3.1-pro-preview",
            MULTI_REGIONS,
            _PRO,
            tunable=False,
            sources=(_SERVING, _THINKING),
        ),
        *(
            ModelFacts(
                name,
                None,
                (),
                tunable=False,  # retired with its base on Vertex AI, tuning included
                lowest_budget=budget,
                vertex_retired=VERTEX_2_5_RETIRED,
                api_closed_to_new_users=True,
                sources=(_RETIRED, "thedotmack/claude-mem#3278"),
            )
            for name, budget in (
                ("gemini-2.5-pro", 128),
                ("gemini-2.5-flash", 0),
                ("gemini-2.5-flash-lite", 0),
            )
        ),
    )
}


def short_name(model: str) -> str:
    """`models/X`, `publishers/google/models/X`, `projects/.../models/X` → `X`."""
    return model.rsplit("/", 1)[-1]


def facts_of(model: str) -> ModelFacts | None:
    """The table's row for a base model name (resource prefixes and a `-NNN` version suffix
    allowed), or None for a model the table does not list."""
    name = short_name(model)
    return TABLE.get(name) or TABLE.get(re.sub(r"-\d{3}$", "", name))


@dataclass(frozen=True)
class Family:
    """A Gemini model family, from its name, for models the table does not list."""

    major: int
    size: str

    @property
    def thinking_control(self) -> str:
        return "level" if self.major >= 3 else "budget"


def family(model: str) -> Family | None:
    """The family of a Gemini model name, or None for a name that is no Gemini model (a tuned
    endpoint, another model)."""
    match = _NAME.search(short_name(model))
    if not match:
        return None
    return Family(int(match.group("major")), match.group("size"))


def lowest_level(model: str) -> str | None:
    """The lowest thinking level a Gemini 3+ model accepts: the table's, else the safest."""
    facts = facts_of(model)
    if facts is not None and facts.levels:
        return facts.levels[0]
    known = family(model)
    return SAFEST_LEVEL if known is not None and known.major >= 3 else None


def lowest_budget(model: str) -> int:
    facts = facts_of(model)
    if facts is not None and facts.lowest_budget is not None:
        return facts.lowest_budget
    known = family(model)
    return 128 if known is not None and known.size == "pro" else 0


def served_in(model: str, location: str) -> bool:
    """Whether Vertex AI serves a base model from `location`: the table's answer; a Gemini 3+
    model it does not list is taken to be served like its listed kin (multi-regions only)."""
    facts = facts_of(model)
    if facts is not None:
        return facts.served_in(location)
    known = family(model)
    return known is None or known.major < 3 or location in MULTI_REGIONS


def same_model(requested: str, version: str) -> bool:
    """Whether a response's `modelVersion` is the requested model (a `-001` style version or
    a `-preview` suffix of the same name counts as the same)."""
    asked, got = short_name(requested), short_name(version)
    return got == asked or got.startswith(asked + "-") or asked.startswith(got + "-")


def location_in_name(model: str) -> str | None:
    """The location inside a resource name (`projects/P/locations/L/endpoints/N`), or None."""
    match = _LOCATION_IN_NAME.search(model)
    return match.group("location") if match else None
