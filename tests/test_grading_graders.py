"""The graders one by one: config, factory, laziness, and the behaviour each promises."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence

import pytest
from pydantic import ValidationError

from mafine.errors import MafineError
from mafine.grading import Grader, GradingConfig, Pair, Verdict, get_grader
from mafine.grading.plain import NumericGrader, StringGrader
from mafine.grading.registry import GRADERS

GRADER_NAMES = GRADERS.names()


def test_default_config_is_the_seeds_string_grader() -> None:
    config = GradingConfig()
    assert config.grader == "string"
    assert config.fallbacks == []
    grader = get_grader(config)
    assert grader.name == "string"
    assert isinstance(grader, StringGrader)


def test_config_rejects_unknown_keys_and_values() -> None:
    with pytest.raises(ValidationError):
        GradingConfig(grader="exact")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        GradingConfig(gradr="string")  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        GradingConfig(fallbacks=["last_number", "last_number"])  # type: ignore[list-item]
    with pytest.raises(ValidationError):
        GradingConfig(timeout_s=0)


@pytest.mark.parametrize("name", GRADER_NAMES)
def test_every_grader_has_the_interface(name: str) -> None:
    with get_grader(GradingConfig(grader=name)) as grader:
        assert grader.name == name
        settings = grader.settings()
        assert settings["name"] == name
        assert grader.equivalent("5", None) is False
        assert grader.verdict("5", None) == Verdict(False, "no answer")
        assert grader.equivalent("5", "5") is True
        assert grader.equivalent_many([]) == []


def test_import_and_cheap_checks_load_no_sympy() -> None:
    code = (
        "import sys\n"
        "from mafine.grading import GradingConfig, get_grader\n"
        "from mafine.grading.registry import GRADERS\n"
        "for name in GRADERS.names():\n"
        "    grader = get_grader(GradingConfig(grader=name))\n"
        "    grader.settings()\n"
        "    assert grader.equivalent('5', '5')\n"
        "assert get_grader(GradingConfig(grader='sympy')).equivalent('\\\\frac12', '0.5')\n"
        "heavy = [m for m in sys.modules if m.split('.')[0] in ('sympy', 'math_verify')]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_string_grader() -> None:
    grader = StringGrader()
    assert grader.equivalent("-0.3", "-.30")
    assert grader.equivalent("5", " $5$. ")
    assert grader.equivalent("-5", "−5")
    assert grader.equivalent("True", "true")
    assert not grader.equivalent("1/2", "0.5")
    assert not grader.equivalent("5", "1e999999999")  # and no billion-digit string


NUMERIC = [
    ("-2.4", "-12/5", True),
    ("-2.4", r"-\frac{12}{5}", True),
    ("-2.4", r"\frac{-12}{5}", True),
    ("0.421989476476", "0.421989476477", False),
    ("0.421989476476", "0.421989476476", True),
    ("1/3", "0.333333", False),
    ("-5, 0, 3", "-5,0,3", True),
    ("-5, 0, 3", "3, 0, -5", False),
    ("-5, 0, 3", "[-5, 0, 3]", True),
    ("[1, 2]", "1, 2", False),
    ("True", "true", True),
    ("True", "1", False),
    ("1", "True", False),
    ("1000", "1,000", True),
    ("1, 0", "1,000", True),  # a list gold: commas separate elements
    ("70000", r"\$70{,}000", True),
    ("0.00001", "1e-05", True),
    ("70000", r"7 \times 10^{4}", True),
    ("25", r"25\%", True),
    ("30", r"30^{\circ}", True),
    ("18", "18 dollars", True),
    ("3", "3 pi", False),
    ("5", "x = 5", True),
    ("5", "5/0", False),
    ("2*x**2 + 3*x", "2*x**2+3*x", True),
    ("b", "c", False),
    ("5", "1e99999", False),
]


@pytest.mark.parametrize(("gold", "answer", "equal"), NUMERIC)
def test_numeric_grader(gold: str, answer: str, equal: bool) -> None:
    assert NumericGrader().equivalent(gold, answer) is equal


def test_numeric_reasons_are_readable() -> None:
    grader = NumericGrader()
    assert grader.verdict("-2.4", "-12/5").reason == "equal numbers"
    assert grader.verdict("5", "five").reason == "answer is not a number"
    assert grader.verdict("1, 2", "1").reason == "1 numbers, gold has 2"


def test_numeric_long_answer_is_refused_quickly() -> None:
    verdict = NumericGrader(GradingConfig(max_answer_chars=100)).verdict("5", "5" * 101)
    assert verdict == Verdict(False, "answer longer than 100 characters")


def test_unknown_grader_name_is_a_clear_error() -> None:
    config = GradingConfig.model_construct(grader="exact")
    with pytest.raises(MafineError, match="unknown grader 'exact'"):
        get_grader(config)


# The three answers the PRM800K path cannot evaluate, and a wrong answer of each shape.
UNJUDGED_BY_SYMPY = [
    (r"\{1,2\}", r"\{2,1\}", True),
    ("y=2x+3", "y=3+2x", True),
    (r"\log_2 3", r"\log_{2}{3}", True),
    (r"\{1,2\}", r"\{1,3\}", False),
    ("y=2x+3", "y=2x+4", False),
]


@pytest.mark.parametrize("style", ["latex", "detect"])
@pytest.mark.parametrize(("gold", "answer", "equal"), UNJUDGED_BY_SYMPY)
def test_auto_asks_math_verify_what_sympy_cannot_judge(
    gold: str, answer: str, equal: bool, style: str
) -> None:
    config = GradingConfig(grader="auto", answer_style=style, workers=0)
    with get_grader(GradingConfig(grader="sympy", workers=0)) as sympy:
        alone = sympy.verdict(gold, answer)
        assert not alone.equal and not alone.judged and alone.reason.startswith("not checked")
    with get_grader(config) as grader:
        verdict = grader.verdict(gold, answer)
    assert (verdict.equal, verdict.judged, verdict.grader) == (equal, True, "math_verify")


def test_auto_names_the_grader_that_decided() -> None:
    with get_grader(GradingConfig(grader="auto", workers=0)) as grader:
        verdicts = grader.equivalent_many(
            [("-2.4", "-12/5"), ("x^2+2x+1", "(x+1)^2"), ("2/3", "0.666667"), ("5", None)]
        )
        assert grader.settings()["unjudged_to"]["name"] == "math_verify"
    assert [(v.equal, v.grader) for v in verdicts] == [
        (True, "numeric"),
        (True, "sympy"),
        (False, "numeric"),  # exact rationals: math-verify's 6-digit rounding never gets a say
        (False, None),
    ]


def test_auto_on_math_verify_asks_sympy_what_math_verify_cannot_judge() -> None:
    class Unparsed(Grader):
        name = "math_verify"

        def equivalent_many(self, pairs: Sequence[Pair]) -> list[Verdict]:
            return [Verdict(False, "math_verify: answer not parsed", judged=False) for _ in pairs]

    config = GradingConfig(grader="auto", answer_style="latex", auto_symbolic="math_verify")
    with get_grader(config.model_copy(update={"workers": 0})) as grader:
        grader.symbolic = Unparsed()
        assert grader.second is not None and grader.second.name == "sympy"
        verdict = grader.verdict("x^2+2x+1", "(x+1)^2")
    assert (verdict.equal, verdict.grader) == (True, "sympy")


def test_sympy_that_cannot_parse_has_not_judged() -> None:
    with get_grader(GradingConfig(grader="sympy", workers=0)) as grader:
        unparsed = grader.verdict("x+1", "x+)")
        different = grader.verdict("x+1", "x+2")
    assert (unparsed.equal, unparsed.judged) == (False, False)
    assert (different.equal, different.judged) == (False, True)
