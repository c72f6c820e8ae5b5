"""Statistics on hand-made outcomes, against values computed by hand."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest

from mafine.analysis import stats
from mafine.errors import MafineError


@dataclass
class M:
    key: str
    correct: list[bool]
    iteration: int = 0
    label: str = ""
    problem_ids: list[str] | None = None
    uses_labels: bool = False


def outcomes(right: int, n: int) -> list[bool]:
    return [True] * right + [False] * (n - right)


def test_accuracy_and_standard_error_by_hand():
    result = stats.accuracy(outcomes(7, 10))
    assert (result.n, result.correct) == (10, 7)
    assert result.accuracy == pytest.approx(0.7)
    assert result.se == pytest.approx(math.sqrt(0.7 * 0.3 / 10))  # 0.1449
    assert result.ci_low <= 0.7 <= result.ci_high


def test_bootstrap_interval_is_the_binomial_quantiles():
    # Resampling 10 of 20 correct outcomes gives Binomial(20, 1/2) / 20 accuracies:
    # P(X <= 5) = 0.021 < 0.025 < P(X <= 6) = 0.058, so the 2.5% quantile is 6/20; by symmetry
    # the 97.5% quantile is 14/20.
    result = stats.accuracy(outcomes(10, 20))
    assert (result.ci_low, result.ci_high) == pytest.approx((0.30, 0.70))


def test_bootstrap_is_seeded_and_extremes_are_degenerate():
    first = stats.accuracy(outcomes(13, 29), seed=3)
    assert stats.accuracy(outcomes(13, 29), seed=3) == first
    assert stats.accuracy([True] * 5).ci_low == 1.0
    assert stats.accuracy([False] * 5).ci_high == 0.0
    assert stats.accuracy([True] * 5).se == 0.0


def test_bootstrap_in_chunks_draws_the_same_resamples(monkeypatch):
    values = np.arange(50) % 3 == 0
    whole = stats.bootstrap_mean_ci(values, resamples=1000)
    monkeypatch.setattr(stats, "_CHUNK_CELLS", 50 * 7)  # 7 resamples per chunk
    assert stats.bootstrap_mean_ci(values, resamples=1000) == whole


def test_mcnemar_exact_by_hand():
    # b=1, c=7: 2 * P(X <= 1), X ~ Bin(8, 1/2) = 2 * 9/256
    assert stats.mcnemar_exact(1, 7) == 0.0703125
    assert stats.mcnemar_exact(7, 1) == 0.0703125
    assert stats.mcnemar_exact(0, 5) == 2 / 32
    assert stats.mcnemar_exact(3, 3) == 1.0
    assert stats.mcnemar_exact(0, 0) == 1.0
    with pytest.raises(MafineError):
        stats.mcnemar_exact(-1, 2)
    # b=20, c=40: 2 * P(X <= 20), X ~ Bin(60, 1/2), in exact integer arithmetic
    exact = 2 * sum(math.comb(60, i) for i in range(21)) / 2**60
    assert stats.mcnemar_exact(20, 40) == pytest.approx(exact, rel=1e-12)


def test_paired_test_counts_discordant_pairs():
    # 10 problems: 2 both right, 1 only method, 7 only reference, 0 both wrong.
    method = [True, True, True] + [False] * 7
    reference = [True, True, False] + [True] * 7
    test = stats.paired_test(method, reference)
    assert (test.only_method, test.only_reference, test.n) == (1, 7, 10)
    assert test.diff == pytest.approx(0.3 - 0.9)
    assert test.p_value == 0.0703125
    assert test.ci_low <= test.diff <= test.ci_high < 0
    with pytest.raises(MafineError, match="same problems"):
        stats.paired_test([True], [True, False])


def test_compare_aligns_problems_by_id():
    ids = [f"p{i}" for i in range(6)]
    base = M("base", [True, False, False, True, False, False], problem_ids=ids)
    # the same outcomes as `tuned_in_order` below, listed in reverse problem order
    tuned = M(
        "multiagent_ft", [True, True, True, True, True, False][::-1], 1, "MA", problem_ids=ids[::-1]
    )
    rows = stats.compare([base, tuned], "base")
    assert len(rows) == 1
    row = rows[0]
    assert (row.id, row.reference) == ("multiagent_ft@1", "base@0")
    # in id order: tuned = T T T T T F, base = T F F T F F: only tuned right on p1, p2, p4
    assert (row.only_method, row.only_reference) == (3, 0)
    assert row.diff == pytest.approx(3 / 6)
    assert row.p_value == 0.25  # 2 * (1/2)^3


def test_compare_refuses_different_problems_and_unknown_references():
    a = M("base", [True, False], problem_ids=["x", "y"])
    b = M("debate", [True, False], problem_ids=["x", "z"])
    with pytest.raises(MafineError, match="different problems"):
        stats.compare([a, b], "base")
    with pytest.raises(MafineError, match="no method 'majority'"):
        stats.compare([a, b], "majority")
    twice = [M("multiagent_ft", [True], 1), M("multiagent_ft", [False], 2)]
    with pytest.raises(MafineError, match="key@iteration"):
        stats.find_method(twice, "multiagent_ft")
    assert stats.find_method(twice, "multiagent_ft@2").correct == [False]


def test_summarize_methods_rows():
    rows = stats.summarize_methods(
        [
            M("base", outcomes(3, 10), label="Base"),
            M("star", outcomes(8, 10), 1, "STaR", uses_labels=True),
        ]
    )
    assert [(r.id, r.n, r.correct) for r in rows] == [("base@0", 10, 3), ("star@1", 10, 8)]
    assert rows[1].uses_labels and rows[1].label == "STaR"
    assert rows[0].se == pytest.approx(math.sqrt(0.3 * 0.7 / 10))


def test_seed_aggregate_by_hand():
    agg = stats.aggregate_seeds([0.6, 0.7, 0.8])
    assert agg.n == 3 and agg.mean == pytest.approx(0.7)
    assert agg.std == pytest.approx(0.1)  # sample sd: sqrt((0.01 + 0 + 0.01) / 2)
    half = 4.302653 * 0.1 / math.sqrt(3)  # t(0.975, 2) = 0.95 / sqrt(2 * 0.975 * 0.025)
    assert (agg.ci_low, agg.ci_high) == pytest.approx((0.7 - half, 0.7 + half))
    assert (agg.minimum, agg.maximum) == (0.6, 0.8)
    one = stats.aggregate_seeds([0.5])
    assert one.std is None and one.ci_low is None and one.mean == 0.5
    with pytest.raises(MafineError):
        stats.aggregate_seeds([])


def test_t_quantiles():
    # closed forms: df = 1 is the Cauchy, tan(pi (p - 1/2)); df = 2 is (2p - 1) / sqrt(2p (1 - p))
    assert stats.t_quantile_975(1) == pytest.approx(math.tan(math.pi * 0.475), rel=1e-12)
    assert stats.t_quantile_975(2) == pytest.approx(0.95 / math.sqrt(2 * 0.975 * 0.025), rel=1e-12)
    assert stats.t_quantile_975(30) == pytest.approx(2.0423, abs=1e-4)  # printed tables
    assert stats.t_quantile_975(60) == pytest.approx(2.0003, abs=1e-4)
    assert stats.t_quantile_975(10**6) == pytest.approx(1.95996, abs=1e-4)
    with pytest.raises(MafineError):
        stats.t_quantile_975(0)


def test_aggregate_runs_by_name():
    result = stats.aggregate_runs([{"a@0": 0.5, "b@1": 0.7}, {"a@0": 0.7}])
    assert result["a@0"].mean == pytest.approx(0.6) and result["a@0"].n == 2
    assert result["b@1"].n == 1
