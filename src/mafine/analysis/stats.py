"""Statistics of per-problem outcomes: accuracy with its uncertainty, paired tests, seeds.

Definitions (docs/evaluation.md repeats them for readers of a report):

- accuracy: the share of problems answered correctly, p = k / n.
- SE: the binomial standard error sqrt(p (1 - p) / n).
- 95% CI: a percentile bootstrap over problems (resample the n outcomes with replacement,
  10,000 times by default, seeded; the 2.5% and 97.5% quantiles of the resampled accuracy).
- paired test between two methods on the SAME problems: the exact two-sided McNemar test on the
  discordant pairs (b: only the method right, c: only the reference right; p = P(X <= min(b, c))
  doubled, X ~ Binomial(b + c, 1/2), capped at 1), and a paired bootstrap interval of the
  difference in accuracy (problems resampled jointly for both methods).
- across seeds: mean, sample standard deviation (n - 1 in the denominator), n, min, max and a
  two-sided 95% Student-t interval mean +- t(0.975, n - 1) * sd / sqrt(n).

Everything here is deterministic: the bootstrap draws come from `numpy.random.default_rng(seed)`.
The t quantiles and the binomial test are scipy's (`scipy.stats.t`, `scipy.stats.binomtest`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Protocol

import numpy as np
from scipy import stats as scipy_stats

from mafine.errors import MafineError

RESAMPLES = 10_000
BOOTSTRAP_SEED = 0
CONFIDENCE = 0.95
# Most draws (resamples x problems) held in memory at once; larger bootstraps go in chunks.
_CHUNK_CELLS = 4_000_000


class Outcomes(Protocol):
    """What the statistics need of a method: who it is and its per-problem outcomes."""

    key: str
    label: str
    iteration: int
    uses_labels: bool
    correct: list[bool]
    problem_ids: list[str] | None


@dataclass(frozen=True)
class Accuracy:
    n: int
    correct: int
    accuracy: float
    se: float
    ci_low: float
    ci_high: float


@dataclass(frozen=True)
class MethodRow:
    """One method (at one iteration) of a run: its accuracy with SE and bootstrap CI."""

    id: str
    key: str
    label: str
    iteration: int
    uses_labels: bool
    n: int
    correct: int
    accuracy: float
    se: float
    ci_low: float
    ci_high: float


@dataclass(frozen=True)
class PairedTest:
    """A method against a reference on the same problems; diff = method - reference."""

    n: int
    diff: float
    ci_low: float
    ci_high: float
    only_method: int  # b: the method right, the reference wrong
    only_reference: int  # c: the reference right, the method wrong
    p_value: float


@dataclass(frozen=True)
class ComparisonRow:
    id: str
    key: str
    label: str
    iteration: int
    reference: str
    n: int
    diff: float
    ci_low: float
    ci_high: float
    only_method: int
    only_reference: int
    p_value: float


@dataclass(frozen=True)
class SeedAggregate:
    """One quantity over n seeds: mean, sample sd, t-interval (None for n = 1), min, max."""

    n: int
    mean: float
    std: float | None
    ci_low: float | None
    ci_high: float | None
    minimum: float
    maximum: float
    values: tuple[float, ...]


# Single methods ---------------------------------------------------------------------------
def method_id(key: str, iteration: int) -> str:
    """The name of a method at an iteration, as the metrics document's maps use it."""
    return f"{key}@{iteration}"


def accuracy(
    correct: Sequence[bool], *, resamples: int = RESAMPLES, seed: int = BOOTSTRAP_SEED
) -> Accuracy:
    """Accuracy, binomial SE and percentile-bootstrap 95% CI of per-problem outcomes."""
    outcomes = _outcomes(correct)
    n = outcomes.size
    if n == 0:
        raise MafineError("accuracy of no problems is undefined")
    p = float(outcomes.mean())
    low, high = bootstrap_mean_ci(outcomes, resamples=resamples, seed=seed)
    return Accuracy(
        n=n,
        correct=int(outcomes.sum()),
        accuracy=p,
        se=math.sqrt(p * (1.0 - p) / n),
        ci_low=low,
        ci_high=high,
    )


