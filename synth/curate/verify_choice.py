"""Check an answer that picks one letter: multiple-choice options (A-D of MMLU or ARC) or a
letter asked for ("the first letter of ...").

A model answers in a sentence (``The first letter of the word "lantern" is "L".``,
``The answer is (B).``), so neither an exact match nor math parsing applies. The answer is
right when it *names exactly one letter* and that letter is the reference, in any case.
Naming a second letter is wrong even when the answer rules it out (``"C", not "S"``): negations
are not parsed, so hedging never pays.

Why by hand: lm-evaluation-harness and OpenAI's simple-evals pull the option out with a
regular expression per prompt format (``answer is \\(?([A-J])``) and take the first match,
which a hedging answer passes; what is needed here is "every letter the answer names", over
any phrasing.
"""

from __future__ import annotations

import re

__all__ = ["answer_letters", "is_letter_reference", "check_choice"]

#: One ASCII letter standing alone: no letter or digit on either side, not the tail of a
#: contraction ("it's"), not the head of one ("I'm"), not part of an abbreviation ("e.g.").
_LONE_LETTER = re.compile(
    r"(?<![A-Za-z0-9])(?<![A-Za-z]['\u2019.])([A-Za-z])"
    r"(?![A-Za-z0-9])(?!['\u2019][A-Za-z])(?!\.[A-Za-z])")
#: Characters that mark a letter as quoted or emphasised when they sit on both sides of it.
_WRAP = set("\"'`*_()[]<>\u2018\u2019\u201c\u201d")
#: The lower-case word after a lone "a"/"A"/"i"/"I" decides whether it is the English word
#: ("a carrot", "I think") or a letter named ("A or C").
_NEXT_WORD = re.compile(r"\s+([a-z]+)")
#: Words that, after "A", make it a letter: connectives of a hedge ("A or C", "A and C",
#: "A vs C") and verbs that judge an option ("A is", "A seems right", "A because ...");
#: not "can", "will", "must", which follow the article too ("a can of", "a must").
_LETTER_VERBS = frozenset(
    "or and nor vs versus but because since as is was are were be seems seem looks sounds "
    "fits appears would could should might may".split())
#: After "I" the modal verbs are the pronoun's ("I would say", "I might"), so fewer words.
_I_LETTER_VERBS = frozenset(
    "or and nor vs versus but because since is was seems looks sounds fits appears".split())


def answer_letters(answer: str) -> set[str]:
    """The distinct letters (upper case) that ``answer`` names as its answer.

    A letter counts when it stands alone (see :data:`_LONE_LETTER`) unless it reads as the
    English word "a" or "I": ``a``/``A``/``i``/``I`` followed by a lower-case word is text
    ("a carrot", "I think"), except when that word joins or judges letters ("A or C",
    "A is", "I because", "a seems": :data:`_LETTER_VERBS`). A wrapped letter (``"C"``,
    ``'c'``, ``**C**``, ``(C)``) always counts. Letters inside words, including a quoted word
    being asked about, never count.
    """
    found: set[str] = set()
    for m in _LONE_LETTER.finditer(answer):
        letter, start, end = m.group(1), m.start(1), m.end(1)
        before = answer[start - 1] if start else ""
        after = answer[end] if end < len(answer) else ""
        if before in _WRAP and after in _WRAP:
            found.add(letter.upper())
            continue
        nxt = _NEXT_WORD.match(answer, end)
        if letter in "aAiI" and nxt and nxt.group(1) not in (
                _LETTER_VERBS if letter in "aA" else _I_LETTER_VERBS):
            continue
        found.add(letter.upper())
    return found


def is_letter_reference(reference: object) -> bool:
    """A reference that is one ASCII letter (``"C"``, ``" b "``)."""
    ref = str(reference).strip() if reference is not None else ""
    return len(ref) == 1 and ref.isascii() and ref.isalpha()


def check_choice(answer: str, reference: str) -> tuple[str, str]:
    """``("correct" | "wrong", reason)``: correct when ``answer`` names exactly one letter and
    it is ``reference`` (module docstring). Raises ``ValueError`` for a reference that is not
    one letter."""
    if not is_letter_reference(reference):
        raise ValueError(f"reference must be one letter, not {reference!r}")
    ref = str(reference).strip().upper()
    named = answer_letters(answer or "")
    if not named:
        return "wrong", "names no letter"
    if len(named) > 1:
        return "wrong", f"hedged: names {len(named)} letters ({', '.join(sorted(named))})"
    got = next(iter(named))
    return ("correct", f"names {got}") if got == ref else \
        ("wrong", f"another letter: names {got}, not {ref}")
