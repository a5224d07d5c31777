"""verify_math on real competition answers: the 270 CHAMP problems (``champ-dataset`` 1.0.0,
``champ_dataset.load('v0')``), each reference checked three ways:

(a) self-consistency: the reference given back as the answer ("The final answer is
    \\boxed{REF}", "The final answer is REF.") must be ``correct``;
(b) words: the reference restated, with the words it carries or in other natural forms
    ("98 values" → "The final answer is 98 values." / "\\boxed{98}"; "0 is the only
    possible value" → "The only possible value is 0."; "376 and 625" → "625 and 376";
    "C(10, 5), or equivalently 252" → "\\boxed{252}"), plus the hand-written LaTeX forms
    of ``tests/data/verify_math_champ.json``, must be ``correct``;
(c) wrong-but-passed: hedges ("REF and OTHER", "OTHER or REF", a boxed list of candidates,
    two boxes), another problem's reference and a perturbed number must never be
    ``correct`` (``wrong`` wanted; ``unverifiable`` is counted apart).

    python bench/verify_math_real.py                         # this checkout
    git worktree add /tmp/vm_old 685c665                     # an older synth
    SYNTH_ROOT=/tmp/vm_old python bench/verify_math_real.py  # its verify_math, same cases

Prints n / correct / wrong / unverifiable per category and every failure (``-q``: counts
only). The cases come from this file whatever ``SYNTH_ROOT`` says, so both runs judge the
same pairs. ``tests/test_verify_math_champ.py`` runs the same cases in CI.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = Path(os.environ.get("SYNTH_ROOT", HERE.parent))
TABLE = HERE.parent / "tests" / "data" / "verify_math_champ.json"

#: sha256 of champ-dataset 1.0.0's dataset_files/v0.json: the cases below are written for it
CHAMP_V0_SHA256 = "72fa7727c8c3d4377d297b2cd171dc35ad86e2cfe9df2043131ba8a5389e5a71"

_INT = re.compile(r"(?<![\w.^])\d+(?![\w.])")
_YESNO = {"yes": "No", "no": "Yes"}


def load_problems() -> list[tuple[str, str]]:
    """``(id, reference)`` for the 270 problems of CHAMP v0, in the dataset's order; the
    reference is the plain-text answer (``Problem._answer``, the ``@@`` math marks dropped)."""
    import hashlib
    from importlib.resources import files

    import champ_dataset

    data = files("champ_dataset") / "dataset_files" / "v0.json"
    digest = hashlib.sha256(data.read_bytes()).hexdigest()
    if digest != CHAMP_V0_SHA256:
        raise RuntimeError(f"champ_dataset v0.json has sha256 {digest}, not the pinned "
                           f"{CHAMP_V0_SHA256}: the cases are written for champ-dataset 1.0.0")
    ds = champ_dataset.load("v0")
    return [(pid, p._answer) for pid, p in ds.problems.items()]


def _digits(ref: str) -> str:
    """"Exactly one" → "Exactly 1": another problem's reference must differ in value."""
    return re.sub(r"\b(?:one|One)\b", "1", ref)


def _perturbed(ref: str) -> list[str]:
    """The reference with its first, then its last, whole number increased by one."""
    out = []
    for m in (list(_INT.finditer(ref))[:1] + list(_INT.finditer(ref))[-1:]):
        s = ref[:m.start()] + str(int(m.group()) + 1) + ref[m.end():]
        if s not in out:
            out.append(s)
    return out


def _parts(ref: str) -> list[str] | None:
    """The parts of a reference that lists several plain answers ("376 and 625",
    "1, 4 and 9"), else None."""
    if "=" in ref or "(" in ref or not re.search(r"\band\b", ref):
        return None
    parts = [p.strip() for p in re.split(r",|\band\b", ref)]
    return parts if all(re.fullmatch(r"-?\d+", p) for p in parts) else None


