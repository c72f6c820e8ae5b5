"""Grading throughput: pairs per second per grader, on numeric and on LaTeX answers.

    python benchmarks/bench_grading.py            # the full run (about 4 minutes on 2 cores)
    python benchmarks/bench_grading.py --quick    # a tenth of the pairs, once: a smoke test

Each measurement grades distinct pairs with a fresh grader whose workers were started (and
warmed on other pairs) beforehand, so it counts grading, not process start-up, and no verdict
comes from the cache. `cores` is the CPU time of this process and its workers divided by the
wall time: about 2 means both cores of a 2-core machine were busy. The reference line, printed
before and after, says how much parallelism the machine gave CPU-bound processes at the time (a
shared machine gives less than its core count). Not a test: figures depend on the machine.
Numbers for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

from mafine.grading import GradingConfig, get_grader
from mafine.grading.plain import parse_value
from mafine.grading.pool import default_workers
from mafine.grading.registry import GRADERS

Pairs = list[tuple[str, str]]


# --- data ---------------------------------------------------------------------------------------


def numeric_pairs(count: int, seed: int) -> Pairs:
    """DeepMind-style golds (integers, 1-12 decimals, fractions, lists, booleans) and answers
    that restate them (another spelling) or differ (a digit off, rounded, another number)."""
    rng = random.Random(seed)
    pairs: Pairs = []
    while len(pairs) < count:
        kind = rng.random()
        if kind < 0.3:
            value = Fraction(rng.randint(-99_999, 99_999))
            gold = str(value)
        elif kind < 0.7:
            places = rng.randint(1, 12)
            value = Fraction(rng.randint(-(10**places) * 9, 10**places * 9), 10**places)
            gold = _decimal(value, places)
        elif kind < 0.85:
            value = Fraction(rng.randint(-99, 99), rng.randint(2, 99))
            gold = f"{value.numerator}/{value.denominator}" if value.denominator > 1 else str(value)
        elif kind < 0.95:
            items = [rng.randint(-50, 50) for _ in range(rng.randint(2, 5))]
            gold = ", ".join(map(str, items))
            answer = ", ".join(map(str, items if rng.random() < 0.6 else items[::-1]))
            pairs.append((gold, answer))
            continue
        else:
            pairs.append((rng.choice(["True", "False"]), rng.choice(["True", "false", "1"])))
            continue
        pairs.append((gold, _numeric_answer(rng, value, gold)))
    return pairs


def _decimal(value: Fraction, places: int) -> str:
    sign = "-" if value < 0 else ""
    scaled = abs(value.numerator) * 10**places // value.denominator
    whole, part = divmod(scaled, 10**places)
    return f"{sign}{whole}.{part:0{places}d}".rstrip("0").rstrip(".")


def _numeric_answer(rng: random.Random, value: Fraction, gold: str) -> str:
    choice = rng.random()
    if choice < 0.25:
        return gold
    if choice < 0.45:
        return f"{value.numerator}/{value.denominator}"
    if choice < 0.55:
        return rf"\frac{{{value.numerator}}}{{{value.denominator}}}"
    if choice < 0.65:
        return gold + "0" if "." in gold else gold + ".0"
    if choice < 0.85:
        return str(value + Fraction(rng.choice([1, -1]), 10 ** rng.randint(0, 12)))
    return f"{float(value):.6g}"


def latex_pairs(count: int, seed: int) -> Pairs:
    """MATH-style answers: fractions, radicals, pi, polynomials, intervals, tuples, units."""
    rng = random.Random(seed)
    makers: list[Callable[[random.Random], tuple[str, str]]] = [
        _fraction,
        _radical,
        _pi,
        _polynomial,
        _interval,
        _pair,
        _unit,
    ]
    pairs: Pairs = []
    seen: set[tuple[str, str]] = set()
    while len(pairs) < count:
        pair = rng.choice(makers)(rng)
        if pair not in seen:
            seen.add(pair)
            pairs.append(pair)
    return pairs


def _fraction(rng: random.Random) -> tuple[str, str]:
    a, b = rng.randint(1, 97), rng.randint(2, 97)
    value = Fraction(a, b)
    gold = rf"\frac{{{value.numerator}}}{{{value.denominator}}}"
    answers = [
        rf"\dfrac{{{value.numerator}}}{{{value.denominator}}}",
        f"{value.numerator}/{value.denominator}",
        rf"\frac{{{2 * value.numerator}}}{{{2 * value.denominator}}}",
        rf"\frac{{{value.numerator + 1}}}{{{value.denominator}}}",
        f"{float(value):.4f}",
    ]
    return gold, rng.choice(answers)


def _radical(rng: random.Random) -> tuple[str, str]:
    k, m = rng.randint(2, 9), rng.choice([2, 3, 5, 6, 7, 10, 11])
    gold = rf"{k}\sqrt{{{m}}}"
    answers = [rf"\sqrt{{{k * k * m}}}", rf"{k} \sqrt {m}", rf"\sqrt{{{k * m}}}", rf"{k}\sqrt{m}"]
    return gold, rng.choice(answers)


def _pi(rng: random.Random) -> tuple[str, str]:
    a, b = rng.randint(1, 20), rng.randint(2, 12)
    gold = rf"\frac{{{a}\pi}}{{{b}}}"
    answers = [rf"\frac{{{a}}}{{{b}}}\pi", rf"{a}\pi/{b}", rf"\frac{{{a + 1}\pi}}{{{b}}}"]
    return gold, rng.choice(answers)


def _polynomial(rng: random.Random) -> tuple[str, str]:
    p, q = rng.randint(-9, 9), rng.randint(-9, 9)
    gold = f"x^2{p + q:+d}x{p * q:+d}"
    answers = [f"(x{p:+d})(x{q:+d})", f"{p * q}{p + q:+d}x+x^2", f"x^2{p + q + 1:+d}x{p * q:+d}"]
    return gold, rng.choice(answers)


def _interval(rng: random.Random) -> tuple[str, str]:
    a, b = sorted(rng.sample(range(-20, 20), 2))
    gold = rf"({a}, {b}]"
    answers = [f"({a},{b}]", rf"\left({a}, {b}\right]", f"[{a}, {b}]", rf"(-\infty, {b}]"]
    return gold, rng.choice(answers)


def _pair(rng: random.Random) -> tuple[str, str]:
    a, b, c = rng.randint(-9, 9), rng.randint(-9, 9), rng.randint(2, 9)
    gold = rf"\left({a}, \frac{{{b}}}{{{c}}}\right)"
    answers = [rf"({a}, {b}/{c})", rf"({b}/{c}, {a})", rf"({a},\tfrac{{{b}}}{{{c}}})"]
    return gold, rng.choice(answers)


def _unit(rng: random.Random) -> tuple[str, str]:
    a = rng.randint(1, 360)
    gold = rf"{a}^\circ"
    answers = [str(a), rf"{a}^{{\circ}}", rf"{a} \text{{ degrees}}", str(a + 1)]
    return gold, rng.choice(answers)


# --- measuring ----------------------------------------------------------------------------------


def cpu_seconds(grader: object) -> float:
    """CPU time of this process and of the grader's live workers (Linux /proc)."""
    total = sum(os.times()[:2])
    for pid in _worker_pids(grader):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            pass
    return total


