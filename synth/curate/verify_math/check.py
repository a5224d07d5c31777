"""One response against one reference: extraction, hedges, comparison
(:func:`check_response`), under a per-item ``SIGALRM`` time limit (:func:`verify_one`).
"""

from __future__ import annotations

import re
import signal
import threading
from typing import Any, Callable

from synth.curate.verify_math.compare import Outcome, judge
from synth.curate.verify_math.extract import (
    NUMBER_RE,
    distinct,
    distinct_boxes,
    find_answer,
    hedge_reason,
    reference_text,
    stated_hedge,
)
from synth.curate.verify_math.forms import YES_NO, values_of
from synth.curate.verify_math.parse import ItemTimeout, quiet_math_verify_logging
from synth.curate.verify_math.text import BOXED_RE, after_think, all_boxed, matching_brace


def check_response(response: str, reference: str) -> tuple[Outcome, str]:
    """Extraction + comparison, no timeout handling (callers add it)."""
    if reference is None or not str(reference).strip():
        return "unverifiable", "empty reference"
    ref = reference_text(str(reference))
    if not ref:
        return "unverifiable", "empty reference"
    response = after_think(response or "")
    for m in BOXED_RE.finditer(response):  # "\boxed{6\n\boxed{5}": which box is meant?
        j = response.find("{", m.end())
        if j >= 0 and not response[m.end():j].strip() and matching_brace(response, j) is None:
            return "unverifiable", "an unbalanced box"
    if any(BOXED_RE.search(b) for b in all_boxed(response)):
        return "wrong", "hedged: a box inside a box"
    ans, how = find_answer(response, full=True)
    if ans is None:
        line = response.strip()
        if line and "\n" not in line and len(line) <= 120 and \
                (not re.search(r"\d", ref) or YES_NO.match(ref)):
            ans, how = line, "whole"  # a one-line answer to a worded reference: "No."
        else:
            return "unverifiable", "no answer extracted"
    quiet_math_verify_logging()
    hedged = hedge_reason(response, ans, str(reference), math=True)
    if hedged:
        return "wrong", hedged
    around = stated_hedge(response)
    if around:
        return around
    if how == "last_number":  # no stated answer: the last sentence must offer one number
        lines = [x for x in response.strip().split("\n") if x.strip()]
        while len(lines) > 1 and re.match(r"\s*(?:or|and)\b", lines[-1], re.IGNORECASE):
            lines[-2:] = [" ".join(lines[-2:])]  # "Either 6\nor 5" is one sentence
        last = re.split(r"(?<=[.!])\s+", lines[-1] if lines else "")[-1]
        if "?" in last:
            return "unverifiable", f"the last sentence asks ({last!r})"
        nums = distinct([n for n in NUMBER_RE.findall(last)])
        if len(nums) > values_of(ref):
            if re.search(r"\bor\b|[,;{∈]|\\in\b", last):
                return "wrong", f"hedged: the last sentence offers {len(nums)} numbers ({last!r})"
            return "unverifiable", f"the last sentence gives several numbers ({last!r})"
    boxes = distinct_boxes(response, math=True)
    if len(boxes) > 1 and len(all_boxed(str(reference))) < 2:
        ans = " and ".join(boxes)  # as many boxes as the reference has parts: all of them
    return judge(ans, ref, how)


def _alarm_handler(signum: int, frame: Any) -> None:
    raise ItemTimeout()


def run_with_alarm(
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
    except ItemTimeout:
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

    Returns ``(outcome, reason)`` (see :mod:`synth.curate.verify_math`). ``"wrong"`` only
    when both sides were understood: values math-verify found different, a hedge
    (``"hedged: ..."``), an incomplete answer, the opposite yes/no; no extractable
    answer, a reference in words the answer does not repeat, a value that cannot be
    parsed faithfully, a time-out or a crash give ``"unverifiable"``. The soft time-out
    uses ``SIGALRM`` and so only applies in the main thread; a computation stuck in C code
    cannot be interrupted here -- use :func:`~.pool.verify_many`, whose workers are killed
    on overrun.
    """
    return run_with_alarm(check_response, response, reference, timeout_s)
