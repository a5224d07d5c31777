"""Verify math answers in teacher responses against reference answers.

Three layers:

* :func:`extract_answer` pulls the final answer out of a free-form response
  (``\\boxed{...}``, GSM8K ``#### X``, "the answer is X", or the last number).
* :func:`verify_one` compares that answer with a reference and returns
  ``"correct"``, ``"wrong"`` or ``"unverifiable"``. Answer and reference take the
  same steps (:func:`_forms`): markup, spacing and trailing punctuation off (never a
  factorial ``n!`` nor an ellipsis), "X, or equivalently Y" / "X (i.e., Y)" split
  into forms of one answer, neutral words off ("The final answer is", "There are",
  "The limit exists and is equal to", "is the only possible value", a unit such as
  "98 values"), qualifiers kept ("at least", "not", ``\\ge``), then the candidates
  a form lists ("376 and 625", "x=6, y=5", ``\\{1, 4, 9\\}``, ``x=\\pm 1``). An answer
  listing more candidates than the reference has parts, however it lists them
  ("and", "or", commas, a set, ``\\pm``, several boxes or "final answer"s), hedges
  and is wrong; fewer is incomplete, wrong. Each value is parsed by sympy
  (plain text: ``floor(n/2)!``, ``C(10, 5)``, ``sum_(k=1)^n 1/k``) or math-verify
  (LaTeX) and compared by ``math_verify.verify``; a value neither parses
  faithfully (an ellipsis, words it would read as a product of letters, a
  relation such as ``\\mid``) is never silently equal: ``"unverifiable"`` unless
  the two texts are the same. Worded answers ("No", "No integer solutions")
  compare as normalised text, yes/no by their leading word. ``"wrong"`` needs both
  sides understood; every failure to extract, parse or compare (including
  time-outs and crashes) is ``"unverifiable"``.

  Rules against answers that hedge or slip past the parser (a reward hangs on
  ``"correct"``): only the text after the last ``</think>`` is the reply; every answer
  it states (each box, "####", "the answer is", "final answer", "Answer:") must agree,
  and a number offered right before a box ("6 or \\boxed{5}") or after the last stated
  answer ("Or 6", "Actually, 6") makes it a hedge (``"unverifiable"`` when nothing says
  so); with none stated, the last sentence must offer one number. A box may hold only
  known value-building LaTeX (:data:`_LATEX_OK`): ``\\vert``, ``\\not``, ``\\tag``, a
  nested or unbalanced box, two numbers side by side ("1 2") are no value. A percent is
  the fraction it names (25% = 0.25 = 1/4); on one side only it may also be a unit (50%
  answers a reference of 50, the answer to "what percent"). A decimal answer must equal an exact
  reference exactly (math-verify rounds to 6 places), or an "approximately" form within
  half its last digit (a relative tolerance). "or" between the parts of a conjunctive
  answer ("376 and 625", "x=6, y=5") hedges; a set or list is no tuple. Words the
  answer adds must be the reference's own or neutral ("30 cm" for "30 m", "98 wrong",
  "Yes, it is impossible" are ``"unverifiable"``; against a bare number only hedging
  words count, so "72 clips" for 72 passes); an ellipsis or "etc." the reference lacks
  is wrong.
* :func:`verify_many` runs :func:`verify_one` over a batch in worker
  *processes*. ``math_verify`` relies on ``signal.alarm``, which only works in
  a process's main thread, and some expressions (``9^{9^{9^9}}``) hang inside
  C-level big-integer arithmetic where no signal can interrupt them. Each
  worker therefore runs items in its main thread under a per-item
  ``setitimer`` alarm, and the parent hard-kills (and replaces) a worker whose
  current item overruns the deadline; that item is reported
  ``("unverifiable", "timeout")`` and the rest of the batch carries on.

:func:`majority_vote` implements self-consistency over extracted answers.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import multiprocessing
import re
import signal
import sys
import threading
import time
import types
from collections import deque
from fractions import Fraction
from multiprocessing.connection import wait as _wait_connections
from typing import Any, Callable, Literal

__all__ = [
    "Outcome",
    "extract_answer",
    "verify_one",
    "verify_many",
    "majority_vote",
    "normalise_answer",
]

Outcome = Literal["correct", "wrong", "unverifiable"]
_NUMBER_WORDS_LIST = "zero one two three four five six seven eight nine ten eleven twelve".split()

# ---------------------------------------------------------------------------
# Answer extraction
# ---------------------------------------------------------------------------

_BOXED_RE = re.compile(r"\\(?:boxed|fbox|framebox)\b")
_GSM8K_RE = re.compile(r"####\s*([^\n]+)")
_ANSWER_IS_RE = re.compile(
    r"(?:the\s+(?:final\s+)?answer\s+is|final\s+answer|\banswers?(?=\s*[:：]))\s*(?:is)?\s*"
    r"[:：]?\s*(.+)",
    re.IGNORECASE,
)
# A number: optional sign, either thousands-grouped digits or plain digits,
# optional decimal part, optionally followed by "/denominator".
_NUMBER_RE = re.compile(
    r"(?<![\w.])[-−]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:\s*/\s*\d+(?:\.\d+)?)?(?![\w])"
    r"|(?<![\w.])[-−]?\.\d+(?![\w])"
)
_THOUSANDS_RE = re.compile(r"^[-−]?\d{1,3}(?:,\d{3})+(?:\.\d+)?$")


def _matching_brace(text: str, open_idx: int) -> int | None:
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


def _last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` / ``\\fbox{...}`` / ``\\boxed x``."""
    found = _all_boxed(text)
    return found[-1] if found else None


def _all_boxed(text: str) -> list[str]:
    """Contents of every ``\\boxed{...}`` / ``\\fbox{...}`` / ``\\boxed x``, in order."""
    found: list[str] = []
    for m in _BOXED_RE.finditer(text):
        j = m.end()
        while j < len(text) and text[j] in " \t":
            j += 1
        if j < len(text) and text[j] == "{":
            close = _matching_brace(text, j)
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


#: Disjunctions math-verify accepts when any side matches: an answer that offers
#: alternatives the reference does not is hedging, not solving. Spelt in LaTeX (``\lor``,
#: ``\vee``) or in words: "The answer is 4 or 5" parses as 4 (the first number) and would
#: pass against 4.
_DISJUNCTION_RE = re.compile(r"\\(?:lor|vee)\b|\bor\b", re.IGNORECASE)


#: The number a stated answer ("the answer is ...") starts with, after markup.
_STATED_NUMBER_RE = re.compile(r"[\s$\\(]*([-+\u2212]?\d[\d,]*(?:\.\d+)?(?:/\d+)?)")
#: Right after that number, another offered beside it: "and 73", ", or maybe 73", a new line
#: starting "or 73". Words between the connective and the number are allowed, a digit is not.
_ALTERNATIVE_RE = re.compile(r"[ \t,;]*\n?[ \t]*(?:or|and|nor|vs\.?|versus)\b[^\d\n]{0,24}?"
                             r"[-+\u2212]?\$?\d[\d,.]*", re.IGNORECASE)


def _distinct(answers: list[str], math: bool = False) -> list[str]:
    """The different answers among *answers*, in order: the same one twice counts once, and
    with *math* so does the same value written twice ("2^{n-1}", "\\frac{2^n}{2}")."""
    keys: set[str] = set()
    out: list[str] = []
    for a in answers:
        k = _norm_key(_canon(a))
        if k not in keys and not (math and any(_judge(a, b, "boxed")[0] == "correct" and
                                               _judge(b, a, "boxed")[0] == "correct"
                                               for b in out)):
            out.append(a)
        keys.add(k)
    return out


def _distinct_boxes(text: str, math: bool = False) -> list[str]:
    """The different ``\\boxed{}`` answers in *text*, in order (see :func:`_distinct`)."""
    return _distinct(_all_boxed(text), math)


def _hedge(response: str, answer: str, reference: str, *, math: bool = False) -> str | None:
    """Why the answer hedges between alternatives, if it does: more different boxed
    answers than the reference has parts (the last one would otherwise win, so boxing every
    candidate would pass), ``\\lor`` / ``\\vee`` / "or" between candidates when the
    reference has none, another number offered beside the stated one, a box taken back in
    words, or more candidates listed than the reference has parts (an empty reference counts
    as one part for the first three and skips the last). With *math*, answers that are
    the same value written differently count once, and every "final answer" stated must
    agree with the boxes (math-verify runs: call it under a time limit)."""
    ref_text = _reference_text(reference) if reference and reference.strip() else ""
    ref_values = _values_of(ref_text)
    if len(_all_boxed(reference)) < 2:
        boxed = _distinct_boxes(response, math)
        if len(boxed) > 1 and _values_of(" and ".join(boxed)) > ref_values:
            shown = ", ".join(boxed[:3]) + (", ..." if len(boxed) > 3 else "")
            return f"hedged: {len(boxed)} different boxed answers ({shown})"
    # "C(10, 5), or equivalently 252" is one answer written twice, not a disjunction; "x = 1
    # or x = -1" lists the two parts of "x=±1" (the count of parts decides, in _judge)
    if ref_values <= 1 and _DISJUNCTION_RE.search(_FORMS_RE.sub(" ", answer)) and \
            not _DISJUNCTION_RE.search(_FORMS_RE.sub(" ", reference)):
        return f"hedged: the answer offers alternatives ({answer!r})"
    plain = response.replace("**", "")
    stated = list(_ANSWER_IS_RE.finditer(plain))
    if stated and ref_values <= 1:
        # "The answer is 72 and 73", "... is 72\nor maybe 73": the answer is read as the
        # first number, so a second one offered beside it must make it a hedge
        m = stated[-1]
        lead = _STATED_NUMBER_RE.match(m.group(1))
        if lead:
            alt = _ALTERNATIVE_RE.match(plain, m.start(1) + lead.end())
            if alt and not _FORMS_RE.search(plain[m.start(1):alt.end()]):
                return (f"hedged: the answer offers another number beside {lead.group(1)} "
                        f"({plain[m.start(1):alt.end()].strip()!r})")
    # every stated answer must agree: "The answer is 5. ... The answer is 6.", "#### 6
    # \boxed{5}", "ANSWER: 6\nANSWER: 5" (boxes: with *math*, above otherwise)
    said = [a for start, _, a in _stated(response)
            if math or not _BOXED_RE.match(response, start)]
    finals = _distinct(said, math)
    if len(finals) > 1 and _values_of(" and ".join(finals)) > ref_values:
        return f"hedged: {len(finals)} different final answers ({', '.join(finals[:3])})"
    boxes = _all_boxed(response)
    if boxes:  # "\boxed{72}. Wait, that's wrong: the answer is 73." takes the box back
        tail = response[response.rfind(boxes[-1]) + len(boxes[-1]):].replace("**", "")
        for m in _ANSWER_IS_RE.finditer(tail):
            lead = _NUMBER_RE.match(_clean_tail(m.group(1)))
            if lead and _norm_key(_normalise_number_text(lead.group(0))) != \
                    _norm_key(_normalise_number_text(boxes[-1])):
                return (f"hedged: after the boxed answer {boxes[-1]} the text gives "
                        f"another ({lead.group(0)})")
        for m in _GSM8K_RE.finditer(tail):
            said = _clean_tail(m.group(1))
            if _norm_key(_canon(said)) != _norm_key(_canon(boxes[-1])):
                return (f"hedged: after the boxed answer {boxes[-1]} the text gives "
                        f"another ({said})")
    ref_forms = _forms(ref_text, answer=False) if ref_text else []
    if ref_forms and not any(f.bare_yesno for f in ref_forms):  # "Yes, there are no ..."
        n = max((f.values for f in _forms(answer, answer=True)), default=1)
        if n > ref_values:
            return (f"hedged: the answer offers {n} candidates ({answer!r}) where the "
                    f"reference has {ref_values}")
    return None