def _worker_pids(grader: object) -> list[int]:
    """The worker processes of a grader and of the graders it asks (auto's)."""
    graders = [grader, getattr(grader, "symbolic", None), getattr(grader, "second", None)]
    pools = [getattr(inner, "_pool", None) for inner in graders]
    return [proc.popen.pid for pool in pools for proc in getattr(pool, "_procs", [])]


def measure(name: str, workers: int, pairs: Pairs, warmup: Pairs) -> tuple[float, float]:
    """(pairs per second, cores busy) for one grader on `pairs`: a fresh, warmed grader."""
    config = GradingConfig(grader=name, workers=workers, timeout_s=10, cache_size=0)
    parse_value.cache_clear()
    with get_grader(config) as grader:
        grader.equivalent_many(warmup)
        cpu, started = cpu_seconds(grader), time.perf_counter()
        grader.equivalent_many(pairs)
        wall = time.perf_counter() - started
        cores = (cpu_seconds(grader) - cpu) / wall
    return len(pairs) / wall, cores


def _burn(count: int) -> int:
    total = 0
    for number in range(count):
        total += number * number
    return total


def reference_speedup(workers: int) -> float:
    """How much faster `workers` CPU-bound processes finish `workers` loops than one process
    runs one: what the machine gives right now (2.0 on an idle 2-core machine; less when other
    work shares it). The symbolic graders' speed-up is only meaningful next to this."""
    import multiprocessing

    count = 5_000_000
    started = time.perf_counter()
    _burn(count)
    single = time.perf_counter() - started
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        pool.map(_burn, [1000] * workers)  # start-up
        started = time.perf_counter()
        pool.map(_burn, [count] * workers)
        parallel = time.perf_counter() - started
    return workers * single / parallel


# pairs per measurement: (numeric answers, LaTeX answers), sized for about 1-10 s each; a grader
# not named here is sized by whether its registry entry says it is symbolic
SIZES = {"math_verify": (2_000, 600)}
SYMBOLIC_SIZE, PLAIN_SIZE = (10_000, 3_000), (200_000, 10_000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a tenth of the pairs, one repeat")
    parser.add_argument("--graders", default=",".join(GRADERS.names()))
    parser.add_argument("--repeats", type=int, default=3, help="report the best of N runs")
    args = parser.parse_args()
    scale, repeats = (10, 1) if args.quick else (1, args.repeats)
    cores = default_workers()
    print(
        f"python {sys.version.split()[0]}, {cores} cores, {os.uname().machine}, best of {repeats}"
    )
    print(f"reference: {cores} CPU-bound processes run x{reference_speedup(cores):.2f} faster")
    print(f"{'grader':12} {'answers':8} {'workers':>7} {'pairs':>8} {'pairs/s':>10} {'cores':>6}")
    for name in args.graders.split(","):
        symbolic = GRADERS.get(name).symbolic
        sizes = SIZES.get(name, SYMBOLIC_SIZE if symbolic else PLAIN_SIZE)
        for kind, size in zip(("numeric", "latex"), sizes, strict=True):
            make = numeric_pairs if kind == "numeric" else latex_pairs
            pairs, warmup = make(size // scale, 1), make(50, 2)
            for workers in sorted({1, cores}) if symbolic else [1]:
                rate, busy = max(measure(name, workers, pairs, warmup) for _ in range(repeats))
                shown = workers if symbolic else "-"
                print(
                    f"{name:12} {kind:8} {shown:>7} {len(pairs):>8} {rate:>10,.0f} {busy:>6.2f}",
                    flush=True,
                )
    print(f"reference: {cores} CPU-bound processes run x{reference_speedup(cores):.2f} faster")


if __name__ == "__main__":
    main()
