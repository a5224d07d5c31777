"""The report's figures as plain data: everything ``report.html`` shows, read and computed
from a run directory, with no HTML and no plotting (so it is tested without a browser or
matplotlib). :func:`collect_report` returns a :class:`ReportData` dict; the page
(:mod:`synth.pipeline.report.page`) and the plots (:mod:`synth.pipeline.report.plots`) are
functions of it.

Whatever a run lacks is ``None`` or empty here, never a made-up number."""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

import polars as pl

from synth.errors import InputError
from synth.pipeline.report.rundir import (
    RunDir,
    effective_status,
    manifest_status,
    parse_meta,
    reason_name,
    stage_of,
    teacher_of,
)

__all__ = ["collect_report", "Headline", "ReportData", "SAMPLE_ROWS", "GRID_DIMS"]

#: At most this many kept and this many rejected rows go into the page's row browser.
SAMPLE_ROWS = 200
#: The textbook recipe's grid: the coordinates of a cell, in ``cells`` order.
GRID_DIMS = ("topic", "subtopic", "audience", "style", "format")
#: Sample texts longer than this (characters) are cut: the page stays a few MB at most.
CUT = {"prompt": 600, "response": 1500, "reasoning": 600}
ROW_COLUMNS = ("id", "stage", "messages", "response", "reasoning", "provider", "model",
               "metadata", "status", "dropped_by", "drop_reason")


@dataclass(frozen=True)
class Headline:
    """What a reader opens the report for: how close the student came to the teacher, what
    the run cost and how many rows it kept. ``None``: the run has no such figure (no eval,
    no teacher called...)."""

    #: eval.json exists; ``task_scored``: it scored answers against references
    evaluated: bool = False
    task_scored: bool = False
    student: str | None = None
    teacher: str | None = None
    #: the student's task accuracy as a share of the teacher's (eval.json ``task.retained``)
    retained: float | None = None
    student_accuracy: float | None = None
    teacher_accuracy: float | None = None
    #: held-out prompts both models answered (the accuracies' denominator)
    scored: int | None = None
    speedup: float | None = None
    student_tokens_per_s: float | None = None
    teacher_tokens_per_s: float | None = None
    student_params: int | None = None
    teacher_params: int | None = None
    #: student parameters / teacher parameters
    size_ratio: float | None = None
    #: dollars spent by the teachers that have a price (None: no teacher ran, or none that
    #: ran has a price); ``unpriced``: how many distinct teachers ran without one
    spent_usd: float | None = None
    unpriced: int = 0
    estimated_usd: float | None = None
    #: rows the teachers generated (kept and rejected by the recipes) and rows kept at the end
    generated_rows: int | None = None
    kept_rows: int | None = None
    #: the last step that kept ``kept_rows``: ``curation`` or ``the recipes``
    kept_by: str | None = None
    #: rows curation was given (the training side of the split, made before curation)
    #: and rows the split held out for eval; None where there was no curation / split
    curated_from_rows: int | None = None
    heldout_rows: int | None = None


class ReportData(TypedDict):
    """:func:`collect_report`'s result; each value is JSON-like data (``headline`` a
    :class:`Headline`)."""

    pipeline: str
    run_dir: str
    manifest_stages: list[dict[str, Any]]
    status_counts: dict[str, int]
    stage_seconds: float
    generated_at: str
    headline: Headline
    stages: list[dict[str, Any]]
    curation: dict[str, Any] | None
    curation_status: str | None
    funnel: list[dict[str, Any]]
    costs: dict[str, Any]
    acceptance: list[dict[str, Any]]
    diversity: dict[str, dict[str, Any]] | None
    diversity_on: str | None
    grids: list[dict[str, Any]]
    train: dict[str, Any] | None
    history: list[dict[str, Any]]
    train_status: str | None
    eval: dict[str, Any] | None
    eval_status: str | None
    samples: list[dict[str, Any]]
    not_run: list[str]
    problems: list[str]
    pipeline_yaml: str | None
    has_readme: bool


# ------------------------------------------------------------------------ stages and funnel


