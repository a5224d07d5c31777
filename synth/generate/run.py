"""``synth generate``: prompts in, trace rows out, each request paid for exactly once.

setup (validate, read prompts, build the teacher, price it, reach it) → open the run
directory and its cache → send what the cache lacks, ``concurrency`` at a time, committing
each answer as it lands → write ``traces.parquet`` and ``run.json`` atomically.

The output is a pure function of the prompts, the parameters and the cached answers, so a
run killed at any moment and started again produces the same file as one that never died.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections import Counter, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from synth.cache import ResponseCache
from synth.dataset.card import render_card, teacher_summaries
from synth.errors import (
    BudgetExceededError,
    ConfigError,
    LicenceDeniedError,
    TeacherError,
    TermsNotAcceptedError,
)
from synth.generate.config import GenerateConfig
from synth.inputs import read_prompts
from synth.io import claim_out_dir, exclusive_dir, make_out_dir, write_atomic
from synth.licences import Decision, check, load_registry
from synth.options import make_config
from synth.progress import RunProgress
from synth.records import (
    TRACE_SCHEMA,
    Completion,
    Params,
    Prompt,
    Request,
    request_hash,
)
from synth.teachers import (
    ProviderTraits,
    Teacher,
    TeacherOptions,
    estimate_tokens,
    make_teacher,
    parse_spec,
    provider_traits,
)
from synth.teachers.pricing import Price, load_prices
from synth.teachers.reasoning import join_reasoning, split_think

__all__ = ["GenerateConfig", "RunResult", "agenerate", "generate", "licence_check"]

log = logging.getLogger("synth")

TRACES, CACHE, SUMMARY, CARD = "traces.parquet", "cache.sqlite", "run.json", "README.md"

@dataclass
class RunResult:
    out: Path
    traces: Path
    summary: dict[str, Any]

    def table(self) -> pa.Table:
        return pq.read_table(self.traces)


def licence_check(cfg: GenerateConfig, teacher: Teacher, traits: ProviderTraits) -> Decision:
    """Check the teacher's terms against the declared intent; raise before any request."""
    registry = load_registry(cfg.licence_file)
    registry.check_accepted(cfg.accept_terms)
    intent = cfg.intent
    if intent is None:
        if traits.needs_intent:
            raise ConfigError(
                "--intent: required for API teachers: what is the data for? research "
                "(non-commercial), internal (commercial, student not distributed), "
                "distributed (student released or sold), competing (student competes with "
                "the teacher's provider)")
        intent = "research"
    decision = check(registry, provider=teacher.provider, model=teacher.model,
                     base_url=teacher.base_url, intent=intent, accept=cfg.accept_terms)
    spec = f"{teacher.provider}:{teacher.model}"
    for ep in (getattr(teacher, "endpoints", None) or [])[1:]:  # a fleet: one kind of server
        other = check(registry, provider=teacher.provider, model=teacher.model,
                      base_url=ep.name, intent=intent, accept=cfg.accept_terms)
        if (other.entries, other.decision) != (decision.entries, decision.decision):
            raise ConfigError(
                f"--base-url: {ep.name} falls under other terms than {teacher.base_url} "
                f"({', '.join(other.entries) or 'none'}: {other.decision}, against "
                f"{', '.join(decision.entries) or 'none'}: {decision.decision}); the servers "
                "of one --base-url must be one kind of server: run them apart")
    if decision.decision == "deny":
        reason = decision.denied_by[0]
        how = "; ".join(decision.how_to_proceed)
        raise LicenceDeniedError(
            f"licence: {spec} may not teach for intent '{intent}': {reason} "
            f"[{', '.join(decision.sources)}]; {how}", decision)
    if decision.needs_acceptance:
        raise TermsNotAcceptedError(
            f"licence: {spec}: {decision.reasons[0]}; {decision.how_to_proceed[-1]}",
            decision)
    return decision


