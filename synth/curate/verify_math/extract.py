"""The final answer of a response (:func:`extract_answer`) and the hedges around it.

:func:`hedge_reason` says why an answer hedges between alternatives (several boxes or
stated answers, "or", a number offered beside it), :func:`stated_hedge` why the text
around the stated answers takes it back or offers another. Only ``hedge_reason(...,
math=True)`` compares values (sympy, math-verify: call it under a time limit); otherwise
both are text rules, cheap enough for a recipe to call in-process.
"""

from __future__ import annotations

import re

from synth.curate.verify_math.compare import Outcome, judge
from synth.curate.verify_math.forms import (
    DISJUNCTION_RE,
    FORMS_RE,
    NUMBER_WORDS,
    NUMBER_WORDS_LIST,
    canon,
    forms_of,
    values_of,
)
from synth.curate.verify_math.text import (
    BOXED_RE,
    THOUSANDS_RE,
    after_think,
    all_boxed,
    last_boxed,
    matching_brace,
    norm_key,
    strip_punct,
)

_GSM8K_RE = re.compile(r"####\s*([^\n]+)")
_ANSWER_IS_RE = re.compile(
    r"(?:the\s+(?:final\s+)?answer\s+is|final\s+answer|\banswers?(?=\s*[:：]))\s*(?:is)?\s*"
    r"[:：]?\s*(.+)",
    re.IGNORECASE,
)
# A number: optional sign, either thousands-grouped digits or plain digits,
# optional decimal part, optionally followed by "/denominator".
NUMBER_RE = re.compile(
    r"(?<![\w.])[-−]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:\s*/\s*\d+(?:\.\d+)?)?(?![\w])"
    r"|(?<![\w.])[-−]?\.\d+(?![\w])"
)


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
    return find_answer(text, full=False)


def find_answer(text: str, full: bool) -> tuple[str | None, str | None]:
    """:func:`extract_answer`; with *full*, a stated answer keeps its words ("98 values",
    "72 and 73"), which the verifier judges itself."""
    if not text:
        return None, None
    text = after_think(text)
    boxed = last_boxed(text)
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
        # not "18 or 19" nor "18 and 19", which offer alternatives (see hedge_reason)
        lead = NUMBER_RE.match(ans)
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


def reference_text(reference: str) -> str:
    """A reference may be a bare answer or a full solution (boxed / ####)."""
    ref = reference.strip()
    if BOXED_RE.search(ref) or "####" in ref:
        ans, _ = extract_answer(ref)
        if ans is not None:
            return ans
    return _normalise_number_text(_clean_tail(ref, sentences=False))


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
    ans = strip_punct(ans)
    ans = ans.strip("$").strip()
    return ans


def _normalise_number_text(ans: str) -> str:
    """'1,234' -> '1234', unicode minus -> '-'; anything else unchanged."""
    ans = ans.strip().replace("−", "-")
    if THOUSANDS_RE.match(ans):
        ans = ans.replace(",", "")
    return ans


def _last_number(text: str) -> str | None:
    matches = NUMBER_RE.findall(text)
    if not matches:
        return None
    num = re.sub(r"\s+", "", matches[-1])
    return _normalise_number_text(num)


#: The number a stated answer ("the answer is ...") starts with, after markup.
_STATED_NUMBER_RE = re.compile(r"[\s$\\(]*([-+\u2212]?\d[\d,]*(?:\.\d+)?(?:/\d+)?)")
#: Right after that number, another offered beside it: "and 73", ", or maybe 73", a new line
#: starting "or 73". Words between the connective and the number are allowed, a digit is not.
_ALTERNATIVE_RE = re.compile(r"[ \t,;]*\n?[ \t]*(?:or|and|nor|vs\.?|versus)\b[^\d\n]{0,24}?"
                             r"[-+\u2212]?\$?\d[\d,.]*", re.IGNORECASE)


