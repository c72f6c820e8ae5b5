"""The response journal: every finished response, written the moment it arrives.

Keyed by the request (model, messages, sampling, sample index, seed), so a rerun, a resumed
stage or another stage asking the same question never pays for it twice. Only byte offsets
are kept in memory, so memory does not grow with the responses' text.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from mafine.artifacts import Completion, JournalEntry, Message
from mafine.jsonl import AppendLog, iter_log, read_at
from mafine.providers.base import GenerationRequest, Provider, Sampling
from mafine.response_health import EmptyResponseWatch
from mafine.rundir import StageCounters
from mafine.seeds import request_seed


class Journal:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._offsets = {entry.key: offset for offset, entry in iter_log(path, JournalEntry)}
        self._log = AppendLog(path)

    def __contains__(self, key: str) -> bool:
        return key in self._offsets

    def get(self, key: str) -> Completion | None:
        offset = self._offsets.get(key)
        return None if offset is None else read_at(self.path, offset, JournalEntry).completion

    def put(self, key: str, model: str, completion: Completion) -> None:
        self._offsets[key] = self._log.append(
            JournalEntry(key=key, model=model, completion=completion)
        )

    def close(self) -> None:
        self._log.close()


class Generator:
    """Sends requests through the journal: answered from it when it can, else by the provider.

    Identical requests in flight at once are sent once. Counts what each stage really sent.
    """

    def __init__(
        self,
        provider: Provider,
        journal: Journal,
        sampling: Sampling,
        run_seed: int,
        counters: StageCounters,
        empty_limit: float = 1.0,
    ) -> None:
        self.provider = provider
        self._watch = EmptyResponseWatch(empty_limit)
        self.journal = journal
        self.sampling = sampling
        self.run_seed = run_seed
        self.counters = counters
        self._in_flight: dict[str, asyncio.Future[Completion]] = {}
        self._slots = asyncio.Semaphore(provider.max_concurrency)

    async def complete(self, model: str, messages: list[Message], sample_index: int) -> Completion:
        request = GenerationRequest(
            model=model,
            messages=tuple(messages),
            sampling=self.sampling,
            sample_index=sample_index,
            seed=request_seed(self.run_seed, sample_index),
        )
        key = request.key()
        cached = self.journal.get(key)
        if cached is not None:
            self.counters.cached += 1
            self._watch.record(model, cached)
            return cached
        if key in self._in_flight:
            return await asyncio.shield(self._in_flight[key])
        future: asyncio.Future[Completion] = asyncio.get_running_loop().create_future()
        self._in_flight[key] = future
        try:
            async with self._slots:
                completion = await self.provider.generate(request)
            self.journal.put(key, model, completion)
            self.counters.requests += 1
            self.counters.usage = self.counters.usage + completion.usage
            future.set_result(completion)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters re-raise it, nobody else must
            raise
        finally:
            del self._in_flight[key]
        self._watch.record(model, completion)  # journaled first: nothing paid for is lost
        return completion
