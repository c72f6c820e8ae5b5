"""Answer extraction: the last brace-matched box, fallbacks, and the rule that fired."""

from __future__ import annotations

import time

import pytest

from mafine.grading import Extraction, extract_answer, extract_boxed

BOXED = [
    (r"The answer is \boxed{5}.", "5"),
    (r"\boxed{\frac{1}{2}}", r"\frac{1}{2}"),
    (r"nested \boxed{\frac{\sqrt{3}}{2}} end", r"\frac{\sqrt{3}}{2}"),
    (r"escaped braces \boxed{\{1, 2\}}", r"\{1, 2\}"),
    (r"first \boxed{1} then \boxed{2}", "2"),
    (r"$\boxed{-3}$", "-3"),
    (r"$\boxed 7$", "7"),
    (r"\boxed 42.", "42."),
    (r"\fbox{x+1}", "x+1"),
    (r"\boxed{ 5 }", "5"),
    (r"\boxed{\boxed{6}}", "6"),
    (r"\boxed{5} but then \boxed{\frac{1}{2}", "5"),  # unbalanced last box: the one before
    (r"\boxed{}", None),
    (r"\boxed", None),
    ("no box at all: 5", None),
    ("", None),
    (r"\boxedx{5}", None),
]


@pytest.mark.parametrize(("text", "expected"), BOXED)
def test_extract_boxed(text: str, expected: str | None) -> None:
    assert extract_boxed(text) == expected


def test_boxed_rule_is_recorded() -> None:
    assert extract_answer(r"so \boxed{3}") == Extraction("3", "boxed")


def test_no_answer_without_fallbacks() -> None:
    assert extract_answer("The final answer is 3.") == Extraction(None, "none")
    assert extract_answer(None) == Extraction(None, "none")


FALLBACKS = [
    ("The final answer is 3.", Extraction("3", "final_answer")),
    ("The answer is $5$.", Extraction("5", "final_answer")),
    (r"**Final Answer:** \(\frac{1}{2}\)", Extraction(r"\frac{1}{2}", "final_answer")),
    ("Answer: -3, 1, 2\nsome more text", Extraction("-3, 1, 2", "final_answer")),
    ("we get x = 3 and then 4,000 apples", Extraction("4,000", "last_number")),
    ("it is −7 degrees", Extraction("-7", "last_number")),
    ("3-5 equals", Extraction("5", "last_number")),
    ("ratio 3/4 holds", Extraction("3/4", "last_number")),
    ("nothing numeric here", Extraction(None, "none")),
    (r"boxed wins: \boxed{9}; final answer is 3", Extraction("9", "boxed")),
]


@pytest.mark.parametrize(("text", "expected"), FALLBACKS)
def test_fallbacks(text: str, expected: Extraction) -> None:
    assert extract_answer(text, ["final_answer", "last_number"]) == expected


def test_fallback_order_is_the_configs() -> None:
    text = "The answer is 3 because 4 > 2"
    assert extract_answer(text, ["last_number", "final_answer"]).rule == "last_number"
    assert extract_answer(text, ["final_answer", "last_number"]).answer == "3 because 4 > 2"


def test_unknown_fallback_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown extraction rule"):
        extract_answer("x", ["guess"])


PATHOLOGICAL = {
    "100 kB of digits": "1" * 100_000,
    "20,000 unbalanced boxes": "\\boxed{" * 20_000,
    "20,000 boxes closed at the end": "\\boxed{" * 20_000 + "}" * 20_000,
    "100 kB of braces": "{" * 50_000 + "}" * 50_000,
    "answer is, repeated": "the answer is " * 10_000,
    "bare boxes": "\\boxed " * 20_000,
}


@pytest.mark.parametrize("name", PATHOLOGICAL)
def test_pathological_text_is_linear(name: str) -> None:
    started = time.monotonic()
    extract_answer(PATHOLOGICAL[name], ["final_answer", "last_number"])
    assert time.monotonic() - started < 10  # linear: milliseconds; quadratic: minutes


def test_nested_boxes_all_closed() -> None:
    text = "\\boxed{" * 3 + "7" + "}" * 3
    assert extract_boxed(text) == "7"