def _stated(text: str) -> list[tuple[int, int, str]]:
    """Every answer *text* states, as ``(start, end, answer)`` in order of *start*: each
    box, each "#### X", each "the answer is X" / "final answer: X" / "Answer: X" (its first
    sentence). Two that differ are a hedge; what follows the last one must not take it
    back."""
    out = []
    for m in BOXED_RE.finditer(text):
        j = m.end()
        while j < len(text) and text[j] in " \t":
            j += 1
        close = matching_brace(text, j) if j < len(text) and text[j] == "{" else None
        if close is not None:
            out.append((m.start(), close + 1, text[j + 1:close].strip()))
    plain = text.replace("**", "  ")  # same length: positions stay
    for m in list(_GSM8K_RE.finditer(plain)) + list(_ANSWER_IS_RE.finditer(plain)):
        line = m.group(1)
        first = re.split(r"(?<=[^\s.])\.\s+(?=\S)", line, maxsplit=1)[0]
        box = BOXED_RE.search(first)  # "#### 6 \boxed{5}": the 6 is stated too
        said = _clean_tail(first[:box.start()] if box else first)
        if not box or re.search(r"\d", said):
            out.append((m.start(), m.start(1) + len(first), said))
    return sorted(o for o in out if o[2])


def distinct(answers: list[str], math: bool = False) -> list[str]:
    """The different answers among *answers*, in order: the same one twice counts once, and
    with *math* so does the same value written twice ("2^{n-1}", "\\frac{2^n}{2}")."""
    keys: set[str] = set()
    out: list[str] = []
    for a in answers:
        k = norm_key(canon(a))
        if k not in keys and not (math and any(judge(a, b, "boxed")[0] == "correct" and
                                               judge(b, a, "boxed")[0] == "correct"
                                               for b in out)):
            out.append(a)
        keys.add(k)
    return out


def distinct_boxes(text: str, math: bool = False) -> list[str]:
    """The different ``\\boxed{}`` answers in *text*, in order (see :func:`distinct`)."""
    return distinct(all_boxed(text), math)


def hedge_reason(response: str, answer: str, reference: str, *,
                 math: bool = False) -> str | None:
    """Why the answer hedges between alternatives, if it does: more different boxed
    answers than the reference has parts (the last one would otherwise win, so boxing every
    candidate would pass), ``\\lor`` / ``\\vee`` / "or" between candidates when the
    reference has none, another number offered beside the stated one, a box taken back in
    words, or more candidates listed than the reference has parts (an empty reference counts
    as one part for the first three and skips the last). With *math*, answers that are
    the same value written differently count once, and every "final answer" stated must
    agree with the boxes (math-verify runs: call it under a time limit)."""
    ref_text = reference_text(reference) if reference and reference.strip() else ""
    ref_values = values_of(ref_text)
    if len(all_boxed(reference)) < 2:
        boxed = distinct_boxes(response, math)
        if len(boxed) > 1 and values_of(" and ".join(boxed)) > ref_values:
            shown = ", ".join(boxed[:3]) + (", ..." if len(boxed) > 3 else "")
            return f"hedged: {len(boxed)} different boxed answers ({shown})"
    # "C(10, 5), or equivalently 252" is one answer written twice, not a disjunction; "x = 1
    # or x = -1" lists the two parts of "x=±1" (the count of parts decides, in judge)
    if ref_values <= 1 and DISJUNCTION_RE.search(FORMS_RE.sub(" ", answer)) and \
            not DISJUNCTION_RE.search(FORMS_RE.sub(" ", reference)):
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
            if alt and not FORMS_RE.search(plain[m.start(1):alt.end()]):
                return (f"hedged: the answer offers another number beside {lead.group(1)} "
                        f"({plain[m.start(1):alt.end()].strip()!r})")
    # every stated answer must agree: "The answer is 5. ... The answer is 6.", "#### 6
    # \boxed{5}", "ANSWER: 6\nANSWER: 5" (boxes: with *math*, above otherwise)
    said = [a for start, _, a in _stated(response)
            if math or not BOXED_RE.match(response, start)]
    finals = distinct(said, math)
    if len(finals) > 1 and values_of(" and ".join(finals)) > ref_values:
        return f"hedged: {len(finals)} different final answers ({', '.join(finals[:3])})"
    boxes = all_boxed(response)
    if boxes:  # "\boxed{72}. Wait, that's wrong: the answer is 73." takes the box back
        tail = response[response.rfind(boxes[-1]) + len(boxes[-1]):].replace("**", "")
        for m in _ANSWER_IS_RE.finditer(tail):
            lead = NUMBER_RE.match(_clean_tail(m.group(1)))
            if lead and norm_key(_normalise_number_text(lead.group(0))) != \
                    norm_key(_normalise_number_text(boxes[-1])):
                return (f"hedged: after the boxed answer {boxes[-1]} the text gives "
                        f"another ({lead.group(0)})")
        for m in _GSM8K_RE.finditer(tail):
            said = _clean_tail(m.group(1))
            if norm_key(canon(said)) != norm_key(canon(boxes[-1])):
                return (f"hedged: after the boxed answer {boxes[-1]} the text gives "
                        f"another ({said})")
    ref_forms = forms_of(ref_text, answer=False) if ref_text else []
    if ref_forms and not any(f.bare_yesno for f in ref_forms):  # "Yes, there are no ..."
        n = max((f.values for f in forms_of(answer, answer=True)), default=1)
        if n > ref_values:
            return (f"hedged: the answer offers {n} candidates ({answer!r}) where the "
                    f"reference has {ref_values}")
    return None


