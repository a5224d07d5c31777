"""Break-even: distilling a student against calling the teacher for ever."""

from __future__ import annotations

import math
from typing import Any

from synth.pipeline.estimate.costs import money

__all__ = ["BREAK_EVEN_TABLE", "BREAK_EVEN_ARGS", "ASSUMED", "break_even",
           "break_even_from_totals"]

#: Requests a day the break-even table is computed for.
BREAK_EVEN_TABLE = (100, 1_000, 10_000, 100_000)

#: :func:`break_even`'s keywords, in order.
BREAK_EVEN_ARGS = ("distil_cost_usd", "teacher_cost_per_request", "requests_per_day",
                   "student_cost_per_hour", "student_requests_per_hour", "train_cost_usd",
                   "teacher_share")
#: of those, the ones with a default of their own
_OPTIONAL = ("train_cost_usd", "teacher_share")

#: Break-even inputs a pipeline file leaves out: a small always-available CPU instance
#: serving a ~100M-parameter student. Recorded in estimate.json as assumptions.
ASSUMED = {"requests_per_day": 1000, "student_cost_per_hour": 0.10,
           "student_requests_per_hour": 1800}


def _days(one_time: float, teacher: float, student: float) -> float | str:
    saving = teacher - student
    if saving <= 0:
        return "never"
    return one_time / saving


def _student_per_day(requests_per_day: float, cost_per_hour: float,
                     requests_per_hour: float) -> tuple[float, float, float, int]:
    hours = requests_per_day / requests_per_hour
    instances = max(1, math.ceil(hours / 24 - 1e-12))
    return hours, hours * cost_per_hour, instances * 24 * cost_per_hour, instances


def break_even(*, distil_cost_usd: float, teacher_cost_per_request: float,
               requests_per_day: float, student_cost_per_hour: float,
               student_requests_per_hour: float, train_cost_usd: float = 0.0,
               teacher_share: float = 0.0) -> dict[str, Any]:
    """Distilling vs calling the teacher at ``requests_per_day``.

    * teacher per day = requests × ``teacher_cost_per_request``;
    * student per day, two ways of serving it: ``pay_per_use`` pays only the hours the
      requests need (requests / ``student_requests_per_hour`` × ``student_cost_per_hour``:
      serverless, or a shared GPU); ``always_on`` keeps whole instances up 24 h a day, as
      many as the load needs and at least one;
    * routed (``teacher_share`` > 0: a cascade, ``synth eval --cascade``): the teacher still
      answers that share of the requests, paid on top of the student's day, which serves
      every request (it answers each first);
    * one-time cost = ``distil_cost_usd`` (the data) + ``train_cost_usd``;
    * break-even days = one-time / (teacher per day − student per day), ``"never"`` when the
      student is not cheaper per day.

    ``table``: the same at 100, 1k, 10k and 100k requests a day."""
    args = {"distil_cost_usd": distil_cost_usd,
            "teacher_cost_per_request": teacher_cost_per_request,
            "requests_per_day": requests_per_day, "student_cost_per_hour": student_cost_per_hour,
            "student_requests_per_hour": student_requests_per_hour,
            "train_cost_usd": train_cost_usd, "teacher_share": teacher_share}
    for k, v in args.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0 or v != v:
            raise ValueError(f"break_even: {k} must be a number >= 0, got {v!r}")
    if student_requests_per_hour <= 0:
        raise ValueError("break_even: student_requests_per_hour must be > 0")
    if teacher_share > 1:
        raise ValueError(f"break_even: teacher_share is a share of requests, got "
                         f"{teacher_share!r}")
    one_time = distil_cost_usd + train_cost_usd

    def at(r: float) -> dict[str, Any]:
        teacher = r * teacher_cost_per_request
        hours, ppu, always, instances = _student_per_day(r, student_cost_per_hour,
                                                         student_requests_per_hour)
        routed = teacher_share * teacher  # the requests the cascade still sends up
        ppu, always = ppu + routed, always + routed
        return {"requests_per_day": r, "teacher_per_day_usd": money(teacher),
                "routed_teacher_per_day_usd": money(routed),
                "student_hours_per_day": round(hours, 6), "student_instances": instances,
                "student_per_day_usd": {"pay_per_use": money(ppu), "always_on": money(always)},
                "break_even_days": {"pay_per_use": _days(one_time, teacher, ppu),
                                    "always_on": _days(one_time, teacher, always)}}

    here = at(requests_per_day)
    return {
        "inputs": args,
        "assumptions": [
            "pay_per_use: the student is billed only for the hours its requests need "
            "(requests / student_requests_per_hour)",
            "always_on: whole instances up 24 h a day, as many as the load needs (at least one)",
            "the teacher is billed per request at teacher_cost_per_request; no growth, no "
            "price changes, the student's quality is taken as good enough",
            *([f"routed: the teacher still answers {teacher_share:.1%} of requests (the "
               "cascade's threshold), paid on top of the student's day"]
              if teacher_share else []),
        ],
        "one_time_usd": money(one_time),
        **{k: v for k, v in here.items() if k != "requests_per_day"},
        "table": [at(r) for r in BREAK_EVEN_TABLE],
    }


def break_even_from_totals(args: dict[str, Any], *, total_cost_usd: float | None,
                           priced_requests: int) -> dict[str, Any]:
    """:func:`break_even` with ``distil_cost_usd`` defaulting to the estimate's total cost
    and ``teacher_cost_per_request`` to that total over the priced teachers' requests;
    ``{"missing": names, "reason": ...}`` when a required input is still missing. Keys of
    ``args`` that are not :data:`BREAK_EVEN_ARGS` (``dry_run``...) are ignored."""
    args = {k: v for k, v in args.items() if k in BREAK_EVEN_ARGS}
    total = total_cost_usd
    if args.get("distil_cost_usd") is None:
        args["distil_cost_usd"] = total
    if args.get("teacher_cost_per_request") is None and total is not None and priced_requests:
        args["teacher_cost_per_request"] = total / priced_requests
    missing = [k for k in BREAK_EVEN_ARGS if k not in _OPTIONAL and args.get(k) is None]
    if missing:
        return {"missing": missing,
                "reason": "break-even needs " + ", ".join(missing)
                + (" (no teacher cost is known)" if total is None else "")}
    return break_even(**args)