def _after_think(text: str) -> str:
    """The reply after its reasoning: a tentative box inside ``<think>...</think>`` is no
    answer."""
    return text.rsplit("</think>", 1)[1] if "</think>" in text else text


def _stated(text: str) -> list[tuple[int, int, str]]:
    """Every answer *text* states, as ``(start, end, answer)`` in order of *start*: each
    box, each "#### X", each "the answer is X" / "final answer: X" / "Answer: X" (its first
    sentence). Two that differ are a hedge; what follows the last one must not take it
    back."""
    out = []
    for m in _BOXED_RE.finditer(text):
        j = m.end()
        while j < len(text) and text[j] in " \t":
            j += 1
        close = _matching_brace(text, j) if j < len(text) and text[j] == "{" else None
        if close is not None:
            out.append((m.start(), close + 1, text[j + 1:close].strip()))
    plain = text.replace("**", "  ")  # same length: positions stay
    for m in list(_GSM8K_RE.finditer(plain)) + list(_ANSWER_IS_RE.finditer(plain)):
        line = m.group(1)
        first = re.split(r"(?<=[^\s.])\.\s+(?=\S)", line, maxsplit=1)[0]
        box = _BOXED_RE.search(first)  # "#### 6 \boxed{5}": the 6 is stated too
        said = _clean_tail(first[:box.start()] if box else first)
        if not box or re.search(r"\d", said):
            out.append((m.start(), m.start(1) + len(first), said))
    return sorted(o for o in out if o[2])


#: Words that take an answer back or offer another: "Or 6", "wait, 6", "Correction: 6".
_RETRACT_RE = re.compile(
    r"\b(?:or|actually|wait|correction|instead|rather|sorry|hmm+|mistake|oops|nope|"
    r"maybe|perhaps|possibly|probably|alternatively|but|so|it'?s|answer|either|otherwise|"
    r"unless|should|could|might|fix|redo|recheck|wrong|incorrect)\b", re.IGNORECASE)
_TAIL_NUMBER_RE = re.compile(rf"(?<![\w.])[-−]?\d+(?:[.,]\d+)*(?:\s*/\s*\d+)?(?![\w])|"
                             rf"\b(?:{'|'.join(_NUMBER_WORDS_LIST)}|yes|no)\b", re.IGNORECASE)


def _stated_hedge(response: str) -> tuple[Outcome, str] | None:
    """A reply's stated answers against the text around them: a number offered right before
    a box ("6 or \\boxed{5}") or after the last stated answer ("\\boxed{5} or 6", "The
    answer is 5. Actually, 6") that is not the answer's own."""
    spans = _stated(response)
    if not spans:
        return None
    own = {_norm_key(_NUMBER_WORDS.get(t.lower(), t)) for _, _, a in spans
           for t in _TAIL_NUMBER_RE.findall(_canon(a))}
    for start, _, ans in spans:
        line = response[response.rfind("\n", 0, start) + 1:start].replace("$", " ")
        m = re.search(r"([-−]?\d[\d.,/]*|\byes|\bno)\W{0,3}\s*(?:or|and|,|/)\s*\W{0,3}$", line,
                      re.IGNORECASE)
        if m and _norm_key(m.group(1)) not in own:
            return "wrong", f"hedged: {m.group(0).strip()!r} offered before the answer {ans!r}"
    tail = response[spans[-1][1]:]
    if tail.lstrip(" $.").startswith("?"):
        return "unverifiable", f"the answer {spans[-1][2]!r} is asked, not stated"
    if re.search(r"\b(?:wrong|incorrect|false|not\s+(?:correct|right|sure))\b", tail,
                 re.IGNORECASE) and not re.search(r"\bif\b", tail):
        return "wrong", f"hedged: the text after the answer takes it back ({tail.strip()[:60]!r})"
    others = [t for t in _TAIL_NUMBER_RE.findall(tail)
              if _norm_key(_NUMBER_WORDS.get(t.lower(), t)) not in own]
    digits = [t for t in others if re.search(r"\d", t)]
    if others and _RETRACT_RE.search(tail):
        return "wrong", (f"hedged: after the answer {spans[-1][2]!r} the text offers "
                         f"another ({tail.strip()[:60]!r})")
    if digits:
        return "unverifiable", (f"after the answer {spans[-1][2]!r} the text gives another "
                                f"number ({digits[0]})")
    return None


def _clean_tail(ans: str, sentences: bool = True) -> str:
    """Strip markup and punctuation around a free-text answer."""
    ans = ans.strip()
    # Drop trailing sentences: keep up to the first newline and (a stated answer, not a
    # reference) the first sentence end: "$5$. I hope it is correct." is 5.
    ans = ans.split("\n", 1)[0]
    if sentences:
        ans = re.split(r"(?<=[^\s.])\.\s+(?=[A-Z\\$])", ans, maxsplit=1)[0]
    # Markdown emphasis and inline math delimiters.
    ans = ans.replace("**", "").replace("__", "")
    ans = ans.strip().strip("*").strip()
    ans = re.sub(r"^\\\(|\\\)$|^\\\[|\\\]$", "", ans).strip()
    ans = ans.strip("$").strip()
    # Trailing period / punctuation, but not a factorial ("n!") or an ellipsis ("2, 4, ...")
    ans = _strip_punct(ans)
    ans = ans.strip("$").strip()
    return ans


def _normalise_number_text(ans: str) -> str:
    """'1,234' -> '1234', unicode minus -> '-'; anything else unchanged."""
    ans = ans.strip().replace("−", "-")
    if _THOUSANDS_RE.match(ans):
        ans = ans.replace(",", "")
    return ans


def _last_number(text: str) -> str | None:
    matches = _NUMBER_RE.findall(text)
    if not matches:
        return None
    num = re.sub(r"\s+", "", matches[-1])
    return _normalise_number_text(num)


def extract_answer(text: str) -> tuple[str | None, str | None]:
    """Extract the final answer from *text*.

    Returns ``(answer, how)`` where *how* is one of ``"boxed"``, ``"gsm8k"``,
    ``"the_answer_is"`` or ``"last_number"``; ``(None, None)`` when nothing is
    found. Priority: last ``\\boxed{}``/``\\fbox{}`` (nested braces handled),
    then GSM8K ``#### X``, then "the answer is X" / "final answer: X"
    (case-insensitive, last occurrence), then the last number in the text.
    Numbers with thousands separators are returned without them; a stated number
    followed only by words ("18 dollars") is returned alone.
    """
    return _extract(text, full=False)


def _extract(text: str, full: bool) -> tuple[str | None, str | None]:
    """:func:`extract_answer`; with *full*, a stated answer keeps its words ("98 values",
    "72 and 73"), which the verifier judges itself."""
    if not text:
        return None, None
    text = _after_think(text)
    boxed = _last_boxed(text)
    if boxed is not None:
        return _normalise_number_text(boxed), "boxed"

    gsm = _GSM8K_RE.findall(text)
    if gsm:
        ans = _clean_tail(gsm[-1])
        if ans:
            return _normalise_number_text(ans), "gsm8k"

    # Strip markdown bold so "**Final Answer:** 42" reads "Final Answer: 42".
    plain = text.replace("**", "")
    answer_is = list(_ANSWER_IS_RE.finditer(plain))
    for m in reversed(answer_is):
        ans = _clean_tail(m.group(1))
        # "The answer is 18 dollars." -> "18": a leading number followed by words only;
        # not "18 or 19" nor "18 and 19", which offer alternatives (see _hedge)
        lead = _NUMBER_RE.match(ans)
        rest = ans[lead.end():] if lead else ""
        if not full and lead and re.match(r"\s+[A-Za-z]{2,}", rest) and \
                not re.match(r"\s+or\b", rest, re.IGNORECASE) and not re.search(r"\d", rest):
            ans = re.sub(r"\s+", "", lead.group(0))
        if ans:
            return _normalise_number_text(ans), "the_answer_is"

    num = _last_number(text)
    if num is not None:
        return num, "last_number"
    return None, None


# ---------------------------------------------------------------------------
# Single-item verification
# ---------------------------------------------------------------------------


