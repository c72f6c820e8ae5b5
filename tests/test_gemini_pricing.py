"""Prices by exact model name from one dated table; thinking tokens are priced as output."""

from __future__ import annotations

from datetime import date

import pytest

from mafine.artifacts import Usage
from mafine.pricing import PRICES, PRICES_AS_OF, PRICES_SOURCE, cost, price_of


def test_prices_match_exact_names_only():
    assert price_of("gemini-3.5-flash-lite") == PRICES["gemini-3.5-flash-lite"][-1]
    assert price_of("gemini-3.5-flash-lite") != price_of("gemini-3.5-flash")
    # Resource prefixes name the same model ...
    for name in (
        "models/gemini-2.5-flash",
        "publishers/google/models/gemini-2.5-flash",
        "projects/p/locations/global/publishers/google/models/gemini-2.5-flash",
    ):
        assert price_of(name) == PRICES["gemini-2.5-flash"][-1], name
    # ... a longer or unknown name is not priced as its prefix.
    for name in ("gemini-2.5-flash-lite-preview-09-2025", "gemini-3.5-flash-x", "gemini-9-pro"):
        assert price_of(name) is None, name


def test_thinking_tokens_cost_what_output_tokens_cost():
    usage = Usage(prompt_tokens=1_000_000, output_tokens=500_000, thoughts_tokens=500_000)
    assert cost(usage, "gemini-3.1-flash-lite") == pytest.approx(0.25 + 1.50)
    assert cost(usage, "gemini-3.1-flash-lite", batch=True) == pytest.approx((0.25 + 1.50) / 2)
    assert cost(usage, "some-unknown-model") is None


def test_the_table_names_its_date_and_source():
    assert PRICES_AS_OF[:4].isdigit() and "ai.google.dev/gemini-api/docs/pricing" in PRICES_SOURCE


def test_a_promotional_price_ends_on_its_date():
    # 3.8 Flash: $0.75 / $3.75 through 2026-12-31, $1.50 / $7.50 from 2027-01-01.
    promo, regular = (
        price_of("gemini-3.8-flash", date(2026, 12, 31)),
        price_of("gemini-3.8-flash", date(2027, 1, 1)),
    )
    assert promo is not None and (promo.input, promo.output) == (0.75, 3.75)
    assert regular is not None and (regular.input, regular.output) == (1.50, 7.50)


def test_models_without_a_published_price_are_unknown_not_guessed():
    for name in ("gemini-3.6-flash", "gemini-3.7-flash"):
        assert price_of(name) is None
