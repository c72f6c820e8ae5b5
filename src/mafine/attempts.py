"""What earlier attempts at a stage spent, so a resumed stage's manifest entry counts them all.

A stage that ended (done, failed, interrupted) recorded its totals. A stage killed outright
(SIGKILL, power loss) is left `running` with the journal's size when it started: every
response journaled after that offset was paid for by that attempt (one process at a time
holds the run directory's lock, and a process runs one stage at a time). Every request is
noted in the sent log before it is sent: those the killed attempt sent after `sent_offset`
and never journaled were in flight when it died, and count as `unanswered_requests`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from mafine.artifacts import JournalEntry, Usage
from mafine.jsonl import RowT, parse_row

EARLIER = "earlier_attempts"
JOURNAL_OFFSET = "journal_offset"
SENT_OFFSET = "sent_offset"


class SentRequest(BaseModel):
    """One line of the sent log: a request about to be sent."""

    key: str


def sent_log(journal: Path) -> Path:
    """The sent log beside a journal: `journal.jsonl` -> `journal.sent.jsonl`."""
    return journal.with_name(f"{journal.stem}.sent{journal.suffix}")


@dataclass
class Spent:
    attempts: int = 0
    requests: int = 0
    cached: int = 0
    unanswered: int = 0
    usage: Usage = field(default_factory=Usage)

    def as_dict(self) -> dict[str, Any]:
        return {
            "attempts": self.attempts,
            "requests": self.requests,
            "cached_responses": self.cached,
            "unanswered_requests": self.unanswered,
            "usage": self.usage.model_dump(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Spent:
        return cls(
            attempts=int(data.get("attempts", 1)),
            requests=int(data.get("requests", 0)),
            cached=int(data.get("cached_responses", 0)),
            unanswered=int(data.get("unanswered_requests", 0)),
            usage=Usage.model_validate(data.get("usage") or {}),
        )


def log_size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def earlier_attempts(entry: dict[str, Any], journal: Path) -> Spent:
    """The spend of every earlier attempt recorded in a stage's manifest entry."""
    status = entry.get("status")
    if status is None or status == "done":
        return Spent()
    if status != "running":
        return Spent.from_dict(entry)
    before = Spent.from_dict(entry.get(EARLIER) or {"attempts": 0})
    answered: set[str] = set()
    usage = Usage()
    for row in _rows_since(journal, int(entry.get(JOURNAL_OFFSET, 0)), JournalEntry):
        answered.add(row.key)
        usage = usage + row.completion.usage
    sent = _rows_since(sent_log(journal), int(entry.get(SENT_OFFSET, 0)), SentRequest)
    unanswered = {row.key for row in sent} - answered
    return Spent(
        attempts=before.attempts + 1,
        requests=before.requests + len(answered),
        cached=before.cached,
        unanswered=before.unanswered + len(unanswered),
        usage=before.usage + usage,
    )


def _rows_since(path: Path, offset: int, row_type: type[RowT]) -> Iterator[RowT]:
    """The rows of an append log from `offset` on (whole lines only)."""
    if not path.exists():
        return
    with path.open("rb") as handle:
        handle.seek(offset)
        for number, raw in enumerate(handle, start=1):
            if raw.endswith(b"\n") and raw.strip():
                yield parse_row(raw.decode("utf-8", errors="replace"), row_type, path, number)
