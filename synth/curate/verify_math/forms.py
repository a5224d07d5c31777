"""The one clean-up an answer and a reference both take (:func:`canon`), and the structure
of one answer: its equivalent forms ("X, or equivalently Y", "X (i.e., Y)"), the words
around its math (neutral ones dropped, qualifiers kept), and the candidates each form lists
("376 and 625", "x=6, y=5", ``\\{1, 4, 9\\}``, ``x=\\pm 1``), as :class:`Form` and
:class:`Part`. Text only: values are parsed later (:mod:`.parse`).
"""

from __future__ import annotations

import re

from synth.curate.verify_math.text import (
    BOXED_RE,
    last_boxed,
    matching_brace,
    norm_key,
    strip_punct,
)

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
        close = matching_brace(s, m.end() - 1)
        if close is None:
            return s[: m.start()] + " " + s[m.end():]
        s = s[: m.start()] + " " + s[m.end(): close] + " " + s[close + 1:]


def canon(text: str) -> str:
    """The one clean-up both sides get: markup (``$``, ``\\(``, bold, ``\\text{}``,
    ``\\left``), spacing, unicode signs, thousands separators and trailing punctuation."""
    s = text.strip()
    inner = last_boxed(s) if BOXED_RE.search(s) else None
    if inner is not None:
        s = inner
    s = s.replace("**", "").replace("__", "").replace("\\$", "").replace("$", "")
    s = re.sub(r"\\[()\[\]]", " ", s)
    s = _unwrap_text(s)
    for pat, rep in _CANON_SUBS:
        s = pat.sub(rep, s)
    s = _GROUPED_RE.sub(lambda m: m.group(0).replace(",", ""), s)
    s = re.sub(r"\s+", " ", s).strip()
    s = strip_punct(s)
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
REMARK_CLAIMS = re.compile(
    r"\b(?:no|not|none|never|nor|or|yes|wrong|incorrect|false|all|every|each|any|some|"
    r"infinitely|many|only|exactly|least|most|more|less|fewer|greater|smaller|larger|than|"
    r"except|if|unless|maybe|possibly|perhaps|probably|either|approximately|about|around|"
    r"roughly|nearly|almost|undefined|exists?|possible|impossible|half|halves|thirds?|"
    r"quarters?|hundreds?|thousands?|millions?|billions?|trillions?|dozens?|percent|squared|"
    r"cubed|factorial|twice|double|triple|minus|plus|point|zero|one|two|three|four|five|six|"
    r"seven|eight|nine|ten|eleven|twelve|twenty|thirty|forty|fifty|sixty|seventy|eighty|"
    r"ninety)\b", re.IGNORECASE)
UNIT_RE = re.compile(
    r"^(?P<math>.*?[\w)}!%])\s+(?P<unit>[A-Za-z][A-Za-z-]*(?:\s+[A-Za-z][A-Za-z-]*){0,2})$")

#: A leading qualifier changes the claim: "at least 5", "\ge 5", "not 5", "about 5".
_QUAL_RE = re.compile(
    r"^(at\s+least|at\s+most|no\s+more\s+than|no\s+less\s+than|more\s+than|less\s+than|"
    r"fewer\s+than|greater\s+than|smaller\s+than|not|approximately|about|around|roughly|"
    r"nearly|almost|over|under|[≥≤≈≠<>])\s*(?=\S)", re.IGNORECASE)
_QUAL_SAME = {"≥": "at least", "≤": "at most", "≈": "approximately", "about": "approximately",
              "around": "approximately", "roughly": "approximately"}

#: Small numbers an answer may spell out ("Exactly one sequence"), and their digits.
NUMBER_WORDS_LIST = "zero one two three four five six seven eight nine ten eleven twelve".split()
NUMBER_WORDS = {w: str(i) for i, w in enumerate(NUMBER_WORDS_LIST)}

#: "one" alone or before a noun ("Exactly one sequence") is the number 1.
_NUMBER_WORD_RE = re.compile(rf"^({'|'.join(NUMBER_WORDS)})\b(?=$|\s+[A-Za-z-]+$)",
                             re.IGNORECASE)

#: Plain-text names a reference may use ("floor(n/2)", "C(10, 5)"): anything else of two
#: letters or more is a word math-verify would read as a product of symbols.
_FUNCS = {"sqrt", "floor", "ceil", "ceiling", "log", "ln", "exp", "sin", "cos", "tan",
          "binom", "pi", "sum", "prod", "gcd", "lcm", "max", "min", "abs"}
YES_NO = re.compile(r"^(yes|no)\b", re.IGNORECASE)


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
        s = _NUMBER_WORD_RE.sub(lambda w: NUMBER_WORDS[w.group(1).lower()], s)
        m = UNIT_RE.match(s)
        if m and not _CLAIM_WORDS.search(m["unit"]) and has_math_text(m["math"]) \
                and not words_in(m["math"]):
            s = m["math"].strip()
        s = strip_punct(s)
        if s == before:
            break
    return s, qual


