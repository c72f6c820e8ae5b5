"""`countdown`: the problems "What is N minus 1?" for N from `start` down to 1, in a seeded
order."""

from __future__ import annotations

from collections.abc import Iterator

from mafine.seeds import split_rng
from mafine_example_plugin.settings import CountdownSource


def records(source: CountdownSource, seed: int) -> Iterator[tuple[str, str, str]]:
    numbers = list(range(source.start, 0, -1))
    split_rng(seed).shuffle(numbers)
    for n in numbers:
        yield f"countdown/{n}", f"What is {n} minus 1?", str(n - 1)


def describe(source: CountdownSource) -> str:
    return f"countdown from {source.start}"
