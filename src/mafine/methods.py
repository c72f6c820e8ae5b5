"""The methods a report names: the references every run has, and the compared methods a
config can ask for in `evaluation.compare`, each run beside multiagent fine-tuning on the same
problems in `<run_dir>/variants/<name>`.

A compared method is a set of config changes plus what it tunes:
- `Tunes.NOTHING` (base-only): one eval debate of the BASE models under its changes, at
  iteration 0; no train debate, no SFT data, no tuning job.
- `Tunes.ONE_MODEL` / `Tunes.EVERY_AGENT`: the whole method (train debates, SFT data, tuning,
  eval debates) under its changes, every iteration.

`reuses` names the methods whose responses it reads from the run's journal at no cost (the
same request is answered once per run). Its changes are validated when the config is loaded.
The metrics document and the report read each method's label and what it tuned from here;
see docs/architecture.md for adding one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from mafine.registry import Registry

# Config sections a method changes, e.g. {"sft": {"selection": "star"}}; or a function of the
# run's resolved config (plain data) giving them, for changes read from the config.
Changes = Mapping[str, Mapping[str, Any]]


class Tunes(str, Enum):
    """What a method fine-tunes (shown in the report's `tuned` column)."""

    NOTHING = "nothing"
    ONE_MODEL = "one model"
    EVERY_AGENT = "every agent"


@dataclass(frozen=True)
class Method:
    name: str  # its key in metrics.json (and in evaluation.compare)
    label: str  # how reports and plots name it
    # None for the methods every run reports (they cannot be put in evaluation.compare).
    changes: Changes | Callable[[dict[str, Any]], Changes] | None = field(default=None, hash=False)
    uses_labels: bool = False  # trained with ground-truth answers (marked with † in reports)
    tunes: Tunes = Tunes.EVERY_AGENT
    reuses: tuple[str, ...] = ()  # methods whose responses it reads from the journal for free
    # The settings a report shows beside the label, from the resolved config: e.g. "k=5".
    detail: Callable[[dict[str, Any]], str] | None = field(default=None, hash=False)

    @property
    def comparable(self) -> bool:
        return self.changes is not None

    @property
    def base_only(self) -> bool:
        return self.tunes is Tunes.NOTHING

    def label_for(self, config: dict[str, Any]) -> str:
        """The label with its detail for a run's resolved config: `Self-consistency (k=5)`."""
        return f"{self.label} ({self.detail(config)})" if self.detail else self.label

    def changes_for(self, config: dict[str, Any]) -> Changes:
        """The config changes of this method for a run's resolved config (plain data)."""
        if self.changes is None:
            return {}
        return self.changes(config) if callable(self.changes) else self.changes


# What a base-only method sets beside its own changes: the base models answer once each, with
# no critic and no second round (round 1 of a debate sees no other agent).
ANSWER_ALONE: dict[str, dict[str, Any]] = {"debate": {"rounds": 1}}


def _samples(count: int) -> dict[str, dict[str, Any]]:
    """`count` independent base samples: round-1 requests with sample indices 0..count-1, the
    very requests of the base-model debate's agents 0..count-1 (answered from the journal)."""
    return {"agents": {"count": count, "critics": 0}, **ANSWER_ALONE}


def _self_consistency(config: dict[str, Any]) -> Changes:
    return _samples(int(config["evaluation"]["self_consistency_k"]))


METHODS: Registry[Method] = Registry("method")
MAIN_METHOD = "multiagent_ft"  # the method of a run directory's own debates (tie-break seeds)

for _method in (
    Method("base", "Base", tunes=Tunes.NOTHING),
    Method("majority", "Majority", tunes=Tunes.NOTHING),
    Method("debate", "Debate", tunes=Tunes.NOTHING),
    Method("multiagent_ft", "Multiagent FT"),
    Method(
        "single_agent_ft",
        "Single-agent FT",
        {"sft": {"selection": "single_agent"}},
        tunes=Tunes.ONE_MODEL,
        reuses=("multiagent_ft",),
    ),
    Method("no_summary", "Multiagent FT, no summary", {"debate": {"summarize": False}}),
    Method(
        "no_critic",
        "Multiagent FT, critics not tuned",
        {"finetune": {"tune_critics": False}},
        reuses=("multiagent_ft",),
    ),
    Method(
        "star",
        "STaR (uses ground truth)",
        {"sft": {"selection": "star"}},
        uses_labels=True,
        reuses=("multiagent_ft",),
    ),
    Method(
        "self_consistency",
        "Self-consistency",
        _self_consistency,
        tunes=Tunes.NOTHING,
        reuses=("majority",),
        detail=lambda config: f"k={config['evaluation']['self_consistency_k']}",
    ),
    Method("single_agent", "Single agent", _samples(1), tunes=Tunes.NOTHING, reuses=("base",)),
):
    METHODS.register(_method)


def compared_method(name: str) -> Method:
    """The compared method called `name`; ValueError (a one-line config error) otherwise."""
    if name in METHODS and METHODS.get(name).comparable:
        return METHODS.get(name)
    comparable = ", ".join(m.name for m in METHODS.entries() if m.comparable)
    raise ValueError(f"unknown compared method {name!r}; use one of: {comparable}")


def tuned(key: str) -> str:
    """What the method called `key` tuned, as the report says it (unknown keys: every agent,
    what a method of an older document did)."""
    return METHODS.get(key).tunes.value if key in METHODS else Tunes.EVERY_AGENT.value