def latex_free(s: str) -> str:
    """*s* without LaTeX commands and the names of known functions."""
    s = re.sub(r"\\operatorname\s*\{[^{}]*\}|\\[A-Za-z]+", " ", s)
    return re.sub(r"[A-Za-z]{2,}", lambda m: " " if m.group(0).lower() in _FUNCS else m.group(0), s)


#: Two- and three-letter runs that are English, not a product of variables ("xy", "abc").
_SHORT_WORDS = set("""of is or and no not all the for one two six ten yes odd any are if in on
    at to be by it as so an we has per its let set but nor may can how was our out off get
    got had you now new way use ie eg vs etc via few too own who why did its""".split())


def words_in(s: str) -> list[str]:
    """The words in *s*, outside LaTeX commands and known functions: runs of four letters or
    more, and short English ones; "xy" and "abc" are products of variables."""
    return [w for w in re.findall(r"[A-Za-z]{2,}", latex_free(s))
            if len(w) >= 4 or w.lower() in _SHORT_WORDS]


def has_math_text(s: str) -> bool:
    """Digits, operators, LaTeX or a lone variable: something to parse as math."""
    if re.search(r"[\d+\-*/^=<>≥≤±√∞{}\\_|]", s) or \
            re.search(rf"\b(?:{'|'.join(_FUNCS)})\s*\(", s):
        return True
    return bool(re.search(r"(?<![A-Za-z])[b-zB-HJ-Z](?![A-Za-z])", s))  # not "a", "I"


#: "X, or equivalently Y", "X, or an equivalent form such as Y", "X, or approximately Y",
#: "X (i.e., Y)": one answer written several ways.
FORMS_RE = re.compile(
    r",?\s+or\s+(?:equivalently|an\s+equivalent\s+form(?:\s+such\s+as)?|approximately|"
    r"in\s+other\s+words)\s+|,\s*(?:i\.e\.|equivalently)[,:]?\s+", re.IGNORECASE)

#: Disjunctions math-verify accepts when any side matches: an answer that offers
#: alternatives the reference does not is hedging, not solving. Spelt in LaTeX (``\lor``,
#: ``\vee``) or in words: "The answer is 4 or 5" parses as 4 (the first number) and would
#: pass against 4.
DISJUNCTION_RE = re.compile(r"\\(?:lor|vee)\b|\bor\b", re.IGNORECASE)

#: Separators between candidates at the top level (outside brackets).
_STRONG_SEP = re.compile(r"\s*(?:;|\band/or\b|\band\b|\bor\b|\bnor\b|\bvs\.?|\bversus\b)\s*",
                         re.IGNORECASE)
_NAME = r"[A-Za-z](?:_\{?\w+\}?)?(?:\([^()]*\))?"
_ASSIGN_RE = re.compile(rf"^\s*((?:{_NAME}\s*=\s*)+)([^=]+)$")


def split_top(s: str, sep: re.Pattern) -> list[str]:
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
    for f in split_top(text, FORMS_RE):
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
            if j <= 0 or not f[j - 1].isspace() or not words_in(inner):
                break
            extra.insert(0, re.sub(r"^(?:i\.e\.|e\.g\.|that\s+is|namely)[,:]?\s*", "",
                                   inner, flags=re.IGNORECASE))
            f = f[:j].strip()
        forms += [f] + extra
    return [f for f in forms if f]


class Part:
    """One candidate: named or unnamed values (``x=6, y=5`` → x: 6, y: 5; ``(6, 5)`` →
    6, 5; ``76`` → 76), or words."""

    __slots__ = ("pairs", "words", "qual", "text", "approx")

    def __init__(self, text: str, pairs: list[tuple[str | None, str]], words: bool = False,
                 qual: str = ""):
        self.text, self.pairs, self.words, self.qual = text, pairs, words, qual
        self.approx = False  # a reference's "or approximately 35.7%" form

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"Part({self.text!r}, {self.pairs}, words={self.words}, qual={self.qual!r})"


def _expand_pm(value: str) -> list[str]:
    """``x±y`` → ``x+y``, ``x-y`` (the signs of one value taken together)."""
    if "±" not in value:
        return [value]
    return [re.sub(r"(^|[=(\[{,])\s*\+", r"\1", value.replace("±", sign)) for sign in "+-"]


