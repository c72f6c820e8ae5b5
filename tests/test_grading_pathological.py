"""Pathological answers end within the time limit as "not equal" with a reason, and the
worker pool survives hangs that ignore signals, crashes, and interpreter exit."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from mafine.grading import Grader, GradingConfig, get_grader
from mafine.grading.pool import WorkerPool
from mafine.grading.registry import GRADERS

LIMIT_S = 1.0
# Generous: a pair may take LIMIT_S, and a worker killed for it restarts (imports sympy) after.
SLACK_S = 30.0

PATHOLOGICAL = {
    "power tower": r"9^{9^{9^9}}",
    "python power tower": "9**9**9**9",
    "huge exponent": "1e999999999",
    "nested powers of ten": r"10^{10^{10}}",
    "huge factorial": "99999999!",
    "100 kB of digits": "1" * 100_000,
    "100 kB expression": "x+" * 50_000 + "x",
    "deep parentheses": "(" * 400 + "5" + ")" * 400,
    "deep fractions": "\\frac{" * 150 + "1" + "}{2}" * 150,
    "unbalanced open": r"\frac{5}{7",
    "only open braces": "{{{{{{",
    "only close braces": r"}}}}}\sqrt{",
    "lone backslash": "\\",
    "control characters": "\x00\x1b[2J\u202e5",
}
GOLDS = [r"\frac{3}{7}", "x"]  # not integers, so the strict integer rule cannot settle


# auto sends these answers to its sympy grader: one test of it below is enough.
@pytest.fixture(scope="module", params=[name for name in GRADERS.names() if name != "auto"])
def grader(request: pytest.FixtureRequest) -> Iterator[Grader]:
    with _grader(request.param) as grader:
        yield grader


def _grader(name: str) -> Grader:
    config = GradingConfig(grader=name, timeout_s=LIMIT_S, max_answer_chars=1_000_000, workers=2)
    grader = get_grader(config)
    grader.equivalent_many([("x", "x+0"), ("y", "y*1"), ("z", "z-0")])  # start both workers
    return grader


@pytest.mark.parametrize("name", PATHOLOGICAL)
def test_pathological_answer_is_not_equal_in_time(grader: Grader, name: str) -> None:
    pairs = [(gold, PATHOLOGICAL[name]) for gold in GOLDS]
    started = time.monotonic()
    verdicts = grader.equivalent_many(pairs)
    assert time.monotonic() - started < len(pairs) * LIMIT_S + SLACK_S
    for verdict in verdicts:
        assert verdict.equal is False
        assert verdict.reason


BATCH = ["9**9**9**9", "99999999!", "x+" * 50_000 + "x", r"\frac{5}{7", "{{{"]
GOOD = [("\\frac{1}{2}", "0.5"), ("-2.4", "-12/5"), ("x^2+2x+1", "(x+1)^2")]


def test_pathological_batch_does_not_poison_good_pairs(grader: Grader) -> None:
    bad = [("1/2", answer) for answer in BATCH]
    verdicts = grader.equivalent_many(bad + GOOD + bad)
    if grader.name in ("sympy", "math_verify"):
        assert [verdict.equal for verdict in verdicts[len(bad) : len(bad) + 3]] == [True] * 3
    assert not any(verdict.equal for verdict in verdicts[: len(bad)])
    assert verdicts[: len(bad)] == verdicts[len(bad) + 3 :]  # cached, not run twice


def test_auto_grader_survives_a_pathological_batch() -> None:
    with _grader("auto") as grader:
        verdicts = grader.equivalent_many([("1/2", answer) for answer in BATCH] + GOOD)
    assert [verdict.equal for verdict in verdicts] == [False] * len(BATCH) + [True] * 3


def test_unicode_minus_is_a_minus(grader: Grader) -> None:
    assert grader.equivalent("-5", "−5")
    assert grader.equivalent(r"-\frac{3}{7}", r"−\frac{3}{7}")
    assert not grader.equivalent("5", "−5")


def test_long_answers_are_refused_without_work() -> None:
    for name in ("numeric", "sympy", "math_verify"):
        with get_grader(GradingConfig(grader=name)) as grader:
            verdict = grader.verdict("1/2", "1" * 100_000)
            assert verdict.equal is False
            assert "longer than 1000" in verdict.reason


# --- the pool itself ----------------------------------------------------------------------------


def test_hang_that_ignores_signals_is_killed_and_the_rest_still_run() -> None:
    pool = WorkerPool("sleep", workers=1, timeout_s=1.0)
    try:
        jobs = [[0.0, False], [60.0, True], [0.0, False], [0.0, False]]
        started = time.monotonic()
        results = pool.run(jobs)
        assert time.monotonic() - started < SLACK_S
        assert results[1] == (False, "timeout after 1s")  # killed by the parent
        assert results[0] == results[2] == results[3] == (True, "slept")
        assert pool.restarts == 1
    finally:
        pool.close()


def test_hang_in_python_code_is_interrupted_without_a_restart() -> None:
    pool = WorkerPool("sleep", workers=2, timeout_s=1.0)
    try:
        results = pool.run([[60.0, False], [0.0, False]])
        assert results == [(False, "timeout after 1s"), (True, "slept")]
        assert pool.restarts == 0
    finally:
        pool.close()


def test_crashing_worker_is_replaced() -> None:
    pool = WorkerPool("crash", workers=2, timeout_s=5.0)
    try:
        results = pool.run([None, None, None])
        assert all(result[0] is False for result in results)
        assert all(result[1].startswith("worker crashed") for result in results)
        assert pool.restarts == 3
    finally:
        pool.close()


def test_pool_is_reusable_after_close() -> None:
    pool = WorkerPool("sleep", workers=1, timeout_s=5.0)
    assert pool.run([[0.0, False]]) == [(True, "slept")]
    pool.close()
    assert pool.run([[0.0, False]]) == [(True, "slept")]
    pool.close()


def test_interpreter_exit_does_not_wait_for_busy_workers() -> None:
    code = (
        "import threading\n"
        "from mafine.grading.pool import WorkerPool\n"
        "pool = WorkerPool('sleep', workers=2, timeout_s=600)\n"
        "pool.run([[0.0, False]])\n"
        "threading.Thread(target=pool.run, args=([[600.0, True]] * 2,), daemon=True).start()\n"
        "import time; time.sleep(1)\n"
        "print('exiting', flush=True)\n"
    )
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=SLACK_S * 2
    )
    assert done.returncode == 0, done.stderr
    assert "exiting" in done.stdout
    assert time.monotonic() - started < SLACK_S * 2


def test_inline_pool_applies_the_soft_limit() -> None:
    config = GradingConfig(grader="sympy", workers=0, timeout_s=LIMIT_S)
    with get_grader(config) as grader:
        assert grader.equivalent("x^2+2x+1", "(x+1)^2")
        assert not grader.equivalent("1/2", "99999999!")
