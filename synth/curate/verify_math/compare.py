"""Whether an answer says what the reference says (:func:`judge`): form against form,
part against part in any order, value against value through math-verify, with yes/no,
qualifiers ("at least"), decimals, percents and worded answers ruled apart; what the
answer claims beyond the reference (:func:`_claims_more`) keeps a match from counting.
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Any, Literal

from synth.curate.verify_math.forms import (
    DISJUNCTION_RE,
    REMARK_CLAIMS,
    UNIT_RE,
    Form,
    Part,
    canon,
    forms_of,
    has_math_text,
    latex_free,
    words_in,
)
from synth.curate.verify_math.parse import parse_value, verify_equal
from synth.curate.verify_math.text import norm_key, squash

#: What a check says of an answer: ``"wrong"`` needs both sides understood; every failure
#: to extract, parse or compare is ``"unverifiable"``.
Outcome = Literal["correct", "wrong", "unverifiable"]

#: "yes" / "no" said as an answer: opening the text, a sentence, a clause or a bracket, and
#: not followed by a noun ("no such primes").
_YES_NO_SAID_RE = re.compile(
    r"(?:^|[^\w\s]\s*|\b(?:or|and|but|nor)[\s/-]+)(yes|no)\b(?!\s+(?!(?:or|and|but|nor)\b)\w+\s)",
    re.IGNORECASE)


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
    ea, er = parse_value(a, cache), parse_value(r, cache)
    if ea is None or er is None:
        return None
    dec = _decimal_equal(a, r, er, approx)
    if dec is not None:
        return dec
    return verify_equal(er, ea)


def _qual_ok(a: Part, r: Part) -> bool:
    # a reference's "at least"/"at most" echoes the question ("At least how many ...?")
    return a.qual == r.qual or (not a.qual and r.qual in ("at least", "at most"))


def _part_equal(a: Part, r: Part, cache: dict) -> bool | None:
    if not _qual_ok(a, r):
        return False
    if len(a.pairs) != len(r.pairs):
        return False
    named = all(n for n, _ in a.pairs) and all(n for n, _ in r.pairs)
    if named:
        ra = {norm_key(n): v for n, v in r.pairs}
        if set(ra) != {norm_key(n) for n, _ in a.pairs}:
            return False
        pairs = [(v, ra[norm_key(n)]) for n, v in a.pairs]
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


def _match(a_parts: list[Part], r_parts: list[Part], cache: dict) -> bool | None:
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


def _form_verdict(a: Form, r: Form, how: str, cache: dict) -> tuple[Outcome, str]:
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
    if DISJUNCTION_RE.search(a.text) and not re.search(r"\bor\b|±", r.text) and \
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
        fa = [Part(a.text, [p], qual=x.qual) for x in a.parts for p in x.pairs]
        fr = [Part(r.text, [p], qual=x.qual) for x in r.parts for p in x.pairs]
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
        if squash(a.text) == squash(r.text):  # math-verify's quirk
            return "correct", _same_text(how)
        return "wrong", f"not equivalent ({how}: {a.text!r} vs {r.text!r})"
    if a.key == r.key:
        return "correct", _same_text(how)
    unparsed = [v for p in r.parts for _, v in p.pairs if parse_value(v, cache) is None]
    if unparsed:
        return "unverifiable", f"reference not parsed faithfully ({unparsed[0]!r})"
    unparsed = [v for p in a.parts for _, v in p.pairs if parse_value(v, cache) is None]
    if unparsed and not any(has_math_text(v) for v in unparsed):
        return "unverifiable", f"answer not parseable as math ({unparsed[0]!r})"
    return "unverifiable", f"answer not parsed faithfully ({(unparsed or [a.text])[0]!r})"


def judge(answer: str, reference: str, how: str) -> tuple[Outcome, str]:
    """The answer against the reference, both through :func:`forms_of`: every form the answer
    gives must match one of the reference's forms."""
    ref_forms = forms_of(reference, answer=False)
    ans_forms = forms_of(answer, answer=True)
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
    a, r = canon(answer), canon(reference)
    if _OPEN_RE.search(a) and not _OPEN_RE.search(r):
        return "wrong", f"open-ended: the answer goes on ({a!r})"
    if "?" in answer and "?" not in reference:  # "5?" is a guess
        return "unverifiable", f"the answer asks ({a!r})"
    a = re.sub(r"\bthere\s+(?:is|are)\s+no\s+such\s+[A-Za-z]+", " ", a, flags=re.IGNORECASE)
    said = words_in(a)
    unit = UNIT_RE.match(a)
    if unit:
        said += re.split(r"[\s-]+", unit["unit"])
    known = {w.lower() for w in re.findall(r"[A-Za-z]+", latex_free(r))} | _NEUTRAL_WORDS
    extra = [w for w in said if w.lower() not in known]
    if not words_in(r) and not re.search(r"[A-Za-z]", latex_free(r)):
        # a bare value ("72") has no words to check against: a noun ("72 clips") may
        # follow it, a word that hedges or bounds ("72 wrong", "72 and up") may not
        extra = [w for w in extra if _HEDGE_WORDS_RE.fullmatch(w) or REMARK_CLAIMS.fullmatch(w)]
    if extra:
        return "unverifiable", f"the answer carries words the reference does not ({extra[0]!r})"
    return None