def _log_licence(decision: Decision, cfg: GenerateConfig) -> None:
    if cfg.intent is None:
        log.warning("licence: no --intent given; %s was checked as 'research'. Declare "
                    "--intent internal|distributed|competing for other uses", cfg.teacher)
    if decision.decision == "warn":
        for r in decision.reasons:
            log.warning("licence: %s", r)
    for o in decision.obligations:
        log.warning("licence: obligation: %s", o)


def _resolve_params(cfg: GenerateConfig, traits: ProviderTraits) -> Params:
    """The request parameters, checked against what the provider accepts (its traits)."""
    effort = cfg.effort
    temperature = cfg.temperature
    who = traits.label or "this provider"
    if effort and traits.reasoning is None:
        raise ConfigError(f"--reasoning: {who} has no reasoning switch; its <think> output "
                          "is captured into the reasoning column anyway")
    if effort and traits.reasoning_temperature is not None:
        if temperature not in (None, traits.reasoning_temperature):
            raise ConfigError(f"--temperature: reasoning on {who} only accepts temperature "
                              f"{traits.reasoning_temperature:g}; drop --temperature")
        temperature = traits.reasoning_temperature
    if cfg.logprobs and traits.max_logprobs == 0:
        raise ConfigError(f"--logprobs: {who} returns no logprobs")
    if cfg.logprobs and traits.max_logprobs is not None and cfg.logprobs > traits.max_logprobs:
        raise ConfigError(f"--logprobs: {who} returns at most {traits.max_logprobs} "
                          "alternatives")
    if temperature is None:
        temperature = 0.0 if cfg.samples == 1 else 1.0
    return Params(temperature=temperature, top_p=cfg.top_p, max_tokens=cfg.max_tokens,
                  seed=cfg.seed, top_logprobs=cfg.logprobs, reasoning_effort=effort,
                  dtype=cfg.dtype if traits.has_dtype else None)


