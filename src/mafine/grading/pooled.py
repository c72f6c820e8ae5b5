"""Base of the symbolic graders: cheap checks here, the expensive rest in a worker pool."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from importlib import metadata
from typing import Any

from mafine.grading.base import NO_ANSWER, BaseGrader, Pair, Verdict, VerdictCache
from mafine.grading.pool import InlinePool, WorkerPool, default_workers
from mafine.grading.settings import GradingConfig


class PoolGrader(BaseGrader):
    """`prepare` settles a pair at once (a Verdict) or returns a job for the `task` workers.

    Verdicts are cached per (gold, answer); a batch sends each distinct job once. The pool
    starts on the first job that needs it and is closed by `close()` (or at exit).
    """

    task = ""

    def __init__(self, config: GradingConfig | None = None) -> None:
        self.config = config or GradingConfig()
        self.max_answer_chars = self.config.max_answer_chars
        self.cache = VerdictCache(self.config.cache_size)
        self._pool: WorkerPool | InlinePool | None = None

    def prepare(self, gold: str, answer: str) -> Verdict | Any:
        raise NotImplementedError

    def equivalent_many(self, pairs: Sequence[Pair]) -> list[Verdict]:
        results: list[Verdict | None] = [None] * len(pairs)
        waiting: dict[tuple[str, str], list[int]] = {}
        jobs: dict[tuple[str, str], Any] = {}
        for index, (gold, answer) in enumerate(pairs):
            if answer is None:
                results[index] = NO_ANSWER
                continue
            key = (gold, answer)
            cached = self.cache.get(key)
            if cached is not None:
                results[index] = cached
            elif key in waiting:
                waiting[key].append(index)
            else:
                plan = self._prepare(gold, answer)
                if isinstance(plan, Verdict):
                    results[index] = plan
                    self.cache.put(key, plan)
                else:
                    waiting[key] = [index]
                    jobs[key] = plan
        if jobs:
            outcomes = self.pool().run(list(jobs.values()))
            for key, (equal, reason) in zip(jobs, outcomes, strict=True):
                verdict = Verdict(equal, reason)
                self.cache.put(key, verdict)
                for index in waiting[key]:
                    results[index] = verdict
        return [verdict if verdict is not None else NO_ANSWER for verdict in results]

    def _prepare(self, gold: str, answer: str) -> Verdict | Any:
        if len(answer) > self.max_answer_chars:
            return Verdict(False, f"answer longer than {self.max_answer_chars} characters")
        if len(gold) > self.max_answer_chars:
            return Verdict(gold == answer, "gold too long for a symbolic check; compared as text")
        return self.prepare(gold, answer)

    def pool(self) -> WorkerPool | InlinePool:
        if self._pool is None:
            workers = self.config.workers
            if workers == 0 or sys.platform == "win32":  # no select() on pipes there
                self._pool = InlinePool(self.task, self.config.timeout_s)
            else:
                count = workers if workers is not None else default_workers()
                self._pool = WorkerPool(self.task, count, self.config.timeout_s)
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()

    def base_settings(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "timeout_s": self.config.timeout_s,
            "max_answer_chars": self.max_answer_chars,
        }


def package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None
