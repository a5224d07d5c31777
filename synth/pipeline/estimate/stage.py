"""One generate stage's estimate: per teacher its requests, tokens, costs and dry run.

Requests are each call's ``requests`` times the teacher's share of the call's prompts, as
:func:`~synth.recipes.base.route_prompts` assigns them (a call whose prompts are not known
in advance uses the share of the first known call; ``all`` mode gives every teacher every
request), apportioned to whole requests. The counting, the dry run and the money are
:mod:`.tokens`', :mod:`.dryrun`'s and :mod:`.costs`' own.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from synth.pipeline.estimate.costs import (
    apportion,
    call_estimate,
    money,
    price_data,
    priced_host,
    sum_known,
    teacher_costs,
)
from synth.pipeline.estimate.dryrun import dry_run_teacher, outcome
from synth.pipeline.estimate.tokens import calibration, mean_tokens, prompt_counter

if TYPE_CHECKING:
    from synth.recipes.base import PlannedCall, TeacherRoute
    from synth.records import Prompt

__all__ = ["estimate_stage", "route_shares"]


def _default_max_tokens() -> int:
    from synth.generate.config import GenerateConfig

    return GenerateConfig.model_fields["max_tokens"].default


def route_shares(calls: list[PlannedCall], routes: list[TeacherRoute], mode: str
                 ) -> tuple[list[list[list[Prompt]] | None], list[int], list[float]]:
    """Per call: the prompts routed to each route (None for a call without prompts), the
    unrouted counts, and the fallback shares for calls without prompts."""
    from synth.recipes.base import route_prompts

    groups: list[list[list[Prompt]] | None] = []
    unrouted: list[int] = []
    for c in calls:
        if c.prompts:
            g, left = route_prompts(c.prompts, routes, mode)
            groups.append(g)
            unrouted.append(len(left))
        else:
            groups.append(None)
            unrouted.append(0)
    if mode == "all" or len(routes) == 1:
        fallback = [1.0] * len(routes)
    else:
        first = next(((g, c) for g, c in zip(groups, calls) if g is not None), None)
        if first is not None:
            fallback = [len(x) / len(first[1].prompts) for x in first[0]]
        else:
            w = [r.weight or 0.0 for r in routes]
            fallback = [x / sum(w) for x in w] if sum(w) > 0 else [1 / len(routes)] * len(routes)
    return groups, unrouted, fallback


def _requests(calls: list[PlannedCall], groups: list[list[list[Prompt]] | None],
              fallback: list[float], n_routes: int, mode: str) -> list[list[int]]:
    """Requests per (call, route)."""
    req: list[list[int]] = []
    for c, g in zip(calls, groups):
        shares = fallback if g is None else [len(x) / len(c.prompts) for x in g]
        if mode == "all" or n_routes == 1:
            shares = [1.0] * n_routes
        req.append(apportion(c.requests, shares))
    return req


def estimate_stage(stage: str, calls: list[PlannedCall], routes: list[TeacherRoute],
                   options: dict[str, Any], *, out: Path, dry_run: int = 8,
                   mode: Literal["split", "all"] = "split", sample_seed: int = 0) -> dict[str, Any]:
    """The estimate of one generate stage (see :mod:`synth.pipeline.estimate`): per teacher
    its requests, tokens, costs and dry run, and per call the same broken down. ``options``
    are the stage's generate options (``max_tokens``, ``intent``, ``price_file``...), as
    :class:`~synth.recipes.base.Teaching` gets them; ``out`` the stage folder;
    ``sample_seed`` picks the dry-run sample (the same seed picks the same prompts, so a
    second estimate finds them cached)."""
    from synth.errors import ConfigError
    from synth.teachers import parse_spec, provider_traits
    from synth.teachers.pricing import load_prices

    if not routes:
        raise ConfigError(f"{stage}: at least one teacher is needed")
    if dry_run < 0:
        raise ConfigError(f"{stage}: dry_run must be >= 0, got {dry_run}")
    out = Path(out)
    calls = list(calls)
    groups, unrouted, fallback = route_shares(calls, routes, mode)
    stage_notes = [f"call {c.name}: {n} of {len(c.prompts)} prompts fit no teacher's quota "
                   "and are not sent" for c, n in zip(calls, unrouted) if n]
    default_max = _default_max_tokens()
    req = _requests(calls, groups, fallback, len(routes), mode)

    teachers = []
    for k, route in enumerate(routes):
        provider, model = parse_spec(route.teacher)
        opts = {**options, **route.options}
        host = priced_host(provider, opts)
        price = load_prices(opts.get("price_file")).lookup(provider, model, host)
        stage_max = opts.get("max_tokens") or default_max

        dry, notes = dry_run_teacher(calls, groups, k, route, opts, out, size=dry_run,
                                     seed=sample_seed,
                                     rename=mode == "all" and len(routes) > 1)
        ok, worst, more = outcome(dry, dry_run)
        notes += more

        count, counter, why = prompt_counter(provider, model)
        if why:
            notes.append(f"input tokens: estimate_tokens, not the tokenizer: {why}")
        scale_by = None
        if counter == "estimate_tokens" and ok:
            scale_by = calibration(count, ok, dry["prompts"])
            if scale_by is not None:
                counter = "estimate_tokens+dry_run"
        scale = scale_by or 1.0

        known = [p for g in groups if g is not None for p in g[k]]
        pooled = mean_tokens(count, known) if known else None
        rows = []
        for i, c in enumerate(calls):
            g = groups[i]
            mine = g[k] if g is not None else []
            if mine:
                per = mean_tokens(count, mine)
            elif g is not None:
                per = mean_tokens(count, c.prompts)
            else:
                per = pooled
            if g is None:
                notes.append(f"call {c.name}: prompts not known in advance; input tokens "
                             "estimated from the known calls' average"
                             if per is not None else
                             f"call {c.name}: prompts not known in advance and no call's "
                             "are: input tokens unknown")
            rows.append(call_estimate(
                c, requests=req[i][k], prompts=len(mine), per=per, scale=scale,
                max_tokens=c.max_tokens or stage_max,
                outputs=None if worst else [r["output_tokens"] for r in ok], price=price))

        totals = teacher_costs(rows, price=price, teacher=route.teacher, host=host,
                               batch_api=provider_traits(provider).batch_api)
        notes += [x for x in (totals["cost_reason"], totals["batch_reason"]) if x]
        batched = bool(opts.get("batch"))
        planned = totals["cost_usd"]
        if batched and totals["batch_cost_usd"] is not None:
            planned = totals["batch_cost_usd"]
            notes.append("batch: true: sent through the batch API, so the batch column is "
                         "what it will cost")
        elif batched:
            notes.append("batch: true, but no batch price is known: counted at the "
                         "standard price, an upper bound")
        dry_cost = None
        if dry and price is not None:
            dry_cost = money(sum(r["cost_usd"] or 0.0 for r in ok))
        teachers.append({
            "teacher": route.teacher, "weight": route.weight, "quota": route.quota,
            "host": host, "price": price_data(price),
            "requests": sum(r["requests"] for r in rows),
            "input_tokens": totals["input_tokens"],
            "output_tokens_p50": sum(r["output_tokens_p50"] for r in rows),
            "output_tokens_p90": sum(r["output_tokens_p90"] for r in rows),
            "output_tokens": sum(r["output_tokens"] for r in rows),
            "cost_usd": totals["cost_usd"], "cost_usd_p90": totals["cost_usd_p90"],
            "cost_reason": totals["cost_reason"],
            "batch_cost_usd": totals["batch_cost_usd"], "batch_reason": totals["batch_reason"],
            "batch": batched, "planned_cost_usd": planned,
            "token_counter": counter, "input_calibration": scale_by,
            "worst_case": worst,
            "dry_run_call": dry["call"] if dry else None,
            "dry_run_dir": dry["dir"] if dry else None,
            "dry_run_requests": len(dry["rows"]) if dry else 0,
            "dry_run_sent": dry["sent"] if dry else 0,
            "dry_run_from_cache": dry["from_cache"] if dry else 0,
            "dry_run_cost_usd": dry_cost,
            "dry_run_output_tokens": [r["output_tokens"] for r in ok],
            "calls": rows,
            "notes": notes,
        })

    return {
        "stage": stage, "mode": mode, "dry_run": dry_run,
        "calls": [{"name": c.name, "requests": c.requests, "prompts": len(c.prompts),
                   "max_tokens": c.max_tokens, "prompts_known": bool(c.prompts)}
                  for c in calls],
        "teachers": teachers,
        "requests": sum(t["requests"] for t in teachers),
        "cost_usd": sum_known([t["cost_usd"] for t in teachers]),
        "cost_usd_p90": sum_known([t["cost_usd_p90"] for t in teachers]),
        "batch_cost_usd": sum_known([t["batch_cost_usd"] for t in teachers]),
        "dry_run_cost_usd": sum_known([t["dry_run_cost_usd"] for t in teachers]),
        "notes": stage_notes,
    }