class _ItemTimeout(BaseException):
    """Raised by our per-item SIGALRM timer (BaseException, like math_verify's)."""


def _quiet_math_verify_logging() -> None:
    # math_verify warns on every call made with its own timeouts disabled.
    for name in ("math_verify", "math_verify.parser", "math_verify.grader", "math_verify.utils"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _reference_text(reference: str) -> str:
    """A reference may be a bare answer or a full solution (boxed / ####)."""
    ref = reference.strip()
    if _BOXED_RE.search(ref) or "####" in ref:
        ans, _ = extract_answer(ref)
        if ans is not None:
            return ans
    return _normalise_number_text(_clean_tail(ref, sentences=False))


# ---------------------------------------------------------------------------
# Symmetric normalisation: an answer and a reference take exactly the same steps
# ---------------------------------------------------------------------------

#: LaTeX wrappers whose argument is kept as plain text ("\text{ or }" reads " or ").
_TEXT_CMD_RE = re.compile(
    r"\\(?:text|textbf|textit|textrm|textsf|texttt|mathrm|mathbf|mathit|mathsf|mbox|hbox)\s*\{")
_CANON_SUBS = [
    (re.compile(r"\\[dt]frac(?![A-Za-z])"), r"\\frac"),
    (re.compile(r"\\(?:left|right|bigl|bigr|Bigl|Bigr|big|Big|bigg|Bigg)(?![A-Za-z])\.?"), ""),
    (re.compile(r"\\(?:ldots|cdots|dots|dotsc|dotsb|dotsm)(?![A-Za-z])|…"), "..."),
    (re.compile(r"\\(?:pm|mp)(?![A-Za-z])|∓"), "±"),
    # layout between items (a new line, a wide space, an alignment tab) separates them:
    # math-verify reads "76 \quad 144" as 76 + 144 and "76 \\ 144" as 144
    (re.compile(r"\\(?:quad|qquad)(?![A-Za-z])|\\\\|(?<!\\)&"), " ; "),
    (re.compile(r"\\[,;:! ]|~|\\(?:displaystyle|textstyle)(?![A-Za-z])"), " "),
    (re.compile(r"\\(?:geq?|geqslant)(?![A-Za-z])|>="), "≥"),
    (re.compile(r"\\(?:leq?|leqslant)(?![A-Za-z])|<="), "≤"),
    (re.compile(r"\\(?:neq?)(?![A-Za-z])|!="), "≠"),
    (re.compile(r"\\approx(?![A-Za-z])"), "≈"),
    (re.compile(r"\\(?:lor|vee)(?![A-Za-z])|∨"), " or "),
    (re.compile(r"\\(?:land|wedge)(?![A-Za-z])|∧"), " and "),
    (re.compile(r"\\in(?![A-Za-z])"), "∈"),
    (re.compile(r"\\[{}]"), lambda m: m.group(0)[1]),  # \{ \} -> { }
    (re.compile(r"\\%"), "%"),
    (re.compile(r"[−–]"), "-"),
    (re.compile(r"[×·]"), "*"),
]
#: Thousands separators ("1,000") are not a list of two answers.
_GROUPED_RE = re.compile(r"(?<![\d.,])\d{1,3}(?:,\d{3})+(?![\d,]|\.\d)")


def _unwrap_text(s: str) -> str:
    while True:
        m = _TEXT_CMD_RE.search(s)
        if not m:
            return s
        close = _matching_brace(s, m.end() - 1)
        if close is None:
            return s[: m.start()] + " " + s[m.end():]
        s = s[: m.start()] + " " + s[m.end(): close] + " " + s[close + 1:]


def _strip_punct(s: str) -> str:
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


def _canon(text: str) -> str:
    """The one clean-up both sides get: markup (``$``, ``\\(``, bold, ``\\text{}``,
    ``\\left``), spacing, unicode signs, thousands separators and trailing punctuation."""
    s = text.strip()
    inner = _last_boxed(s) if _BOXED_RE.search(s) else None
    if inner is not None:
        s = inner
    s = s.replace("**", "").replace("__", "").replace("\\$", "").replace("$", "")
    s = re.sub(r"\\[()\[\]]", " ", s)
    s = _unwrap_text(s)
    for pat, rep in _CANON_SUBS:
        s = pat.sub(rep, s)
    s = _GROUPED_RE.sub(lambda m: m.group(0).replace(",", ""), s)
    s = re.sub(r"\s+", " ", s).strip()
    s = _strip_punct(s)
    return s.strip()


# Words an answer may carry around its math without changing it. Leading: "The answer is",
# "There are", "The limit exists and is equal to", "The only possible value for the limit
# is", "exactly"; trailing: "is the only possible value", a unit or noun ("98 values",
# "n times", "0 integer-valued roots").
_LEAD_RE = re.compile(
    r"^(?:(?:so|thus|hence|therefore|finally)\b,?\s*"
    r"|(?:the\s+)?(?:final\s+)?answer\b(?:\s+is)?\s*[:：]?\s*"
    r"|there\s+(?:is|are|exists?)\s+"
    r"|it\s+is\s+"
    r"|the\s+limit\s+(?:exists\s+and\s+)?(?:is\s+)?(?:equal\s+to|equals|is)\s+"
    r"|the\s+only\s+possible\s+value(?:\s+(?:for|of)\s+[a-z ]+?)?\s+is\s+"
    r"|the\s+(?:only\s+)?(?:possible\s+)?(?:value|values|solution|solutions|result)\s+(?:is|are)\s+"
    r"|exactly\s+)", re.IGNORECASE)
_TRAIL_RE = re.compile(
    r"\s+(?:is|are)\s+the\s+only\s+(?:possible\s+)?(?:value|values|solution|solutions|answer)$",
    re.IGNORECASE)
#: Words that make a claim: never dropped as a unit ("76 is wrong" is not 76).
_CLAIM_WORDS = re.compile(
    r"\b(?:no|not|none|never|nor|or|yes|and|all|every|each|any|some|infinitely|many|only|"
    r"exactly|least|most|more|less|fewer|greater|smaller|larger|than|except|if|for|when|"
    r"where|unless|maybe|possibly|perhaps|probably|either|approximately|about|around|"
    r"roughly|nearly|almost|undefined|exists?|possible|impossible|odd|even|"
    r"positive|negative|is|are|was|be|half|halves|thirds?|quarters?|hundreds?|thousands?|"
    r"millions?|billions?|trillions?|dozens?|percent|squared|cubed|factorial|twice|double|"
    r"triple|minus|plus|point|zero|one|two|three|four|five|six|seven|eight|nine|ten|eleven|"
    r"twelve|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety)\b", re.IGNORECASE)
#: The claims that keep an answer's worded aside from being dropped as a remark ("76, which
#: is the number of ways" is 76; "76, or maybe not", "76 and a half" are not).
_REMARK_CLAIMS = re.compile(
    r"\b(?:no|not|none|never|nor|or|yes|wrong|incorrect|false|all|every|each|any|some|"
    r"infinitely|many|only|exactly|least|most|more|less|fewer|greater|smaller|larger|than|"
    r"except|if|unless|maybe|possibly|perhaps|probably|either|approximately|about|around|"
    r"roughly|nearly|almost|undefined|exists?|possible|impossible|half|halves|thirds?|"
    r"quarters?|hundreds?|thousands?|millions?|billions?|trillions?|dozens?|percent|squared|"
    r"cubed|factorial|twice|double|triple|minus|plus|point|zero|one|two|three|four|five|six|"
    r"seven|eight|nine|ten|eleven|twelve|twenty|thirty|forty|fifty|sixty|seventy|eighty|"
    r"ninety)\b", re.IGNORECASE)
_UNIT_RE = re.compile(
    r"^(?P<math>.*?[\w)}!%])\s+(?P<unit>[A-Za-z][A-Za-z-]*(?:\s+[A-Za-z][A-Za-z-]*){0,2})$")
#: A leading qualifier changes the claim: "at least 5", "\ge 5", "not 5", "about 5".
_QUAL_RE = re.compile(
    r"^(at\s+least|at\s+most|no\s+more\s+than|no\s+less\s+than|more\s+than|less\s+than|"
    r"fewer\s+than|greater\s+than|smaller\s+than|not|approximately|about|around|roughly|"
    r"nearly|almost|over|under|[≥≤≈≠<>])\s*(?=\S)", re.IGNORECASE)
_QUAL_SAME = {"≥": "at least", "≤": "at most", "≈": "approximately", "about": "approximately",
              "around": "approximately", "roughly": "approximately"}
_NUMBER_WORDS = {w: str(i) for i, w in enumerate(_NUMBER_WORDS_LIST)}
#: "one" alone or before a noun ("Exactly one sequence") is the number 1.
_NUMBER_WORD_RE = re.compile(rf"^({'|'.join(_NUMBER_WORDS)})\b(?=$|\s+[A-Za-z-]+$)",
                             re.IGNORECASE)
#: Plain-text names a reference may use ("floor(n/2)", "C(10, 5)"): anything else of two
#: letters or more is a word math-verify would read as a product of symbols.
_FUNCS = {"sqrt", "floor", "ceil", "ceiling", "log", "ln", "exp", "sin", "cos", "tan",
          "binom", "pi", "sum", "prod", "gcd", "lcm", "max", "min", "abs"}
_LATEX_WORDS_OK = {"mod", "pmod", "bmod", "gcd", "lcm", "max", "min", "log", "ln", "exp",
                   "sin", "cos", "tan", "deg"}
_YES_NO = re.compile(r"^(yes|no)\b", re.IGNORECASE)
#: "yes" / "no" said as an answer: opening the text, a sentence, a clause or a bracket, and
#: not followed by a noun ("no such primes").
_YES_NO_SAID_RE = re.compile(
    r"(?:^|[^\w\s]\s*|\b(?:or|and|but|nor)[\s/-]+)(yes|no)\b(?!\s+(?!(?:or|and|but|nor)\b)\w+\s)",
    re.IGNORECASE)


def _strip_words(s: str) -> tuple[str, str]:
    """``(core, qualifier)`` of one answer: neutral words around the math off."""
    qual = ""
    for _ in range(4):
        before = s
        s = _LEAD_RE.sub("", s).strip()
        m = _QUAL_RE.match(s)
        if m and not qual:
            q = re.sub(r"\s+", " ", m.group(1).lower())
            qual = _QUAL_SAME.get(q, q)
            s = s[m.end():].strip()
        s = _TRAIL_RE.sub("", s).strip()
        s = _NUMBER_WORD_RE.sub(lambda w: _NUMBER_WORDS[w.group(1).lower()], s)
        m = _UNIT_RE.match(s)
        if m and not _CLAIM_WORDS.search(m["unit"]) and _has_math_text(m["math"]) \
                and not _words(m["math"]):
            s = m["math"].strip()
        s = _strip_punct(s)
        if s == before:
            break
    return s, qual


def _latex_free(s: str) -> str:
    """*s* without LaTeX commands and the names of known functions."""
    s = re.sub(r"\\operatorname\s*\{[^{}]*\}|\\[A-Za-z]+", " ", s)
    return re.sub(r"[A-Za-z]{2,}", lambda m: " " if m.group(0).lower() in _FUNCS else m.group(0), s)


#: Two- and three-letter runs that are English, not a product of variables ("xy", "abc").
_SHORT_WORDS = set("""of is or and no not all the for one two six ten yes odd any are if in on
    at to be by it as so an we has per its let set but nor may can how was our out off get
    got had you now new way use ie eg vs etc via few too own who why did its""".split())


def _words(s: str) -> list[str]:
    """The words in *s*, outside LaTeX commands and known functions: runs of four letters or
    more, and short English ones; "xy" and "abc" are products of variables."""
    return [w for w in re.findall(r"[A-Za-z]{2,}", _latex_free(s))
            if len(w) >= 4 or w.lower() in _SHORT_WORDS]


def _has_math_text(s: str) -> bool:
    """Digits, operators, LaTeX or a lone variable: something to parse as math."""
    if re.search(r"[\d+\-*/^=<>≥≤±√∞{}\\_|]", s) or \
            re.search(rf"\b(?:{'|'.join(_FUNCS)})\s*\(", s):
        return True
    return bool(re.search(r"(?<![A-Za-z])[b-zB-HJ-Z](?![A-Za-z])", s))  # not "a", "I"


# ---------------------------------------------------------------------------
# Structure: equivalent forms, then the parts (candidates) of one form
# ---------------------------------------------------------------------------

#: "X, or equivalently Y", "X, or an equivalent form such as Y", "X, or approximately Y",
#: "X (i.e., Y)": one answer written several ways.
_FORMS_RE = re.compile(
    r",?\s+or\s+(?:equivalently|an\s+equivalent\s+form(?:\s+such\s+as)?|approximately|"
    r"in\s+other\s+words)\s+|,\s*(?:i\.e\.|equivalently)[,:]?\s+", re.IGNORECASE)
#: Separators between candidates at the top level (outside brackets).
_STRONG_SEP = re.compile(r"\s*(?:;|\band/or\b|\band\b|\bor\b|\bnor\b|\bvs\.?|\bversus\b)\s*",
                         re.IGNORECASE)
_NAME = r"[A-Za-z](?:_\{?\w+\}?)?(?:\([^()]*\))?"
_ASSIGN_RE = re.compile(rf"^\s*((?:{_NAME}\s*=\s*)+)([^=]+)$")


def _split_top(s: str, sep: re.Pattern) -> list[str]:
    """*s* split at *sep* outside (), [] and {}."""
    parts, depth, start, i = [], 0, 0, 0
    while i < len(s):
        ch = s[i]
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth = max(0, depth - 1)
        elif depth == 0:
            m = sep.match(s, i)
            if m and m.end() > i:
                parts.append(s[start:i])
                start = i = m.end()
                continue
        i += 1
    parts.append(s[start:])
    return [p.strip() for p in parts]


def _closing(s: str, open_idx: int) -> int | None:
    depth = 0
    for i in range(open_idx, len(s)):
        if s[i] in "([{":
            depth += 1
        elif s[i] in ")]}":
            depth -= 1
            if depth == 0:
                return i
    return None


def _split_forms(text: str) -> list[str]:
    """One answer's forms: "or equivalently" alternatives and a trailing "(i.e., ...)"
    or worded parenthesis ("100 (i.e., all values)", "0 (none of the values)")."""
    forms = []
    for f in _split_top(text, _FORMS_RE):
        extra: list[str] = []
        while f.endswith(")"):
            depth, j = 0, len(f) - 1
            while j >= 0:
                depth += f[j] == ")"
                depth -= f[j] == "("
                if depth == 0:
                    break
                j -= 1
            inner = f[j + 1:-1].strip()
            if j <= 0 or not f[j - 1].isspace() or not _words(inner):
                break
            extra.insert(0, re.sub(r"^(?:i\.e\.|e\.g\.|that\s+is|namely)[,:]?\s*", "",
                                   inner, flags=re.IGNORECASE))
            f = f[:j].strip()
        forms += [f] + extra
    return [f for f in forms if f]


class _Part:
    """One candidate: named or unnamed values (``x=6, y=5`` → x: 6, y: 5; ``(6, 5)`` →
    6, 5; ``76`` → 76), or words."""

    __slots__ = ("pairs", "words", "qual", "text", "approx")

    def __init__(self, text: str, pairs: list[tuple[str | None, str]], words: bool = False,
                 qual: str = ""):
        self.text, self.pairs, self.words, self.qual = text, pairs, words, qual
        self.approx = False  # a reference's "or approximately 35.7%" form

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"_Part({self.text!r}, {self.pairs}, words={self.words}, qual={self.qual!r})"


def _expand_pm(value: str) -> list[str]:
    """``x±y`` → ``x+y``, ``x-y`` (the signs of one value taken together)."""
    if "±" not in value:
        return [value]
    return [re.sub(r"(^|[=(\[{,])\s*\+", r"\1", value.replace("±", sign)) for sign in "+-"]


def _parts_of(core: str, answer: bool) -> list[_Part]:
    """The candidates one form lists. An answer's worded aside ("7 and it is prime") is
    dropped when it makes no claim; everything else counts."""
    parts: list[_Part] = []
    for chunk in _split_top(core, _STRONG_SEP):
        if not chunk:
            continue
        pieces = _split_top(chunk, re.compile(r"\s*,\s*"))
        pieces = [p for p in pieces if p]
        assigns = [_ASSIGN_RE.match(p) for p in pieces]
        if len(pieces) > 1 and all(assigns):
            names = [n for m in assigns for n in _names(m.group(1))]
            if len(set(names)) == len(names):  # "x=6, y=5": one solution
                parts.extend(_solution(chunk, [(m.group(1), m.group(2)) for m in assigns]))
                continue
        for p in pieces:
            parts.extend(_part(p))
    if answer:
        kept = [p for p in parts if not (p.words and not _REMARK_CLAIMS.search(p.text)
                                          and not _has_math_text(p.text))]
        if kept and any(not p.words for p in kept):
            parts = kept
    return parts


def _names(lhs: str) -> list[str]:
    return [n.replace(" ", "") for n in re.findall(_NAME, lhs)]


def _solution(text: str, assigns: list[tuple[str, str]]) -> list[_Part]:
    pairs: list[tuple[str | None, str]] = []
    for lhs, value in assigns:
        pairs += [(n, value.strip()) for n in _names(lhs)]
    out = [[]]
    for name, value in pairs:  # "x=±1, y=2" → two solutions
        out = [o + [(name, v)] for o in out for v in _expand_pm(value)]
    return [_Part(text, o) for o in out]


def _part(p: str) -> list[_Part]:
    core, qual = _strip_words(p)
    if not core:
        return [_Part(p, [], words=True, qual=qual)]
    # a set of candidates: "{76, 144}", "x ∈ {76, 144}"
    m = re.match(rf"^(?:({_NAME})\s*∈\s*)?\{{(.*)\}}$", core)
    if m and _closing(core, core.index("{")) == len(core) - 1:
        inner = _parts_of(m.group(2), answer=False)
        if m.group(1):
            inner = [_Part(x.text, [(m.group(1), v) for _, v in x.pairs], x.words)
                     for x in inner]
        return inner
    # a tuple "(6, 5)", "(x=8, y=2)", "(x, y) = (6, 5)"; an interval "[-1, 1)" stays whole
    m = re.match(r"^\((.*)\)\s*=\s*\((.*)\)$", core)
    if m and _closing(core, 0) == core.index(")") and "," in m.group(1):
        names = [n.strip() for n in m.group(1).split(",")]
        values = _split_top(m.group(2), re.compile(r"\s*,\s*"))
        if len(names) == len(values) and all(re.fullmatch(_NAME, n) for n in names):
            return _solution(core, [(f"{n}=", v) for n, v in zip(names, values)])
    if core.startswith("(") and core.endswith(")") and _closing(core, 0) == len(core) - 1:
        items = _split_top(core[1:-1], re.compile(r"\s*,\s*"))
        if len(items) > 1:
            assigns = [_ASSIGN_RE.match(x) for x in items]
            if all(assigns):
                return _solution(core, [(a.group(1), a.group(2)) for a in assigns])
            out = [[]]
            for x in items:
                out = [o + [(None, v)] for o in out for v in _expand_pm(x)]
            return [_Part(core, o, qual=qual) for o in out]
    a = _ASSIGN_RE.match(core)
    if a and not re.search(r"[<>≤≥]", core):
        return [_Part(x.text, x.pairs, qual=qual)
                for x in _solution(core, [(a.group(1), a.group(2))])]
    words = bool(_words(core)) or not (_has_math_text(core) or re.fullmatch(r"[A-Za-z]", core))
    if words:
        return [_Part(core, [], words=True, qual=qual)]
    return [_Part(core, [(None, v)], qual=qual) for v in _expand_pm(core)]


class _Form:
    def __init__(self, text: str, answer: bool):
        self.text = text
        self.key = _norm_key(text)
        core, qual = _strip_words(text)
        self.core_key, self.qual = _norm_key(core), qual
        yn = _YES_NO.match(core)
        self.yesno = yn.group(1).lower() if yn else None
        self.bare_yesno = bool(yn) and not core[yn.end():].strip(" ,.;:!")
        self.parts = _parts_of(core, answer)
        for p in self.parts:  # "at least 5", "\ge 5", "not 5": the claim is the qualifier's
            p.qual = p.qual or qual
        self.values = sum(max(1, len(p.pairs)) for p in self.parts) or 1


def _forms(text: str, answer: bool) -> list[_Form]:
    s = _canon(text)
    forms = [_Form(f, answer) for f in _split_forms(s)]
    for f in forms:
        if re.search(r"\bapproximately\s+" + re.escape(f.text[:20]), s, re.IGNORECASE):
            for p in f.parts:
                p.approx = True
    if answer and len(forms) > 1:  # an answer's worded remark in brackets is no claim
        kept = [f for f in forms if not (all(p.words for p in f.parts) and
                                         not _REMARK_CLAIMS.search(f.text) and
                                         not _has_math_text(f.text))]
        forms = kept or forms[:1]
    return forms


def _values_of(text: str) -> int:
    """How many candidate values *text* lists (the most over its forms; 1 when empty)."""
    if not text or not text.strip():
        return 1
    return max((f.values for f in _forms(text, answer=False)), default=1)


# ---------------------------------------------------------------------------
# Math: one value parsed faithfully, or not at all
# ---------------------------------------------------------------------------


def _plain_locals() -> dict:
    import sympy

    names = {c: sympy.Symbol(c, real=True) for c in
             "abcdfghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"}
    names.update(e=sympy.E, pi=sympy.pi, sqrt=sympy.sqrt, floor=sympy.floor,
                 ceil=sympy.ceiling, ceiling=sympy.ceiling, log=sympy.log, ln=sympy.log,
                 exp=sympy.exp, sin=sympy.sin, cos=sympy.cos, tan=sympy.tan,
                 C=sympy.binomial, binom=sympy.binomial, Sum=sympy.Sum, Product=sympy.Product,
                 gcd=sympy.gcd, lcm=sympy.lcm, Max=sympy.Max, Min=sympy.Min, Abs=sympy.Abs)
    return names


#: "sum_(k=1)^n body": the plain-text sum CHAMP writes, as sympy's Sum(body, (k, 1, n))
_PLAIN_SUM_RE = re.compile(
    r"^(sum|prod)_\((\w+)=([^()]+)\)\^(\w+|\([^()]*\)|\{[^{}]*\})\s*(.+)$")


#: What a plain-text value may hold before sympy reads it: sympy's ``parse_expr`` runs
#: ``eval``, and a model's answer is model-written code, so everything that could reach
#: Python itself is refused here (quotes, brackets, ``_``, attribute access, names that are
#: neither one letter nor a function of :func:`_plain_locals`) and the eval sees no
#: builtins: only sympy's names, which the code sympy's transformations write refers to.
_PLAIN_CHARS_RE = re.compile(r"^[\dA-Za-z\s+\-*/^().,=<>!]*$")
_PLAIN_DOT_RE = re.compile(r"\.(?!\d)|\d\.\d+\.|\b0[xXoObB]")


@functools.lru_cache(maxsize=1)
def _plain_globals() -> dict[str, Any]:
    glob: dict[str, Any] = {}
    exec("from sympy import *", glob)  # noqa: S102 - a constant import, as parse_expr does
    glob["__builtins__"] = {}
    return glob


def _plain_is_safe(s: str, names: dict) -> bool:
    if not _PLAIN_CHARS_RE.match(s) or _PLAIN_DOT_RE.search(s):
        return False
    return all(len(w) == 1 or w in names or w == "oo" or all(c in names for c in w)
               for w in re.findall(r"[A-Za-z]+", s))


def _parse_plain(s: str) -> Any:
    import sympy
    from sympy.parsing.sympy_parser import (
        convert_xor,
        implicit_multiplication,
        parse_expr,
        split_symbols,
        standard_transformations,
    )

    m = _PLAIN_SUM_RE.match(s)
    if m:
        fn = "Sum" if m.group(1) == "sum" else "Product"
        s = f"{fn}({m.group(5)}, ({m.group(2)}, {m.group(3)}, {m.group(4).strip('{}')}))"
    s = re.sub(r"√\s*(\d+|[A-Za-z]\b)", r"sqrt(\1)", s).replace("√", "sqrt")
    s = s.replace("∞", "oo").replace("π", "pi")
    s = re.sub(r"\bmax\(", "Max(", re.sub(r"\bmin\(", "Min(", re.sub(r"\babs\(", "Abs(", s)))
    s = s.replace("≥", ">=").replace("≤", "<=").replace("≠", "!=")
    transforms = standard_transformations + (split_symbols, implicit_multiplication,
                                             convert_xor)
    local = _plain_locals()
    local["oo"] = sympy.oo
    if not _plain_is_safe(s, local):
        raise ValueError("not a plain-text value sympy may read")
    sides = _split_top(s, re.compile(r"(?<![<>!=])=(?!=)"))
    glob = _plain_globals()
    exprs = [parse_expr(x, local_dict=local, global_dict=glob, transformations=transforms,
                        evaluate=False)
             for x in sides]
    if len(exprs) == 2:
        return sympy.Eq(exprs[0], exprs[1], evaluate=False)
    if len(exprs) != 1:
        raise ValueError("several '='")
    return exprs[0]


def _math(value: str, cache: dict) -> Any:
    """*value* as a sympy object, or None when it cannot be parsed faithfully: an
    ellipsis, a word math-verify would read as a product of letters ("sum_(k=1)^n 1/k" is
    1 to it), a relation with one side."""
    if value in cache:
        return cache[value]
    cache[value] = None
    v = value.strip()
    if not v or "..." in v or re.search(r"^[≥≤<>=≠]|[≥≤<>=≠]$|≈", v):
        return None  # "x ≈ 5" approximates; a leading "≈" is a qualifier, judged apart
    if _NOT_A_VALUE_RE.search(v) or _unknown_latex(v):
        return None
    # "1 2", "5_{6}": two numbers not joined by an operator are no one value
    if re.search(r"\d\s+\.?\d|\d\s*_|'|:=", v):  # nor a prime nor a definition
        return None
    latex = "\\" in v or "{" in v
    # a percent is the fraction it names: 25% = 0.25 = 1/4
    v = re.sub(r"(?<![\d.])(\d+(?:\.\d+)?|\.\d+)\s*%",
               r"\\frac{\1}{100}" if latex else r"(\1/100)", v)
    if latex:  # "2\binom{10}{5}" is 2·252 (latex2sympy reads a mixed number, 2 + 252)
        v = re.sub(r"(\d)\s*(?=\\binom)", r"\1 \\cdot ", v)
    if latex and any(w.lower() not in _LATEX_WORDS_OK for w in _words(v)):
        return None
    if not latex and (_words(v) or (re.search(r"\b(?:sum|prod)\b|(?:sum|prod)_", v)
                                    and not _PLAIN_SUM_RE.match(v))):
        return None
    import sympy

    expr = None
    if not latex:
        try:
            expr = _parse_plain(v)
        except _ItemTimeout:
            raise
        except BaseException:
            expr = None
        if expr is not None and not isinstance(expr, sympy.Basic):
            expr = None  # "[-1, 1]" is a python list here: an interval for math-verify
    if expr is None:
        import math_verify as mv

        text = v.replace("≥", "\\geq ").replace("≤", "\\leq ").replace("≠", "\\neq ")
        try:
            parsed = mv.parse("\\boxed{" + text + "}", parsing_timeout=None, raise_on_error=True)
        except _ItemTimeout:
            raise
        except BaseException:
            return None
        found = [p for p in parsed if not isinstance(p, str)]
        if not found:
            return None
        expr = found[0]
    try:  # one kind of symbol on both sides: math-verify's are real
        expr = expr.xreplace({s: sympy.Symbol(s.name, real=True) for s in expr.free_symbols
                              if isinstance(s, sympy.Symbol) and not s.is_real})
    except Exception:
        pass
    sides = _split_top(v, _EQUALS_RE)
    if len(sides) > 1:  # math-verify reads a chain by its last side: "77 = 76" is no 76
        consts = [x for x in (_math(x, cache) for x in sides)
                  if x is not None and not getattr(x, "free_symbols", True)]
        if not all(_same_value(x, consts[-1]) for x in consts[:-1]):
            return None
    cache[value] = expr
    return expr


_EQUALS_RE = re.compile(r"(?<![<>!≤≥=])=(?!=)")

#: The LaTeX commands a value may be built from. Any other (``\vert``, ``\colon``,
#: ``\hspace``, ``\cr``, ``\atop``, ``\tag``, ``\iffalse``, ``\not``, ``\neg``,
#: ``\doteq``, ``\overset``, ...) is layout, a relation or a negation that math-verify
#: would skip, keeping the last token ("6 \vert 5" reads 5): such a value is unparsed.
_LATEX_OK = set("""frac dfrac tfrac cfrac sqrt cdot times div pm mp left right big Big bigg
    Bigg bigl bigr Bigl Bigr text textbf textit textrm mathrm mathbf mathit mbox operatorname
    infty infinity in cup cap emptyset varnothing le leq ge geq lt gt ne neq binom dbinom
    tbinom choose ldots cdots dots lfloor rfloor lceil rceil floor ceil quad qquad
    displaystyle sum prod log ln exp sin cos tan cot sec csc arcsin arccos arctan sinh
    cosh tanh mod pmod bmod gcd lcm max min deg prime mathbb hat bar overline vec
    alpha beta gamma delta epsilon varepsilon zeta eta theta vartheta iota kappa lambda mu nu
    xi pi varpi rho sigma tau upsilon phi varphi chi psi omega Gamma Delta Theta Lambda Xi Pi
    Sigma Phi Psi Omega lor vee land wedge boxed""".split())


def _unknown_latex(v: str) -> str | None:
    """The first LaTeX command in *v* outside :data:`_LATEX_OK`, if any: ``\\circ`` only as
    degrees, ``\\sum`` / ``\\prod`` only with their bounds, no symbol command but spacing."""
    v = re.sub(r"\^\s*\{?\s*\\circ\s*\}?", "", v)
    for m in re.finditer(r"\\([A-Za-z]+|[^A-Za-z])", v):
        cmd = m.group(1)
        if cmd in ("sum", "prod") and not v.startswith("_", m.end()):
            return cmd
        if cmd not in _LATEX_OK and cmd not in ",;:! {}%$":
            return cmd
    return None


#: A number written with a decimal point (or a percent): an exact claim of that value.
_DECIMAL_RE = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+(?:\.\d*)?\s*%)")


