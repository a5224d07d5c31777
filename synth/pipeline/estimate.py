"""``synth estimate``: what a pipeline's generate stages will cost, before they run.

For each generate stage, :func:`estimate_stage` takes the recipe's planned calls
(:class:`~synth.recipes.base.PlannedCall`) and the stage's teacher routes, and per teacher:

* **requests**: each call's ``requests`` times the teacher's share of the call's prompts, as
  :func:`~synth.recipes.base.route_prompts` assigns them (a call whose prompts are not known
  in advance uses the share of the first known call; ``all`` mode gives every teacher every
  request). Shares are apportioned to whole requests (largest remainder).
* **input tokens**: counted on the rendered prompts routed to the teacher, the call's mean
  per prompt times its requests. The counter (``token_counter``) is the local teacher's own
  tokenizer with its chat template (``tokenizer``, when it is cheap to get: a model folder,
  or a GGUF already converted into synth's cache), else
  :func:`~synth.teachers.estimate_tokens` (≈4 characters a token). When a dry run ran, the
  provider's reported prompt tokens for the dry-run prompts calibrate the estimate
  (``estimate_tokens+dry_run``, factor in ``input_calibration``). A call with no known
  prompts uses the mean of the teacher's known prompts (the call is marked ``estimated``).
* **output tokens**: from a dry run. ``dry_run`` prompts per teacher, a seeded sample of the
  prompts routed to it by the first call that has prompts, go through
  :func:`synth.generation.generate` into ``<out>/calls/<call>/<teacher slug>/``, the folder
  :meth:`~synth.recipes.base.Teaching.ask` uses, with the stage's options, the teacher's and
  the call's ``max_tokens``: the answers land in that folder's cache, so neither a second
  estimate nor the real run pays for them again (the real run reuses them where it sends
  the same request: one sample per prompt at the same parameters). Per request p50, p90 and
  mean of the dry-run output tokens (capped at each call's ``max_tokens``) times the
  requests give ``output_tokens_p50``, ``output_tokens_p90`` and ``output_tokens`` (the
  expected total, to compare with what a run spends). With ``dry_run=0``, or when no dry-run
  answer came back, every answer is assumed to use ``max_tokens`` (``worst_case``).
  A dry run into a folder that already holds a run's outputs leaves those outputs as they
  were (only its cache grows).
* **cost**: input × price.input + output (p50: ``cost_usd``, p90: ``cost_usd_p90``) ×
  price.output, from the price table (``price_file`` extends it); ``batch_cost_usd`` at the
  provider's batch price (OpenAI Batch API, Anthropic Message Batches: 50%) where the table
  has one. Costs are null, with the reason in ``notes``, when no price is known (your own
  server's host); a local teacher is priced at 0 per token. ``cost_usd`` covers every
  request, the dry run's included; ``dry_run_cost_usd`` is the part the dry run already
  paid (its answers, cached or new).

:func:`summarise` totals the stages into ``estimate.json``'s shape; :func:`break_even`
compares distilling with calling the teacher for ever; :func:`format_estimate` renders
either for the terminal.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Literal
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from synth.recipes.base import PlannedCall, TeacherRoute
    from synth.records import Prompt

__all__ = ["estimate_pipeline", "estimate_stage", "break_even", "summarise", "format_estimate",
           "BREAK_EVEN_TABLE", "STAGE_KEYS"]

#: Requests a day the break-even table is computed for.
BREAK_EVEN_TABLE = (100, 1_000, 10_000, 100_000)

#: The keys of each ``stages`` entry of :func:`summarise`, in order.
STAGE_KEYS = ("stage", "teacher", "requests", "input_tokens", "output_tokens_p50",
              "output_tokens_p90", "output_tokens", "cost_usd", "cost_usd_p90",
              "batch_cost_usd", "dry_run_requests", "dry_run_cost_usd", "token_counter",
              "notes")

_OUTPUTS = ("traces.parquet", "run.json", "README.md")  # what a run writes besides its cache


# ---------------------------------------------------------------------------- helpers


def _quantile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between the closest ranks (numpy's default)."""
    xs = sorted(values)
    if not xs:
        raise ValueError("no values")
    pos = q * (len(xs) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def _apportion(total: int, shares: list[float]) -> list[int]:
    """Whole requests per route: ``total × share`` each, rounded so that they add up to
    ``round(total × sum(shares))`` (largest remainder, ties to the earlier route)."""
    raw = [total * s for s in shares]
    out = [math.floor(x + 1e-9) for x in raw]
    left = round(sum(raw)) - sum(out)
    order = sorted(range(len(raw)), key=lambda i: (-(raw[i] - out[i]), i))
    for i in order[:max(left, 0)]:
        out[i] += 1
    return out


def _money(x: float | None) -> float | None:
    return None if x is None else round(x, 10)


def _sum_known(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return _money(sum(known)) if known else None


def _default_max_tokens() -> int:
    from synth.generation.config import GenerateConfig

    return GenerateConfig.model_fields["max_tokens"].default


def _host(provider: str, opts: dict[str, Any]) -> str | None:
    """The API host the runner would price: ``base_url``'s, else the provider's default."""
    from synth.teachers import provider_traits

    base = opts.get("base_url") or provider_traits(provider).default_base_url
    return urlsplit(base).hostname if base else None


# ---------------------------------------------------------------------------- token counting


def _local_tokenizer(model: str) -> tuple[Any, str | None]:
    """A local teacher's tokenizer when it is cheap to get (a model folder, or a GGUF whose
    converted copy is in synth's cache), without loading weights; else ``(None, why)``."""
    try:
        from synth.teachers import local as lm

        folder, gguf = lm.resolve_model(model)
        if gguf is None:
            where = folder
        else:
            entry = lm.EMBEDDED_MODELS.get(model)
            sha = entry.sha256 if entry is not None else lm.file_sha256(Path(folder) / gguf)
            cache = lm.model_cache_dir(sha)
            if not lm._cache_is_valid(cache, sha):
                return None, "the GGUF's tokenizer is not converted yet"
            where = str(cache)
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(where)
    except Exception as exc:  # a counter, never a reason to fail the estimate
        return None, f"tokenizer unavailable ({type(exc).__name__}: {exc})"
    if not getattr(tok, "chat_template", None):
        return None, "the tokenizer has no chat template"
    return tok, None


def _counter(provider: str, model: str) -> tuple[Callable[[list[dict]], int], str, str | None]:
    """``(count(messages) -> tokens, counter name, why not the tokenizer)``."""
    from synth.teachers import estimate_tokens

    if provider == "local":
        tok, why = _local_tokenizer(model)
        if tok is not None:
            def count(messages: list[dict]) -> int:  # as LocalTeacher._encode does
                text = tok.apply_chat_template(messages, add_generation_prompt=True,
                                               tokenize=False)
                return len(tok(text, add_special_tokens=False)["input_ids"])
            return count, "tokenizer", None
        return estimate_tokens, "estimate_tokens", why
    return estimate_tokens, "estimate_tokens", None


# ---------------------------------------------------------------------------- dry run


def _sample(prompts: list["Prompt"], k: int, seed: int) -> list["Prompt"]:
    pool = sorted(prompts, key=lambda p: p.id)
    return random.Random(seed).sample(pool, min(k, len(pool)))


def _dry_run(call: "PlannedCall", route: "TeacherRoute", prompts: list["Prompt"],
             opts: dict[str, Any], out: Path, *, rename: bool) -> dict[str, Any]:
    """Send ``prompts`` as ``Teaching.ask`` would send call ``call`` to ``route``, keeping
    a previous run's outputs in that folder as they were. The dry run's rows and counts."""
    from synth.generation import generate
    from synth.io import exclusive_dir, write_atomic
    from synth.recipes.base import teacher_slug
    from synth.records import Prompt

    slug = teacher_slug(route.teacher)
    folder = out / "calls" / call.name / slug
    if rename:  # "all" mode: Teaching.ask names each teacher's copy of a prompt apart
        prompts = [Prompt(id=f"{p.id}@{slug}", messages=p.messages, reference=p.reference,
                          metadata=p.metadata, line=p.line) for p in prompts]
    kept = {name: (folder / name).read_bytes() for name in _OUTPUTS
            if (folder / name).is_file()}
    try:
        result = generate(prompts=prompts, out=folder, teacher=route.teacher, **opts)
        rows = result.table().to_pylist()  # before the previous outputs are put back
    finally:
        if kept:
            with exclusive_dir(folder):
                for name, data in kept.items():
                    write_atomic(folder / name, data)
    return {"dir": str(folder), "rows": rows, "prompts": {p.id: p for p in prompts},
            "sent": result.summary["sent"], "from_cache": result.summary["from_cache"]}


# ---------------------------------------------------------------------------- one stage


def _shares(calls: list["PlannedCall"], routes: list["TeacherRoute"], mode: str
            ) -> tuple[list[list[list["Prompt"]] | None], list[int], list[float]]:
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


def estimate_stage(stage: str, calls: list["PlannedCall"], routes: list["TeacherRoute"],
                   options: dict[str, Any], *, out: Path, dry_run: int = 8,
                   mode: Literal["split", "all"] = "split", sample_seed: int = 0) -> dict[str, Any]:
    """The estimate of one generate stage (see the module doc): per teacher its requests,
    tokens, costs and dry run, and per call the same broken down. ``options`` are the
    stage's generate options (``max_tokens``, ``intent``, ``price_file``...), as
    :class:`~synth.recipes.base.Teaching` gets them; ``out`` the stage folder; ``sample_seed``
    picks the dry-run sample (the same seed picks the same prompts, so a second estimate
    finds them cached)."""
    from synth.errors import ConfigError
    from synth.teachers import parse_spec
    from synth.teachers.pricing import load_prices

    if not routes:
        raise ConfigError(f"{stage}: at least one teacher is needed")
    if dry_run < 0:
        raise ConfigError(f"{stage}: dry_run must be >= 0, got {dry_run}")
    out = Path(out)
    calls = list(calls)
    groups, unrouted, fallback = _shares(calls, routes, mode)
    stage_notes = [f"call {c.name}: {n} of {len(c.prompts)} prompts fit no teacher's quota "
                   "and are not sent" for c, n in zip(calls, unrouted) if n]
    default_max = _default_max_tokens()

    # requests per (call, route)
    req: list[list[int]] = []
    for c, g in zip(calls, groups):
        shares = fallback if g is None else [len(x) / len(c.prompts) for x in g]
        if mode == "all" or len(routes) == 1:
            shares = [1.0] * len(routes)
        req.append(_apportion(c.requests, shares))

    teachers = []
    for k, route in enumerate(routes):
        provider, model = parse_spec(route.teacher)
        opts = {**options, **route.options}
        host = _host(provider, opts)
        price = load_prices(opts.get("price_file")).lookup(provider, model, host)
        notes: list[str] = []
        stage_max = opts.get("max_tokens") or default_max

        # ---- dry run: the first call with prompts routed to this teacher
        dry = None
        first = next((i for i, g in enumerate(groups) if g is not None and g[k]), None)
        if dry_run > 0 and first is not None:
            call = calls[first]
            sample = _sample(groups[first][k], dry_run, sample_seed)
            dopts = dict(opts)
            if call.max_tokens is not None:
                dopts["max_tokens"] = call.max_tokens
            dry = _dry_run(call, route, sample, dopts, out,
                           rename=mode == "all" and len(routes) > 1)
            dry["call"] = call.name
            if call.requests > len(call.prompts):
                notes.append(f"call {call.name}: {call.requests} requests for "
                             f"{len(call.prompts)} prompts (samples or rounds): the dry run "
                             "sent one sample per prompt")
        elif dry_run > 0:
            notes.append("no prompts known before the run: no dry run")
        ok = [r for r in (dry["rows"] if dry else []) if r["status"] == "ok"
              and r["output_tokens"] is not None]
        if dry and len(ok) < len(dry["rows"]):
            notes.append(f"dry run: {len(dry['rows']) - len(ok)} of {len(dry['rows'])} "
                         "requests failed")
        worst = not ok
        if worst:
            notes.append("output tokens: worst case, every answer uses max_tokens"
                         + (" (dry_run 0)" if dry_run == 0 else ""))
        else:
            cut = sum(1 for r in ok if r["finish_reason"] in ("length", "max_tokens"))
            if cut:
                notes.append(f"dry run: {cut} of {len(ok)} answers stopped at max_tokens "
                             "(outputs may be longer with a higher limit)")

        # ---- input token counter, calibrated on the dry run's reported prompt tokens
        count, counter, why = _counter(provider, model)
        if why:
            notes.append(f"input tokens: estimate_tokens, not the tokenizer: {why}")
        calibration = None
        if counter == "estimate_tokens" and ok:
            reported = sum(r["input_tokens"] or 0 for r in ok)
            counted = sum(count(dry["prompts"][r["prompt_id"]].messages) for r in ok)
            if reported > 0 and counted > 0:
                calibration = reported / counted
                counter = "estimate_tokens+dry_run"
        scale = calibration or 1.0

        # ---- per call
        known = [p for g in groups if g is not None for p in g[k]]
        pooled = (sum(count(p.messages) for p in known) / len(known)) if known else None
        rows = []
        for i, c in enumerate(calls):
            g = groups[i]
            mine = g[k] if g is not None else []
            estimated = g is None
            if mine:
                per = sum(count(p.messages) for p in mine) / len(mine)
            elif g is not None:
                per = sum(count(p.messages) for p in c.prompts) / len(c.prompts)
            else:
                per = pooled
            n = req[i][k]
            inp = None if per is None else round(n * per * scale)
            m = c.max_tokens or stage_max
            if worst:
                p50 = p90 = mean = float(m)
            else:
                capped = [min(r["output_tokens"], m) for r in ok]
                p50, p90 = _quantile(capped, 0.5), _quantile(capped, 0.9)
                mean = sum(capped) / len(capped)
            o50, o90, omean = round(n * p50), round(n * p90), round(n * mean)
            cost = price.cost(inp, o50) if price else None
            cost90 = price.cost(inp, o90) if price else None
            batch = price.batch_cost(inp, o50) if price else None
            if estimated:
                notes.append(f"call {c.name}: prompts not known in advance; input tokens "
                             "estimated from the known calls' average"
                             if per is not None else
                             f"call {c.name}: prompts not known in advance and no call's "
                             "are: input tokens unknown")
            rows.append({
                "call": c.name, "requests": n, "prompts": len(mine), "estimated": estimated,
                "max_tokens": m, "input_tokens": inp,
                "input_tokens_per_request": None if per is None else per * scale,
                "output_tokens_p50": o50, "output_tokens_p90": o90, "output_tokens": omean,
                "output_per_request": {"p50": p50, "p90": p90, "mean": mean},
                "cost_usd": _money(cost), "cost_usd_p90": _money(cost90),
                "batch_cost_usd": _money(batch),
            })

        # ---- totals for this teacher, with the reasons for what is null
        inputs = [r["input_tokens"] for r in rows]
        total_in = None if any(x is None for x in inputs) else sum(inputs)
        cost = cost90 = batch = None
        cost_reason = batch_reason = None
        if price is None:
            cost_reason = (f"no price known for {route.teacher} at host {host or '(none)'}: "
                           "cost is null; add one with price_file")
        elif total_in is None:
            cost_reason = "input tokens unknown: cost is null"
        else:
            cost = _sum_known([r["cost_usd"] for r in rows]) or 0.0
            cost90 = _sum_known([r["cost_usd_p90"] for r in rows]) or 0.0
        if cost_reason:
            batch_reason = cost_reason
        elif provider == "local":
            batch_reason = "local teacher: no batch API (and nothing to save)"
        elif price.batch is None:
            batch_reason = (f"no batch price for {route.teacher} at host {host or '(none)'} "
                            "in the price table")
        else:
            batch = _sum_known([r["batch_cost_usd"] for r in rows]) or 0.0
        notes += [x for x in (cost_reason, batch_reason) if x]
        dry_cost = None
        if dry and price is not None:
            dry_cost = _money(sum(r["cost_usd"] or 0.0 for r in ok))
        teachers.append({
            "teacher": route.teacher, "weight": route.weight, "quota": route.quota,
            "host": host,
            "price": None if price is None else {
                "input": price.input, "output": price.output,
                "cached_input": price.cached_input, "batch": price.batch},
            "requests": sum(r["requests"] for r in rows),
            "input_tokens": total_in,
            "output_tokens_p50": sum(r["output_tokens_p50"] for r in rows),
            "output_tokens_p90": sum(r["output_tokens_p90"] for r in rows),
            "output_tokens": sum(r["output_tokens"] for r in rows),
            "cost_usd": cost, "cost_usd_p90": cost90, "cost_reason": cost_reason,
            "batch_cost_usd": batch, "batch_reason": batch_reason,
            "token_counter": counter, "input_calibration": calibration,
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
        "cost_usd": _sum_known([t["cost_usd"] for t in teachers]),
        "cost_usd_p90": _sum_known([t["cost_usd_p90"] for t in teachers]),
        "batch_cost_usd": _sum_known([t["batch_cost_usd"] for t in teachers]),
        "dry_run_cost_usd": _sum_known([t["dry_run_cost_usd"] for t in teachers]),
        "notes": stage_notes,
    }


# ---------------------------------------------------------------------------- break-even


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
               student_requests_per_hour: float, train_cost_usd: float = 0.0
               ) -> dict[str, Any]:
    """Distilling vs calling the teacher at ``requests_per_day``.

    * teacher per day = requests × ``teacher_cost_per_request``;
    * student per day, two ways of serving it: ``pay_per_use`` pays only the hours the
      requests need (requests / ``student_requests_per_hour`` × ``student_cost_per_hour``:
      serverless, or a shared GPU); ``always_on`` keeps whole instances up 24 h a day, as
      many as the load needs and at least one;
    * one-time cost = ``distil_cost_usd`` (the data) + ``train_cost_usd``;
    * break-even days = one-time / (teacher per day − student per day), ``"never"`` when the
      student is not cheaper per day.

    ``table``: the same at 100, 1k, 10k and 100k requests a day."""
    args = {"distil_cost_usd": distil_cost_usd,
            "teacher_cost_per_request": teacher_cost_per_request,
            "requests_per_day": requests_per_day, "student_cost_per_hour": student_cost_per_hour,
            "student_requests_per_hour": student_requests_per_hour,
            "train_cost_usd": train_cost_usd}
    for k, v in args.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0 or v != v:
            raise ValueError(f"break_even: {k} must be a number >= 0, got {v!r}")
    if student_requests_per_hour <= 0:
        raise ValueError("break_even: student_requests_per_hour must be > 0")
    one_time = distil_cost_usd + train_cost_usd

    def at(r: float) -> dict[str, Any]:
        teacher = r * teacher_cost_per_request
        hours, ppu, always, instances = _student_per_day(r, student_cost_per_hour,
                                                         student_requests_per_hour)
        return {"requests_per_day": r, "teacher_per_day_usd": _money(teacher),
                "student_hours_per_day": round(hours, 6), "student_instances": instances,
                "student_per_day_usd": {"pay_per_use": _money(ppu), "always_on": _money(always)},
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
        ],
        "one_time_usd": _money(one_time),
        **{k: v for k, v in here.items() if k != "requests_per_day"},
        "table": [at(r) for r in BREAK_EVEN_TABLE],
    }


# ---------------------------------------------------------------------------- totals


_BREAK_EVEN_ARGS = ("distil_cost_usd", "teacher_cost_per_request", "requests_per_day",
                    "student_cost_per_hour", "student_requests_per_hour", "train_cost_usd")


def summarise(stages: list[dict[str, Any]], *, break_even_args: dict[str, Any] | None
              ) -> dict[str, Any]:
    """``estimate.json``: one entry per stage × teacher (:data:`STAGE_KEYS`), the totals
    and the break-even.

    ``total_cost_usd`` / ``total_cost_usd_p90`` add the known costs (null when none is
    known; an unpriced teacher's note says what is missing); ``total_batch_cost_usd`` is
    what the stages cost with the batch API wherever one exists (a teacher without one
    counts at its standard cost). ``break_even_args`` are :func:`break_even`'s keywords
    (other keys, such as ``dry_run``, are ignored); ``distil_cost_usd`` defaults to
    ``total_cost_usd`` and ``teacher_cost_per_request`` to ``total_cost_usd`` / the
    requests of the priced teachers (the mean cost of one teacher request in this pipeline). If a required one is still missing, ``break_even`` holds ``missing``
    (their names) and ``reason`` instead of numbers."""
    entries = []
    for st in stages:
        for t in st["teachers"]:
            entries.append({
                "stage": st["stage"], "teacher": t["teacher"], "requests": t["requests"],
                "input_tokens": t["input_tokens"],
                "output_tokens_p50": t["output_tokens_p50"],
                "output_tokens_p90": t["output_tokens_p90"],
                "output_tokens": t["output_tokens"],
                "cost_usd": t["cost_usd"], "cost_usd_p90": t["cost_usd_p90"],
                "batch_cost_usd": t["batch_cost_usd"],
                "dry_run_requests": t["dry_run_requests"],
                "dry_run_cost_usd": t["dry_run_cost_usd"],
                "token_counter": t["token_counter"],
                "notes": list(st.get("notes", [])) + list(t["notes"]),
            })
    total = _sum_known([e["cost_usd"] for e in entries])
    total90 = _sum_known([e["cost_usd_p90"] for e in entries])
    total_batch = _sum_known([e["batch_cost_usd"] if e["batch_cost_usd"] is not None
                              else e["cost_usd"] for e in entries])
    be = None
    if break_even_args is not None:
        args = {k: v for k, v in break_even_args.items() if k in _BREAK_EVEN_ARGS}
        requests = sum(e["requests"] for e in entries if e["cost_usd"] is not None)
        if args.get("distil_cost_usd") is None:
            args["distil_cost_usd"] = total
        if args.get("teacher_cost_per_request") is None and total is not None and requests:
            args["teacher_cost_per_request"] = total / requests
        missing = [k for k in _BREAK_EVEN_ARGS if k != "train_cost_usd" and args.get(k) is None]
        if missing:
            be = {"missing": missing,
                  "reason": "break-even needs " + ", ".join(missing)
                  + (" (no teacher cost is known)" if total is None else "")}
        else:
            be = break_even(**args)
    return {"stages": entries, "total_cost_usd": total, "total_cost_usd_p90": total90,
            "total_batch_cost_usd": total_batch, "break_even": be}


# ---------------------------------------------------------------------------- terminal


def _usd(x: float | None) -> str:
    if x is None:
        return "-"
    if x == 0:
        return "$0"
    if abs(x) < 0.01:
        return f"${x:.6f}"
    return f"${x:,.4f}" if abs(x) < 100 else f"${x:,.2f}"


def _int(x: int | float | None) -> str:
    return "-" if x is None else f"{x:,.0f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    def line(r: list[str]) -> str:
        return "  ".join(c.ljust(w) if i < 2 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(r, widths))).rstrip()
    return [line(header), line(["-" * w for w in widths]), *map(line, rows)]


