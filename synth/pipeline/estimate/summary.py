"""``estimate.json``: the stages' estimates as one entry per stage × teacher, and totals."""

from __future__ import annotations

from typing import Any

from synth.pipeline.estimate.breakeven import break_even_from_totals
from synth.pipeline.estimate.costs import sum_known

__all__ = ["STAGE_KEYS", "TOTALLED_KEYS", "summarise", "column_totals"]

#: The keys of each ``stages`` entry of :func:`summarise`, in order.
STAGE_KEYS = ("stage", "teacher", "requests", "input_tokens", "output_tokens_p50",
              "output_tokens_p90", "output_tokens", "cost_usd", "cost_usd_p90",
              "batch_cost_usd", "batch", "planned_cost_usd", "dry_run_requests", "dry_run_cost_usd", "token_counter",
              "notes")

#: The counts :func:`column_totals` adds over the entries.
TOTALLED_KEYS = ("requests", "input_tokens", "output_tokens_p50", "output_tokens_p90")


def summarise(stages: list[dict[str, Any]], *, break_even_args: dict[str, Any] | None
              ) -> dict[str, Any]:
    """``estimate.json``: one entry per stage × teacher (:data:`STAGE_KEYS`), the totals
    and the break-even.

    ``total_cost_usd`` / ``total_cost_usd_p90`` add the known costs (null when none is
    known; an unpriced teacher's note says what is missing); ``total_batch_cost_usd`` is
    what the stages cost with the batch API wherever one exists (a teacher without one
    counts at its standard cost); ``total_planned_cost_usd``, what the pipeline as written
    costs (the batch cost for stages with ``batch: true``). ``break_even_args`` are
    :func:`~synth.pipeline.estimate.breakeven.break_even`'s keywords (other keys, such as
    ``dry_run``, are ignored); ``distil_cost_usd`` defaults to ``total_cost_usd`` and
    ``teacher_cost_per_request`` to ``total_cost_usd`` / the requests of the priced
    teachers (the mean cost of one teacher request in this pipeline). If a required one is
    still missing, ``break_even`` holds ``missing`` (their names) and ``reason`` instead
    of numbers."""
    entries = []
    for st in stages:
        for t in st["teachers"]:
            entry = {k: t[k] for k in STAGE_KEYS if k not in ("stage", "notes")}
            entries.append({"stage": st["stage"], **entry,
                            "notes": list(st.get("notes", [])) + list(t["notes"])})
    total = sum_known([e["cost_usd"] for e in entries])
    total90 = sum_known([e["cost_usd_p90"] for e in entries])
    total_batch = sum_known([e["batch_cost_usd"] if e["batch_cost_usd"] is not None
                             else e["cost_usd"] for e in entries])
    be = None
    if break_even_args is not None:
        priced = sum(e["requests"] for e in entries if e["cost_usd"] is not None)
        be = break_even_from_totals(break_even_args, total_cost_usd=total,
                                    priced_requests=priced)
    planned = sum_known([e["planned_cost_usd"] for e in entries])
    return {"stages": entries, "total_cost_usd": total, "total_cost_usd_p90": total90,
            "total_batch_cost_usd": total_batch, "total_planned_cost_usd": planned,
            "break_even": be}


def column_totals(entries: list[dict[str, Any]]) -> dict[str, int | float | None]:
    """The sum of each of :data:`TOTALLED_KEYS` over ``entries`` (None when none is known)."""
    out: dict[str, int | float | None] = {}
    for key in TOTALLED_KEYS:
        known = [e[key] for e in entries if e[key] is not None]
        out[key] = sum(known) if known else None
    return out