def _decimal(text: str) -> Fraction | None:
    t = text.strip().replace(" ", "")
    if not _DECIMAL_RE.fullmatch(t):
        return None
    return Fraction(t.rstrip("%")) / (100 if t.endswith("%") else 1)


def _decimal_equal(a: str, r: str, er: Any, approx: bool) -> bool | None:
    """A decimal answer ("0.333333") against a number: equal only when exactly equal
    (math-verify rounds to 6 places: 0.333333 would pass for 1/3, 3.14159265 for pi), or,
    against a form the reference gives as approximate ("or approximately 35.7%"), when
    within half a unit of that form's last digit (a relative tolerance). None: not such
    a pair."""
    da = _decimal(a)
    if da is None or getattr(er, "free_symbols", True):
        return None
    try:
        value = Fraction(str(er.evalf(40)))
    except Exception:
        return None
    dr = _decimal(r)
    if approx and dr is not None and dr != 0:
        digits = r.strip().rstrip("%").split(".")
        unit = Fraction(1, 10 ** len(digits[1])) if len(digits) > 1 else Fraction(1)
        rel = unit / 2 / abs(Fraction(r.strip().rstrip("%").strip()))
        return abs(da - value) <= rel * abs(value)
    return abs(da - value) <= abs(value) * Fraction(1, 10 ** 30)