class CostMeter:
    """Running cost, and the ``--max-cost`` gate: a request is sent only if its worst case
    (estimated prompt + ``max_tokens`` of output) still fits under the cap with everything
    already spent and in flight. Once one does not fit, nothing more is sent."""

    def __init__(self, price: Price | None, max_cost: float | None, spent: float):
        self.price, self.max_cost = price, max_cost
        self.spent, self.reserved, self.stopped = spent, 0.0, False

    def worst_case(self, req: Request) -> float:
        if self.price is None:
            return 0.0
        return self.price.cost(req.est_input_tokens, req.params.max_tokens) or 0.0

    def reserve(self, amount: float) -> bool:
        if self.max_cost is None:
            return True
        if self.stopped or self.spent + self.reserved + amount > self.max_cost:
            self.stopped = True
            return False
        self.reserved += amount
        return True

    def settle(self, reserved: float, actual: float | None) -> None:
        if self.max_cost is not None:
            self.reserved -= reserved
        self.spent += actual or 0.0


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def _from_us(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def completion_record(c: Completion) -> dict[str, Any]:
    """What the cache keeps for one answer: the raw completion plus when it arrived."""
    return {
        "text": c.text, "reasoning": c.reasoning, "finish_reason": c.finish_reason,
        "model_version": c.model_version, "input_tokens": c.input_tokens,
        "cached_input_tokens": c.cached_input_tokens, "output_tokens": c.output_tokens,
        "logprobs": c.logprobs, "latency_s": c.latency_s, "served_by": c.served_by,
        "created_at": time.time_ns() // 1000,  # µs since the epoch: cheap to make and store
    }


class _RowMaker:
    """Joins a request and its answer (or failure) into a trace row."""

    def __init__(self, teacher: Teacher, price: Price | None, licence: Decision,
                 intent: str | None):
        self.provider, self.model = teacher.provider, teacher.model
        self.base_url = teacher.base_url
        self.price = price
        # a batch answer costs the entry's batch fraction (none known: the standard price,
        # an upper bound the run warns about)
        self.batch_fraction = price.batch if price is not None and price.batch else 1.0
        self.provenance = {
            "intent": intent, "licence_entries": licence.entries,
            "terms_versions": licence.terms, "licence_rule": licence.rule,
            "licence_decision": licence.decision, "terms_accepted": bool(licence.accepted),
            "accepted_terms": licence.accepted,
        }
        self._params_dicts: dict[Params, dict[str, Any]] = {}

    def _params(self, params: Params) -> dict[str, Any]:
        d = self._params_dicts.get(params)
        if d is None:
            d = self._params_dicts[params] = params.as_dict()
        return d

    def _base(self, req: Request) -> dict[str, Any]:
        p = req.prompt
        return {
            "id": f"{p.id}:{req.sample_index}", "prompt_id": p.id,
            "sample_index": req.sample_index, "messages": p.messages,
            "provider": self.provider, "model": self.model, "base_url": self.base_url,
            "params": self._params(req.params), "request_hash": req.hash,
            "reference": p.reference,
            "metadata": orjson.dumps(p.metadata).decode() if p.metadata else None,
            "template_id": p.metadata.get("template_id"),
            "template_hash": p.metadata.get("template_hash"),
            **self.provenance,
            "batch_id": None, "served_by": None,
        }

    def cost(self, rec: dict[str, Any]) -> float | None:
        """What one cached answer cost: its tokens at the price, a batch answer at the
        entry's batch fraction; None when no price is known."""
        if self.price is None:
            return None
        cost = self.price.cost(rec.get("input_tokens"), rec.get("output_tokens"),
                               rec.get("cached_input_tokens"))
        if cost is not None and rec.get("batch_id") is not None:
            cost *= self.batch_fraction
        return cost

    def ok(self, req: Request, rec: dict[str, Any]) -> dict[str, Any]:
        answer, think = split_think(rec["text"])
        inp, out, cached = rec["input_tokens"], rec["output_tokens"], rec["cached_input_tokens"]
        row = self._base(req)
        row.update({
            "batch_id": rec.get("batch_id"), "served_by": rec.get("served_by"),
            "response": answer, "reasoning": join_reasoning(rec["reasoning"], think),
            "logprobs": rec["logprobs"], "finish_reason": rec["finish_reason"],
            "status": "ok", "error": None, "model_version": rec["model_version"],
            "input_tokens": inp, "cached_input_tokens": cached, "output_tokens": out,
            "cost_usd": self.cost(rec),
            "latency_s": rec["latency_s"],
            "created_at": _from_us(rec["created_at"]),
        })
        return row

    def error(self, req: Request, err: TeacherError) -> dict[str, Any]:
        row = self._base(req)
        row.update({
            "response": None, "reasoning": None, "logprobs": None, "finish_reason": None,
            "status": "error", "error": f"{err.reason}: {err}", "model_version": None,
            "input_tokens": None, "cached_input_tokens": None, "output_tokens": None,
            "cost_usd": None, "latency_s": None,
            "created_at": datetime.now(timezone.utc),
        })
        return row


def _requests(prompts: list[Prompt], teacher: Teacher, params: Params,
              samples: int) -> list[Request]:
    out = []
    for p in prompts:
        est = estimate_tokens(p.messages)
        for s in range(samples):
            h = request_hash(provider=teacher.provider, base_url=teacher.base_url,
                             model=teacher.model, params=params, messages=p.messages,
                             sample_index=s)
            out.append(Request(prompt=p, sample_index=s, params=params, hash=h,
                               est_input_tokens=est))
    return out


async def agenerate(config: GenerateConfig | None = None, /, **kwargs: Any) -> RunResult:
    """Run a generation job. Pass a :class:`GenerateConfig` or its fields as keywords."""
    cfg = make_config(config, kwargs, cls=GenerateConfig)
    t_start = time.perf_counter()
    started_at = _now_iso()

    # ---- setup: everything that can fail on user input fails here, before any output
    # before a model loads or a prompt is read: new, empty, or an earlier generate run's
    # (resumed from its cache; synth.io's rule)
    claim_out_dir(cfg.out, "synth generate")
    provider, model = parse_spec(cfg.teacher)
    traits = provider_traits(provider)
    params = _resolve_params(cfg, traits)
    prompts = cfg.prompts if cfg.prompts is not None else read_prompts(cfg.input,
                                                                         system=cfg.system)
    if not prompts:
        raise ConfigError("prompts: nothing to generate")
    options = TeacherOptions(
        base_url=cfg.base_url, api_key_env=cfg.api_key_env, concurrency=cfg.concurrency,
        rpm=cfg.rpm, tpm=cfg.tpm, timeout=cfg.timeout, max_retries=cfg.max_retries,
        retry_initial_delay=cfg.retry_initial_delay, dtype=cfg.dtype,
        max_batch_size=min(32, cfg.concurrency))
    teacher = make_teacher(cfg.teacher, options)
    licence = licence_check(cfg, teacher, traits)  # before any byte reaches the provider
    host = urlsplit(teacher.base_url).hostname if teacher.base_url else None
    table = load_prices(cfg.price_file)
    price = table.lookup(provider, model, host)
    for ep in (getattr(teacher, "endpoints", None) or [])[1:]:
        if table.lookup(provider, model, urlsplit(ep.name).hostname) != price:
            raise ConfigError(f"--base-url: {ep.name} is priced apart from "
                              f"{teacher.base_url} in the price table; the servers of one "
                              "--base-url must cost the same: run them apart")
    if price is None and cfg.max_cost is not None:
        raise ConfigError(f"--max-cost: no price known for {cfg.teacher} at {host}; "
                          "add one with --price-file")
    requests = _requests(prompts, teacher, params, cfg.samples)
    batches = None
    if cfg.batch:
        from synth.teachers.batches import batch_client

        batches = batch_client(teacher)  # a provider with no batch API fails here, early

    if params.temperature == 0 and cfg.samples > 1:
        log.warning("--samples %d at temperature 0: the samples will be (nearly) identical",
                    cfg.samples)

    try:
        await teacher.start()
        make_out_dir(cfg.out)
        with exclusive_dir(cfg.out):
            _log_licence(licence, cfg)
            if price is None:
                log.warning("no price known for %s (host %s): cost_usd will be null; "
                            "add one with --price-file", cfg.teacher, host)
            if batches is not None and price is not None and not price.batch:
                log.warning("no batch price known for %s (host %s): batch answers are "
                            "costed at the standard price, an upper bound; add `batch:` to "
                            "its entry with --price-file", cfg.teacher, host)
            cache = ResponseCache(cfg.out / CACHE)
            try:
                if batches is not None:
                    result = await _run_batches(cfg, teacher, price, requests, cache,
                                                licence, batches)
                else:
                    result = await _run(cfg, teacher, price, requests, cache, licence)
            finally:
                cache.close()
    finally:
        await teacher.aclose()

    rows, stats = result
    if rows is None:  # --no-wait: submitted, not yet answered; nothing is written
        return RunResult(out=cfg.out, traces=cfg.out / TRACES, summary={
            "pending": True, "prompts": len(prompts), "rows": len(requests), **stats})
    table = pa.Table.from_pylist(rows, schema=TRACE_SCHEMA)
    write_atomic(cfg.out / TRACES, table)
    summary = _summary(cfg, teacher, params, rows, stats, len(prompts),
                       time.perf_counter() - t_start, started_at, price)
    summary["licence"] = licence.to_dict()
    write_atomic(cfg.out / SUMMARY, orjson.dumps(summary, option=orjson.OPT_INDENT_2))
    write_atomic(cfg.out / CARD, render_card(
        name=cfg.out.name, licence=licence, teachers=teacher_summaries(rows),
        rows=len(rows)).encode())
    return RunResult(out=cfg.out, traces=cfg.out / TRACES, summary=summary)


async def _run(cfg: GenerateConfig, teacher: Teacher, price: Price | None,
               requests: list[Request], cache: ResponseCache, licence: Decision):
    make = _RowMaker(teacher, price, licence, cfg.intent)
    stored = cache.get_many([r.hash for r in requests])
    rows: dict[str, dict[str, Any]] = {}   # request id → row
    by_hash: dict[str, list[Request]] = {}  # identical requests are sent once
    spent = 0.0
    from synth.generate.ledger import BatchLedger

    busy = BatchLedger.open_hashes(cache)  # an earlier --batch run's, still open: paid for
    waiting = 0
    for r in requests:
        rec = stored.get(r.hash)
        if rec is not None:
            row = make.ok(r, rec)
            rows[row["id"]] = row
            spent += row["cost_usd"] or 0.0
        elif r.hash in busy:
            waiting += 1
            row = make.error(r, TeacherError(
                "in a provider batch that has not ended: rerun with --batch to collect it",
                reason="batch_pending"))
            rows[row["id"]] = row
        else:
            by_hash.setdefault(r.hash, []).append(r)
    if waiting:
        log.warning("%d request(s) are in batches an earlier --batch run left open: not sent "
                    "again (rows say batch_pending); rerun with --batch to collect them",
                    waiting)
    n_cached = len(rows) - waiting
    meter = CostMeter(price, cfg.max_cost, spent)
    progress = RunProgress(enabled=cfg.progress, description=f"{teacher.provider}:{teacher.model}")
    tokens0 = sum((r["input_tokens"] or 0) + (r["output_tokens"] or 0) for r in rows.values())
    progress.start(len(requests), len(rows), tokens=tokens0,
                   cost=spent if price is not None else None)
    todo = deque(by_hash.values())
    sent = 0

    async def one(group: list[Request]) -> None:
        nonlocal sent
        req = group[0]
        worst = meter.worst_case(req)
        made: list[dict[str, Any]]
        if not meter.reserve(worst):
            err = BudgetExceededError(
                f"not sent: --max-cost {cfg.max_cost:g} USD would be exceeded "
                f"(spent {meter.spent:.4f}, in flight {meter.reserved:.4f})")
            made = [make.error(r, err) for r in group]
            cost = None
        else:
            sent += 1
            try:
                completion = await teacher.complete(req)
            except TeacherError as err:
                made = [make.error(r, err) for r in group]
                cost = None
            except Exception as exc:  # a bug must not cost the rest of a paid run
                log.exception("unexpected error on request %s", req.hash[:12])
                err = TeacherError(f"{type(exc).__name__}: {exc}", reason="internal")
                made = [make.error(r, err) for r in group]
                cost = None
            else:
                rec = completion_record(completion)
                cache.put(req.hash, rec)
                made = [make.ok(r, rec) for r in group]
                cost = made[0]["cost_usd"]
            meter.settle(worst, cost)
        for row in made:
            rows[row["id"]] = row
            progress.advance(tokens=(row["input_tokens"] or 0) + (row["output_tokens"] or 0),
                             cost=row["cost_usd"] if row["status"] == "ok" else 0.0,
                             error=row["status"] != "ok")

    async def worker() -> None:
        while todo:
            await one(todo.popleft())

    try:
        await asyncio.gather(*(worker() for _ in range(min(cfg.concurrency, len(todo)))))
    finally:
        progress.stop()
    ordered = [rows[f"{r.prompt.id}:{r.sample_index}"] for r in requests]
    retries = dict(getattr(teacher, "retries", {}) or {})
    return ordered, {"cached": n_cached, "sent": sent, "retries": retries,
                     "stopped_by_max_cost": meter.stopped}


async def _run_batches(cfg: GenerateConfig, teacher: Teacher, price: Price | None,
                       requests: list[Request], cache: ResponseCache, licence: Decision,
                       client: Any):
    """``--batch``: :class:`synth.generate.batch.BatchRun`; ``(None, stats)`` when it
    returns with batches still open (``--no-wait``)."""
    from synth.generate.batch import BatchRun

    run = BatchRun(cfg, teacher, price, requests, cache,
                   _RowMaker(teacher, price, licence, cfg.intent), client=client)
    finished = await run.run()
    if not finished:
        return None, run.stats()
    return run.rows(), run.stats()


def _summary(cfg: GenerateConfig, teacher: Teacher, params: Params, rows: list[dict],
             stats: dict, n_prompts: int, wall: float, started_at: str,
             price: Price | None) -> dict[str, Any]:
    from synth.version import __version__

    status = Counter(r["status"] for r in rows)
    failures = Counter(r["error"].split(":", 1)[0] for r in rows if r["status"] == "error")
    ok = [r for r in rows if r["status"] == "ok"]
    costs = [r["cost_usd"] for r in ok]
    return {
        "synth_version": __version__,
        "teacher": cfg.teacher, "provider": teacher.provider, "model": teacher.model,
        "model_versions": sorted({r["model_version"] for r in ok if r["model_version"]}),
        "base_url": teacher.base_url,
        "input": str(cfg.input) if cfg.input is not None else None,
        "params": params.as_dict(),
        "prompts": n_prompts, "samples": cfg.samples, "rows": len(rows),
        "status": {"ok": status.get("ok", 0), "error": status.get("error", 0)},
        "from_cache": stats["cached"], "sent": stats["sent"],
        "retries": stats["retries"],
        "failures": dict(sorted(failures.items())),
        "stopped_by_max_cost": stats["stopped_by_max_cost"],
        **({"batch": stats["batch"]} if "batch" in stats else {}),
        "cost_by_route": _cost_by_route(ok, price),
        "tokens": {
            "input": sum(r["input_tokens"] or 0 for r in ok),
            "cached_input": sum(r["cached_input_tokens"] or 0 for r in ok),
            "output": sum(r["output_tokens"] or 0 for r in ok),
        },
        "cost_usd": None if price is None else round(sum(c or 0.0 for c in costs), 6),
        "max_cost": cfg.max_cost,
        "wall_s": round(wall, 3),
        "started_at": started_at, "finished_at": _now_iso(),
    }


def _cost_by_route(ok: list[dict], price: Price | None) -> dict[str, Any] | None:
    """Spend on answers from batches and from synchronous calls, and what the batch answers
    would have cost synchronously (the report's batch vs synchronous figure)."""
    if price is None:
        return None
    batch = [r for r in ok if r.get("batch_id")]
    sync = [r for r in ok if not r.get("batch_id")]
    at_sync = sum(price.cost(r["input_tokens"], r["output_tokens"],
                             r["cached_input_tokens"]) or 0.0 for r in batch)
    return {"batch_rows": len(batch), "sync_rows": len(sync),
            "batch_usd": round(sum(r["cost_usd"] or 0.0 for r in batch), 6),
            "sync_usd": round(sum(r["cost_usd"] or 0.0 for r in sync), 6),
            "batch_at_sync_price_usd": round(at_sync, 6)}


def _runner():
    """uvloop when available: the loop is most of a fast client's CPU time."""
    try:
        import uvloop
    except ImportError:
        return asyncio.Runner()
    return asyncio.Runner(loop_factory=uvloop.new_event_loop)


def _generate_here(config: GenerateConfig | None, kwargs: dict[str, Any]) -> RunResult:
    if sys.version_info < (3, 11):  # asyncio.Runner is 3.11+
        return asyncio.run(agenerate(config, **kwargs))
    with _runner() as runner:
        return runner.run(agenerate(config, **kwargs))


def generate(config: GenerateConfig | None = None, /, **kwargs: Any) -> RunResult:
    """Synchronous :func:`agenerate`. Called where an event loop already runs (a notebook,
    an async caller, a curation step under one), it runs on a worker thread with its own
    loop, since asyncio refuses to start a second loop in the same thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return _generate_here(config, kwargs)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="synth-generate") as pool:
        return pool.submit(_generate_here, config, kwargs).result()

