"""The methods a report names: the references every run has, and the compared methods a
config can ask for in `evaluation.compare` (each a set of config changes run beside
multiagent fine-tuning on the same problems, in `<run_dir>/variants/<name>`).

The metrics document and the report read each method's label from here; see
docs/architecture.md for adding one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mafine.registry import Registry


@dataclass(frozen=True)
class Method:
    name: str  # its key in metrics.json (and in evaluation.compare)
    label: str  # how reports and plots name it
    # Config sections changed for a compared method, e.g. {"sft": {"selection": "star"}};
    # None for the methods every run reports (they cannot be put in evaluation.compare).
    changes: dict[str, dict[str, Any]] | None = field(default=None, hash=False)
    uses_labels: bool = False  # trained with ground-truth answers (marked with † in reports)

    @property
    def comparable(self) -> bool:
        return self.changes is not None


METHODS: Registry[Method] = Registry("method")

for _method in (
    Method("base", "Base"),
    Method("majority", "Majority"),
    Method("debate", "Debate"),
    Method("multiagent_ft", "Multiagent FT"),
    Method("single_agent_ft", "Single-agent FT", {"sft": {"selection": "single_agent"}}),
    Method("no_summary", "Multiagent FT, no summary", {"debate": {"summarize": False}}),
    Method("no_critic", "Multiagent FT, critics not tuned", {"finetune": {"tune_critics": False}}),
    Method("star", "STaR (uses ground truth)", {"sft": {"selection": "star"}}, uses_labels=True),
):
    METHODS.register(_method)


def compared_method(name: str) -> Method:
    """The compared method called `name`; ValueError (a one-line config error) otherwise."""
    if name in METHODS and METHODS.get(name).comparable:
        return METHODS.get(name)
    comparable = ", ".join(m.name for m in METHODS.entries() if m.comparable)
    raise ValueError(f"unknown compared method {name!r}; use one of: {comparable}")