def _same_value(a: Any, b: Any) -> bool:
    import math_verify as mv

    try:
        return bool(mv.verify([b], [a], timeout_seconds=None, raise_on_error=True))
    except _ItemTimeout:
        raise
    except BaseException:
        return False


#: Relations between two things, not a value: math-verify keeps one side ("77 \mid 76" → 76).
_NOT_A_VALUE_RE = re.compile(
    r"\\(?:mid|nmid|divides|parallel|perp|sim|simeq|cong|propto|to|rightarrow|Rightarrow|"
    r"longrightarrow|implies|iff|Leftrightarrow|leftrightarrow|leftarrow|Leftarrow|mapsto|"
    r"models|vdash|ll|gg|prec|succ|subset|subseteq|supset|supseteq|ni|notin)(?![A-Za-z])"
    r"|[→⇒⇔↦∣]")


_PERCENT_RE = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?|\.\d+)\s*\\?%")


def _equal(a: str, r: str, cache: dict, approx: bool = False) -> bool | None:
    """Whether answer value *a* equals reference value *r*; None when either side cannot
    be parsed faithfully or math-verify fails. *approx*: *r* is an approximate form.
    A percent on one side only may also be a unit: "50%" answers a reference of 50 (a
    question asking "what percent"), as 0.5 answers one of 50%."""
    if ("%" in a) != ("%" in r):
        bare = _PERCENT_RE.sub(r"\1", a), _PERCENT_RE.sub(r"\1", r)
        if bare != (a, r) and _equal_value(*bare, cache, approx):
            return True
    return _equal_value(a, r, cache, approx)


