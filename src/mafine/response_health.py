"""Stop a stage whose provider answers without text, instead of a "successful" empty run.

A response with no text (blocked for safety, no candidates, an endpoint that is not a model)
is recorded as it is, once the provider's own re-asks are spent. One now and then is data;
when more than `limit` of a stage's responses (at least `MIN_RESPONSES` of them) have no
text, the endpoint is not answering, and the stage stops with what it returned.
"""

from __future__ import annotations

from collections import Counter

from mafine.artifacts import Completion
from mafine.errors import MafineError

MIN_RESPONSES = 10


class EmptyResponseWatch:
    def __init__(self, limit: float) -> None:
        self.limit = limit
        self.responses = 0
        self.empty: Counter[str] = Counter()

    def record(self, model: str, completion: Completion) -> None:
        """Count a response; raise once too many of them had no text."""
        self.responses += 1
        if not completion.text.strip():
            self.empty[completion.finish_reason or "no finish reason"] += 1
        empty = sum(self.empty.values())
        if self.responses >= MIN_RESPONSES and empty > self.limit * self.responses:
            reasons = ", ".join(f"{reason} x{n}" for reason, n in self.empty.most_common())
            raise MafineError(
                f"stopped: {empty} of {self.responses} responses from {model} had no text "
                f"(the provider returned: {reasons}); check provider.model and the endpoint, "
                f"or raise provider.empty_response_limit (now {self.limit}) to keep going"
            )
