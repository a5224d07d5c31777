"""Answer text at its plainest: boxes and their braces, the reply after ``</think>``,
trailing punctuation, and the voting key (:func:`norm_key`) every other module compares
short texts by. Regular expressions only: no sympy.
"""

from __future__ import annotations

import re
from fractions import Fraction

BOXED_RE = re.compile(r"\\(?:boxed|fbox|framebox)\b")
THOUSANDS_RE = re.compile(r"^[-−]?\d{1,3}(?:,\d{3})+(?:\.\d+)?$")


def matching_brace(text: str, open_idx: int) -> int | None:
    """Index of the ``}`` closing the ``{`` at *open_idx* (escaped braces skipped)."""
    depth = 0
    i = open_idx
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            i += 2  # skip escaped char such as \{ or \}
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return None


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` / ``\\fbox{...}`` / ``\\boxed x``."""
    found = all_boxed(text)
    return found[-1] if found else None


def all_boxed(text: str) -> list[str]:
    """Contents of every ``\\boxed{...}`` / ``\\fbox{...}`` / ``\\boxed x``, in order."""
    found: list[str] = []
    for m in BOXED_RE.finditer(text):
        j = m.end()
        while j < len(text) and text[j] in " \t":
            j += 1
        if j < len(text) and text[j] == "{":
            close = matching_brace(text, j)
            if close is None:
                continue  # unbalanced: ignore this one
            content = text[j + 1 : close]
        elif m.end() < len(text) and text[m.end()] in " \t":
            # "\boxed 5" form: argument runs to whitespace / $ / end of line.
            rest = text[j:]
            arg = re.match(r"[^\s$]+", rest)
            if not arg:
                continue
            content = arg.group(0)
        else:
            continue
        content = content.strip()
        if content:
            found.append(content)
    return found


def after_think(text: str) -> str:
    """The reply after its reasoning: a tentative box inside ``<think>...</think>`` is no
    answer."""
    return text.rsplit("</think>", 1)[1] if "</think>" in text else text


def strip_punct(s: str) -> str:
    """Trailing sentence punctuation off, but never an ellipsis ("1, 2, 4, ...") or a
    factorial ("n!", "4!"): only a "!" after a word is punctuation."""
    while s:
        if s.endswith("..."):
            break
        if s[-1] in ".,;:?。":
            s = s[:-1].rstrip()
        elif s[-1] == "!" and re.search(r"(?<![\\A-Za-z])[A-Za-z]{2,}!$", s):
            s = s[:-1].rstrip()
        else:
            break
    return s


def norm_key(answer: str) -> str:
    """Canonical key used for voting and string matching.

    Strips whitespace, ``$``, ``\\boxed{}`` wrappers, markdown bold, a trailing
    period, thousands separators and a trailing unit-less ``\\%``; numbers
    (integers, decimals, ``a/b`` and ``\\frac{a}{b}``) become an exact
    rational in lowest terms, so ``"72"``, ``"72.0"``, ``"$72"``, ``"72."``
    and ``"144/2"`` share one key. Anything else compares as its stripped,
    whitespace-free, lower-cased text.
    """
    s = answer.strip()
    inner = last_boxed(s)
    if inner is not None:
        s = inner
    s = s.replace("**", "").replace("\\$", "").replace("$", "").replace("−", "-")
    s = re.sub(r"\\[,;! ]|\\text\{\s*\}|\\left|\\right", "", s)
    s = squash(s).rstrip(".")
    s = re.sub(r"^\\?d?frac\{(-?\d+)\}\{(-?\d+)\}$", r"\1/\2", s)
    s = re.sub(r"^\\?t?frac\{(-?\d+)\}\{(-?\d+)\}$", r"\1/\2", s)
    if THOUSANDS_RE.match(s):
        s = s.replace(",", "")
    try:
        if re.fullmatch(r"-?\d+(?:\.\d+)?(?:/-?\d+(?:\.\d+)?)?|-?\.\d+", s):
            if "/" in s:
                num, den = s.split("/")
                value = Fraction(num) / Fraction(den)
            else:
                value = Fraction(s)
            return f"num:{value.numerator}/{value.denominator}"
    except (ValueError, ZeroDivisionError):
        pass
    return "str:" + s.lower()


def squash(s: str) -> str:
    """*s* without whitespace, except between two digits ("1 2" is not 12)."""
    return re.sub(r"\s+", "", re.sub(r"(?<=\d)\s+(?=[\d.])", "␣", s))