def _equal_value(a: str, r: str, cache: dict, approx: bool) -> bool | None:
    ea, er = _math(a, cache), _math(r, cache)
    if ea is None or er is None:
        return None
    dec = _decimal_equal(a, r, er, approx)
    if dec is not None:
        return dec
    import math_verify as mv

    try:
        return bool(mv.verify([er], [ea], timeout_seconds=None, raise_on_error=True))
    except _ItemTimeout:
        raise
    except BaseException:
        return None


def _qual_ok(a: _Part, r: _Part) -> bool:
    # a reference's "at least"/"at most" echoes the question ("At least how many ...?")
    return a.qual == r.qual or (not a.qual and r.qual in ("at least", "at most"))


def _part_equal(a: _Part, r: _Part, cache: dict) -> bool | None:
    if not _qual_ok(a, r):
        return False
    if len(a.pairs) != len(r.pairs):
        return False
    named = all(n for n, _ in a.pairs) and all(n for n, _ in r.pairs)
    if named:
        ra = {_norm_key(n): v for n, v in r.pairs}
        if set(ra) != {_norm_key(n) for n, _ in a.pairs}:
            return False
        pairs = [(v, ra[_norm_key(n)]) for n, v in a.pairs]
    else:
        pairs = [(va, vr) for (_, va), (_, vr) in zip(a.pairs, r.pairs)]
    result: bool | None = True
    for va, vr in pairs:
        eq = _equal(va, vr, cache, r.approx)
        if eq is False:
            return False
        if eq is None:
            result = None
    return result


def _match(a_parts: list[_Part], r_parts: list[_Part], cache: dict) -> bool | None:
    """Every answer part equal to a different reference part: True, False, or None when
    only an unparseable pair stands between."""
    table = [[_part_equal(a, r, cache) for r in r_parts] for a in a_parts]
    if len(table) > 8:  # no search over 9! orders: each answer part to its first match
        used: set[int] = set()
        result: bool | None = True
        for row in table:
            j = next((j for j, eq in enumerate(row) if eq is True and j not in used),
                     next((j for j, eq in enumerate(row) if eq is None and j not in used), None))
            if j is None:
                return False
            used.add(j)
            result = result if row[j] is True else None
        return result
    best: bool | None = False

    def walk(i: int, used: frozenset, sure: bool) -> None:
        nonlocal best
        if best is True:
            return
        if i == len(table):
            best = True if sure else (best if best else None)
            return
        for j, eq in enumerate(table[i]):
            if j not in used and eq is not False:
                walk(i + 1, used | {j}, sure and eq is True)

    walk(0, frozenset(), True)
    return best


_RANK = {"correct": 3, "wrong": 2, "unverifiable": 1}


def _same_text(how: str) -> str:
    # a one-line response taken whole ("Paris", "No.") is an exact match of the reference
    return "exact match (whole response)" if how == "whole" else f"string match ({how})"


def _form_verdict(a: _Form, r: _Form, how: str, cache: dict) -> tuple[Outcome, str]:
    if r.yesno:  # "Yes" / "No": the leading word decides; both offered is a hedge
        said = {w.lower() for w in _YES_NO_SAID_RE.findall(a.text)}
        if {"yes", "no"} <= said:
            return "wrong", f"hedged: the answer says both yes and no ({a.text!r})"
        if a.qual or any(p.qual for p in a.parts):  # "not no" decides nothing
            pass
        elif a.yesno and a.yesno != r.yesno:
            return "wrong", f"says {a.yesno} where the reference says {r.yesno} ({how})"
        elif a.yesno and r.bare_yesno:
            return "correct", _same_text(how)
        elif r.bare_yesno and a.parts and not any(p.words for p in a.parts):
            return "wrong", f"a value where the reference says {r.yesno} ({how}: {a.text!r})"
    elif a.bare_yesno and r.parts and not any(p.words for p in r.parts):
        return "wrong", f"says {a.yesno} where the reference is a value ({how}: {r.text!r})"
    if _DISJUNCTION_RE.search(a.text) and not re.search(r"\bor\b|±", r.text) and \
            (len(r.parts) <= 1 or re.search(r"\band\b", r.text)):
        # "376 or 625" for "376 and 625", "6 or 5" for "x=6, y=5": not both, one of them
        # (a list of solutions, "(8, 2), (2, 8)", may be said with "or")
        return "wrong", f"hedged: the answer offers alternatives ({a.text!r})"
    if a.values > r.values:
        shown = ", ".join(p.text for p in a.parts[:4]) + (", ..." if len(a.parts) > 4 else "")
        return "wrong", (f"hedged: the answer offers {a.values} candidates ({shown}) where "
                         f"the reference has {r.values}")
    if any(p.words for p in r.parts) or not r.parts:
        if a.key == r.key or (a.core_key == r.core_key and a.qual == r.qual):
            return "correct", _same_text(how)
        return "unverifiable", f"reference not parseable as math ({r.text!r})"
    if any(p.words for p in a.parts) or not a.parts:
        bad = next((p for p in a.parts if p.words), None)
        if bad is not None and bad.qual:
            return "wrong", f"not equivalent ({how}: {a.text!r} vs {r.text!r})"
        return "unverifiable", f"answer not parseable as math ({a.text!r})"
    if len(a.parts) == len(r.parts):
        eq = _match(a.parts, r.parts, cache)
    elif a.values == r.values and len(r.parts) == 1 and all(n for n, _ in r.parts[0].pairs):
        # "6, 5" against "x=6, y=5": the values in order (a tuple "(1, 2)" is no list)
        fa = [_Part(a.text, [p], qual=x.qual) for x in a.parts for p in x.pairs]
        fr = [_Part(r.text, [p], qual=x.qual) for x in r.parts for p in x.pairs]
        eq = True
        for pa, pr in zip(fa, fr):
            e = _part_equal(pa, pr, cache)
            if e is False:
                eq = False
                break
            if e is None:
                eq = None
    else:  # fewer parts than the reference: at best incomplete
        eq = _match(a.parts, r.parts, cache)
        if eq is True:
            return "wrong", (f"incomplete: the answer gives {a.values} of the reference's "
                             f"{r.values} parts ({how}: {a.text!r} vs {r.text!r})")
    if eq is True:
        return "correct", f"equivalent ({how})"
    if eq is False:
        if _squash(a.text) == _squash(r.text):  # math-verify's quirk
            return "correct", _same_text(how)
        return "wrong", f"not equivalent ({how}: {a.text!r} vs {r.text!r})"
    if a.key == r.key:
        return "correct", _same_text(how)
    unparsed = [v for p in r.parts for _, v in p.pairs if _math(v, cache) is None]
    if unparsed:
        return "unverifiable", f"reference not parsed faithfully ({unparsed[0]!r})"
    unparsed = [v for p in a.parts for _, v in p.pairs if _math(v, cache) is None]
    if unparsed and not any(_has_math_text(v) for v in unparsed):
        return "unverifiable", f"answer not parseable as math ({unparsed[0]!r})"
    return "unverifiable", f"answer not parsed faithfully ({(unparsed or [a.text])[0]!r})"