def generate_stages(run: RunDir, manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """Each ``generate/<stage>/``: recipe, teachers, rows kept and rejected (by reason), in
    the manifest's order."""
    gen = run.dir / "generate"
    names = sorted(p.name for p in gen.iterdir() if p.is_dir()) if gen.is_dir() else []
    order = {str(k): i for i, k in enumerate(manifest.get("stages") or {})}

    def pos(name: str) -> tuple[int, str]:
        hits = [i for k, i in order.items() if k in (name, f"generate.{name}")]
        return (min(hits) if hits else len(order), name)

    out = []
    for name in sorted(names, key=pos):
        st = run.json(f"generate/{name}/stage.json") or {}
        rel = f"generate/{name}"
        if not st and not (run.dir / rel / "traces.parquet").is_file():
            continue
        s: dict[str, Any] = {"name": st.get("stage", name), "dir": name,
                             "recipe": st.get("recipe"), "wall_s": st.get("wall_s"),
                             "teachers": st.get("teachers") or {}, "info": st.get("info") or {},
                             "status": manifest_status(manifest, f"generate.{name}", name)}
        rows, rejected, reasons = st.get("rows"), st.get("rejected"), st.get("rejects")
        if rows is None:
            t = run.table(f"{rel}/traces.parquet", ["id"])
            rows = t.height if t is not None else 0
        if rejected is None or reasons is None:
            t = run.table(f"{rel}/rejects.parquet", ["drop_reason"])
            if t is not None and "drop_reason" in t.columns:
                rejected = t.height if rejected is None else rejected
                reasons = reasons if reasons is not None else dict(
                    Counter(reason_name(r) for r in t["drop_reason"].to_list()).most_common())
        s["rows"], s["rejected"], s["rejects"] = int(rows), int(rejected or 0), reasons or {}
        s["generated"] = s["rows"] + s["rejected"]
        out.append(s)
    return out


def funnel(stages: list[dict[str, Any]], curation: dict[str, Any] | None,
           train: dict[str, Any] | None, *, dataset_rows: int | None = None,
           split: tuple[int | None, int | None] = (None, None)) -> list[dict[str, Any]]:
    """Rows in, dropped (by reason) and out of each step, from the teachers' answers to the
    student's train / held-out split."""
    rows: list[dict[str, Any]] = []
    for s in stages:
        rows.append({"step": f"generate {s['name']}", "kind": "recipe",
                     "what": f"recipe {s['recipe']}" if s.get("recipe") else "recipe",
                     "in": s["generated"], "dropped": s["rejected"], "out": s["rows"],
                     "reasons": s["rejects"]})
    if stages:
        gen = sum(s["generated"] for s in stages)
        kept = sum(s["rows"] for s in stages)
        rows.append({"step": "all generate stages", "kind": "total",
                     "what": "kept rows of every stage", "in": gen, "dropped": gen - kept,
                     "out": kept, "reasons": {}})
        if dataset_rows is not None and dataset_rows != kept:
            rows.append({"step": "dataset", "kind": "total", "what": "traces.parquet",
                         "in": kept, "dropped": max(0, kept - dataset_rows),
                         "out": dataset_rows,
                         "reasons": {"not in the merged dataset": kept - dataset_rows}
                         if kept > dataset_rows else {}})
    if split[0] is not None and split[1] is not None:
        # drawn before curation, by source prompt: the held-out side also keeps the rows
        # the recipes rejected, so eval sees every held-out prompt
        rows.append({"step": "split", "kind": "split",
                     "what": "held-out source prompts for eval (before curation; rows of "
                             "held-out prompts, recipe rejects included)",
                     "in": split[0] + split[1], "dropped": 0, "out": split[0],
                     "heldout": split[1], "reasons": {}})
    if curation:
        for st in curation.get("steps") or []:
            rows.append({"step": f"curate {st.get('step')}", "kind": "curate",
                         "what": "curation step", "in": st.get("in", 0),
                         "dropped": st.get("dropped", 0), "out": st.get("kept", 0),
                         "reasons": st.get("reasons") or {}})
        rows.append({"step": "curated", "kind": "total", "what": "curate/curated.parquet",
                     "in": curation.get("input_rows", 0), "dropped": curation.get("rejected", 0),
                     "out": curation.get("kept", 0), "reasons": {}})
    data = (train or {}).get("data") or {}
    if data:
        skipped = data.get("skipped_rows") or {}
        n_skip = sum(skipped.values()) if isinstance(skipped, dict) else int(skipped or 0)
        rows.append({"step": "student rows", "kind": "train", "what": "rows read for training",
                     "in": data.get("rows", 0) + n_skip, "dropped": n_skip,
                     "out": data.get("rows", 0),
                     "reasons": skipped if isinstance(skipped, dict) else {}})
        dropped = data.get("dropped_examples") or {}
        n_drop = sum(dropped.values()) if isinstance(dropped, dict) else int(dropped or 0)
        rows.append({"step": "student examples", "kind": "train",
                     "what": "rows that made training examples", "in": data.get("rows", 0),
                     "dropped": n_drop, "out": data.get("examples", 0),
                     "reasons": dropped if isinstance(dropped, dict) else {}})
        rows.append({"step": "train / held-out", "kind": "split",
                     "what": "training's own held-out examples (eval loss)",
                     "in": data.get("examples", 0), "dropped": 0,
                     "out": data.get("train_examples", 0),
                     "heldout": data.get("heldout_examples", 0), "reasons": {}})
    return rows


# ------------------------------------------------------------------------ cost and acceptance


def costs(stages: list[dict[str, Any]], estimate: dict[str, Any] | None) -> dict[str, Any]:
    """Estimated vs spent requests, tokens and dollars per stage and teacher, and totals."""
    est = {}
    for e in (estimate or {}).get("stages") or []:
        est[(str(e.get("stage")), str(e.get("teacher")))] = e
    keys: list[tuple[str, str]] = []
    spent = {}
    for s in stages:
        for spec, t in s["teachers"].items():
            keys.append((s["name"], spec))
            spent[(s["name"], spec)] = t
    keys += [k for k in est if k not in spent]
    rows = []
    for k in keys:
        e, t = est.get(k), spent.get(k)
        rows.append({
            "stage": k[0], "teacher": k[1], "ran": t is not None,
            "est_requests": (e or {}).get("requests"), "requests": (t or {}).get("requests"),
            "sent": (t or {}).get("sent"), "notes": list((e or {}).get("notes") or []),
            "est_input_tokens": (e or {}).get("input_tokens"),
            "input_tokens": (t or {}).get("input_tokens"),
            "est_output_tokens": (e or {}).get("output_tokens"),
            "est_output_p90": (e or {}).get("output_tokens_p90"),
            "output_tokens": (t or {}).get("output_tokens"),
            "est_cost": (e or {}).get("cost_usd"), "est_cost_p90": (e or {}).get("cost_usd_p90"),
            "est_batch_cost": (e or {}).get("batch_cost_usd"),
            "cost": (t or {}).get("cost_usd"), "errors": (t or {}).get("errors"),
            "batch_rows": (t or {}).get("batch_rows") or 0,
            "batch_spent": (t or {}).get("batch_usd") or 0.0,
            "sync_spent": (t or {}).get("sync_usd") or 0.0,
            "batch_at_sync": (t or {}).get("batch_at_sync_price_usd") or 0.0,
            "has_estimate": e is not None})
    ran = [r for r in rows if r["ran"]]
    known = [r["cost"] for r in ran if r["cost"] is not None]
    total = {"requests": sum(r["requests"] or 0 for r in ran),
             "sent": sum(r["sent"] or 0 for r in ran),
             "input_tokens": sum(r["input_tokens"] or 0 for r in ran),
             "output_tokens": sum(r["output_tokens"] or 0 for r in ran),
             "errors": sum(r["errors"] or 0 for r in ran),
             "cost": sum(known) if ran else None, "unpriced": len(ran) - len(known),
             "est_cost": (estimate or {}).get("total_cost_usd"),
             "est_cost_p90": (estimate or {}).get("total_cost_usd_p90"),
             "est_batch_cost": (estimate or {}).get("total_batch_cost_usd"),
             "est_requests": sum(r["est_requests"] or 0 for r in rows if r["has_estimate"])}
    if total["est_cost"] is None and rows and all(r["est_cost"] is not None for r in rows
                                                  if r["has_estimate"]) and est:
        total["est_cost"] = sum(r["est_cost"] for r in rows if r["has_estimate"])
    return {"rows": rows, "total": total, "estimate": estimate is not None,
            "break_even": (estimate or {}).get("break_even")}


def acceptance(stages: list[dict[str, Any]], curated: pl.DataFrame | None
               ) -> list[dict[str, Any]]:
    """Per teacher: rows generated, kept by the recipe and after curation, and the rate."""
    per: dict[str, dict[str, Any]] = {}
    for s in stages:
        for spec, t in s["teachers"].items():
            a = per.setdefault(spec, {"teacher": spec, "generated": 0, "recipe_kept": 0,
                                      "errors": 0, "curated": None, "stages": []})
            a["generated"] += int(t.get("rows", t.get("requests", 0)) or 0)
            a["recipe_kept"] += int(t.get("accepted", 0) or 0)
            a["errors"] += int(t.get("errors", 0) or 0)
            a["stages"].append(s["name"])
    if curated is not None and curated.height:
        specs_of = {s["name"]: list(s["teachers"]) for s in stages}
        df = curated.with_columns(stage_of(curated).alias("_stage"))
        for c in ("provider", "model"):
            if c not in df.columns:
                df = df.with_columns(pl.lit(None, pl.String).alias(c))
        counts = df.group_by(["_stage", "provider", "model"]).len().to_dicts()
        for a in per.values():
            a["curated"] = 0
        for c in counts:
            spec = teacher_of(c["provider"], c["model"], specs_of.get(c["_stage"], []))
            a = per.setdefault(spec, {"teacher": spec, "generated": 0, "recipe_kept": 0,
                                      "errors": 0, "curated": 0, "stages": []})
            a["curated"] = (a["curated"] or 0) + c["len"]
    for a in per.values():
        kept = a["curated"] if a["curated"] is not None else a["recipe_kept"]
        a["rate"] = kept / a["generated"] if a["generated"] else None
    return list(per.values())


def headline(stages: list[dict[str, Any]], curation: dict[str, Any] | None,
             cost: dict[str, Any], ev: dict[str, Any] | None,
             split: tuple[int | None, int | None] = (None, None)) -> Headline:
    """The figures the page opens on, from the ones the sections below show in full."""
    evaluated = ev is not None
    ev = ev or {}
    task, speed, params = ev.get("task") or {}, ev.get("speed") or {}, ev.get("params") or {}
    total = cost["total"]
    ran = [r for r in cost["rows"] if r["ran"]]
    priced = any(r["cost"] is not None for r in ran)
    unpriced = {r["teacher"] for r in ran if r["cost"] is None}  # teachers, not stage pairs
    generated = sum(s["generated"] for s in stages) if stages else None
    if curation:
        kept, kept_by = curation.get("kept", 0), "curation"
    elif stages:
        kept, kept_by = sum(s["rows"] for s in stages), "the recipes"
    else:
        kept, kept_by = None, None
    return Headline(
        evaluated=evaluated, task_scored=bool(task), student=ev.get("student"), teacher=ev.get("teacher"),
        retained=task.get("retained"),
        student_accuracy=(task.get("student") or {}).get("accuracy"),
        teacher_accuracy=(task.get("teacher") or {}).get("accuracy"),
        scored=task.get("n", task.get("rows")),
        speedup=speed.get("speedup"),
        student_tokens_per_s=(speed.get("student") or {}).get("gen_tokens_per_s"),
        teacher_tokens_per_s=(speed.get("teacher") or {}).get("gen_tokens_per_s"),
        student_params=params.get("student"), teacher_params=params.get("teacher"),
        size_ratio=params.get("ratio"),
        spent_usd=total["cost"] if priced else None, unpriced=len(unpriced),
        estimated_usd=total["est_cost"] if cost["estimate"] else None,
        generated_rows=generated, kept_rows=kept, kept_by=kept_by,
        curated_from_rows=(curation or {}).get("input_rows"), heldout_rows=split[1])


# ------------------------------------------------------------------------ textbook grid


def _cell_key(meta: dict[str, Any], names: tuple[str, ...]) -> tuple[str, ...] | None:
    if not all(n in meta for n in names):
        return None
    return tuple(str(meta[n]) for n in names)


def _cells_of(df: pl.DataFrame | None, stage: str, names: tuple[str, ...],
              with_by: bool = False) -> dict[tuple[str, ...], Counter]:
    """Rows per grid cell (``Counter`` of dropped_by/reason when ``with_by``) of one stage."""
    out: dict[tuple[str, ...], Counter] = defaultdict(Counter)
    if df is None or not df.height or "metadata" not in df.columns:
        return out
    if "stage" in df.columns or "id" in df.columns:
        st = stage_of(df)
        df = df.filter((st == stage) | st.is_null()) if st.null_count() < df.height else df
    cols = ["metadata"] + (["dropped_by", "drop_reason"] if with_by else [])
    for r in df.select([c for c in cols if c in df.columns]).iter_rows(named=True):
        key = _cell_key(parse_meta(r["metadata"]), names)
        if key is None:
            continue
        label = (f"{r.get('dropped_by')}: {reason_name(r.get('drop_reason'))}" if with_by
                 else "rows")
        out[key][label] += 1
    return out


def grid_coverage(stage: dict[str, Any], grid: dict[str, Any], *, kept: pl.DataFrame | None,
                  generated: pl.DataFrame | None, recipe_rejects: pl.DataFrame | None,
                  curate_rejects: pl.DataFrame | None, curated: bool) -> dict[str, Any]:
    """How many of a textbook stage's planned cells have a row at the end, per dimension
    value, and why each missing cell is missing."""
    cells = [tuple(str(v) for v in c) for c in grid.get("cells") or []]
    width = len(cells[0]) if cells else len(GRID_DIMS)
    names = GRID_DIMS if width == len(GRID_DIMS) else tuple(list(grid.get("dims") or {})[:width])
    name = stage["name"]
    have = _cells_of(kept, name, names)
    # the recipe's planned cells are distinct; a cell whose subtopic the teacher never
    # listed has subtopic None and stays a cell of its own (one per missing slot)
    planned = list(cells)
    covered = [c for c in planned if c in have]
    not_written = {tuple(str(v) for v in m.get("cell") or ()): m.get("reason") or "not written"
                   for m in grid.get("missing") or [] if isinstance(m, dict)}
    cur_rej = _cells_of(curate_rejects, name, names, with_by=True)
    rec_rej = _cells_of(recipe_rejects, name, names, with_by=True)
    gen = _cells_of(generated, name, names)
    missing = []
    for c in planned:
        if c in have:
            continue
        if c in not_written:
            why = f"not written: {not_written[c]}"
        elif c in cur_rej:
            n = sum(cur_rej[c].values())
            by = ", ".join(f"{k} ({v})" for k, v in cur_rej[c].most_common())
            why = f"all {n} row{'s' if n != 1 else ''} removed in curation: {by}"
        elif c in rec_rej:
            by = ", ".join(f"{k} ({v})" for k, v in rec_rej[c].most_common())
            why = f"rejected by the recipe: {by}"
        elif curated and c in gen:
            why = "generated, but not in the curated rows"
        else:
            why = "no rows for this cell"
        missing.append({"cell": list(c), "reason": why})
    covered_set = set(covered)
    dims = []
    for k, dim in enumerate(names):
        def val(c: tuple[str, ...], k: int = k, dim: str = dim) -> str:
            return f"{c[0]} / {c[k]}" if dim == "subtopic" and k > 0 else c[k]
        per_value: dict[str, list[int]] = {}
        for c in planned:
            pv = per_value.setdefault(val(c), [0, 0])
            pv[0] += 1
            pv[1] += c in covered_set
        dims.append({"dim": dim, "planned": len(per_value),
                     "covered": sum(1 for p in per_value.values() if p[1]),
                     "uncovered": [v for v, p in per_value.items() if not p[1]],
                     "cells": per_value})
    return {"stage": name, "names": list(names), "planned": grid.get("planned", len(planned)),
            "written": grid.get("written"), "planned_cells": len(planned),
            "covered": len(covered), "rows_in_cells": sum(sum(v.values()) for v in have.values()),
            "dims": dims, "missing": missing, "measured_on": "curated rows" if curated
            else "the stage's kept rows (curation did not run)"}


# ------------------------------------------------------------------------ sample rows


def _prompt_text(messages: Any) -> str:
    if not isinstance(messages, list):
        return ""
    users = [m.get("content") or "" for m in messages
             if isinstance(m, dict) and m.get("role") == "user"]
    if users:
        return users[-1]
    return "\n".join(str(m.get("content") or "") for m in messages if isinstance(m, dict))


def _cut(text: Any, n: int) -> str:
    if text is None:
        return ""
    text = str(text)
    return text if len(text) <= n else text[:n] + f" … [{len(text) - n:,} more characters]"


def pick_sample_rows(kept: pl.DataFrame | None, rejects: list[tuple[str, pl.DataFrame | None]],
                stages: list[dict[str, Any]], k: int, seed: int) -> list[dict[str, Any]]:
    """A seeded sample of ``k`` kept rows and ``k`` rejects, the rejects spread evenly over
    the (where, dropped_by) groups so every check shows some; long texts cut."""
    specs_of = {s["name"]: list(s["teachers"]) for s in stages}

    def shape(df: pl.DataFrame, status: str, where: str | None) -> list[dict[str, Any]]:
        df = df.with_columns(stage_of(df).alias("_stage"))
        out = []
        for r in df.iter_rows(named=True):
            out.append({
                "id": str(r.get("id") or ""), "status": status, "stage": r.get("_stage") or "",
                "teacher": teacher_of(r.get("provider"), r.get("model"),
                                      specs_of.get(r.get("_stage"), []))
                if r.get("provider") or r.get("model") else "",
                "where": where or "", "dropped_by": r.get("dropped_by") or "",
                "drop_reason": r.get("drop_reason") or "",
                "prompt": _cut(_prompt_text(r.get("messages")), CUT["prompt"]),
                "response": _cut(r.get("response"), CUT["response"]),
                "reasoning": _cut(r.get("reasoning"), CUT["reasoning"])})
        return out

    rows: list[dict[str, Any]] = []
    if kept is not None and kept.height:
        pick = kept.sample(min(k, kept.height), seed=seed) if kept.height > k else kept
        rows += shape(pick, "kept", None)
    groups = []
    for where, df in rejects:
        if df is None or not df.height:
            continue
        by = df["dropped_by"].cast(pl.String).fill_null("?") if "dropped_by" in df.columns \
            else pl.Series([where] * df.height)
        for name in by.unique(maintain_order=True).to_list():
            g = df.filter(by == name)
            groups.append((where, g.sample(g.height, seed=seed, shuffle=True)))
    taken = [0] * len(groups)
    left = k
    while left > 0 and any(taken[i] < g.height for i, (_, g) in enumerate(groups)):
        for i, (_, g) in enumerate(groups):
            if left and taken[i] < g.height:
                taken[i] += 1
                left -= 1
    for (where, g), n in zip(groups, taken):
        if n:
            rows += shape(g.head(n), "rejected", where)
    return rows


# ------------------------------------------------------------------------ the whole report


def collect_report(run_dir: str | Path, *, encoder: str | None = "all-minilm-l6-v2",
                   seed: int = 0, sample_rows: int = SAMPLE_ROWS) -> ReportData:
    """Everything the page shows, as plain data (the page is a rendering of this)."""
    from synth.pipeline.diversity import diversity

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise InputError("no such run directory", path=str(run_dir))
    run = RunDir(run_dir)
    manifest = run.json("manifest.json") or {}
    if not (run_dir / "manifest.json").is_file():
        run.problems.append("manifest.json is missing: stage statuses are unknown")
    stages = generate_stages(run, manifest)
    curation = run.json("curate/curation.json")
    train = run.json("student/train.json")
    history = run.jsonl("student/train_log.jsonl")
    ev = run.json("eval/eval.json")
    estimate = run.json("estimate.json")

    curated = run.table("curate/curated.parquet", ROW_COLUMNS) if curation is not None or \
        (run_dir / "curate/curated.parquet").is_file() else None
    all_kept = run.table("traces.parquet", ROW_COLUMNS)
    if all_kept is None and stages:  # no combined file: the stages' own
        parts = [t.with_columns(pl.lit(s["name"]).alias("stage")) for s in stages
                 if (t := run.table(f"generate/{s['dir']}/traces.parquet", ROW_COLUMNS))
                 is not None]
        all_kept = pl.concat(parts, how="diagonal_relaxed") if parts else None
    recipe_rejects: list[tuple[str, pl.DataFrame | None]] = []
    for s in stages:
        t = run.table(f"generate/{s['dir']}/rejects.parquet", ROW_COLUMNS)
        if t is not None:
            recipe_rejects.append((f"recipe {s['name']}",
                                   t.with_columns(pl.lit(s["name"]).alias("stage"))))
    curate_rejects = run.table("curate/rejects.parquet", ROW_COLUMNS)

    final = curated if curated is not None else all_kept
    final_what = ("curated rows (curate/curated.parquet)" if curated is not None else
                  "generated rows (traces.parquet): curation did not run" if final is not None
                  else None)
    texts = final["response"].to_list() if final is not None and "response" in final.columns \
        else []
    div = {k: m.as_dict() for k, m in diversity(texts, encoder=encoder, seed=seed).items()} \
        if final is not None else None

    grids = []
    for s in stages:
        grid = (s["info"] or {}).get("grid")
        if isinstance(grid, dict) and grid.get("cells"):
            rr = dict(recipe_rejects).get(f"recipe {s['name']}")
            grids.append(grid_coverage(
                s, grid, kept=final, generated=all_kept, recipe_rejects=rr,
                curate_rejects=curate_rejects, curated=curated is not None))

    statuses = Counter(str(effective_status(v))
                       for v in (manifest.get("stages") or {}).values())
    seconds = [(v or {}).get("seconds") for v in (manifest.get("stages") or {}).values()]
    not_run = []
    if not stages:
        not_run.append("generation (no generate/<stage>/ folders)")
    if curation is None:
        not_run.append("curation (no curate/curation.json)")
    if train is None and not history:
        not_run.append("training (no student/train.json or train_log.jsonl)")
    if ev is None:
        not_run.append("evaluation (no eval/eval.json)")
    if estimate is None:
        not_run.append("cost estimate (no estimate.json)")
    pipeline_yaml = run.text("pipeline.yaml")
    cost = costs(stages, estimate)
    split_rows = (run.num_rows("split/train.parquet"), run.num_rows("split/heldout.parquet"))
    return {
        "pipeline": manifest.get("pipeline") or run_dir.name, "run_dir": str(run_dir),
        "manifest_stages": [{"key": str(k), "status": effective_status(v),
                             **{f: (v or {}).get(f) for f in ("seconds", "fingerprint")},
                             "outputs": len((v or {}).get("outputs") or {})}
                            for k, v in (manifest.get("stages") or {}).items()],
        "status_counts": dict(statuses), "stage_seconds": sum(x for x in seconds
                                                               if isinstance(x, (int, float))),
        "generated_at": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "headline": headline(stages, curation, cost, ev, split=split_rows),
        "stages": stages, "curation": curation, "curation_status":
            manifest_status(manifest, "curate"),
        "funnel": funnel(stages, curation, train,
                         dataset_rows=run.num_rows("traces.parquet"), split=split_rows),
        "costs": cost, "acceptance": acceptance(stages, curated),
        "diversity": div, "diversity_on": final_what, "grids": grids,
        "train": train, "history": history or [], "train_status":
            manifest_status(manifest, "train"),
        "eval": ev, "eval_status": manifest_status(manifest, "eval"),
        "samples": pick_sample_rows(final, recipe_rejects + [("curation", curate_rejects)],
                                    stages, sample_rows, seed),
        "not_run": not_run, "problems": run.problems,
        "pipeline_yaml": pipeline_yaml,
        "has_readme": (run_dir / "README.md").is_file(),
    }