def _days_text(d: float | str) -> str:
    return d if isinstance(d, str) else f"{d:,.1f}"


def format_estimate(est: dict[str, Any]) -> str:
    """Plain text for the terminal: :func:`summarise`'s result (or one
    :func:`estimate_stage` result) as a table per stage × teacher, the totals, the notes and
    the break-even table."""
    if "stages" not in est:  # one stage
        est = summarise([est], break_even_args=None)
    header = ["stage", "teacher", "requests", "input tok", "output p50", "output p90",
              "cost p50", "cost p90", "batch", "dry run", "dry $"]
    rows = [[e["stage"], e["teacher"], _int(e["requests"]), _int(e["input_tokens"]),
             _int(e["output_tokens_p50"]), _int(e["output_tokens_p90"]), _usd(e["cost_usd"]),
             _usd(e["cost_usd_p90"]), _usd(e["batch_cost_usd"]), _int(e["dry_run_requests"]),
             _usd(e["dry_run_cost_usd"])] for e in est["stages"]]
    def total(key: str) -> str:
        known = [e[key] for e in est["stages"] if e[key] is not None]
        return _int(sum(known)) if known else "-"

    rows.append(["total", "", total("requests"), total("input_tokens"),
                 total("output_tokens_p50"), total("output_tokens_p90"),
                 _usd(est["total_cost_usd"]), _usd(est["total_cost_usd_p90"]),
                 _usd(est["total_batch_cost_usd"]), "", ""])
    lines = _table(header, rows)
    counters = sorted({e["token_counter"] for e in est["stages"]})
    lines.append(f"input tokens counted with: {', '.join(counters)}")
    notes = [(e["stage"], e["teacher"], n) for e in est["stages"] for n in e["notes"]]
    if notes:
        lines.append("")
        lines.append("notes:")
        seen = set()
        for stage, teacher, n in notes:
            if (stage, teacher, n) not in seen:
                seen.add((stage, teacher, n))
                lines.append(f"  {stage} / {teacher}: {n}")
    be = est.get("break_even")
    if be:
        lines.append("")
        if "missing" in be:
            lines.append(f"break-even: not computed: {be['reason']}")
        else:
            inp = be["inputs"]
            lines.append(
                f"break-even: one-time {_usd(be['one_time_usd'])} (data "
                f"{_usd(inp['distil_cost_usd'])} + training {_usd(inp['train_cost_usd'])}); "
                f"teacher {_usd(inp['teacher_cost_per_request'])}/request; student "
                f"{_usd(inp['student_cost_per_hour'])}/h at "
                f"{_int(inp['student_requests_per_hour'])} requests/h")
            trows = [[_int(r["requests_per_day"]), "", _usd(r["teacher_per_day_usd"]),
                      _usd(r["student_per_day_usd"]["pay_per_use"]),
                      _usd(r["student_per_day_usd"]["always_on"]),
                      _days_text(r["break_even_days"]["pay_per_use"]),
                      _days_text(r["break_even_days"]["always_on"])]
                     for r in [{"requests_per_day": inp["requests_per_day"], **be}, *be["table"]]]
            trows[0][1] = "(yours)"
            lines += _table(["requests/day", "", "teacher/day", "student/day ppu",
                             "student/day 24h", "days ppu", "days 24h"], trows)
            lines.append("ppu: pay per use (only the hours needed); 24h: always-on "
                         "instances")
    return "\n".join(lines) + "\n"