def _judge(answer: str, reference: str, how: str) -> tuple[Outcome, str]:
    """The answer against the reference, both through :func:`_forms`: every form the answer
    gives must match one of the reference's forms."""
    ref_forms = _forms(reference, answer=False)
    ans_forms = _forms(answer, answer=True)
    if not ref_forms:
        return "unverifiable", "reference not parseable as math (empty)"
    if not ans_forms:
        return "unverifiable", "answer not parseable as math (empty)"
    cache: dict = {}
    verdicts = []
    for a in ans_forms:
        best = None
        for r in ref_forms:
            v = _form_verdict(a, r, how, cache)
            if best is None or _RANK[v[0]] > _RANK[best[0]]:
                best = v
            if best[0] == "correct":
                break
        verdicts.append(best)
    for kind in ("wrong", "unverifiable"):
        for v in verdicts:
            if v[0] == kind:
                return v
    return _claims_more(answer, reference) or verdicts[0]


#: Words an answer may carry that the reference lacks: they restate, never qualify.
_NEUTRAL_WORDS = set("""the final answer answers is are there so thus hence therefore it its
    value values solution solutions result only possible exactly and equal equals to of for
    which that this we get number ways way total in all be or""".split())
_HEDGE_WORDS_RE = re.compile(
    r"wrong|incorrect|false|guess(?:ed)?|nope|upper|lower|bound|max(?:imum)?|min(?:imum)?|"
    r"approx|ish|unsure|estimated?|up|onwards?|among|others|below|above|over|under|ish|"
    r"plus|ok|right|true|correct|check|sure|think|guessing|unknown|unclear|wait|actually|"
    r"tops|upwards?|beyond|instance|similar|al|example|like|least|most|roughly|others?",
    re.IGNORECASE)
#: Open-ended answers: "5, ...", "5 etc.", "5 and so on" claim more than one value.
_OPEN_RE = re.compile(r"\.\.\.|\betc\b|\band\s+so\s+on\b", re.IGNORECASE)


def _claims_more(answer: str, reference: str) -> tuple[Outcome, str] | None:
    """Why an answer found equal still may not be rewarded: an ellipsis, a "?" or words
    the reference does not carry ("98 wrong", "30 cm" for "30 m", "Yes, it is
    impossible"). Trailing words are dropped as a unit only when they say nothing."""
    a, r = _canon(answer), _canon(reference)
    if _OPEN_RE.search(a) and not _OPEN_RE.search(r):
        return "wrong", f"open-ended: the answer goes on ({a!r})"
    if "?" in answer and "?" not in reference:  # "5?" is a guess
        return "unverifiable", f"the answer asks ({a!r})"
    a = re.sub(r"\bthere\s+(?:is|are)\s+no\s+such\s+[A-Za-z]+", " ", a, flags=re.IGNORECASE)
    said = _words(a)
    unit = _UNIT_RE.match(a)
    if unit:
        said += re.split(r"[\s-]+", unit["unit"])
    known = {w.lower() for w in re.findall(r"[A-Za-z]+", _latex_free(r))} | _NEUTRAL_WORDS
    extra = [w for w in said if w.lower() not in known]
    if not _words(r) and not re.search(r"[A-Za-z]", _latex_free(r)):
        # a bare value ("72") has no words to check against: a noun ("72 clips") may
        # follow it, a word that hedges or bounds ("72 wrong", "72 and up") may not
        extra = [w for w in extra if _HEDGE_WORDS_RE.fullmatch(w) or _REMARK_CLAIMS.fullmatch(w)]
    if extra:
        return "unverifiable", f"the answer carries words the reference does not ({extra[0]!r})"
    return None


def _compare(response: str, reference: str) -> tuple[Outcome, str]:
    """Extraction + comparison, no timeout handling (callers add it)."""
    if reference is None or not str(reference).strip():
        return "unverifiable", "empty reference"
    ref = _reference_text(str(reference))
    if not ref:
        return "unverifiable", "empty reference"
    response = _after_think(response or "")
    for m in _BOXED_RE.finditer(response):  # "\boxed{6\n\boxed{5}": which box is meant?
        j = response.find("{", m.end())
        if j >= 0 and not response[m.end():j].strip() and _matching_brace(response, j) is None:
            return "unverifiable", "an unbalanced box"
    if any(_BOXED_RE.search(b) for b in _all_boxed(response)):
        return "wrong", "hedged: a box inside a box"
    ans, how = _extract(response, full=True)
    if ans is None:
        line = response.strip()
        if line and "\n" not in line and len(line) <= 120 and \
                (not re.search(r"\d", ref) or _YES_NO.match(ref)):
            ans, how = line, "whole"  # a one-line answer to a worded reference: "No."
        else:
            return "unverifiable", "no answer extracted"
    _quiet_math_verify_logging()
    hedged = _hedge(response, ans, str(reference), math=True)
    if hedged:
        return "wrong", hedged
    around = _stated_hedge(response)
    if around:
        return around
    if how == "last_number":  # no stated answer: the last sentence must offer one number
        lines = [x for x in response.strip().split("\n") if x.strip()]
        while len(lines) > 1 and re.match(r"\s*(?:or|and)\b", lines[-1], re.IGNORECASE):
            lines[-2:] = [" ".join(lines[-2:])]  # "Either 6\nor 5" is one sentence
        last = re.split(r"(?<=[.!])\s+", lines[-1] if lines else "")[-1]
        if "?" in last:
            return "unverifiable", f"the last sentence asks ({last!r})"
        nums = _distinct([n for n in _NUMBER_RE.findall(last)])
        if len(nums) > _values_of(ref):
            if re.search(r"\bor\b|[,;{∈]|\\in\b", last):
                return "wrong", f"hedged: the last sentence offers {len(nums)} numbers ({last!r})"
            return "unverifiable", f"the last sentence gives several numbers ({last!r})"
    boxes = _distinct_boxes(response, math=True)
    if len(boxes) > 1 and len(_all_boxed(str(reference))) < 2:
        ans = " and ".join(boxes)  # as many boxes as the reference has parts: all of them
    return _judge(ans, ref, how)


def _alarm_handler(signum: int, frame: Any) -> None:
    raise _ItemTimeout()


def _run_with_alarm(
    fn: Callable[[str, str], tuple[Outcome, str]],
    response: str,
    reference: str,
    timeout_s: float | None,
) -> tuple[Outcome, str]:
    """Run *fn* under a SIGALRM interval timer when that is possible."""
    use_alarm = (
        timeout_s is not None
        and timeout_s > 0
        and hasattr(signal, "setitimer")
        and threading.current_thread() is threading.main_thread()
    )
    if not use_alarm:
        try:
            return fn(response, reference)
        except Exception as exc:
            return "unverifiable", f"error: {type(exc).__name__}"
    old = signal.signal(signal.SIGALRM, _alarm_handler)
    signal.setitimer(signal.ITIMER_REAL, timeout_s)
    try:
        return fn(response, reference)
    except _ItemTimeout:
        return "unverifiable", "timeout"
    except Exception as exc:
        return "unverifiable", f"error: {type(exc).__name__}"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def verify_one(
    response: str, reference: str, *, timeout_s: float | None = 5.0
) -> tuple[Outcome, str]:
    """Verify one response against one reference, in this process.

    Returns ``(outcome, reason)`` (see the module docstring). ``"wrong"`` only when
    both sides were understood: values math-verify found different, a hedge
    (``"hedged: ..."``), an incomplete answer, the opposite yes/no; no extractable
    answer, a reference in words the answer does not repeat, a value that cannot be
    parsed faithfully, a time-out or a crash give ``"unverifiable"``. The soft time-out uses ``SIGALRM`` and so only applies
    in the main thread; a computation stuck in C code cannot be interrupted
    here -- use :func:`verify_many`, whose workers are killed on overrun.
    """
    return _run_with_alarm(_compare, response, reference, timeout_s)


# ---------------------------------------------------------------------------
# Batch verification in worker processes
# ---------------------------------------------------------------------------


_READY = (-1, ("ready", ""))


