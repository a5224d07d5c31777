"""One value as a sympy object, parsed faithfully or not at all (:func:`parse_value`).

Plain text ("floor(n/2)!", "C(10, 5)", "sum_(k=1)^n 1/k") goes to sympy's ``parse_expr``,
which runs ``eval``: a model's answer reaches it only through the character and name
allow-list of :func:`plain_is_safe` and with no builtins. LaTeX goes to math-verify, and
only when it is built from known commands. sympy and math-verify are imported when a value
is parsed, not with this module.
"""

from __future__ import annotations

import functools
import logging
import re
from typing import Any

from synth.curate.verify_math.forms import split_top, words_in


class ItemTimeout(BaseException):
    """Raised by our per-item SIGALRM timer (BaseException, like math_verify's)."""


def quiet_math_verify_logging() -> None:
    # math_verify warns on every call made with its own timeouts disabled.
    for name in ("math_verify", "math_verify.parser", "math_verify.grader", "math_verify.utils"):
        logging.getLogger(name).setLevel(logging.ERROR)


def plain_locals() -> dict:
    """The names a plain-text value may use: one-letter real symbols, constants and the
    functions sympy reads them as."""
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
#: neither one letter nor a function of :func:`plain_locals`) and the eval sees no
#: builtins: only sympy's names, which the code sympy's transformations write refers to.
_PLAIN_CHARS_RE = re.compile(r"^[\dA-Za-z\s+\-*/^().,=<>!]*$")
_PLAIN_DOT_RE = re.compile(r"\.(?!\d)|\d\.\d+\.|\b0[xXoObB]")


@functools.lru_cache(maxsize=1)
def _plain_globals() -> dict[str, Any]:
    glob: dict[str, Any] = {}
    exec("from sympy import *", glob)  # noqa: S102 - a constant import, as parse_expr does
    glob["__builtins__"] = {}
    return glob


def plain_is_safe(s: str, names: dict) -> bool:
    """Whether *s* passes the allow-list above, *names* being the only words it may use."""
    if not _PLAIN_CHARS_RE.match(s) or _PLAIN_DOT_RE.search(s):
        return False
    return all(len(w) == 1 or w in names or w == "oo" or all(c in names for c in w)
               for w in re.findall(r"[A-Za-z]+", s))


def parse_plain(s: str) -> Any:
    """Plain-text *s* as a sympy object; ValueError when it fails :func:`plain_is_safe`."""
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
    local = plain_locals()
    local["oo"] = sympy.oo
    if not plain_is_safe(s, local):
        raise ValueError("not a plain-text value sympy may read")
    sides = split_top(s, re.compile(r"(?<![<>!=])=(?!=)"))
    glob = _plain_globals()
    exprs = [parse_expr(x, local_dict=local, global_dict=glob, transformations=transforms,
                        evaluate=False)
             for x in sides]
    if len(exprs) == 2:
        return sympy.Eq(exprs[0], exprs[1], evaluate=False)
    if len(exprs) != 1:
        raise ValueError("several '='")
    return exprs[0]


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
#: The words a LaTeX value may spell out (``\\bmod``, ``\\max``): any other is text.
_LATEX_WORDS_OK = {"mod", "pmod", "bmod", "gcd", "lcm", "max", "min", "log", "ln", "exp",
                   "sin", "cos", "tan", "deg"}

#: Relations between two things, not a value: math-verify keeps one side ("77 \mid 76" → 76).
_NOT_A_VALUE_RE = re.compile(
    r"\\(?:mid|nmid|divides|parallel|perp|sim|simeq|cong|propto|to|rightarrow|Rightarrow|"
    r"longrightarrow|implies|iff|Leftrightarrow|leftrightarrow|leftarrow|Leftarrow|mapsto|"
    r"models|vdash|ll|gg|prec|succ|subset|subseteq|supset|supseteq|ni|notin)(?![A-Za-z])"
    r"|[→⇒⇔↦∣]")
_EQUALS_RE = re.compile(r"(?<![<>!≤≥=])=(?!=)")


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


def verify_equal(gold: Any, answer: Any) -> bool | None:
    """math-verify's verdict on two parsed values; None when it fails on them (an item's
    own timeout still propagates)."""
    import math_verify as mv

    try:
        return bool(mv.verify([gold], [answer], timeout_seconds=None, raise_on_error=True))
    except ItemTimeout:
        raise
    except BaseException:
        return None


def _same_value(a: Any, b: Any) -> bool:
    return bool(verify_equal(b, a))


def parse_value(value: str, cache: dict) -> Any:
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
    if latex and any(w.lower() not in _LATEX_WORDS_OK for w in words_in(v)):
        return None
    if not latex and (words_in(v) or (re.search(r"\b(?:sum|prod)\b|(?:sum|prod)_", v)
                                      and not _PLAIN_SUM_RE.match(v))):
        return None
    import sympy

    expr = None
    if not latex:
        try:
            expr = parse_plain(v)
        except ItemTimeout:
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
        except ItemTimeout:
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
    sides = split_top(v, _EQUALS_RE)
    if len(sides) > 1:  # math-verify reads a chain by its last side: "77 = 76" is no 76
        consts = [x for x in (parse_value(x, cache) for x in sides)
                  if x is not None and not getattr(x, "free_symbols", True)]
        if not all(_same_value(x, consts[-1]) for x in consts[:-1]):
            return None
    cache[value] = expr
    return expr