#: Break-even inputs a pipeline file leaves out: a small always-available CPU instance
#: serving a ~100M-parameter student. Recorded in estimate.json as assumptions.
_ASSUMED = {"requests_per_day": 1000, "student_cost_per_hour": 0.10,
            "student_requests_per_hour": 1800}


def estimate_pipeline(path: str | Path, *, out: str | Path | None = None,
                      dry_run: int | None = None) -> dict[str, Any]:
    """``synth estimate PIPELINE.yaml``: :func:`estimate_stage` for every generate stage,
    :func:`summarise`d, written to ``<run dir>/estimate.json`` (the run directory
    ``synth run`` uses, ``runs/<name>`` by default, so the dry run's answers are the run's
    own cache and the report can set the estimate beside what was spent). ``dry_run``
    defaults to the pipeline's ``estimate.dry_run``, else 8."""
    import orjson

    from synth.io import claim_out_dir, exclusive_dir, make_out_dir, write_atomic
    from synth.pipeline.config import check_before_run, load_pipeline
    from synth.pipeline.run import recorded_stages
    from synth.recipes.base import get_recipe

    p = load_pipeline(path)
    if not p.generate:
        from synth.errors import ConfigError

        raise ConfigError(f"{path}: no generate stage to estimate")
    out = claim_out_dir(Path(out) if out is not None else Path("runs") / p.name, "synth run",
                        default=None if out is not None else "the default")
    dry = p.estimate.get("dry_run", 8) if dry_run is None else dry_run
    recorded_stages(out, p.name, also=("estimate.json",))  # not another pipeline's run
    check_before_run(p)  # inputs, templates, licences: a mistake writes nothing
    make_out_dir(out)
    with exclusive_dir(out):  # its dry runs write inside it
        stages = []
        for g in p.generate:
            calls = get_recipe(g.recipe)().plan(g.params, base_dir=p.base_dir,
                                                samples=g.options.get("samples", 1))
            stages.append(estimate_stage(g.name, calls, g.routes,
                                         {**g.options, "progress": False},
                                         out=out / "generate" / g.name, dry_run=dry,
                                         mode=g.route))
        args = {**_ASSUMED, **{k: v for k, v in p.estimate.items() if k != "dry_run"}}
        est = summarise(stages, break_even_args=args)
        est["pipeline"] = p.name
        est["assumed"] = {k: v for k, v in _ASSUMED.items() if k not in p.estimate}
        est["dry_run"] = dry
        write_atomic(out / "estimate.json", orjson.dumps(est, option=orjson.OPT_INDENT_2,
                                                         default=str))
    return est
