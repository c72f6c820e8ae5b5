"""The response journal: every finished response, written the moment it arrives.

Keyed by the request (model, messages, sampling, sample index, seed), so a rerun, a resumed
stage or another stage asking the same question never pays for it twice. Only byte offsets
are kept in memory, so memory does not grow with the responses' text.

Every request goes through `Generator.complete`, whatever the provider: there, a request in
flight when its stage stops (Ctrl-C, SIGTERM, another request's error, a closed stdout) is
given `IN_FLIGHT_GRACE_S` to be answered, and an answer that arrives is journaled before the
stage unwinds, so the rerun does not pay for it again. Each request is noted in the sent log
(`mafine.attempts.sent_log`) before it is sent: after a SIGKILL, the requests sent and never
answered are what the next attempt counts as `unanswered_requests` in the manifest.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from mafine.artifacts import Completion, JournalEntry, Message
from mafine.attempts import SentRequest, sent_log
from mafine.errors import MafineError
from mafine.jsonl import AppendLog, iter_log, read_at
from mafine.providers.base import GenerationRequest, Provider, Sampling
from mafine.providers.limits import unanswered
from mafine.response_health import EmptyResponseWatch
from mafine.rundir import StageCounters
from mafine.seeds import request_seed

# Seconds a request in flight may take to be answered once its stage is stopping.
IN_FLIGHT_GRACE_S = 10.0


class Journal:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._offsets = {entry.key: offset for offset, entry in iter_log(path, JournalEntry)}
        self._log = AppendLog(path)
        self._sent = AppendLog(sent_log(path))

    def __contains__(self, key: str) -> bool:
        return key in self._offsets

    def get(self, key: str) -> Completion | None:
        offset = self._offsets.get(key)
        return None if offset is None else read_at(self.path, offset, JournalEntry).completion

    def put(self, key: str, model: str, completion: Completion) -> None:
        self._offsets[key] = self._log.append(
            JournalEntry(key=key, model=model, completion=completion)
        )

    def note_sent(self, key: str) -> None:
        """Record that a request is about to be sent (so a kill cannot hide that it was)."""
        self._sent.append(SentRequest(key=key))

    def close(self) -> None:
        self._log.close()
        self._sent.close()


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
        grace_s: float = IN_FLIGHT_GRACE_S,
    ) -> None:
        self.provider = provider
        self.grace_s = grace_s
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
                self.journal.note_sent(key)
                completion, stopping = await self._answer(request)
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
        if stopping:  # answered while the stage was stopping: journaled, now stop
            raise asyncio.CancelledError()
        self._watch.record(model, completion)  # journaled first: nothing paid for is lost
        return completion

    async def _answer(self, request: GenerationRequest) -> tuple[Completion, bool]:
        """The provider's answer, and whether the stage is stopping. When the stage stops
        while the request is in flight, the answer is still awaited for up to `grace_s`
        seconds (it is paid for either way), so that it can be journaled."""
        sending = asyncio.ensure_future(self.provider.generate(request))
        try:
            return await asyncio.shield(sending), False
        except asyncio.CancelledError:
            if not await _settled_within(sending, self.grace_s):
                sending.cancel()
                self.counters.unanswered += 1
                raise
            if sending.cancelled() or sending.exception() is not None:
                raise
            return sending.result(), True
        except MafineError:
            raise
        except Exception as exc:  # an HTTP client's error, untranslated: one line naming it
            line = unanswered(self.provider.name, exc)
            if line is None:
                raise
            raise MafineError(line) from exc


async def _settled_within(task: asyncio.Future[Completion], seconds: float) -> bool:
    """Wait for `task` up to `seconds`, through further cancellations (the stage is already
    stopping; they say nothing new); whether it finished."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not task.done():
        left = deadline - loop.time()
        if left <= 0:
            return False
        try:
            await asyncio.wait({task}, timeout=left)
        except asyncio.CancelledError:
            continue
    return True
