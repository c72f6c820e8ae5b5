"""Issue 19, items 1-12: money and processes. Requests in flight when a stage stops, a run's
identity, sweeps, concurrent writers, secrets in URLs, spend of compared methods, relative
run directories, signals and closed stdout in every command, the `fake-gemini` command."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from mafine import attempts, journal
from mafine.artifacts import Completion, JournalEntry, Message, Usage
from mafine.errors import MafineError
from mafine.journal import Generator, Journal
from mafine.providers.base import GenerationRequest, ProviderBase, Sampling
from mafine.rundir import StageCounters
from mafine.stages.debate import gather_or_stop


# 1. Requests in flight when a stage stops ---------------------------------------------------
@dataclass
class GatedProvider(ProviderBase):
    """Answers only once `release` is set; request `fail_index` fails at once instead."""

    name: str = "gated"
    max_concurrency: int = 4
    fail_index: int | None = None
    release: asyncio.Event = field(default_factory=asyncio.Event)
    arrived: list[int] = field(default_factory=list)

    async def generate(self, request: GenerationRequest) -> Completion:
        self.arrived.append(request.sample_index)
        if request.sample_index == self.fail_index:
            raise MafineError("the service refused this one")
        await self.release.wait()
        return Completion(text=f"answer {request.sample_index}", usage=Usage(total_tokens=3))


def _generator(tmp_path: Path, provider: GatedProvider, grace_s: float = 30.0) -> Generator:
    sampling = Sampling(temperature=1.0, top_p=1.0, max_output_tokens=10)
    store = Journal(tmp_path / "journal.jsonl")
    return Generator(provider, store, sampling, 0, StageCounters(), grace_s=grace_s)


def _journaled(tmp_path: Path) -> list[JournalEntry]:
    path = tmp_path / "journal.jsonl"
    return [JournalEntry.model_validate_json(line) for line in path.read_text().splitlines()]


def _ask(generator: Generator, count: int) -> asyncio.Future[list[Completion]]:
    question = [Message(role="user", content="2+2?")]
    return asyncio.ensure_future(
        gather_or_stop(*(generator.complete("m", question, index) for index in range(count)))
    )


@pytest.mark.parametrize("stop", ["cancelled", "a sibling failed"])
def test_answers_that_arrive_while_a_stage_stops_are_journaled(tmp_path, monkeypatch, stop):
    """Whatever stops a stage (Ctrl-C and SIGTERM cancel it; any error stops its siblings),
    an answer the service gives within the grace period is journaled before it unwinds."""
    provider = GatedProvider(fail_index=3 if stop == "a sibling failed" else None)
    generator = _generator(tmp_path, provider)
    stopping = journal._settled_within

    async def release_once_stopping(task, seconds):  # answers come after the stop began
        provider.release.set()
        return await stopping(task, seconds)

    monkeypatch.setattr(journal, "_settled_within", release_once_stopping)

    async def scenario() -> None:
        asked = _ask(generator, 4)
        while len(provider.arrived) < 4:
            await asyncio.sleep(0)
        if stop == "cancelled":
            asked.cancel()
        with pytest.raises((asyncio.CancelledError, MafineError)):
            await asked

    asyncio.run(scenario())
    generator.journal.close()
    answered = {entry.completion.text for entry in _journaled(tmp_path)}
    expected = {f"answer {i}" for i in range(4) if i != provider.fail_index}
    assert answered == expected
    assert generator.counters.requests == len(expected)
    assert generator.counters.unanswered == 0


def test_an_answer_later_than_the_grace_period_is_counted_unanswered(tmp_path):
    provider = GatedProvider()  # never released
    generator = _generator(tmp_path, provider, grace_s=0.05)

    async def scenario() -> None:
        asked = _ask(generator, 3)
        while len(provider.arrived) < 3:
            await asyncio.sleep(0)
        asked.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asked

    asyncio.run(scenario())
    generator.journal.close()
    assert not (tmp_path / "journal.jsonl").exists()
    assert generator.counters.unanswered == 3
    sent = (tmp_path / "journal.sent.jsonl").read_text().splitlines()
    assert len(sent) == 3


def test_a_killed_attempt_counts_the_requests_it_left_in_flight(tmp_path):
    """After SIGKILL the stage entry is left `running`; the next attempt counts what the
    killed one sent: answered (journaled) and unanswered (noted as sent, never journaled)."""
    path = tmp_path / "journal.jsonl"
    before = Journal(path)
    before.note_sent("old")
    before.put("old", "m", Completion(text="x", usage=Usage(total_tokens=1)))
    before.close()
    entry = {
        "status": "running",
        attempts.JOURNAL_OFFSET: attempts.log_size(path),
        attempts.SENT_OFFSET: attempts.log_size(attempts.sent_log(path)),
    }
    killed = Journal(path)
    for key in ("a", "b", "c"):
        killed.note_sent(key)
    killed.put("a", "m", Completion(text="a", usage=Usage(total_tokens=2)))
    killed.close()
    spent = attempts.earlier_attempts(entry, path)
    assert (spent.attempts, spent.requests, spent.unanswered) == (1, 1, 2)
    assert spent.usage.total_tokens == 2
