"""LaTeX answer normalisation in pure Python: the MATH (Hendrycks) rules and LaTeX to text.

`hendrycks_normalize` follows the normalisation published with the MATH data set (strip
`\\left`/`\\right`, degrees, `\\$`, `\\%`, trailing `\\text{ units}`, `x =`; canonical
`\\frac{a}{b}` and `\\sqrt{a}`; `0.5` becomes `\\frac{1}{2}`). `latex_to_text` turns an answer
into the plain text a sympy parser reads (`\\frac{a+1}{2}` becomes `(a+1)/2`, `\\sqrt{3}`
becomes `sqrt(3)`), as the PRM800K grader does with a LaTeX-to-text converter; ours is written
here so that it needs no dependency. Neither imports sympy.
"""

from __future__ import annotations

import re

# --- MATH's normalisation --------------------------------------------------------------------


def hendrycks_normalize(answer: str) -> str:
    """The MATH data set's answer normalisation (its `is_equiv` compares these strings)."""
    text = answer.replace("\n", "").replace("\\!", "").replace("\\\\", "\\")
    text = text.replace("tfrac", "frac").replace("dfrac", "frac")
    text = text.replace("\\left", "").replace("\\right", "")
    text = text.replace("^{\\circ}", "").replace("^\\circ", "")
    text = text.replace("\\$", "")
    if "\\text{ " in text:  # a trailing unit: "5 \text{ cm}"
        text = text.split("\\text{ ")[0]
    text = text.replace("\\%", "").replace("%", "")
    text = text.replace(" .", " 0.").replace("{.", "{0.")
    if not text:
        return text
    if text[0] == ".":
        text = "0" + text
    sides = text.split("=")
    if len(sides) == 2 and len(sides[0]) <= 2:  # "x = 5" or "k=5"
        text = sides[1]
    text = _fix_sqrt(text)
    text = text.replace(" ", "")
    text = _fix_fracs(text)
    if text == "0.5":
        text = "\\frac{1}{2}"
    return _fix_slash(text)


def _fix_sqrt(text: str) -> str:
    head, *rest = text.split("\\sqrt")
    parts = [head]
    for part in rest:
        if part and part[0] != "{":
            part = "{" + part[0] + "}" + part[1:]
        parts.append(part)
    return "\\sqrt".join(parts)


def _fix_fracs(text: str) -> str:
    head, *rest = text.split("\\frac")
    parts = [head]
    for part in rest:
        if not part or part[0] == "{":
            parts.append(part)
            continue
        if len(part) < 2:
            return text
        first, second, tail = part[0], part[1], part[2:]
        if second == "{":
            parts.append("{" + first + "}" + second + tail)
        else:
            parts.append("{" + first + "}{" + second + "}" + tail)
    return "\\frac".join(parts)


def _fix_slash(text: str) -> str:
    sides = text.split("/")
    if len(sides) == 2 and all(_plain_int(side) for side in sides):
        return "\\frac{" + sides[0] + "}{" + sides[1] + "}"
    return text


def _plain_int(text: str) -> bool:
    try:
        return str(int(text)) == text
    except ValueError:
        return False


# --- LaTeX to text -----------------------------------------------------------------------------

_TOKEN = re.compile(r"\\[A-Za-z]+|\\.|[{}]|[^\\{}]", re.DOTALL)

_FRACS = {"frac", "dfrac", "tfrac", "cfrac"}
_TEXTS = {
    "text",
    "textbf",
    "textit",
    "textrm",
    "texttt",
    "textnormal",
    "mathrm",
    "mathbf",
    "mathit",
    "mathsf",
    "mathtt",
    "mathnormal",
    "mbox",
    "operatorname",
    "emph",
    "boxed",
    "fbox",
    "hbox",
}
_DROPPED = {
    "left",
    "right",
    "big",
    "Big",
    "bigg",
    "Bigg",
    "bigl",
    "bigr",
    "Bigl",
    "Bigr",
    "displaystyle",
    "textstyle",
    "circ",
    "degree",
    "limits",
    "!",
}
_SYMBOLS = {
    "pi": "pi",
    "infty": "inf",
    "infinity": "inf",
    "cdot": "*",
    "times": "*",
    "ast": "*",
    "div": "/",
    "cup": "U",
    "le": "<=",
    "leq": "<=",
    "leqslant": "<=",
    "ge": ">=",
    "geq": ">=",
    "geqslant": ">=",
    "lt": "<",
    "gt": ">",
    "ne": "!=",
    "neq": "!=",
    "dots": "...",
    "ldots": "...",
    "cdots": "...",
    "%": "%",
    "$": "$",
    "&": "&",
    "{": "{",
    "}": "}",
    "#": "#",
    "_": "_",
    ",": " ",
    ";": " ",
    ":": " ",
    " ": " ",
    "\\": " ",
    "quad": " ",
    "qquad": " ",
}


def latex_to_text(latex: str) -> str:
    """Plain text for a LaTeX answer, for a sympy parser (raises RecursionError when absurd)."""
    text = _Converter(latex).sequence(inside_group=False)
    replacements = {"√": "sqrt", "π": "pi", "∞": "inf", "∪": "U", "·": "*", "×": "*"}
    for old, new in replacements.items():
        text = text.replace(old, new)
    return text.strip()


class _Converter:
    def __init__(self, latex: str) -> None:
        self.tokens = _TOKEN.findall(latex)
        self.index = 0

    def sequence(self, inside_group: bool) -> str:
        out: list[str] = []
        while self.index < len(self.tokens):
            token = self.tokens[self.index]
            if token == "}":
                self.index += 1
                if inside_group:
                    return "".join(out)
                continue
            out.append(self.item())
        return "".join(out)

    def item(self) -> str:
        token = self.tokens[self.index]
        self.index += 1
        if token == "{":
            return self.sequence(inside_group=True)
        if token in ("^", "_"):
            argument = self.argument()
            if len(argument) <= 1 or re.fullmatch(r"-?\d+", argument):
                return token + argument
            return f"{token}({argument})"
        if token.startswith("\\"):
            return self.command(token[1:])
        return token

    def argument(self) -> str:
        while self.index < len(self.tokens) and self.tokens[self.index].isspace():
            self.index += 1
        if self.index >= len(self.tokens):
            return ""
        return self.item()

    def command(self, name: str) -> str:
        if name in _FRACS:
            numerator, denominator = self.argument(), self.argument()
            return f" {_wrap(numerator)}/{_wrap(denominator)}"
        if name == "sqrt":
            degree = self.optional_argument()
            radicand = self.argument()
            if degree:
                return f"({radicand})**(1/({degree}))"
            return f"sqrt({radicand})"
        if name in _TEXTS:
            return self.argument()
        if name in _DROPPED:
            return ""
        if name in _SYMBOLS:
            return _SYMBOLS[name]
        return name

    def optional_argument(self) -> str:
        if self.index < len(self.tokens) and self.tokens[self.index] == "[":
            end = self.index + 1
            while end < len(self.tokens) and self.tokens[end] != "]":
                end += 1
            if end < len(self.tokens):
                inner = _Converter("".join(self.tokens[self.index + 1 : end]))
                self.index = end + 1
                return inner.sequence(inside_group=False)
        return ""


def _wrap(text: str) -> str:
    text = text.strip()
    if re.fullmatch(r"-?\d+(?:\.\d+)?|[A-Za-z]", text):
        return text
    return f"({text})"
