"""Self-consistency over extracted answers (:func:`majority_vote`), by the cheap voting key:
no sympy, so it cannot hang.
"""

from __future__ import annotations

from synth.curate.verify_math.text import norm_key


def normalise_answer(answer: str) -> str:
    """Public alias of the voting key (see :func:`majority_vote`)."""
    return norm_key(answer)


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
        key = norm_key(str(a))
        counts[key] = counts.get(key, 0) + 1
        if key not in first:
            first[key] = (pos, str(a).strip())
    if not counts:
        return None, 0.0
    best = max(counts, key=lambda k: (counts[k], -first[k][0]))
    return first[best][1], counts[best] / len(answers)
