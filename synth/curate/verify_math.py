"""Verify math answers in teacher responses against reference answers.

Three layers:

* :func:`extract_answer` pulls the final answer out of a free-form response
  (``\\boxed{...}``, GSM8K ``#### X``, "the answer is X", or the last number).
* :func:`verify_one` compares that answer with a reference through
  ``math_verify`` (``parse`` + ``verify``) and returns ``"correct"``,
  ``"wrong"`` or ``"unverifiable"``. ``"wrong"`` is only ever returned when
  both sides parsed into math objects and ``verify`` said they differ; every
  failure to extract, parse or compare (including time-outs and crashes) is
  ``"unverifiable"``.
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

# ---------------------------------------------------------------------------
# Answer extraction
# ---------------------------------------------------------------------------

_BOXED_RE = re.compile(r"\\(?:boxed|fbox)\b")
_GSM8K_RE = re.compile(r"####\s*([^\n]+)")
_ANSWER_IS_RE = re.compile(
    r"(?:the\s+(?:final\s+)?answer\s+is|final\s+answer)\s*(?:is)?\s*[:：]?\s*(.+)",
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


def _hedge(response: str, answer: str, reference: str) -> str | None:
    """Why the answer hedges between alternatives, if it does: several different boxed
    answers (the last one would otherwise win, so boxing every candidate would pass), or
    ``\\lor`` / ``\\vee`` / "or" between candidates when the reference has none."""
    if len(_all_boxed(reference)) < 2:
        distinct: dict[str, str] = {}
        for b in _all_boxed(response):
            distinct.setdefault(_norm_key(b), b)
        boxed = list(distinct.values())
        if len(boxed) > 1:
            shown = ", ".join(boxed[:3]) + (", ..." if len(boxed) > 3 else "")
            return f"hedged: {len(boxed)} different boxed answers ({shown})"
    if _DISJUNCTION_RE.search(answer) and not _DISJUNCTION_RE.search(reference):
        return f"hedged: the answer offers alternatives ({answer!r})"
    plain = response.replace("**", "")
    stated = list(_ANSWER_IS_RE.finditer(plain))
    if stated and not re.search(r"\b(?:or|and|nor)\b|,", reference, re.IGNORECASE):
        # "The answer is 72 and 73", "... is 72\nor maybe 73": the answer is read as the
        # first number, so a second one offered beside it must make it a hedge
        m = stated[-1]
        lead = _STATED_NUMBER_RE.match(m.group(1))
        if lead:
            alt = _ALTERNATIVE_RE.match(plain, m.start(1) + lead.end())
            if alt:
                return (f"hedged: the answer offers another number beside {lead.group(1)} "
                        f"({plain[m.start(1):alt.end()].strip()!r})")
    boxes = _all_boxed(response)
    if boxes:  # "\boxed{72}. Wait, that's wrong: the answer is 73." takes the box back
        tail = response[response.rfind(boxes[-1]) + len(boxes[-1]):].replace("**", "")
        for m in _ANSWER_IS_RE.finditer(tail):
            lead = _NUMBER_RE.match(_clean_tail(m.group(1)))
            if lead and _norm_key(_normalise_number_text(lead.group(0))) != \
                    _norm_key(_normalise_number_text(boxes[-1])):
                return (f"hedged: after the boxed answer {boxes[-1]} the text gives "
                        f"another ({lead.group(0)})")
    return None


def _clean_tail(ans: str) -> str:
    """Strip markup and punctuation around a free-text answer."""
    ans = ans.strip()
    # Drop trailing sentences: keep up to the first sentence end / newline.
    ans = ans.split("\n", 1)[0]
    # Markdown emphasis and inline math delimiters.
    ans = ans.replace("**", "").replace("__", "")
    ans = ans.strip().strip("*").strip()
    ans = re.sub(r"^\\\(|\\\)$|^\\\[|\\\]$", "", ans).strip()
    ans = ans.strip("$").strip()
    # Trailing period / punctuation (but not a decimal point inside a number).
    while ans and ans[-1] in ".,;:!。":
        ans = ans[:-1].rstrip()
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
    Numbers with thousands separators are returned without them.
    """
    if not text:
        return None, None
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
        # "The answer is 18 dollars." -> "18": a leading number followed by words; but not
        # "18 or 19", which offers alternatives (see _hedge)
        lead = _NUMBER_RE.match(ans)
        if lead and re.match(r"\s+[A-Za-z]{2,}", ans[lead.end() :]) and \
                not re.match(r"\s+or\b", ans[lead.end() :], re.IGNORECASE):
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
    return _normalise_number_text(_clean_tail(ref))


def _parse(mv: Any, answer: str) -> list:
    # Wrapping in \boxed{} anchors math_verify's LaTeX extractor on exactly
    # our answer; plain numbers and expressions ("3/4") parse there too.
    return mv.parse("\\boxed{" + answer + "}", parsing_timeout=None, raise_on_error=True)


def _has_math(parsed: list) -> bool:
    return any(not isinstance(p, str) for p in parsed)


def _compare(response: str, reference: str) -> tuple[Outcome, str]:
    """Extraction + math_verify, no timeout handling (callers add it)."""
    if reference is None or not str(reference).strip():
        return "unverifiable", "empty reference"
    ans, how = extract_answer(response or "")
    if ans is None:
        return "unverifiable", "no answer extracted"
    ref = _reference_text(str(reference))
    if not ref:
        return "unverifiable", "empty reference"
    hedged = _hedge(response or "", ans, str(reference))
    if hedged:
        return "wrong", hedged
    import math_verify as mv

    _quiet_math_verify_logging()
    try:
        gold = _parse(mv, ref)
    except _ItemTimeout:
        raise
    except BaseException as exc:  # math_verify's TimeoutException is a BaseException
        return "unverifiable", f"reference parse error: {type(exc).__name__}"
    try:
        pred = _parse(mv, ans)
    except _ItemTimeout:
        raise
    except BaseException as exc:
        return "unverifiable", f"answer parse error: {type(exc).__name__}"
    if not _has_math(gold) or not _has_math(pred):
        # Not both math objects: only an exact normalised string match counts.
        if _norm_key(ans) == _norm_key(ref):
            return "correct", f"string match ({how})"
        side = "reference" if not _has_math(gold) else "answer"
        return "unverifiable", f"{side} not parseable as math"
    try:
        ok = mv.verify(gold, pred, timeout_seconds=None, raise_on_error=True)
    except _ItemTimeout:
        raise
    except BaseException as exc:
        return "unverifiable", f"verify error: {type(exc).__name__}"
    if ok:
        return "correct", f"equivalent ({how})"
    return "wrong", f"not equivalent ({how}: {ans!r} vs {ref!r})"


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

    Returns ``(outcome, reason)``. ``"wrong"`` only when both sides parsed as
    math and ``math_verify.verify`` found them different; no extractable
    answer, an empty/unparseable reference, a time-out or a crash give
    ``"unverifiable"``. The soft time-out uses ``SIGALRM`` and so only applies
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
    s = re.sub(r"\s+", "", s).rstrip(".")
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
