"""The grader interface every grader implements, and its verdicts and verdict cache."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from mafine.grading.registry import GRADERS
from mafine.grading.settings import GradingConfig

Pair = tuple[str, "str | None"]


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether an answer equals the gold, and a short reason a researcher can read.

    `judged` is False when the grader could not judge the pair (it cannot parse an answer, or
    refuses to evaluate it); `equal` is then False. `grader` names the grader that decided when
    a grader asks others (`auto`); None means the grader that was asked.
    """

    equal: bool
    reason: str
    judged: bool = True
    grader: str | None = None


NO_ANSWER = Verdict(False, "no answer")
IDENTICAL = Verdict(True, "identical")


class Grader(ABC):
    """A grader: `name`, and `equivalent_many`, the one method a grader must implement.

    Graders are built from the `GradingConfig` (`mafine.grading.get_grader`), are context
    managers, and `close()` releases what a grader owns (a process pool); it is safe to call
    twice, and a closed grader reopens its pool if it is used again.
    """

    name: str

    def __init__(self, config: GradingConfig | None = None) -> None:
        self.config = config or GradingConfig()

    @abstractmethod
    def equivalent_many(self, pairs: Sequence[Pair]) -> list[Verdict]:
        """One verdict per (gold, answer) pair, in order; no answer is never equal."""

    def equivalent(self, gold: str, answer: str | None) -> bool:
        """Whether `answer` means the same as `gold`; no answer is never equivalent."""
        return self.verdict(gold, answer).equal

    def verdict(self, gold: str, answer: str | None) -> Verdict:
        return self.equivalent_many([(gold, answer)])[0]

    async def equivalent_many_async(self, pairs: Sequence[Pair]) -> list[Verdict]:
        """`equivalent_many` in a thread, so an event loop never waits on sympy."""
        import asyncio

        return await asyncio.to_thread(self.equivalent_many, list(pairs))

    def settings(self) -> dict[str, Any]:
        """What metrics files record about the grader: everything that can change a verdict
        (its options, when its entry takes any; a grader with other settings adds them)."""
        options = self.config.grader_options(self.name) if self.name in GRADERS else None
        return {"name": self.name, **(options.model_dump(mode="json") if options else {})}

    def close(self) -> None:  # noqa: B027 - most graders own nothing to release
        """Release the grader's resources (its worker processes, if any)."""

    def __enter__(self) -> Grader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class VerdictCache:
    """Verdicts per (gold, answer), oldest forgotten first once `size` is reached."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._verdicts: dict[tuple[str, str], Verdict] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str]) -> Verdict | None:
        return self._verdicts.get(key)

    def put(self, key: tuple[str, str], verdict: Verdict) -> None:
        if self.size <= 0:
            return
        with self._lock:
            if len(self._verdicts) >= self.size:
                for old in list(_take(self._verdicts, max(1, self.size // 10))):
                    del self._verdicts[old]
            self._verdicts[key] = verdict

    def __len__(self) -> int:
        return len(self._verdicts)


def _take(keys: Iterable[Any], count: int) -> Iterable[Any]:
    for index, key in enumerate(keys):
        if index >= count:
            return
        yield key
