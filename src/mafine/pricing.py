"""What Gemini charges, in one dated table, and the cost of the tokens a run used.

Prices change by model and date, so the run directory stores token counts (per response in
the journal, per stage in the manifest) and this module prices them. Update `PRICES` (and
`PRICES_AS_OF`) when Google's price list changes; every cost mafine prints names the date.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from mafine.artifacts import Usage

PRICES_AS_OF = "2026-11"
PRICES_SOURCE = (
    "https://ai.google.dev/gemini-api/docs/pricing (paid tier, prompts up to 200k tokens) and "
    "https://cloud.google.com/vertex-ai/generative-ai/pricing (tuning)"
)
BATCH_DISCOUNT = 0.5  # batch jobs cost half the standard price, on both backends


@dataclass(frozen=True)
class Price:
    """USD per million tokens. Output includes thinking tokens."""

    input: float
    output: float
    tuning: float | None = None  # Vertex AI supervised tuning, per 1M training tokens


# USD per 1M tokens, standard (not batch) paid tier, text, prompts up to 200k tokens.
PRICES: dict[str, Price] = {
    "gemini-3.5-flash": Price(1.50, 9.00),
    "gemini-3.1-pro": Price(2.00, 12.00),
    "gemini-3.1-flash-lite": Price(0.25, 1.50),
    "gemini-3-flash": Price(0.50, 3.00),
    "gemini-2.5-pro": Price(1.25, 10.00, tuning=25.00),
    "gemini-2.5-flash": Price(0.30, 2.50, tuning=5.00),
    "gemini-2.5-flash-lite": Price(0.10, 0.40, tuning=1.50),
}

_PREFIXES = re.compile(r"^(?:models/|publishers/google/models/|projects/.+/models/)")


def price_of(model: str) -> Price | None:
    """The price of a model name (`models/...` and version suffixes allowed), or None."""
    name = _PREFIXES.sub("", model.strip())
    best = None
    for known in PRICES:
        matches = name == known or name.startswith(known + "-")
        if matches and (best is None or len(known) > len(best)):
            best = known
    return PRICES[best] if best else None


def cost(usage: Usage, model: str, batch: bool = False) -> float | None:
    """USD for a usage at a model's price (None when the model has no price here)."""
    price = price_of(model)
    if price is None:
        return None
    dollars = (
        usage.prompt_tokens * price.input
        + (usage.output_tokens + usage.thoughts_tokens) * price.output
    ) / 1e6
    return dollars * (BATCH_DISCOUNT if batch else 1.0)


def priced_model(config: Any) -> str | None:
    """The model whose price applies to a run's requests: tuned models cost what their base
    model costs. None for providers that are not billed per token (their registry entry says
    so: local, and any provider registered without `priced=True`)."""
    if not config.provider.entry.priced:
        return None
    return str(config.provider.model)


def stage_cost(config: Any, usage: Usage) -> dict[str, Any]:
    """What a stage's usage cost, as recorded in the manifest."""
    model = priced_model(config)
    batch = model is not None and config.provider.capabilities.batch
    return {
        "cost_usd": None if model is None else _round(cost(usage, model, batch)),
        "priced_as": model,
        "batch_pricing": batch,
        "prices_as_of": PRICES_AS_OF,
    }


def usage_totals(stages: dict[str, Any]) -> dict[str, Any]:
    """Tokens and cost per iteration (`baseline`, `iter-K`) and for the whole run."""
    groups: dict[str, dict[str, Any]] = {}
    run = _empty()
    for name, entry in stages.items():
        usage = entry.get("usage")
        if not isinstance(usage, dict):
            continue
        prefix = name.split("/", 1)[0]
        totals = [run]
        if prefix == "baseline" or prefix.startswith("iter-"):
            totals.append(groups.setdefault(prefix, _empty()))
        for total in totals:
            _add(total, entry)
    return {"run": run, "iterations": groups, "prices_as_of": PRICES_AS_OF}


def format_cost(value: float | None) -> str:
    if value is None:
        return "cost unknown"
    return f"${value:,.4f}" if value < 1 else f"${value:,.2f}"


def _empty() -> dict[str, Any]:
    return {"requests": 0, "usage": Usage().model_dump(), "cost_usd": 0.0}


def _add(total: dict[str, Any], entry: dict[str, Any]) -> None:
    total["requests"] += int(entry.get("requests") or 0)
    added = Usage.model_validate(total["usage"]) + Usage.model_validate(entry["usage"])
    total["usage"] = added.model_dump()
    if total["cost_usd"] is not None:
        value = entry.get("cost_usd")
        if value is None and any(entry["usage"].values()) and entry.get("priced_as"):
            total["cost_usd"] = None  # a priced stage without a price: the total is unknown
        else:
            total["cost_usd"] = _round(total["cost_usd"] + (value or 0.0))


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)
