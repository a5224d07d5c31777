"""Cost maths: requests apportioned to teachers, output-token quantiles, and dollars.

Input × price.input + output (p50: ``cost_usd``, p90: ``cost_usd_p90``) × price.output,
from the price table; ``batch_cost_usd`` at the provider's batch price where it has a batch
API (its ``batch_api`` trait) and the table has one. A null cost always comes with its
reason.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from synth.recipes.base import PlannedCall
    from synth.teachers.pricing import Price

__all__ = ["quantile", "apportion", "money", "sum_known", "priced_host", "price_data",
           "call_estimate", "teacher_costs"]


def quantile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between the closest ranks (numpy's default)."""
    xs = sorted(values)
    if not xs:
        raise ValueError("no values")
    pos = q * (len(xs) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def apportion(total: int, shares: list[float]) -> list[int]:
    """Whole requests per route: ``total × share`` each, rounded so that they add up to
    ``round(total × sum(shares))`` (largest remainder, ties to the earlier route)."""
    raw = [total * s for s in shares]
    out = [math.floor(x + 1e-9) for x in raw]
    left = round(sum(raw)) - sum(out)
    order = sorted(range(len(raw)), key=lambda i: (-(raw[i] - out[i]), i))
    for i in order[:max(left, 0)]:
        out[i] += 1
    return out


def money(x: float | None) -> float | None:
    return None if x is None else round(x, 10)


def sum_known(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return money(sum(known)) if known else None


def priced_host(provider: str, opts: dict[str, Any]) -> str | None:
    """The API host the runner would price: ``base_url``'s, else the provider's default."""
    from synth.teachers import provider_traits

    base = (opts.get("base_url") or opts.get("base_urls")
            or provider_traits(provider).default_base_url)
    if isinstance(base, (list, tuple)):
        base = base[0] if base else None
    elif isinstance(base, str):
        base = base.split(",")[0].strip()  # a fleet is priced by its first server
    return urlsplit(base).hostname if base else None


def price_data(price: Price | None) -> dict[str, Any] | None:
    return None if price is None else {"input": price.input, "output": price.output,
                                       "cached_input": price.cached_input,
                                       "batch": price.batch}


def call_estimate(call: PlannedCall, *, requests: int, prompts: int, per: float | None,
                  scale: float, max_tokens: int, outputs: list[int] | None,
                  price: Price | None) -> dict[str, Any]:
    """One call's share of one teacher: ``per`` input tokens a request (None: unknown),
    scaled by the calibration; ``outputs`` the dry run's output tokens (None: the worst
    case, every answer at ``max_tokens``), each capped at ``max_tokens``."""
    n, m = requests, max_tokens
    inp = None if per is None else round(n * per * scale)
    if outputs is None:
        p50 = p90 = mean = float(m)
    else:
        capped = [min(x, m) for x in outputs]
        p50, p90 = quantile(capped, 0.5), quantile(capped, 0.9)
        mean = sum(capped) / len(capped)
    o50, o90, omean = round(n * p50), round(n * p90), round(n * mean)
    cost = price.cost(inp, o50) if price else None
    cost90 = price.cost(inp, o90) if price else None
    batch = price.batch_cost(inp, o50) if price else None
    return {
        "call": call.name, "requests": n, "prompts": prompts,
        "estimated": not call.prompts,  # its prompts are only known during the run
        "max_tokens": m, "input_tokens": inp,
        "input_tokens_per_request": None if per is None else per * scale,
        "output_tokens_p50": o50, "output_tokens_p90": o90, "output_tokens": omean,
        "output_per_request": {"p50": p50, "p90": p90, "mean": mean},
        "cost_usd": money(cost), "cost_usd_p90": money(cost90), "batch_cost_usd": money(batch),
    }


def teacher_costs(rows: list[dict[str, Any]], *, price: Price | None, teacher: str,
                  host: str | None, batch_api: bool) -> dict[str, Any]:
    """A teacher's totals over its calls' ``rows``, with the reason for what is null."""
    inputs = [r["input_tokens"] for r in rows]
    total_in = None if any(x is None for x in inputs) else sum(inputs)
    cost = cost90 = batch = None
    cost_reason = batch_reason = None
    if price is None:
        cost_reason = (f"no price known for {teacher} at host {host or '(none)'}: "
                       "cost is null; add one with price_file")
    elif total_in is None:
        cost_reason = "input tokens unknown: cost is null"
    else:
        cost = sum_known([r["cost_usd"] for r in rows]) or 0.0
        cost90 = sum_known([r["cost_usd_p90"] for r in rows]) or 0.0
    if cost_reason:
        batch_reason = cost_reason
    elif not batch_api:
        provider = teacher.partition(":")[0]
        free = price.input == 0 and price.output == 0
        batch_reason = f"{provider} teacher: no batch API" + (
            " (and nothing to save)" if free else "")
    elif price.batch is None:
        batch_reason = (f"no batch price for {teacher} at host {host or '(none)'} "
                        "in the price table")
    else:
        batch = sum_known([r["batch_cost_usd"] for r in rows]) or 0.0
    return {"input_tokens": total_in, "cost_usd": cost, "cost_usd_p90": cost90,
            "cost_reason": cost_reason, "batch_cost_usd": batch, "batch_reason": batch_reason}
