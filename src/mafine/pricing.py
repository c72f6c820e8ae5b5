"""What Gemini charges, in one dated table, and the cost of the tokens a run used.

Prices change by model and date, so the run directory stores token counts (per response in
the journal, per stage in the manifest) and this module prices them. Update `PRICES` (and
`PRICES_AS_OF`) when Google's price list changes; every cost mafine prints names the date.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Any

from mafine.artifacts import Usage

PRICES_AS_OF = "2026-12-06"
PRICES_SOURCE = (
    "https://ai.google.dev/gemini-api/docs/pricing (paid tier, prompts up to 200k tokens, as "
    "transcribed on 2026-10-07 in api-evangelist/deepmind plans/deepmind-plans-pricing.yml and "
    "checked 2026-12-06) and https://cloud.google.com/vertex-ai/generative-ai/pricing (tuning)"
)
BATCH_DISCOUNT = 0.5  # batch jobs cost half the standard price, on both backends


@dataclass(frozen=True)
class Price:
    """USD per million tokens. Output includes thinking tokens."""

    input: float
    output: float
    tuning: float | None = None  # Vertex AI supervised tuning, per 1M training tokens
    until: date | None = None  # the last day this row applies (a promotional price)


# USD per 1M tokens, standard (not batch) paid tier, text, prompts up to 200k tokens, by exact
# model name, each model's rows oldest first (a row with `until` gives way to the next one the
# day after): a model not listed here is priced "unknown", never as a similar name (a `-lite`
# or `-preview` model costs what its own row says, not what its prefix's row says).
# Not listed, for want of a Google price page (checked 2026-12-06): gemini-3.6-flash and
# gemini-3.7-flash (cost "unknown", never a guess), and tuning prices of Gemini 3 models
# (Vertex AI's pricing page read lists tuning prices for 2.5 only, now retired).
# Gemini API: `gemini-3.5-flash` is answered by 3.6 Flash (models.TABLE) and 2.5 names by 3.x
# models billed at their own prices; the run prints the answering model (modelVersion).
PRICES: dict[str, tuple[Price, ...]] = {
    # Promotional "through December 31, 2026"; "$1.50 / $7.50 starting January 1, 2027".
    "gemini-3.8-flash": (Price(0.75, 3.75, until=date(2026, 12, 31)), Price(1.50, 7.50)),
    "gemini-3.5-flash": (Price(1.50, 9.00),),
    "gemini-3.5-flash-lite": (Price(0.30, 2.50),),
    "gemini-3.1-pro-preview": (Price(2.00, 12.00),),
    "gemini-3.1-flash-lite": (Price(0.25, 1.50),),
    "gemini-3-flash": (Price(0.50, 3.00),),
    "gemini-2.5-pro": (Price(1.25, 10.00, tuning=25.00),),
    "gemini-2.5-flash": (Price(0.30, 2.50, tuning=5.00),),
    "gemini-2.5-flash-lite": (Price(0.10, 0.40, tuning=1.50),),
}

# Resource prefixes of the same model: `models/X` (Gemini API), `publishers/google/models/X`
# and `projects/P/locations/L/publishers/google/models/X` (Vertex AI).
_PREFIXES = re.compile(r"^(?:projects/[^/]+/locations/[^/]+/)?(?:publishers/google/)?(?:models/)?")


def price_of(model: str, on: date | None = None) -> Price | None:
    """The price of a model on a day (today by default) by its exact name (resource prefixes
    allowed), or None."""
    rows = PRICES.get(_PREFIXES.sub("", model.strip()))
    if not rows:
        return None
    day = on or date.today()
    return next((row for row in rows if row.until is None or day <= row.until), rows[-1])


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