def _restatements(ref: str) -> list[str]:
    """Natural restatements of a reference that carries words or several parts."""
    out: list[str] = []
    m = re.fullmatch(r"(-?\d+|n|k-2) ([a-z][a-z-]*(?: [a-z][a-z-]*)?)", ref)
    if m:  # "98 values", "n times", "0 pairs"
        out += [f"The final answer is {ref}.", f"The final answer is \\boxed{{{m[1]}}}",
                f"There are {ref}."]
    m = re.fullmatch(r"(.+) is the only possible value", ref)
    if m:
        out += [f"The final answer is \\boxed{{{m[1]}}}", f"The only possible value is {m[1]}.",
                f"The final answer is {m[1]}."]
    m = re.fullmatch(r"The limit exists and is equal to (.+)|"
                     r"The only possible value for the limit is (.+)", ref)
    if m:
        x = m[1] or m[2]
        out += [f"The final answer is \\boxed{{{x}}}", f"The final answer: the limit is {x}.",
                f"The final answer is {x}."]
    m = re.fullmatch(r"(.+?) \((?=[^)]*[a-z]{3})(?:i\.e\.,? )?[^()]*(?:\([^()]*\)[^()]*)*\)",
                     ref)
    if m:  # "100 (i.e., all values)", "0 (none of the values)"
        out += [f"The final answer is \\boxed{{{m[1]}}}", f"The final answer is {m[1]}."]
    m = re.fullmatch(r"(.+?),? or (?:equivalently|an equivalent form such as|approximately) "
                     r"(.+)", ref)
    if m:
        out += [f"The final answer is \\boxed{{{m[1]}}}", f"The final answer is \\boxed{{{m[2]}}}"]
    m = re.fullmatch(r"(?:At least|At most) (\d+) .*|Exactly (one)(?: \w+)?", ref)
    if m:
        out += [f"The final answer is \\boxed{{{m[1] or 1}}}"]
    parts = _parts(ref)
    if parts:
        out += [f"The final answer is {' and '.join(reversed(parts))}.",
                f"The final answer is \\boxed{{{', '.join(parts)}}}",
                f"The final answer is \\boxed{{\\{{{', '.join(parts)}\\}}}}"]
    m = re.fullmatch(r"([a-z])=(-?\d+), ([a-z])=(-?\d+)", ref)
    if m:  # "x=6, y=5"
        out += [f"The final answer is \\boxed{{{m[1]} = {m[2]}, {m[3]} = {m[4]}}}",
                f"The final answer is {m[1]} = {m[2]} and {m[3]} = {m[4]}.",
                f"The final answer is \\boxed{{({m[1]}, {m[3]}) = ({m[2]}, {m[4]})}}"]
    if ref in ("Yes", "No"):
        out += [f"{ref}.", f"The final answer is: {ref.lower()}",
                f"The final answer is \\boxed{{\\text{{{ref}}}}}"]
    m = re.fullmatch(r"No (integer|positive integer|possible) solutions", ref)
    if m:
        out += [f"There are no {m[1]} solutions."]
    return out


