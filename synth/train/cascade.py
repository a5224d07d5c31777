"""Routing between student and teacher (``synth eval --cascade``): the student answers every
prompt; when its confidence is below a threshold the teacher answers instead.

The signal is the **mean token logprob of the student's greedy answer** (its own
probability of the tokens it chose, averaged over them): free, since the answer is
generated anyway, and the signal the cascade literature starts from. An answer with no
tokens has no confidence and always goes to the teacher. Agreement of several student
samples is a stronger signal on some tasks but costs k more generations per request, and a
verifier needs a reference a served request does not have: neither is offered yet.

A threshold chosen and reported on the same prompts flatters itself, so the prompts are
split in two by a hash of their key: the **dev** half draws the curve and chooses the
threshold (the cheapest whose accuracy keeps ``target`` of the teacher's), the **test** half
reports what that threshold does on prompts it never saw. Costs per 1,000 requests: the
share the teacher still answers times the teacher's tokens per request at a price entry
(``price``: the teacher's own, or the API model it stands for), plus the student's compute
at ``student_usd_per_hour`` of measured generation time (none given: its seconds instead).
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

__all__ = ["mean_logprob", "split_dev_test", "sweep", "route", "teacher_price",
           "curve_sample"]


def teacher_price(spec: str, price_file: Any = None, *, strict: bool = False) -> Any:
    """The price entry a cascade prices the teacher's tokens at: ``spec`` (PROVIDER:MODEL,
    the teacher's own or the API model it stands for) in the shipped table extended by
    ``price_file``, on the provider's own host; None when there is none. ``strict``: the
    model must be the entry's name or a snapshot of it (``gpt-4.1-2025-04-14``), not just
    start with it (``gpt-4.1-mnii`` would be priced as gpt-4.1: a typo, not a model)."""
    import re

    from synth.teachers import parse_spec
    from synth.teachers.pricing import load_prices

    provider, model = parse_spec(spec) if ":" in spec else ("local", spec)
    host = {"openai": "api.openai.com", "anthropic": "api.anthropic.com"}.get(provider)
    found = load_prices(price_file).entry(provider, model, host)
    if found is None:
        return None
    rest = model[len(found[0]):]
    if strict and rest and not re.fullmatch(r"[-@:]?\d[\w.-]*|-latest", rest):
        return None
    return found[1]


def mean_logprob(logprobs: dict[str, list] | None) -> float | None:
    """The mean chosen-token logprob of an answer; None without tokens."""
    lp = (logprobs or {}).get("logprobs") or []
    vals = [x for x in lp if isinstance(x, (int, float)) and math.isfinite(x)]
    return sum(vals) / len(vals) if vals else None


def split_dev_test(keys: list[str]) -> list[str]:
    """``dev`` or ``test`` per prompt key, by a hash: the same split on every run."""
    return ["dev" if hashlib.sha256(k.encode()).digest()[0] < 128 else "test" for k in keys]


def _num(t: float) -> float | str:
    """A threshold as JSON can hold it: "-inf" (the student answers all), "+inf" (the
    teacher does)."""
    return t if math.isfinite(t) else ("+inf" if t > 0 else "-inf")


def _per_1k(share: float, teacher_usd: float | None, student_usd: float | None
            ) -> float | None:
    """Cost of 1,000 requests: the student answers each, the teacher ``share`` of them
    (None without a teacher price: never a guess)."""
    return None if teacher_usd is None else 1000 * (share * teacher_usd + (student_usd or 0.0))


def _at(conf: list[float | None], s_ok: list[bool], t_ok: list[bool], t: float
        ) -> tuple[float, float]:
    """(accuracy, teacher share) when answers below confidence ``t`` go to the teacher."""
    n = len(conf)
    up = [c is None or c < t for c in conf]
    acc = sum(to if u else so for u, so, to in zip(up, s_ok, t_ok)) / n
    return acc, sum(up) / n


def sweep(conf: list[float | None], s_ok: list[bool], t_ok: list[bool], *,
          teacher_usd: float | None, student_usd: float | None,
          target: float = 0.95) -> dict[str, Any]:
    """The curve over every distinct threshold (each confidence seen, and "+inf": the
    teacher answers all), and the cheapest threshold whose accuracy is at least ``target``
    × the teacher's. ``teacher_usd`` / ``student_usd``: cost of one request to each (None:
    unknown); the cascade pays the student on every request."""
    n = len(conf)
    if n == 0:  # too few prompts to split: no half to draw a curve on
        return {"n": 0, "teacher_accuracy": None, "student_accuracy": None,
                "target": target, "points": [], "chosen": None}
    t_acc = sum(t_ok) / n
    cuts = sorted({c for c in conf if c is not None}) + [math.inf]
    points = []
    for t in [-math.inf] + cuts:
        acc, share = _at(conf, s_ok, t_ok, t)
        points.append({"threshold": _num(t), "teacher_share": share, "accuracy": acc,
                       "retained": acc / t_acc if t_acc else None,
                       "cost_per_1k_usd": _per_1k(share, teacher_usd, student_usd)})
    ok = [p for p in points if t_acc and p["accuracy"] >= target * t_acc]
    chosen = min(ok, key=lambda p: (p["teacher_share"], -p["accuracy"])) if ok else None
    return {"n": n, "teacher_accuracy": t_acc, "student_accuracy": sum(s_ok) / n if n else 0,
            "target": target, "points": points, "chosen": chosen}


def route(conf: list[float | None], s_ok: list[bool], t_ok: list[bool], threshold: float,
          *, teacher_usd: float | None, student_usd: float | None) -> dict[str, Any]:
    """What one threshold does on prompts it was not chosen on."""
    n = len(conf)
    threshold = float(threshold)  # "+inf" / "-inf" as written in the curve
    acc, share = _at(conf, s_ok, t_ok, threshold) if n else (0.0, 0.0)
    t_acc = sum(t_ok) / n if n else 0.0
    cost = _per_1k(share, teacher_usd, student_usd)
    only_t = None if teacher_usd is None else 1000 * teacher_usd
    return {"n": n, "threshold": _num(threshold), "accuracy": acc, "teacher_accuracy": t_acc,
            "student_accuracy": sum(s_ok) / n if n else 0.0,
            "retained": acc / t_acc if t_acc else None, "teacher_share": share,
            "cost_per_1k_usd": cost, "teacher_only_per_1k_usd": only_t,
            "saving": None if not only_t or cost is None else 1 - cost / only_t}


def curve_sample(points: list[dict[str, Any]], about: int = 12) -> list[dict[str, Any]]:
    """About ``about`` evenly spaced points of a :func:`sweep` curve, both ends kept: a
    curve a reader can take in (the terminal table, the report's)."""
    step = max(1, len(points) // about)
    return points[::step] + ([points[-1]] if points and (len(points) - 1) % step else [])