#: Words that take an answer back or offer another: "Or 6", "wait, 6", "Correction: 6".
_RETRACT_RE = re.compile(
    r"\b(?:or|actually|wait|correction|instead|rather|sorry|hmm+|mistake|oops|nope|"
    r"maybe|perhaps|possibly|probably|alternatively|but|so|it'?s|answer|either|otherwise|"
    r"unless|should|could|might|fix|redo|recheck|wrong|incorrect)\b", re.IGNORECASE)
_TAIL_NUMBER_RE = re.compile(rf"(?<![\w.])[-−]?\d+(?:[.,]\d+)*(?:\s*/\s*\d+)?(?![\w])|"
                             rf"\b(?:{'|'.join(NUMBER_WORDS_LIST)}|yes|no)\b", re.IGNORECASE)


def stated_hedge(response: str) -> tuple[Outcome, str] | None:
    """A reply's stated answers against the text around them: a number offered right before
    a box ("6 or \\boxed{5}") or after the last stated answer ("\\boxed{5} or 6", "The
    answer is 5. Actually, 6") that is not the answer's own."""
    spans = _stated(response)
    if not spans:
        return None
    own = {norm_key(NUMBER_WORDS.get(t.lower(), t)) for _, _, a in spans
           for t in _TAIL_NUMBER_RE.findall(canon(a))}
    for start, _, ans in spans:
        line = response[response.rfind("\n", 0, start) + 1:start].replace("$", " ")
        m = re.search(r"([-−]?\d[\d.,/]*|\byes|\bno)\W{0,3}\s*(?:or|and|,|/)\s*\W{0,3}$", line,
                      re.IGNORECASE)
        if m and norm_key(m.group(1)) not in own:
            return "wrong", f"hedged: {m.group(0).strip()!r} offered before the answer {ans!r}"
    tail = response[spans[-1][1]:]
    if tail.lstrip(" $.").startswith("?"):
        return "unverifiable", f"the answer {spans[-1][2]!r} is asked, not stated"
    if re.search(r"\b(?:wrong|incorrect|false|not\s+(?:correct|right|sure))\b", tail,
                 re.IGNORECASE) and not re.search(r"\bif\b", tail):
        return "wrong", f"hedged: the text after the answer takes it back ({tail.strip()[:60]!r})"
    others = [t for t in _TAIL_NUMBER_RE.findall(tail)
              if norm_key(NUMBER_WORDS.get(t.lower(), t)) not in own]
    digits = [t for t in others if re.search(r"\d", t)]
    if others and _RETRACT_RE.search(tail):
        return "wrong", (f"hedged: after the answer {spans[-1][2]!r} the text offers "
                         f"another ({tail.strip()[:60]!r})")
    if digits:
        return "unverifiable", (f"after the answer {spans[-1][2]!r} the text gives another "
                                f"number ({digits[0]})")
    return None
