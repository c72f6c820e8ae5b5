"""What earlier attempts at a stage spent, so a resumed stage's manifest entry counts them all.

A stage that ended (done, failed, interrupted) recorded its totals. A stage killed outright
(SIGKILL, power loss) is left `running` with the journal's size when it started: every
response journaled after that offset was paid for by that attempt (one process at a time
holds the run directory's lock, and a process runs one stage at a time).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mafine.artifacts import JournalEntry, Usage
from mafine.jsonl import parse_row

EARLIER = "earlier_attempts"
JOURNAL_OFFSET = "journal_offset"


@dataclass
class Spent:
    attempts: int = 0
    requests: int = 0
    cached: int = 0
    usage: Usage = field(default_factory=Usage)

    def as_dict(self) -> dict[str, Any]:
        return {
            "attempts": self.attempts,
            "requests": self.requests,
            "cached_responses": self.cached,
            "usage": self.usage.model_dump(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Spent:
        return cls(
            attempts=int(data.get("attempts", 1)),
            requests=int(data.get("requests", 0)),
            cached=int(data.get("cached_responses", 0)),
            usage=Usage.model_validate(data.get("usage") or {}),
        )


def journal_size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def earlier_attempts(entry: dict[str, Any], journal: Path) -> Spent:
    """The spend of every earlier attempt recorded in a stage's manifest entry."""
    status = entry.get("status")
    if status is None or status == "done":
        return Spent()
    if status != "running":
        return Spent.from_dict(entry)
    before = Spent.from_dict(entry.get(EARLIER) or {"attempts": 0})
    requests, usage = _journaled_since(journal, int(entry.get(JOURNAL_OFFSET, 0)))
    return Spent(
        attempts=before.attempts + 1,
        requests=before.requests + requests,
        cached=before.cached,
        usage=before.usage + usage,
    )


def _journaled_since(journal: Path, offset: int) -> tuple[int, Usage]:
    """Responses journaled from `offset` on (whole lines only) and their tokens."""
    if not journal.exists():
        return 0, Usage()
    count, usage = 0, Usage()
    with journal.open("rb") as handle:
        handle.seek(offset)
        for number, raw in enumerate(handle, start=1):
            if not raw.endswith(b"\n") or not raw.strip():
                continue
            row = parse_row(raw.decode("utf-8", errors="replace"), JournalEntry, journal, number)
            count += 1
            usage = usage + row.completion.usage
    return count, usage