def _worker_main(conn: Any, timeout_s: float, item_fn: Callable | None) -> None:
    """Worker loop: receive chunks, stream back one result per item."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C
    fn = item_fn or _compare
    try:
        import math_verify  # noqa: F401  (warm the import before the first item)
    except Exception:
        pass
    _quiet_math_verify_logging()
    try:
        conn.send(_READY)  # start-up done: the parent starts item clocks from here
    except (BrokenPipeError, OSError):
        return
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        for idx, response, reference in msg:
            outcome = _run_with_alarm(fn, response, reference, timeout_s)
            try:
                conn.send((idx, outcome))
            except (BrokenPipeError, OSError):
                return


def _mp_context() -> Any:
    methods = multiprocessing.get_all_start_methods()
    if "forkserver" in methods:
        ctx = multiprocessing.get_context("forkserver")
        # Preloading makes each (re)started worker a cheap fork of a process
        # that already imported sympy/math_verify. No effect once the
        # forkserver is running; missing modules are ignored by CPython.
        try:
            ctx.set_forkserver_preload(["math_verify", __name__])
        except Exception:
            pass
        return ctx
    return multiprocessing.get_context("spawn")


@contextlib.contextmanager
def _main_hidden():
    """Start processes without the caller's ``__main__``.

    forkserver and spawn children re-run the parent's main script (as ``__mp_main__``) so
    that objects defined there can be unpickled. A worker here needs nothing from it, and
    re-running a script that lacks ``if __name__ == "__main__":`` would repeat its work and
    kill the worker, leaving every answer "unverifiable". A stub main module while the
    process starts (its preparation data is built then) makes the child skip that step.
    """
    main = sys.modules.get("__main__")
    if main is None or not (getattr(main, "__file__", None) or getattr(main, "__spec__", None)):
        yield
        return
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = main


class _Worker:
    def __init__(self, ctx: Any, timeout_s: float, item_fn: Callable | None):
        self.conn, child = ctx.Pipe(duplex=True)
        self.proc = ctx.Process(target=_worker_main, args=(child, timeout_s, item_fn), daemon=True)
        with _main_hidden():
            self.proc.start()
        child.close()
        self.pending: deque[int] = deque()  # indices sent, results not yet back
        self.deadline: float | None = None  # for the item at pending[0]
        self.ready = False  # True once the worker has sent _READY

    def send(
        self, chunk: list[tuple[int, str, str]], hard_timeout: float, startup_grace: float
    ) -> None:
        self.pending.extend(idx for idx, _, _ in chunk)
        self.conn.send(chunk)
        # Until the worker reports ready, allow for its start-up (imports).
        self.deadline = time.monotonic() + (hard_timeout if self.ready else startup_grace)

    def kill(self) -> None:
        try:
            self.conn.close()
        except Exception:
            pass
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(timeout=5)

    def stop(self) -> None:
        try:
            self.conn.send(None)
        except Exception:
            pass
        self.proc.join(timeout=1)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(timeout=5)
        try:
            self.conn.close()
        except Exception:
            pass


def verify_many(
    pairs: list[tuple[str, str]],
    *,
    timeout_s: float = 5.0,
    workers: int = 2,
    chunk_size: int | None = None,
    _item_fn: Callable[[str, str], tuple[Outcome, str]] | None = None,
) -> list[tuple[Outcome, str]]:
    """Verify ``(response, reference)`` pairs in a pool of worker processes.

    Results come back in input order. Each item gets *timeout_s* seconds: a
    soft ``SIGALRM`` timer inside the worker first, then -- for computations
    stuck in C code -- the parent kills the worker at ``timeout_s`` plus a
    small grace, reports the item ``("unverifiable", "timeout")``, starts a
    replacement worker and re-queues the rest of that worker's chunk. A worker
    that dies gives ``("unverifiable", "worker crashed")`` for its current
    item. One set of workers serves the whole call; items are sent in chunks.

    ``_item_fn`` (a picklable top-level function) replaces the per-item check;
    it exists for tests.
    """
    n = len(pairs)
    results: list[tuple[Outcome, str] | None] = [None] * n
    if n == 0:
        return []
    workers = max(1, min(int(workers), n))
    if chunk_size is None:
        chunk_size = max(1, min(64, math.ceil(n / (workers * 4))))
    grace = max(0.5, 0.25 * timeout_s)
    hard_timeout = timeout_s + grace
    startup_grace = 60.0  # first import of sympy in a cold spawn can be slow

    queue: deque[list[tuple[int, str, str]]] = deque()
    for start in range(0, n, chunk_size):
        queue.append(
            [
                (i, str(pairs[i][0] or ""), str(pairs[i][1] or ""))
                for i in range(start, min(n, start + chunk_size))
            ]
        )

    ctx = _mp_context()
    pool: list[_Worker] = [_Worker(ctx, timeout_s, _item_fn) for _ in range(workers)]
    remaining = n

    def requeue_rest(w: _Worker) -> None:
        rest = [(i, str(pairs[i][0] or ""), str(pairs[i][1] or "")) for i in w.pending]
        w.pending.clear()
        if rest:
            queue.appendleft(rest)

    startup_failures = 0

    def replace(w: _Worker, reason: str) -> _Worker:
        nonlocal remaining, startup_failures
        if not w.ready and reason == "worker crashed":
            # Died before answering anything: likely a start-up failure (e.g. a
            # script without the ``if __name__ == "__main__":`` guard that
            # spawn/forkserver need). Retry a few times, then give up loudly
            # rather than marking the whole batch unverifiable.
            startup_failures += 1
            if startup_failures >= 3:
                w.kill()
                raise RuntimeError(
                    "verify_many: worker processes keep dying at start-up "
                    f"(exit code {w.proc.exitcode}); is the calling script missing "
                    "an `if __name__ == '__main__':` guard?"
                )
        else:
            startup_failures = 0
        if w.pending:
            bad = w.pending.popleft()
            if results[bad] is None:
                results[bad] = ("unverifiable", reason)
                remaining -= 1
        requeue_rest(w)
        w.kill()
        return _Worker(ctx, timeout_s, _item_fn)

    try:
        while remaining > 0:
            # Feed idle workers.
            for k, w in enumerate(pool):
                if not w.pending and queue:
                    if w.ready and not w.proc.is_alive():
                        # Died while idle: no item of ours was running; just replace it.
                        w.kill()
                        pool[k] = w = _Worker(ctx, timeout_s, _item_fn)
                    try:
                        w.send(queue.popleft(), hard_timeout, startup_grace)
                    except (BrokenPipeError, OSError):
                        pool[k] = replace(w, "worker crashed")
            busy = [w for w in pool if w.pending]
            if not busy:
                if queue:
                    continue
                break  # nothing in flight and nothing queued: should not happen
            now = time.monotonic()
            nearest = min(w.deadline or now for w in busy)
            ready = _wait_connections([w.conn for w in busy], timeout=max(0.0, nearest - now))
            by_conn = {id(w.conn): w for w in busy}
            for conn in ready:
                w = by_conn[id(conn)]
                try:
                    # Drain everything already available from this worker.
                    while True:
                        idx, outcome = conn.recv()
                        if idx == -1:  # start-up finished: clock the current item from now
                            w.ready = True
                            w.deadline = time.monotonic() + hard_timeout
                            if not conn.poll():
                                break
                            continue
                        if w.pending and w.pending[0] == idx:
                            w.pending.popleft()
                        elif idx in w.pending:
                            w.pending.remove(idx)
                        if results[idx] is None:
                            results[idx] = (outcome[0], outcome[1])
                            remaining -= 1
                        w.deadline = time.monotonic() + hard_timeout
                        if not w.pending or not conn.poll():
                            break
                except (EOFError, OSError, ConnectionResetError):
                    pool[pool.index(w)] = replace(w, "worker crashed")
            # Enforce deadlines.
            now = time.monotonic()
            for k, w in enumerate(pool):
                if w.pending and w.deadline is not None and now >= w.deadline:
                    pool[k] = replace(w, "timeout")
    finally:
        for w in pool:
            w.stop()

    return [r if r is not None else ("unverifiable", "not run") for r in results]


# ---------------------------------------------------------------------------
# Self-consistency
# ---------------------------------------------------------------------------


def _norm_key(answer: str) -> str:
    """Canonical key used for voting and string matching.

    Strips whitespace, ``$``, ``\\boxed{}`` wrappers, markdown bold, a trailing
    period, thousands separators and a trailing unit-less ``\\%``; numbers
    (integers, decimals, ``a/b`` and ``\\frac{a}{b}``) become an exact
    rational in lowest terms, so ``"72"``, ``"72.0"``, ``"$72"``, ``"72."``
    and ``"144/2"`` share one key. Anything else compares as its stripped,
    whitespace-free, lower-cased text.
    """
    s = answer.strip()
    inner = _last_boxed(s)
    if inner is not None:
        s = inner
    s = s.replace("**", "").replace("\\$", "").replace("$", "").replace("−", "-")
    s = re.sub(r"\\[,;! ]|\\text\{\s*\}|\\left|\\right", "", s)
    s = _squash(s).rstrip(".")
    s = re.sub(r"^\\?d?frac\{(-?\d+)\}\{(-?\d+)\}$", r"\1/\2", s)
    s = re.sub(r"^\\?t?frac\{(-?\d+)\}\{(-?\d+)\}$", r"\1/\2", s)
    if _THOUSANDS_RE.match(s):
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


def _squash(s: str) -> str:
    """*s* without whitespace, except between two digits ("1 2" is not 12)."""
    return re.sub(r"\s+", "", re.sub(r"(?<=\d)\s+(?=[\d.])", "␣", s))


def normalise_answer(answer: str) -> str:
    """Public alias of the voting key (see :func:`majority_vote`)."""
    return _norm_key(answer)


def majority_vote(answers: list[str | None]) -> tuple[str | None, float]:
    """Self-consistency vote over extracted answers.

    ``None`` entries are ignored when counting but still count in the
    denominator: ``agreement = votes(majority) / len(answers)``. Answers are
    grouped by :func:`normalise_answer` -- exact rational equality for plain
    numbers / simple fractions (``"72"``, ``"72.0"``, ``"$72"``, ``"1,000"``
    vs ``"1000"``, ``"\\frac{1}{2}"`` vs ``"0.5"``), normalised text
    otherwise; no sympy, so it is cheap and cannot hang. Ties go to the group
    whose first member appears first; the returned answer is that group's
    first original answer (stripped). ``(None, 0.0)`` if there is none.
    """
    if not answers:
        return None, 0.0
    counts: dict[str, int] = {}
    first: dict[str, tuple[int, str]] = {}
    for pos, a in enumerate(answers):
        if a is None or not str(a).strip():
            continue
        key = _norm_key(str(a))
        counts[key] = counts.get(key, 0) + 1
        if key not in first:
            first[key] = (pos, str(a).strip())
    if not counts:
        return None, 0.0
    best = max(counts, key=lambda k: (counts[k], -first[k][0]))
    return first[best][1], counts[best] / len(answers)