#: Ways to slip a second candidate (or a bound) past a verifier, for a one-number
#: reference {r} and another number {o}.
TRICKS = [
    "\\boxed{{{o} \\\\ {r}}}",                       # a line break inside the box
    "\\boxed{{{o} \\quad {r}}}",                       # a wide space
    "\\boxed{{{o} \\text{{ or }} {r}}}",
    "\\boxed{{{o} \\text{{ and }} {r}}}",
    "\\boxed{{\\{{{o}, {r}\\}}}}",                     # a set of candidates
    "\\boxed{{x \\in \\{{{o}, {r}\\}}}}",
    "\\boxed{{{o} \\lor {r}}}",
    "\\boxed{{{o} \\mid {r}}}",
    "\\boxed{{{m} \\pm 1}}",                           # ± that covers the reference
    "\\boxed{{\\ge {r}}}",                              # a bound, not a value
    "\\boxed{{\\boxed{{{o}}} {r}}}",                     # nested boxes
    "\\boxed{{{o}}}\\boxed{{{r}}}",
    "\\boxed{{{r}}} (or \\boxed{{{o}}})",
    "\\boxed{{{r} \\text{{ (or }} {o})}}",
    "The final answer is \\({o}\\) and \\({r}\\).",
    "The final answer: {o} & {r}",
    "The final answer is {o}, {r}.",
    "The final answer is {o}; {r}.",
    "The final answer is either {o} or {r}.",
    "The final answer is {r} (or possibly {o}).",
    "The final answer is between {o} and {r}.",
    "The final answer is at least {r}.",
    "The final answer is not {r}.",
    "The final answer is {r} or more.",
    "The final answer is {r}, or {o} if counted differently.",
    "The final answer is \\boxed{{{o}}}.\n\nActually, \\boxed{{{r}}}.",
    "So it is \\boxed{{{r}}}.\n\nWait, that's wrong: the answer is {o}.",
    "The final answer is {o}.\n\nThe final answer is {r}.",
    "\\boxed{{{o} = {r}}}",                              # a false chain ends in the reference
    "The final answer is {r}, which is wrong.",
]
#: The same for a yes/no reference {r} and its opposite {o}.
YES_NO_TRICKS = [
    "{r} and {o}.", "{o} or {r}.", "The final answer is {r} (or {o}).", "{r}/{o}",
    "\\boxed{{\\text{{{o}}}}} \\boxed{{\\text{{{r}}}}}", "\\boxed{{\\text{{{o} or {r}}}}}",
]

