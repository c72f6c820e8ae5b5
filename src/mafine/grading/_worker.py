"""A grading worker process: `python -m mafine.grading._worker TASK SOFT_S LIMIT_S` (pool.py).

Reads JSON lines `[[index, job], ...]` from stdin, answers `[index, equal, reason]` per job on
stdout. Heavy imports (sympy, math_verify) happen here, once, before the worker says "ready".
"""

from __future__ import annotations

import json
import signal
import sys
import time
from collections.abc import Callable
from functools import lru_cache
from typing import Any

Result = tuple[bool | None, str]  # equal (None: could not judge), and why


class JobTimeout(BaseException):
    """Raised by SIGALRM inside a job; a BaseException so that `except Exception` in sympy or
    math_verify cannot swallow it."""


# --- tasks --------------------------------------------------------------------------------------


def sympy_task(job: list[list[str]]) -> Result:
    """Every (gold element, answer element) pair has a difference that simplifies to 0.

    A difference sympy cannot parse or simplify is "could not judge" (None), not "different".
    """
    judged = True
    for gold, answer in job:
        zero = _sympy_zero_difference(gold, answer)
        if zero is False:
            return False, "sympy: difference does not simplify to 0"
        judged = judged and zero is not None
    if not judged:
        return None, "sympy: could not parse or simplify"
    return True, "sympy: difference simplifies to 0"


def _sympy_zero_difference(gold: str, answer: str) -> bool | None:
    import sympy

    try:
        difference = _sympy_parse(f"({gold})-({answer})")
        if getattr(
            difference, "is_Number", False
        ):  # already evaluated: simplify would not change it
            return bool(difference == 0)
        return bool(sympy.simplify(difference) == 0)
    except JobTimeout:
        raise
    except BaseException:  # sympy raises everything from SyntaxError to RecursionError
        return None


@lru_cache(maxsize=4096)
def _transformations() -> tuple[Any, ...]:
    from sympy.parsing import sympy_parser

    return (
        *sympy_parser.standard_transformations,
        sympy_parser.implicit_multiplication_application,
        sympy_parser.rationalize,
    )


def _sympy_parse(text: str) -> Any:
    from sympy.parsing import sympy_parser

    return sympy_parser.parse_expr(text.replace("^", "**"), transformations=_transformations())


def math_verify_task(job: list[str]) -> Result:
    """HuggingFace math-verify: `verify(parse(gold), parse(answer))`, gold first."""
    from math_verify import verify

    gold, answer = job
    gold_parsed = _math_verify_parse(gold)
    answer_parsed = _math_verify_parse(answer)
    if not gold_parsed:
        return None, "math_verify: gold not parsed"
    if not answer_parsed:
        return None, "math_verify: answer not parsed"
    if verify(gold_parsed, answer_parsed, timeout_seconds=None, raise_on_error=False):
        return True, "math_verify: verified"
    return False, "math_verify: not verified"


def _math_verify_parse(text: str) -> list[Any]:
    return list(_math_verify_parse_cached(text))


@lru_cache(maxsize=4096)
def _math_verify_parse_cached(text: str) -> tuple[Any, ...]:
    from math_verify import parse

    return tuple(parse("\\boxed{" + text + "}", parsing_timeout=None, raise_on_error=False))


def sleep_task(job: list[Any]) -> Result:
    """For tests: sleep, optionally with SIGALRM blocked (a stand-in for a C-level hang)."""
    seconds, block = job
    if block:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
    try:
        time.sleep(seconds)
    finally:
        if block:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGALRM})
    return True, "slept"


def crash_task(job: Any) -> Result:
    """For tests: die the way a segfault does."""
    import os

    os._exit(3)


TASKS: dict[str, Callable[[Any], Result]] = {
    "sympy": sympy_task,
    "math_verify": math_verify_task,
    "sleep": sleep_task,
    "crash": crash_task,
}

_WARMUPS: dict[str, Callable[[], Any]] = {
    "sympy": lambda: _sympy_zero_difference("1/2", "0.5"),
    "math_verify": lambda: math_verify_task(["1/2", "0.5"]),
}


# --- running ------------------------------------------------------------------------------------


def _on_alarm(signum: int, frame: Any) -> None:
    raise JobTimeout


def run_job(
    function: Callable[[Any], Result], job: Any, soft_s: float | None, limit_s: float | None = None
) -> Result:
    """Run one job under a SIGALRM limit (when `soft_s` is set); never raises.

    `limit_s` is the limit the user set (the soft limit is a share of it), for the message.
    """
    previous = signal.getsignal(signal.SIGALRM) if soft_s is not None else None
    try:
        return _guarded(function, job, soft_s)
    except JobTimeout:  # also when the alarm lands just as the job ends
        return False, f"timeout after {limit_s or soft_s:g}s"
    finally:
        if soft_s is not None:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)


def _guarded(function: Callable[[Any], Result], job: Any, soft_s: float | None) -> Result:
    if soft_s is not None:
        signal.signal(signal.SIGALRM, _on_alarm)
        signal.setitimer(signal.ITIMER_REAL, soft_s)
    try:
        return function(job)
    except RecursionError:
        return False, "error: expression nested too deeply"
    except Exception as error:
        return False, f"error: {type(error).__name__}"
    finally:
        if soft_s is not None:
            signal.setitimer(signal.ITIMER_REAL, 0)


def _die_with_parent() -> None:
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


def main(argv: list[str]) -> None:
    task, soft_s, limit_s = argv[0], float(argv[1]), float(argv[2])
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import logging

    logging.disable(logging.CRITICAL)  # math_verify logs every timeout and parse failure
    function = TASKS[task]
    warmup = _WARMUPS.get(task)
    if warmup is not None:
        warmup()
    out = sys.stdout
    out.write('"ready"\n')
    out.flush()
    for line in sys.stdin:
        for index, job in json.loads(line):
            equal, reason = run_job(function, job, soft_s, limit_s)
            out.write(json.dumps([index, equal, reason]) + "\n")
            out.flush()


if __name__ == "__main__":
    main(sys.argv[1:])
