"""Verify math answers in teacher responses against reference answers.

Three layers:

* :func:`extract_answer` pulls the final answer out of a free-form response
  (``\\boxed{...}``, GSM8K ``#### X``, "the answer is X", or the last number).
* :func:`verify_one` compares that answer with a reference and returns
  ``"correct"``, ``"wrong"`` or ``"unverifiable"``. Answer and reference take the
  same steps (:func:`~.forms.forms_of`): markup, spacing and trailing punctuation off (never a
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
  known value-building LaTeX (``parse._LATEX_OK``): ``\\vert``, ``\\not``, ``\\tag``, a
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

The modules, each importing only those above it (none imports sympy or math-verify until a
value is parsed, so ``import synth.curate.verify_math`` stays light):

* ``text``: boxes, braces, ``</think>``, trailing punctuation, the voting key.
* ``forms``: the clean-up both sides take (:func:`~.forms.canon`) and the structure of one
  answer: its equivalent forms, the candidates each lists, the words around them.
* ``parse``: one value as a sympy object or nothing: the plain-text allow-list before
  sympy's ``parse_expr`` (which runs ``eval``), math-verify for LaTeX.
* ``compare``: equivalence of an answer and a reference (:func:`~.compare.judge`).
* ``extract``: the final answer of a response and the hedges around it
  (:func:`~.extract.hedge_reason`).
* ``check``: one response against one reference under a time limit (:func:`verify_one`).
* ``pool``: batches in worker processes (:func:`verify_many`).
* ``vote``: self-consistency (:func:`majority_vote`).
"""

from __future__ import annotations

from synth.curate.verify_math.check import verify_one
from synth.curate.verify_math.compare import Outcome
from synth.curate.verify_math.extract import extract_answer, hedge_reason
from synth.curate.verify_math.parse import parse_plain, plain_is_safe, plain_locals
from synth.curate.verify_math.pool import verify_many
from synth.curate.verify_math.vote import majority_vote, normalise_answer

__all__ = [
    "Outcome",
    "extract_answer",
    "verify_one",
    "verify_many",
    "majority_vote",
    "normalise_answer",
    "hedge_reason",
    "plain_is_safe",
    "plain_locals",
    "parse_plain",
]