#: The red team's ways past the verifier (issue 16 part 2 review), as (response, reference,
#: want): each must never be ``correct`` unless want is ``correct``.
RED_TEAM = [
    ('\\boxed{10\\%}', '40%', 'not correct'),
    ('\\boxed{0.1}', '25%', 'not correct'),
    ('\\boxed{0.171}', '5/14, or approximately 35.7%', 'not correct'),
    ('\\boxed{0.25}', '25\\%', 'correct'),
    ('\\boxed{\\frac14}', '25\\%', 'correct'),
    ('\\boxed{50\\%}', '0.5', 'correct'),
    ('\\boxed{40\\%}', '40%', 'correct'),
    ('\\boxed{35.7\\%}', '5/14, or approximately 35.7%', 'correct'),
    ('It could be 6 or 5', '5', 'not correct'),
    ('Candidates: 1, 2, 3, 4, 5', '5', 'not correct'),
    ('So x = 6 or x = 5.', '5', 'not correct'),
    ('x ∈ {6, 5}', '5', 'not correct'),
    ('Answer: 6 or 5', '5', 'not correct'),
    ('ANSWER: 6\nANSWER: 5', '5', 'not correct'),
    ('**Answer: 6** (wait, 5)', '5', 'not correct'),
    ('Answer: 5', '5', 'correct'),
    ('So x = 5.', '5', 'correct'),
    ("The answer is 5. Actually no, it's 6.", '5', 'not correct'),
    ('The final answer is $5$. Or $6$.', '5', 'not correct'),
    ('The answer is 5\n\nor 6', '5', 'not correct'),
    ('The answer is 6.\nThe answer is 5.', '5', 'not correct'),
    ('#### 6\n#### 5', '5', 'not correct'),
    ('The answer is five. Or six.', '5', 'not correct'),
    ('The answer is 5 (or 6).', '5', 'not correct'),
    ('The answer is 5, wait, 6', '5', 'not correct'),
    ('The answer is 5. Correction: 6', '5', 'not correct'),
    ('The answer is not 5 but 6', '5', 'not correct'),
    ('The answer is 5. I hope it is correct.', '5', 'correct'),
    ('\\boxed{5} or 6', '5', 'not correct'),
    ('6 or \\boxed{5}', '5', 'not correct'),
    ('\\boxed{5} (or 6)', '5', 'not correct'),
    ('The answer is 6. \\boxed{5}', '5', 'not correct'),
    ('#### 6 \\boxed{5}', '5', 'not correct'),
    ('\\framebox{6} \\boxed{5}', '5', 'not correct'),
    ('\\boxed{6 \\boxed{5}}', '5', 'not correct'),
    ('\\boxed{6\n\\boxed{5}', '5', 'not correct'),
    ("\\boxed{5}\nSo it's 6.", '5', 'not correct'),
    ('\\boxed{5}\nCorrection: 6', '5', 'not correct'),
    ('\\boxed{\\text{No}}\nThe answer is yes.', 'No', 'not correct'),
    ('Thus the answer is \\boxed{5}.', '5', 'correct'),
    ('We get 3+2 = 5, so \\boxed{5}', '5', 'correct'),
    ('\\boxed{6 \\vert 5}', '5', 'not correct'),
    ('\\boxed{6 \\colon 5}', '5', 'not correct'),
    ('\\boxed{6 \\setminus 5}', '5', 'not correct'),
    ('\\boxed{6 \\hspace{1cm} 5}', '5', 'not correct'),
    ('\\boxed{6 \\cr 5}', '5', 'not correct'),
    ('\\boxed{\\substack{6\\\\5}}', '5', 'not correct'),
    ('\\boxed{{6 \\atop 5}}', '5', 'not correct'),
    ('\\boxed{6 \\therefore 5}', '5', 'not correct'),
    ('\\boxed{6 \\equiv 5}', '5', 'not correct'),
    ('\\boxed{\\tag{6} 5}', '5', 'not correct'),
    ('\\boxed{\\iffalse 6 \\fi 5}', '5', 'not correct'),
    ('\\boxed{5_{6}}', '5', 'not correct'),
    ('\\boxed{\\not 5}', '5', 'not correct'),
    ('\\boxed{\\neg 5}', '5', 'not correct'),
    ('\\boxed{x \\not= 5}', '5', 'not correct'),
    ('\\boxed{x \\ngeq 5}', '5', 'not correct'),
    ('\\boxed{x \\nless 5}', '5', 'not correct'),
    ('\\boxed{x \\approx 5}', '5', 'not correct'),
    ('\\boxed{\\doteq 5}', '5', 'not correct'),
    ('\\boxed{x \\overset{?}{=} 5}', '5', 'not correct'),
    ('\\boxed{5, \\ldots}', '5', 'not correct'),
    ('\\boxed{5, \\text{etc}}', '5', 'not correct'),
    ('\\boxed{5 \\text{ and up}}', '5', 'not correct'),
    ('\\boxed{5 \\text{ onwards}}', '5', 'not correct'),
    ('\\boxed{5 \\text{ (among others)}}', '5', 'not correct'),
    ('\\boxed{1,4,9, \\ldots}', '1, 4 and 9', 'not correct'),
    ('\\boxed{1, 2, 3, \\ldots}', '{1,2,3}', 'not correct'),
    ('\\boxed{98 \\text{ wrong}}', '98 values', 'not correct'),
    ('\\boxed{98 \\text{ incorrect}}', '98 values', 'not correct'),
    ('\\boxed{98 \\text{ false}}', '98 values', 'not correct'),
    ('\\boxed{98 \\text{ guess}}', '98 values', 'not correct'),
    ('\\boxed{98 \\text{ nope}}', '98 values', 'not correct'),
    ('\\boxed{98 \\text{ upper bound}}', '98 values', 'not correct'),
    ('\\boxed{98 \\text{ max}}', '98 values', 'not correct'),
    ('\\boxed{98 \\text{ approx}}', '98 values', 'not correct'),
    ('\\boxed{98 \\text{ ish}}', '98 values', 'not correct'),
    ('\\boxed{98 \\text{ (unsure)}}', '98 values', 'not correct'),
    ('\\boxed{98 \\text{ (estimate)}}', '98 values', 'not correct'),
    ('\\boxed{5?}', '5', 'not correct'),
    ('\\boxed{2 \\text{ equalities}}', '2 inequalities', 'not correct'),
    ('\\boxed{30 \\text{ cm}}', '30 m', 'not correct'),
    ('The answer is 3 m', '3 km', 'not correct'),
    ('\\boxed{18 cents}', '18 dollars', 'not correct'),
    ('\\boxed{5 minutes}', '5 hours', 'not correct'),
    ('\\boxed{C D}', 'C', 'not correct'),
    ('\\boxed{98 \\text{ values}}', '98 values', 'correct'),
    ('\\boxed{98}', '98 values', 'correct'),
    ('\\boxed{Yes, it is impossible}', 'Yes', 'not correct'),
    ('\\boxed{Yes. Actually no}', 'Yes', 'not correct'),
    ('\\boxed{\\text{Yes}\\text{No}}', 'Yes', 'not correct'),
    ('The answer is yes. Actually no.', 'Yes', 'not correct'),
    ('\\boxed{\\text{No, such } n \\text{ exists}}', 'No', 'not correct'),
    ('\\boxed{\\text{Yes}}', 'Yes', 'correct'),
    ('No, there is no such sequence.', 'No', 'correct'),
    ('\\boxed{0.333333}', '1/3', 'not correct'),
    ('\\boxed{3.14159265}', '\\pi', 'not correct'),
    ('\\boxed{1.414214}', '\\sqrt{2}', 'not correct'),
    ('\\boxed{0.142857}', '1/7', 'not correct'),
    ('\\boxed{0.0000014}', '0.000001', 'not correct'),
    ('\\boxed{1.4999996}', '1.5', 'not correct'),
    ('\\boxed{1.50}', '1.5', 'correct'),
    ('\\boxed{0.5}', '1/2', 'correct'),
    ('\\boxed{\\{1, 2\\}}', '(1, 2)', 'not correct'),
    ('\\boxed{1 \\text{ and } 2}', '(1, 2)', 'not correct'),
    ('\\boxed{0, \\infty}', '(0, \\infty)', 'not correct'),
    ('\\boxed{6 \\text{ or } 5}', 'x=6, y=5', 'not correct'),
    ('\\boxed{x=6 \\text{ or } y=5}', 'x=6, y=5', 'not correct'),
    ('\\boxed{376 \\text{ or } 625}', '376 and 625', 'not correct'),
    ('\\boxed{376 \\text{ and } 625}', '376 and 625', 'correct'),
    ('\\boxed{(1, 2)}', '(1, 2)', 'correct'),
    ('\\boxed{1 1/2}', '11/2', 'not correct'),
    ('\\boxed{1 2}', '12', 'not correct'),
    ('<think>Try \\boxed{3}? That fails.</think> So the answer is \\boxed{7}', '7', 'correct'),
    ('\\boxed{√2}', '\\sqrt{2}', 'correct'),
    ('\\boxed{2π}', '2\\pi', 'correct'),
]


