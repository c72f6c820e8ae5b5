"""What `mafine estimate` says under its table for the gemini and fake providers (their
registry entries' `estimate_notes`): batch mode, the pacing of the configured tier, and that
the fake bills nothing."""

from __future__ import annotations

from typing import Any

from mafine.providers.limits import resolve_limits


def gemini_notes(config: Any, estimate: Any) -> list[str]:
    notes = [_batch_note(config)]
    rpm = resolve_limits(config.provider.gemini).requests_per_minute
    if rpm:
        requests = estimate.total.requests
        notes.append(
            f"at {rpm:,.0f} requests/min ({config.provider.gemini.tier} pacing) the "
            f"{requests:,} requests take at least {requests / rpm / 60:,.1f} h."
        )
    return notes


def fake_notes(config: Any, estimate: Any) -> list[str]:
    return [
        _batch_note(config),
        "provider fake: nothing is billed; the figures show what Gemini would cost.",
    ]


def _batch_note(config: Any) -> str:
    rounds = 1 + (config.debate.rounds - 1) * (2 if config.debate.summarize else 1)
    return (
        "batch mode (provider.gemini.batch=true) halves the generation cost; each debate "
        f"round becomes a batch job that may take up to 24 h ({rounds} rounds of jobs per "
        "debate)."
    )