def _parts_of(core: str, answer: bool) -> list[Part]:
    """The candidates one form lists. An answer's worded aside ("7 and it is prime") is
    dropped when it makes no claim; everything else counts."""
    parts: list[Part] = []
    for chunk in split_top(core, _STRONG_SEP):
        if not chunk:
            continue
        pieces = split_top(chunk, re.compile(r"\s*,\s*"))
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
        kept = [p for p in parts if not (p.words and not REMARK_CLAIMS.search(p.text)
                                          and not has_math_text(p.text))]
        if kept and any(not p.words for p in kept):
            parts = kept
    return parts


def _names(lhs: str) -> list[str]:
    return [n.replace(" ", "") for n in re.findall(_NAME, lhs)]


def _solution(text: str, assigns: list[tuple[str, str]]) -> list[Part]:
    pairs: list[tuple[str | None, str]] = []
    for lhs, value in assigns:
        pairs += [(n, value.strip()) for n in _names(lhs)]
    out = [[]]
    for name, value in pairs:  # "x=±1, y=2" → two solutions
        out = [o + [(name, v)] for o in out for v in _expand_pm(value)]
    return [Part(text, o) for o in out]


def _part(p: str) -> list[Part]:
    core, qual = _strip_words(p)
    if not core:
        return [Part(p, [], words=True, qual=qual)]
    # a set of candidates: "{76, 144}", "x ∈ {76, 144}"
    m = re.match(rf"^(?:({_NAME})\s*∈\s*)?\{{(.*)\}}$", core)
    if m and _closing(core, core.index("{")) == len(core) - 1:
        inner = _parts_of(m.group(2), answer=False)
        if m.group(1):
            inner = [Part(x.text, [(m.group(1), v) for _, v in x.pairs], x.words)
                     for x in inner]
        return inner
    # a tuple "(6, 5)", "(x=8, y=2)", "(x, y) = (6, 5)"; an interval "[-1, 1)" stays whole
    m = re.match(r"^\((.*)\)\s*=\s*\((.*)\)$", core)
    if m and _closing(core, 0) == core.index(")") and "," in m.group(1):
        names = [n.strip() for n in m.group(1).split(",")]
        values = split_top(m.group(2), re.compile(r"\s*,\s*"))
        if len(names) == len(values) and all(re.fullmatch(_NAME, n) for n in names):
            return _solution(core, [(f"{n}=", v) for n, v in zip(names, values)])
    if core.startswith("(") and core.endswith(")") and _closing(core, 0) == len(core) - 1:
        items = split_top(core[1:-1], re.compile(r"\s*,\s*"))
        if len(items) > 1:
            assigns = [_ASSIGN_RE.match(x) for x in items]
            if all(assigns):
                return _solution(core, [(a.group(1), a.group(2)) for a in assigns])
            out = [[]]
            for x in items:
                out = [o + [(None, v)] for o in out for v in _expand_pm(x)]
            return [Part(core, o, qual=qual) for o in out]
    a = _ASSIGN_RE.match(core)
    if a and not re.search(r"[<>≤≥]", core):
        return [Part(x.text, x.pairs, qual=qual)
                for x in _solution(core, [(a.group(1), a.group(2))])]
    words = bool(words_in(core)) or not (has_math_text(core) or re.fullmatch(r"[A-Za-z]", core))
    if words:
        return [Part(core, [], words=True, qual=qual)]
    return [Part(core, [(None, v)], qual=qual) for v in _expand_pm(core)]


class Form:
    def __init__(self, text: str, answer: bool):
        self.text = text
        self.key = norm_key(text)
        core, qual = _strip_words(text)
        self.core_key, self.qual = norm_key(core), qual
        yn = YES_NO.match(core)
        self.yesno = yn.group(1).lower() if yn else None
        self.bare_yesno = bool(yn) and not core[yn.end():].strip(" ,.;:!")
        self.parts = _parts_of(core, answer)
        for p in self.parts:  # "at least 5", "\ge 5", "not 5": the claim is the qualifier's
            p.qual = p.qual or qual
        self.values = sum(max(1, len(p.pairs)) for p in self.parts) or 1


def forms_of(text: str, answer: bool) -> list[Form]:
    s = canon(text)
    forms = [Form(f, answer) for f in _split_forms(s)]
    for f in forms:
        if re.search(r"\bapproximately\s+" + re.escape(f.text[:20]), s, re.IGNORECASE):
            for p in f.parts:
                p.approx = True
    if answer and len(forms) > 1:  # an answer's worded remark in brackets is no claim
        kept = [f for f in forms if not (all(p.words for p in f.parts) and
                                         not REMARK_CLAIMS.search(f.text) and
                                         not has_math_text(f.text))]
        forms = kept or forms[:1]
    return forms


def values_of(text: str) -> int:
    """How many candidate values *text* lists (the most over its forms; 1 when empty)."""
    if not text or not text.strip():
        return 1
    return max((f.values for f in forms_of(text, answer=False)), default=1)