def build_cases(problems: list[tuple[str, str]],
                table: dict[str, dict[str, list[str]]] | None = None) -> list[dict]:
    """Every (category, problem id, response, reference, want) the bench judges."""
    if table is None:
        table = json.loads(TABLE.read_text()) if TABLE.exists() else {}
    cases: list[dict] = []

    def add(cat: str, pid: str, resp: str, ref: str) -> None:
        want = "wrong" if cat.startswith("c") else "correct"
        cases.append({"category": cat, "id": pid, "response": resp, "reference": ref,
                      "want": want})

    refs = [r for _, r in problems]
    for k, (pid, ref) in enumerate(problems):
        add("a self", pid, f"The final answer is \\boxed{{{ref}}}", ref)
        add("a self", pid, f"The final answer is {ref}.", ref)
        for resp in _restatements(ref) + table.get(pid, {}).get("correct", []):
            add("b words", pid, resp, ref)
        # another answer: a perturbed number, else the opposite yes/no, else the next
        # different reference
        other_refs = [r for r in refs[k + 1:] + refs[:k]
                      if set(_INT.findall(_digits(r))) != set(_INT.findall(_digits(ref)))
                      and r.lower() != ref.lower()]
        perturbed = _perturbed(ref)
        other = perturbed[0] if perturbed else _YESNO.get(ref.lower(), other_refs[0])
        parts = _parts(ref)
        if parts:  # a part more than the reference has
            other = str(int(parts[-1]) + 1)
        add("c hedge", pid, f"The final answer is {ref} and {other}.", ref)
        add("c hedge", pid, f"The final answer is {other} or {ref}.", ref)
        add("c hedge", pid, f"The final answer is \\boxed{{{ref}, {other}}}", ref)
        add("c hedge", pid, f"The final answer is one of {other}, {ref}, {other_refs[1]}.", ref)
        add("c hedge", pid, f"It is \\boxed{{{other}}} or \\boxed{{{ref}}}.", ref)
        add("c other", pid, f"The final answer is \\boxed{{{other_refs[0]}}}", ref)
        add("c other", pid, f"The final answer is {other_refs[0]}.", ref)
        for p in perturbed:
            add("c perturbed", pid, f"The final answer is \\boxed{{{p}}}", ref)
            add("c perturbed", pid, f"The final answer is {p}.", ref)
        for resp in table.get(pid, {}).get("wrong", []):
            add("c table", pid, resp, ref)
        if re.fullmatch(r"-?\d+", ref):
            r = int(ref)
            for t in TRICKS:
                add("c tricks", pid, t.format(r=r, o=r + 1, m=r - 1), ref)
        if ref in ("Yes", "No"):
            for t in YES_NO_TRICKS:
                add("c tricks", pid, t.format(r=ref, o=_YESNO[ref.lower()]), ref)
    for resp, ref, want in RED_TEAM:
        add("b red team" if want == "correct" else "c red team", "red-team", resp, ref)
    return cases