def bootstrap_mean_ci(
    values: Sequence[float] | np.ndarray,
    *,
    resamples: int = RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
    confidence: float = CONFIDENCE,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of `values` (resampled with replacement)."""
    data = np.asarray(values, dtype=float)
    if data.ndim != 1 or data.size == 0:
        raise MafineError("the bootstrap needs a non-empty list of values")
    means = _bootstrap_means(data, resamples, seed)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return float(low), float(high)


def _bootstrap_means(data: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    if resamples < 1:
        raise MafineError("the bootstrap needs at least one resample")
    rng = np.random.default_rng(seed)
    n = data.size
    rows = max(1, _CHUNK_CELLS // n)
    means = np.empty(resamples)
    for start in range(0, resamples, rows):
        stop = min(resamples, start + rows)
        indices = rng.integers(0, n, size=(stop - start, n))
        means[start:stop] = data[indices].mean(axis=1)
    return means


def summarize_methods(
    methods: Sequence[Outcomes], *, resamples: int = RESAMPLES, seed: int = BOOTSTRAP_SEED
) -> list[MethodRow]:
    """One row per method, in the given order: accuracy, SE, 95% bootstrap CI, n."""
    rows = []
    for method in methods:
        result = accuracy(method.correct, resamples=resamples, seed=seed)
        rows.append(
            MethodRow(
                id=method_id(method.key, method.iteration),
                key=method.key,
                label=method.label,
                iteration=method.iteration,
                uses_labels=method.uses_labels,
                **asdict(result),
            )
        )
    return rows


# Pairs ------------------------------------------------------------------------------------
def mcnemar_exact(only_a: int, only_b: int) -> float:
    """Exact two-sided McNemar p-value from the discordant counts (binomial test, p = 1/2)."""
    if only_a < 0 or only_b < 0:
        raise MafineError("discordant counts cannot be negative")
    n = only_a + only_b
    if n == 0:
        return 1.0
    return float(scipy_stats.binomtest(min(only_a, only_b), n, 0.5).pvalue)


def paired_test(
    method: Sequence[bool],
    reference: Sequence[bool],
    *,
    resamples: int = RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> PairedTest:
    """Method against reference on the same problems (same order): diff, paired CI, McNemar."""
    a = _outcomes(method)
    b = _outcomes(reference)
    if a.size != b.size:
        raise MafineError(
            f"a paired test needs the same problems: {a.size} outcomes against {b.size}"
        )
    if a.size == 0:
        raise MafineError("a paired test of no problems is undefined")
    only_method = int(np.sum(a & ~b))
    only_reference = int(np.sum(~a & b))
    differences = a.astype(float) - b.astype(float)
    low, high = bootstrap_mean_ci(differences, resamples=resamples, seed=seed)
    return PairedTest(
        n=int(a.size),
        diff=float(differences.mean()),
        ci_low=low,
        ci_high=high,
        only_method=only_method,
        only_reference=only_reference,
        p_value=mcnemar_exact(only_method, only_reference),
    )


def find_method(methods: Sequence[Outcomes], name: str) -> Outcomes:
    """The method named `key@iteration`, or `key` when exactly one method has that key."""
    if "@" in name:
        key, _, iteration = name.rpartition("@")
        found = [m for m in methods if m.key == key and str(m.iteration) == iteration]
    else:
        found = [m for m in methods if m.key == name]
    if not found:
        known = ", ".join(method_id(m.key, m.iteration) for m in methods) or "none"
        raise MafineError(f"no method {name!r} in the metrics (known: {known})")
    if len(found) > 1:
        ids = ", ".join(method_id(m.key, m.iteration) for m in found)
        raise MafineError(f"{name!r} names several methods ({ids}): write key@iteration")
    return found[0]


def aligned(method: Outcomes, reference: Outcomes) -> tuple[list[bool], list[bool]]:
    """Both methods' outcomes on the same problems, in the same order.

    With problem ids the pairs are matched by id and both must cover the same problems; without
    them the lists are taken as already aligned and must have the same length.
    """
    if method.problem_ids is None or reference.problem_ids is None:
        if len(method.correct) != len(reference.correct):
            raise MafineError(
                f"{method_id(method.key, method.iteration)} and "
                f"{method_id(reference.key, reference.iteration)} cover different problems "
                "and name none: no paired test"
            )
        return list(method.correct), list(reference.correct)
    ours = dict(zip(method.problem_ids, method.correct, strict=True))
    theirs = dict(zip(reference.problem_ids, reference.correct, strict=True))
    if set(ours) != set(theirs):
        missing = len(set(ours) ^ set(theirs))
        raise MafineError(
            f"{method_id(method.key, method.iteration)} and "
            f"{method_id(reference.key, reference.iteration)} cover different problems "
            f"({missing} not shared): no paired test"
        )
    order = list(reference.problem_ids)
    return [ours[pid] for pid in order], [theirs[pid] for pid in order]


def compare(
    methods: Sequence[Outcomes],
    reference: str,
    *,
    resamples: int = RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> list[ComparisonRow]:
    """Every other method against `reference` (`key` or `key@iteration`): diff, CI, p."""
    ref = find_method(methods, reference)
    ref_id = method_id(ref.key, ref.iteration)
    rows = []
    for method in methods:
        if method is ref:
            continue
        ours, theirs = aligned(method, ref)
        test = paired_test(ours, theirs, resamples=resamples, seed=seed)
        rows.append(
            ComparisonRow(
                id=method_id(method.key, method.iteration),
                key=method.key,
                label=method.label,
                iteration=method.iteration,
                reference=ref_id,
                **asdict(test),
            )
        )
    return rows


# Seeds ------------------------------------------------------------------------------------
def t_quantile_975(df: int) -> float:
    """The 97.5% quantile of Student's t with `df` degrees of freedom."""
    if df < 1:
        raise MafineError("a t quantile needs at least one degree of freedom")
    return float(scipy_stats.t.ppf(0.975, df))


def aggregate_seeds(values: Sequence[float]) -> SeedAggregate:
    """Mean, sample sd, 95% t-interval (n >= 2), min and max of one quantity over seeds."""
    data = [float(v) for v in values]
    if not data:
        raise MafineError("no values to aggregate across seeds")
    n = len(data)
    mean = sum(data) / n
    if n == 1:
        std = low = high = None
    else:
        std = math.sqrt(sum((v - mean) ** 2 for v in data) / (n - 1))
        half = t_quantile_975(n - 1) * std / math.sqrt(n)
        low, high = mean - half, mean + half
    return SeedAggregate(
        n=n,
        mean=mean,
        std=std,
        ci_low=low,
        ci_high=high,
        minimum=min(data),
        maximum=max(data),
        values=tuple(data),
    )


def aggregate_runs(runs: Sequence[Mapping[str, float]]) -> dict[str, SeedAggregate]:
    """Per name (e.g. a method id), the aggregate over the runs that have it."""
    names: dict[str, list[float]] = {}
    for run in runs:
        for name, value in run.items():
            names.setdefault(name, []).append(value)
    return {name: aggregate_seeds(values) for name, values in names.items()}


def _outcomes(correct: Sequence[bool]) -> np.ndarray:
    array = np.asarray(list(correct))
    if array.size and array.dtype != bool:
        if not np.isin(array, (0, 1)).all():
            raise MafineError("outcomes must be true/false (or 1/0)")
        array = array.astype(bool)
    return array.astype(bool).reshape(-1)