def run(cases: list[dict], workers: int = 2) -> list[tuple[str, str]]:
    from synth.curate.verify_math import verify_many

    return verify_many([(c["response"], c["reference"]) for c in cases], workers=workers,
                       timeout_s=5.0)


def summarise(cases: list[dict], results: list[tuple[str, str]]) -> tuple[str, list[str]]:
    """A markdown table of outcomes per category, and the failures: (a)/(b) not correct,
    (c) correct."""
    by: dict[str, Counter] = {}
    failures = []
    for c, (outcome, why) in zip(cases, results):
        group = c["category"].split()[0]
        by.setdefault(c["category"], Counter())[outcome] += 1
        bad = outcome != "correct" if group in "ab" else outcome == "correct"
        if bad:
            failures.append(f"{c['category']:12} {c['id']:20} {outcome:12} "
                            f"{c['response']!r} vs {c['reference']!r}: {why}")
    lines = ["| category | n | correct | wrong | unverifiable | failures |",
             "|---|---:|---:|---:|---:|---:|"]
    for cat in sorted(by):
        n = sum(by[cat].values())
        bad = n - by[cat]["correct"] if cat[0] in "ab" else by[cat]["correct"]
        lines.append(f"| {cat} | {n} | {by[cat]['correct']} | {by[cat]['wrong']} | "
                     f"{by[cat]['unverifiable']} | {bad} |")
    return "\n".join(lines), failures


def main(argv: list[str]) -> int:
    sys.path.insert(0, str(ROOT))
    # verify_many's worker processes import synth afresh (their sys.path starts with the
    # current directory): they must find the same one
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])
    os.chdir(ROOT)
    import synth.curate.verify_math as vm

    problems = load_problems()
    cases = build_cases(problems)
    t0 = time.monotonic()
    results = run(cases)
    dt = time.monotonic() - t0
    table, failures = summarise(cases, results)
    from synth.curate.verify_math import verify_many

    probe = verify_many([("The final answer is 98 values.", "98 values")], workers=1)
    print(f"verify_math from {Path(vm.__file__).resolve()} (a worker says {probe[0][0]} "
          "to '98 values' against itself)")
    print(f"{len(problems)} problems, {len(cases)} cases, {dt:.1f} s (2 workers)\n")
    print(table)
    if "-q" not in argv:
        print(f"\n{len(failures)} failures:")
        print("\n".join(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
