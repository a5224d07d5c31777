"""The pipeline run's ``report.html``: one self-contained page for a whole ``synth run``.

:func:`write_pipeline_report` reads what a run directory holds (``manifest.json``,
``estimate.json``, ``generate/<stage>/``, ``curate/``, ``student/``, ``eval/``) and writes
``RUN/report.html``: the stages run and skipped, the funnel (rows per step and reason, from
the teachers' answers to the student's train / held-out split), cost per teacher (estimated
vs spent), diversity of the curated responses (:mod:`synth.pipeline.diversity`) and the
textbook grid's coverage, acceptance per teacher, the training curves, the eval table and a
browser of sample kept and rejected rows.

Whatever a run lacks (a pipeline of generate stages only, a skipped training) is said in
words where its section would be; numbers are never invented. Every number is in a table,
so the page reads without its images; the plots are inline PNGs (matplotlib's object API),
CSS and JS are inline, and nothing is fetched from anywhere: a Content-Security-Policy
allows images from ``data:`` only and runs only the page's own script (by its hash), so
row text — untrusted, it is what a teacher wrote — cannot run as code even if it tried.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Iterable

import polars as pl

from synth.errors import InputError

__all__ = ["write_pipeline_report", "collect_report"]

#: At most this many kept and this many rejected rows go into the page's row browser.
SAMPLE_ROWS = 200
#: The textbook recipe's grid: the coordinates of a cell, in ``cells`` order.
GRID_DIMS = ("topic", "subtopic", "audience", "style", "format")
#: Missing grid cells listed by name; past this a count says how many more.
MAX_MISSING_LISTED = 500
_CUT = {"prompt": 600, "response": 1500, "reasoning": 600}
_ROW_COLUMNS = ("id", "stage", "messages", "response", "reasoning", "provider", "model",
                "metadata", "status", "dropped_by", "drop_reason")


# ------------------------------------------------------------------------ reading


class _Run:
    """The files of a run directory; anything unreadable is noted in ``problems``."""

    def __init__(self, run_dir: Path):
        self.dir = run_dir
        self.problems: list[str] = []

    def json(self, rel: str) -> Any:
        p = self.dir / rel
        if not p.is_file():
            return None
        try:
            return json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            self.problems.append(f"{rel}: cannot be read ({e})")
            return None

    def jsonl(self, rel: str) -> list[dict[str, Any]] | None:
        p = self.dir / rel
        if not p.is_file():
            return None
        out = []
        try:
            lines = p.read_text(encoding="utf-8").splitlines()
        except OSError as e:
            self.problems.append(f"{rel}: cannot be read ({e})")
            return None
        bad = 0
        for ln in lines:
            if not ln.strip():
                continue
            try:
                obj = json.loads(ln)
            except ValueError:
                bad += 1
                continue
            if isinstance(obj, dict):
                out.append(obj)
        if bad:
            self.problems.append(f"{rel}: {bad} line(s) are not JSON and were left out")
        return out

    def num_rows(self, rel: str) -> int | None:
        """Rows of a parquet file from its footer; ``None`` when it is absent."""
        p = self.dir / rel
        if not p.is_file():
            return None
        try:
            import pyarrow.parquet as pq

            return pq.ParquetFile(p).metadata.num_rows
        except Exception as e:  # a damaged file: the report says so and goes on
            self.problems.append(f"{rel}: cannot be read ({type(e).__name__}: {e})")
            return None

    def table(self, rel: str, columns: Iterable[str]) -> pl.DataFrame | None:
        """The ``columns`` of a parquet file that it has; ``None`` when it is absent."""
        p = self.dir / rel
        if not p.is_file():
            return None
        try:
            import pyarrow.parquet as pq

            names = pq.read_schema(p).names
            t = pq.read_table(p, columns=[c for c in columns if c in names])
            return pl.from_arrow(t) if t.num_columns else pl.DataFrame(
                {"_": [None] * t.num_rows})
        except Exception as e:  # a damaged file: the report says so and goes on
            self.problems.append(f"{rel}: cannot be read ({type(e).__name__}: {e})")
            return None


def _stage_of(df: pl.DataFrame) -> pl.Series:
    """The generate stage of each row: the ``stage`` column, else the id's prefix."""
    if "stage" in df.columns:
        return df["stage"].cast(pl.String)
    if "id" in df.columns:
        return df["id"].cast(pl.String).str.split("/").list.first()
    return pl.Series("stage", [None] * df.height, dtype=pl.String)


def _teacher_of(provider: Any, model: Any, specs: list[str]) -> str:
    """The teacher spec among ``specs`` that answered with ``provider`` / ``model``."""
    spec = f"{provider}:{model}"
    if spec in specs:
        return spec
    for s in specs:
        p, _, m = s.partition(":")
        if p == provider and model is not None and (m == model or str(model).endswith(m)):
            return s
    return specs[0] if len(specs) == 1 else spec


def _meta(raw: Any) -> dict[str, Any]:
    if isinstance(raw, dict):
        return raw
    if not isinstance(raw, str):
        return {}
    try:
        m = json.loads(raw)
    except ValueError:
        return {}
    return m if isinstance(m, dict) else {}


def _reason(r: Any) -> str:
    return str(r).split(":", 1)[0] if r is not None else "unknown"


def _effective_status(entry: dict[str, Any] | None) -> str | None:
    """``skipped`` for a finished stage this run did not redo (``status_last_run``), else
    the manifest's status (``done``, ``running`` for one that was interrupted...)."""
    if not isinstance(entry, dict):
        return None
    if entry.get("status") == "done" and entry.get("status_last_run") == "skipped":
        return "skipped"
    return entry.get("status")


def _manifest_status(manifest: dict[str, Any], *names: str) -> str | None:
    """The status of the manifest stage called one of ``names``."""
    stages = manifest.get("stages") or {}
    for n in names:
        if n in stages:
            return _effective_status(stages[n])
    return None


# ------------------------------------------------------------------------ collecting


def _generate_stages(run: _Run, manifest: dict[str, Any]) -> list[dict[str, Any]]:
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
                             "status": _manifest_status(manifest, f"generate.{name}", name)}
        rows, rejected, reasons = st.get("rows"), st.get("rejected"), st.get("rejects")
        if rows is None:
            t = run.table(f"{rel}/traces.parquet", ["id"])
            rows = t.height if t is not None else 0
        if rejected is None or reasons is None:
            t = run.table(f"{rel}/rejects.parquet", ["drop_reason"])
            if t is not None and "drop_reason" in t.columns:
                rejected = t.height if rejected is None else rejected
                reasons = reasons if reasons is not None else dict(
                    Counter(_reason(r) for r in t["drop_reason"].to_list()).most_common())
        s["rows"], s["rejected"], s["rejects"] = int(rows), int(rejected or 0), reasons or {}
        s["generated"] = s["rows"] + s["rejected"]
        out.append(s)
    return out


def _funnel(stages: list[dict[str, Any]], curation: dict[str, Any] | None,
            train: dict[str, Any] | None, *, dataset_rows: int | None = None,
            split: tuple[int | None, int | None] = (None, None)) -> list[dict[str, Any]]:
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


def _costs(stages: list[dict[str, Any]], estimate: dict[str, Any] | None) -> dict[str, Any]:
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


def _acceptance(stages: list[dict[str, Any]], curated: pl.DataFrame | None
                ) -> list[dict[str, Any]]:
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
        df = curated.with_columns(_stage_of(curated).alias("_stage"))
        for c in ("provider", "model"):
            if c not in df.columns:
                df = df.with_columns(pl.lit(None, pl.String).alias(c))
        counts = df.group_by(["_stage", "provider", "model"]).len().to_dicts()
        for a in per.values():
            a["curated"] = 0
        for c in counts:
            spec = _teacher_of(c["provider"], c["model"], specs_of.get(c["_stage"], []))
            a = per.setdefault(spec, {"teacher": spec, "generated": 0, "recipe_kept": 0,
                                      "errors": 0, "curated": 0, "stages": []})
            a["curated"] = (a["curated"] or 0) + c["len"]
    for a in per.values():
        kept = a["curated"] if a["curated"] is not None else a["recipe_kept"]
        a["rate"] = kept / a["generated"] if a["generated"] else None
    return list(per.values())


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
        st = _stage_of(df)
        df = df.filter((st == stage) | st.is_null()) if st.null_count() < df.height else df
    cols = ["metadata"] + (["dropped_by", "drop_reason"] if with_by else [])
    for r in df.select([c for c in cols if c in df.columns]).iter_rows(named=True):
        key = _cell_key(_meta(r["metadata"]), names)
        if key is None:
            continue
        label = f"{r.get('dropped_by')}: {_reason(r.get('drop_reason'))}" if with_by else "rows"
        out[key][label] += 1
    return out


def _grid_coverage(stage: dict[str, Any], grid: dict[str, Any], *, kept: pl.DataFrame | None,
                   generated: pl.DataFrame | None, recipe_rejects: pl.DataFrame | None,
                   curate_rejects: pl.DataFrame | None, curated: bool) -> dict[str, Any]:
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


def _sample_rows(kept: pl.DataFrame | None, rejects: list[tuple[str, pl.DataFrame]],
                 stages: list[dict[str, Any]], k: int, seed: int) -> list[dict[str, Any]]:
    specs_of = {s["name"]: list(s["teachers"]) for s in stages}

    def shape(df: pl.DataFrame, status: str, where: str | None) -> list[dict[str, Any]]:
        df = df.with_columns(_stage_of(df).alias("_stage"))
        out = []
        for r in df.iter_rows(named=True):
            out.append({
                "id": str(r.get("id") or ""), "status": status, "stage": r.get("_stage") or "",
                "teacher": _teacher_of(r.get("provider"), r.get("model"),
                                       specs_of.get(r.get("_stage"), []))
                if r.get("provider") or r.get("model") else "",
                "where": where or "", "dropped_by": r.get("dropped_by") or "",
                "drop_reason": r.get("drop_reason") or "",
                "prompt": _cut(_prompt_text(r.get("messages")), _CUT["prompt"]),
                "response": _cut(r.get("response"), _CUT["response"]),
                "reasoning": _cut(r.get("reasoning"), _CUT["reasoning"])})
        return out

    rows: list[dict[str, Any]] = []
    if kept is not None and kept.height:
        pick = kept.sample(min(k, kept.height), seed=seed) if kept.height > k else kept
        rows += shape(pick, "kept", None)
    # rejects: an even share for each (where, dropped_by) group, so every check shows some
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


def collect_report(run_dir: str | Path, *, encoder: str | None = "all-minilm-l6-v2",
                   seed: int = 0, sample_rows: int = SAMPLE_ROWS) -> dict[str, Any]:
    """Everything the page shows, as plain data (the page is a rendering of this)."""
    from synth.pipeline.diversity import diversity

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise InputError("no such run directory", path=str(run_dir))
    run = _Run(run_dir)
    manifest = run.json("manifest.json") or {}
    if not (run_dir / "manifest.json").is_file():
        run.problems.append("manifest.json is missing: stage statuses are unknown")
    stages = _generate_stages(run, manifest)
    curation = run.json("curate/curation.json")
    train = run.json("student/train.json")
    history = run.jsonl("student/train_log.jsonl")
    ev = run.json("eval/eval.json")
    estimate = run.json("estimate.json")

    curated = run.table("curate/curated.parquet", _ROW_COLUMNS) if curation is not None or \
        (run_dir / "curate/curated.parquet").is_file() else None
    all_kept = run.table("traces.parquet", _ROW_COLUMNS)
    if all_kept is None and stages:  # no combined file: the stages' own
        parts = [t.with_columns(pl.lit(s["name"]).alias("stage")) for s in stages
                 if (t := run.table(f"generate/{s['dir']}/traces.parquet", _ROW_COLUMNS))
                 is not None]
        all_kept = pl.concat(parts, how="diagonal_relaxed") if parts else None
    recipe_rejects = []
    for s in stages:
        t = run.table(f"generate/{s['dir']}/rejects.parquet", _ROW_COLUMNS)
        if t is not None:
            recipe_rejects.append((f"recipe {s['name']}",
                                   t.with_columns(pl.lit(s["name"]).alias("stage"))))
    curate_rejects = run.table("curate/rejects.parquet", _ROW_COLUMNS)

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
            grids.append(_grid_coverage(
                s, grid, kept=final, generated=all_kept, recipe_rejects=rr,
                curate_rejects=curate_rejects, curated=curated is not None))

    statuses = Counter(str(_effective_status(v))
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
    pipeline_yaml = None
    if (run_dir / "pipeline.yaml").is_file():
        try:
            pipeline_yaml = (run_dir / "pipeline.yaml").read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            run.problems.append(f"pipeline.yaml: cannot be read ({e})")
    return {
        "pipeline": manifest.get("pipeline") or run_dir.name, "run_dir": str(run_dir),
        "manifest_stages": [{"key": str(k), "status": _effective_status(v),
                             **{f: (v or {}).get(f) for f in ("seconds", "fingerprint")},
                             "outputs": len((v or {}).get("outputs") or {})}
                            for k, v in (manifest.get("stages") or {}).items()],
        "status_counts": dict(statuses), "stage_seconds": sum(x for x in seconds
                                                               if isinstance(x, (int, float))),
        "generated_at": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "stages": stages, "curation": curation, "curation_status":
            _manifest_status(manifest, "curate"),
        "funnel": _funnel(stages, curation, train,
                          dataset_rows=run.num_rows("traces.parquet"),
                          split=(run.num_rows("split/train.parquet"),
                                 run.num_rows("split/heldout.parquet"))),
        "costs": _costs(stages, estimate), "acceptance": _acceptance(stages, curated),
        "diversity": div, "diversity_on": final_what, "grids": grids,
        "train": train, "history": history or [], "train_status":
            _manifest_status(manifest, "train"),
        "eval": ev, "eval_status": _manifest_status(manifest, "eval"),
        "samples": _sample_rows(final, recipe_rejects + [("curation", curate_rejects)],
                                stages, sample_rows, seed),
        "not_run": not_run, "problems": run.problems, "pipeline_yaml": pipeline_yaml,
        "has_readme": (run_dir / "README.md").is_file(),
    }


# ------------------------------------------------------------------------ plots


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode()


def _plot_funnel(funnel: list[dict[str, Any]]) -> str | None:
    from matplotlib.figure import Figure

    if not funnel:
        return None
    first = [f for f in funnel if f["kind"] == "total"]
    bars = [("generated (all stages)", first[0]["in"] if first else funnel[0]["in"])]
    for f in funnel:
        if f["kind"] in ("total", "curate", "train"):
            bars.append((f["step"], f["out"]))
        elif f["kind"] == "split":
            bars += [(f"{f['step']}: train side", f["out"]),
                     (f"{f['step']}: held out", f["heldout"])]
    fig = Figure(figsize=(7.5, 0.38 * len(bars) + 1.1))
    ax = fig.subplots()
    labels = [b[0] for b in bars][::-1]
    values = [b[1] for b in bars][::-1]
    ax.barh(labels, values, color="#4477aa")
    for y, v in enumerate(values):
        ax.text(v, y, f" {v:,}", va="center", fontsize=8)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("rows")
    ax.set_title("Rows left after each step")
    ax.margins(x=0.15)
    return _png(fig)


def _plot_costs(costs: dict[str, Any]) -> str | None:
    rows = [r for r in costs["rows"] if r["cost"] is not None or r["est_cost"] is not None]
    if not rows:
        return None
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 0.5 * len(rows) + 1.2))
    ax = fig.subplots()
    ys = range(len(rows))
    ax.barh([y + 0.2 for y in ys], [r["est_cost"] or 0 for r in rows], height=0.4,
            color="#bbbbbb", label="estimated")
    ax.barh([y - 0.2 for y in ys], [r["cost"] or 0 for r in rows], height=0.4,
            color="#ee6677", label="spent")
    ax.set_yticks(list(ys), [f"{r['stage']}\n{r['teacher']}" for r in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("US dollars")
    ax.set_title("Cost per stage and teacher")
    ax.legend(fontsize=8)
    return _png(fig)


def _plot_acceptance(acc: list[dict[str, Any]]) -> str | None:
    rows = [a for a in acc if a["rate"] is not None]
    if not rows:
        return None
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 0.4 * len(rows) + 1.1))
    ax = fig.subplots()
    ax.barh([a["teacher"] for a in rows][::-1], [a["rate"] * 100 for a in rows][::-1],
            color="#228833")
    for y, a in enumerate(rows[::-1]):
        ax.text(a["rate"] * 100, y, f" {a['rate']:.1%}", va="center", fontsize=8)
    # past 100% only when the files disagree (more kept than generated): still drawn whole
    ax.set_xlim(0, 1.15 * max(100.0, max(a["rate"] * 100 for a in rows)))
    ax.set_xlabel("% of generated rows kept")
    ax.set_title("Acceptance per teacher")
    return _png(fig)


def _plot_grid(g: dict[str, Any]) -> str | None:
    dims = [d for d in g["dims"] if d["dim"] != "subtopic" and d["cells"]]
    if not dims:
        return None
    from matplotlib.figure import Figure

    tallest = max(len(d["cells"]) for d in dims)
    fig = Figure(figsize=(3.2 * len(dims), 0.3 * tallest + 1.4))
    axes = fig.subplots(1, len(dims), squeeze=False)[0]
    for ax, d in zip(axes, dims):
        names = list(d["cells"])[::-1]
        share = [100 * d["cells"][v][1] / d["cells"][v][0] for v in names]
        ax.barh([n[:28] for n in names], share, color="#66ccee")
        ax.set_xlim(0, 100)
        ax.set_title(d["dim"], fontsize=9)
        ax.tick_params(labelsize=7)
        ax.set_xlabel("% of cells covered", fontsize=8)
    fig.suptitle(f"Grid coverage of stage {g['stage']}", fontsize=10)
    fig.tight_layout()
    return _png(fig)


def _plot_training(history: list[dict[str, Any]]) -> str | None:
    from synth.training.plot import loss_plot

    png = loss_plot(history)
    return base64.b64encode(png).decode() if png else None


# ------------------------------------------------------------------------ HTML


esc = html.escape


class _Raw(str):
    """HTML that is already safe (built here from escaped parts)."""


def _cell(v: Any) -> str:
    if isinstance(v, _Raw):
        return v
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.4g}"
    return esc(str(v))


def _table(headers: list[str], rows: list[list[Any]], *, tid: str,
           row_keys: list[str] | None = None) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = []
    for i, r in enumerate(rows):
        key = f" data-key='{esc(row_keys[i], quote=True)}'" if row_keys else ""
        body.append(f"<tr{key}>" + "".join(f"<td>{_cell(c)}</td>" for c in r) + "</tr>")
    return (f"<table id='{tid}'><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table>")


def _usd(x: Any) -> str:
    if x is None:
        return "unknown"
    return f"${x:,.4f}" if x < 1 else f"${x:,.2f}"


def _pct(x: Any) -> str:
    return "—" if x is None else f"{x:.1%}"


def _reasons(r: dict[str, Any]) -> str:
    return ", ".join(f"{k}: {v:,}" if isinstance(v, int) else f"{k}: {v}" for k, v in r.items())


def _img(b64: str | None, alt: str) -> str:
    if not b64:
        return ""
    return (f"<figure><img class='plot' alt='{esc(alt, quote=True)}' "
            f"src='data:image/png;base64,{b64}'><figcaption>{esc(alt)}</figcaption></figure>")


def _absent(text: str) -> str:
    return f"<p class='absent'>{esc(text)}</p>"


def _status_note(status: str | None) -> str:
    if status and status not in ("done", "ok"):
        return (f"<p class='note'>Manifest status: <b>{esc(status)}</b>"
                + (" (not rerun: these are the outputs of an earlier run)"
                   if status == "skipped" else "") + ".</p>")
    return ""


def _section_header(d: dict[str, Any]) -> str:
    st = d["manifest_stages"]
    counts = ", ".join(f"{n} {s}" for s, n in sorted(d["status_counts"].items()))
    rows = [[s["key"], s["status"], s["seconds"], (s["fingerprint"] or "")[:12] or None,
             s["outputs"]] for s in st]
    parts = [f"<p>Run directory <code>{esc(d['run_dir'])}</code>. Report written "
             f"{esc(d['generated_at'])}.</p>"]
    if st:
        parts.append(f"<p>{len(st)} stage{'s' if len(st) != 1 else ''}: {esc(counts)}; "
                     f"{d['stage_seconds']:,.1f} s of stage time.</p>")
        parts.append(_table(["stage", "status", "seconds", "fingerprint", "output files"],
                            rows, tid="stages-table", row_keys=[s["key"] for s in st]))
    else:
        parts.append(_absent("No stages are listed (manifest.json is missing or empty)."))
    if d["not_run"]:
        parts.append("<p class='absent'><b>Not in this run:</b> "
                     + esc("; ".join(d["not_run"])) + ".</p>")
    if d["problems"]:
        items = "".join(f"<li>{esc(p)}</li>" for p in d["problems"])
        parts.append(f"<div role='alert' class='alert'><b>Problems reading the run</b>"
                     f"<ul>{items}</ul></div>")
    if d["has_readme"]:
        parts.append("<p>The dataset card is <code>README.md</code> in the run directory.</p>")
    return "".join(parts)


def _stage_info(s: dict[str, Any]) -> str:
    info = s.get("info") or {}
    bits = []
    acc = info.get("acceptance")
    if isinstance(acc, dict):
        rate = acc.get("rate")
        per = acc.get("per_prompt") or []
        none = sum(1 for p in per if isinstance(p, dict) and not p.get("accepted"))
        bits.append(f"accepted {acc.get('accepted', 0):,} of {acc.get('samples', 0):,} samples "
                    f"({_pct(rate)}) over {acc.get('prompts', 0):,} prompts"
                    + (f"; {none:,} prompt{'s' if none != 1 else ''} with no accepted sample"
                       if per else ""))
    grid = info.get("grid")
    if isinstance(grid, dict):
        bits.append(f"grid: {grid.get('planned', len(grid.get('cells') or [])):,} cells planned, "
                    f"{grid.get('written', 0) or 0:,} written")
    from synth.dataset.card import step_details

    rest = {k: v for k, v in info.items() if k not in ("acceptance", "grid")}
    if rest:
        bits.append(step_details(rest))
    return "; ".join(b for b in bits if b)


def _section_funnel(d: dict[str, Any]) -> str:
    f = d["funnel"]
    if not f:
        return _absent("No rows: no generate stage wrote anything.")
    rows, keys = [], []
    for r in f:
        out = (_Raw(f"{r['out']:,} train + {r['heldout']:,} held-out")
               if r["kind"] == "split" else r["out"])
        rows.append([r["step"], r["what"], r["in"], r["dropped"], out, _reasons(r["reasons"])])
        keys.append(r["step"])
    parts = [_table(["step", "what", "rows in", "dropped", "rows out", "dropped by reason"],
                    rows, tid="funnel-table", row_keys=keys)]
    if d["curation"] is None:
        parts.append(_absent("Curation did not run: the rows after the recipes are the "
                             "final rows."))
    if d["train"] is None:
        parts.append(_absent("Training did not run: there is no train / held-out split."))
    parts.append(_img(_plot_funnel(f), "Rows left after each step"))
    st = [s for s in d["stages"]]
    if st:
        parts.append("<h3>Generate stages</h3>")
        parts.append(_table(
            ["stage", "recipe", "status", "generated", "kept", "rejected", "rejects by reason",
             "seconds", "recipe details"],
            [[s["name"], s["recipe"], s["status"], s["generated"], s["rows"], s["rejected"],
              _reasons(s["rejects"]), s["wall_s"], _stage_info(s)] for s in st],
            tid="generate-table", row_keys=[s["name"] for s in st]))
    return "".join(parts)


def _section_costs(d: dict[str, Any]) -> str:
    c = d["costs"]
    if not c["rows"]:
        return _absent("No teacher was called and nothing was estimated: no costs.")
    rows, keys = [], []
    for r in c["rows"]:
        est_out = None
        if r["est_output_tokens"] is not None:
            est_out = f"{r['est_output_tokens']:,}" + (
                f" (p90 {r['est_output_p90']:,})" if r["est_output_p90"] is not None else "")
        est_cost = (_usd(r["est_cost"]) + (f" (p90 {_usd(r['est_cost_p90'])})"
                                           if r["est_cost_p90"] is not None else "")
                    if r["has_estimate"] else "not estimated")
        rows.append([r["stage"], r["teacher"], r["est_requests"],
                     r["requests"] if r["ran"] else "did not run", r["sent"],
                     r["est_input_tokens"], r["input_tokens"], est_out, r["output_tokens"],
                     r["errors"], est_cost,
                     _usd(r["est_batch_cost"]) if r["est_batch_cost"] is not None else None,
                     _usd(r["cost"]) if r["ran"] else "did not run"])
        keys.append(f"{r['stage']}|{r['teacher']}")
    t = c["total"]
    spent = _usd(t["cost"]) + (f" + {t['unpriced']} unpriced" if t["unpriced"] else "")
    est_total = "not estimated"
    if c["estimate"]:
        est_total = _usd(t["est_cost"]) + (f" (p90 {_usd(t['est_cost_p90'])})"
                                           if t["est_cost_p90"] is not None else "")
    rows.append([_Raw("<b>total</b>"), "", t["est_requests"] if c["estimate"] else None,
                 t["requests"], t["sent"], None, t["input_tokens"], None, t["output_tokens"],
                 t["errors"], est_total,
                 _usd(t["est_batch_cost"]) if t["est_batch_cost"] is not None else None,
                 spent])
    keys.append("total")
    parts = [_table(["stage", "teacher", "est. requests", "requests", "sent (not cached)",
                     "est. input tokens",
                     "input tokens", "est. output tokens", "output tokens", "errors",
                     "est. cost", "est. batch cost", "spent"], rows, tid="cost-table",
                    row_keys=keys)]
    if t["unpriced"]:
        parts.append("<p class='note'>“unknown”: the price table has no price for that "
                     "model, so its spend is not counted in the total.</p>")
    if not c["estimate"]:
        parts.append(_absent("No estimate.json: there is nothing to compare the spend with."))
    notes = [f"{r['stage']} / {r['teacher']}: {n}" for r in c["rows"] for n in r["notes"]]
    if notes:
        parts.append("<ul class='note'>" + "".join(f"<li>{esc(n)}</li>" for n in notes)
                     + "</ul>")
    parts.append(_break_even(c.get("break_even")))
    parts.append(_img(_plot_costs(c), "Estimated and spent cost per stage and teacher"))
    return "".join(parts)


def _break_even(be: Any) -> str:
    """estimate.json's break-even: distilling vs calling the teacher (or why it is not
    known)."""
    if not isinstance(be, dict) or not be:
        return ""
    out = ["<h3>Break-even: the student vs calling the teacher</h3>"]
    if "reason" in be or "missing" in be:
        out.append(_absent(f"Not computed: {be.get('reason') or ', '.join(be['missing'])}."))
        return "".join(out)

    def days(x: Any) -> str:
        return f"{x:,.1f} days" if isinstance(x, (int, float)) else str(x)

    def line(r: dict[str, Any]) -> list[Any]:
        sp, bd = r.get("student_per_day_usd") or {}, r.get("break_even_days") or {}
        return [r.get("requests_per_day"), _usd(r.get("teacher_per_day_usd")),
                _usd(sp.get("pay_per_use")), _usd(sp.get("always_on")),
                days(bd.get("pay_per_use")), days(bd.get("always_on"))]

    inputs = be.get("inputs") or {}
    out.append(f"<p>One-time cost (data + training): {esc(_usd(be.get('one_time_usd')))}. "
               f"Teacher: {esc(_usd(inputs.get('teacher_cost_per_request')))} a request; "
               f"student: {esc(_usd(inputs.get('student_cost_per_hour')))} an hour at "
               f"{inputs.get('student_requests_per_hour', 0):,} requests an hour.</p>")
    here = {**be, "requests_per_day": inputs.get("requests_per_day")}
    rows = [line(here)] + [line(r) for r in be.get("table") or [] if isinstance(r, dict)]
    out.append(_table(["requests / day", "teacher / day", "student / day (pay per use)",
                       "student / day (always on)", "break-even (pay per use)",
                       "break-even (always on)"], rows, tid="break-even-table"))
    if be.get("assumptions"):
        out.append("<ul class='note'>" + "".join(f"<li>{esc(str(a))}</li>"
                                                 for a in be["assumptions"]) + "</ul>")
    return "".join(out)


def _section_acceptance(d: dict[str, Any]) -> str:
    acc = d["acceptance"]
    if not acc:
        return _absent("No teacher statistics (no stage.json lists teachers).")
    cur = d["curation"] is not None
    rows = [[a["teacher"], ", ".join(a["stages"]), a["generated"], a["errors"],
             a["recipe_kept"], a["curated"] if cur else "curation did not run",
             _pct(a["rate"])] for a in acc]
    parts = [_table(["teacher", "stages", "rows generated", "errors", "kept by the recipe",
                     "kept after curation", "acceptance"], rows, tid="acceptance-table",
                    row_keys=[a["teacher"] for a in acc])]
    parts.append("<p class='note'>Acceptance = rows kept "
                 + ("after curation" if cur else "by the recipe (curation did not run)")
                 + " / rows the teacher generated.</p>")
    parts.append(_img(_plot_acceptance(acc), "Acceptance per teacher"))
    return "".join(parts)


_METRIC_NAMES = {"distinct_1": "distinct-1", "distinct_2": "distinct-2",
                 "self_bleu": "self-BLEU (0–100)", "vendi": "Vendi score (MiniLM embeddings)"}
_METRIC_READ = {"distinct_1": "unique words / words; higher = more varied",
                "distinct_2": "unique word pairs / word pairs; higher = more varied",
                "self_bleu": "each text vs the others; lower = more varied",
                "vendi": "effective number of distinct texts; higher = more varied"}


def _section_diversity(d: dict[str, Any]) -> str:
    parts = []
    div = d["diversity"]
    if div is None:
        parts.append(_absent("No rows to measure: neither curated nor generated rows exist."))
    else:
        parts.append(f"<p>Measured on the {esc(d['diversity_on'])}.</p>")
        rows = []
        for k, m in div.items():
            v = (_Raw(f"<span class='absent'>not computed: {esc(m['reason'] or '')}</span>")
                 if m["value"] is None else round(m["value"], 4))
            rows.append([_METRIC_NAMES.get(k, k), v, m["n"], _METRIC_READ.get(k, "")])
        parts.append(_table(["metric", "value", "texts", "how to read it"], rows,
                            tid="diversity-table", row_keys=list(div)))
    for g in d["grids"]:
        parts.append(_section_grid(g))
    return "".join(parts)


def _section_grid(g: dict[str, Any]) -> str:
    sid = esc(g["stage"], quote=True)
    share = g["covered"] / g["planned_cells"] if g["planned_cells"] else None
    parts = [f"<h3>Textbook grid coverage: stage {esc(g['stage'])}</h3>",
             f"<p>Covered = a planned cell with at least one row among the "
             f"{esc(g['measured_on'])}.</p>",
             _table(["planned cells", "written by the recipe", "covered", "coverage",
                     "missing"], [[g["planned_cells"], g["written"], g["covered"], _pct(share),
                                   len(g["missing"])]],
                    tid=f"grid-{sid}-summary"),
             _table(["dimension", "values planned", "values covered", "values with no "
                     "covered cell"],
                    [[x["dim"], x["planned"], x["covered"],
                      ", ".join(x["uncovered"]) or None] for x in g["dims"]],
                    tid=f"grid-{sid}-dims", row_keys=[x["dim"] for x in g["dims"]])]
    if g["missing"]:
        shown = g["missing"][:MAX_MISSING_LISTED]
        parts.append(f"<details open><summary>{len(g['missing']):,} missing "
                     f"cell{'s' if len(g['missing']) != 1 else ''}</summary>")
        parts.append(_table(list(g["names"]) + ["why"],
                            [m["cell"] + [m["reason"]] for m in shown],
                            tid=f"grid-{sid}-missing"))
        if len(g["missing"]) > len(shown):
            parts.append(f"<p>… and {len(g['missing']) - len(shown):,} more.</p>")
        parts.append("</details>")
    else:
        parts.append("<p>Every planned cell is covered.</p>")
    parts.append(_img(_plot_grid(g), f"Share of planned cells covered per value, stage "
                                     f"{g['stage']}"))
    return "".join(parts)


def _section_training(d: dict[str, Any]) -> str:
    tr, hist = d["train"], d["history"]
    parts = [_status_note(d.get("train_status"))]
    if tr is None and not hist:
        parts.append(_absent("Training did not run: no student/train.json or "
                             "student/train_log.jsonl."))
        return "".join(parts)
    if tr is None:
        parts.append(_absent("student/train.json is missing: training did not finish; the "
                             "log below is what it wrote."))
    else:
        keys = [("student", "student"), ("teacher", "teacher"), ("loss", "loss"),
                ("steps", "steps"), ("epochs", "epochs"), ("train_s", "training seconds"),
                ("tokens_per_s", "tokens/s"), ("params", "student parameters"),
                ("device", "device"), ("precision", "precision")]
        rows = [[label, tr.get(k)] for k, label in keys if tr.get(k) is not None]
        for k, v in (tr.get("final") or {}).items():
            rows.append([f"final {k}", v])
        parts.append(_table(["", "value"], rows, tid="train-summary",
                            row_keys=[r[0] for r in rows]))
    train = [h for h in hist if h.get("split") != "eval" and "loss" in h]
    evals = [h for h in hist if h.get("split") == "eval"]
    if train:
        rows, keys = [], []
        for k in ("loss", "ce", "kl", "top1", "lr", "grad_norm", "tokens_per_s"):
            vals = [h[k] for h in train if isinstance(h.get(k), (int, float))]
            if vals:
                rows.append([k, vals[0], vals[-1], min(vals), max(vals)])
                keys.append(k)
        parts.append(f"<p>{len(train):,} logged steps (step {train[0].get('step')} to "
                     f"{train[-1].get('step')}).</p>")
        parts.append(_table(["logged value", "first", "last", "min", "max"], rows,
                            tid="train-log", row_keys=keys))
    else:
        parts.append(_absent("The training log has no step lines."))
    if evals:
        cols = [k for k in evals[0] if k not in ("split",)]
        parts.append("<h3>Held-out evaluation during training</h3>")
        parts.append(_table(cols, [[e.get(k) for k in cols] for e in evals],
                            tid="train-evals"))
    parts.append(_img(_plot_training(hist), "Training loss (and KL) per step"))
    return "".join(parts)


def _section_eval(d: dict[str, Any]) -> str:
    ev = d["eval"]
    parts = [_status_note(d.get("eval_status"))]
    if ev is None:
        parts.append(_absent("Evaluation did not run: no eval/eval.json."))
        return "".join(parts)
    tk = ev.get("tokens") or {}
    sp = ev.get("speed") or {}
    ps = ev.get("params") or {}
    task = ev.get("task") or {}
    rows = [["held-out loss / token", tk.get("student_loss"), tk.get("teacher_loss")],
            ["perplexity", tk.get("student_ppl"), tk.get("teacher_ppl")],
            ["KL(teacher‖student) / token", tk.get("kl"), None],
            ["top-1 agreement", _pct(tk.get("top1_agreement")), None]]
    if task:
        s, t = task.get("student") or {}, task.get("teacher") or {}
        n = task.get("n", task.get("rows"))
        rows += [["held-out prompts scored (n)", n, n],
                 ["task accuracy", _pct(s.get("accuracy")), _pct(t.get("accuracy"))],
                 ["correct / wrong / unverifiable",
                  f"{s.get('correct', 0)} / {s.get('wrong', 0)} / {s.get('unverifiable', 0)}",
                  f"{t.get('correct', 0)} / {t.get('wrong', 0)} / {t.get('unverifiable', 0)}"],
                 ["teacher quality retained", _pct(task.get("retained")), None],
                 ["answer agreement", _pct(task.get("agreement")), None]]
    rows += [["generation tokens/s", (sp.get("student") or {}).get("gen_tokens_per_s"),
              (sp.get("teacher") or {}).get("gen_tokens_per_s")],
             ["speed-up", sp.get("speedup"), None],
             ["parameters", ps.get("student"), ps.get("teacher")],
             ["size ratio", ps.get("ratio"), None]]
    parts.append(f"<p>Student <code>{esc(str(ev.get('student')))}</code> vs teacher "
                 f"<code>{esc(str(ev.get('teacher')))}</code> on {ev.get('examples', 0):,} "
                 f"held-out examples.</p>")
    parts.append(_table(["metric", "student", "teacher"], rows, tid="eval-table",
                        row_keys=[r[0] for r in rows]))
    if tk.get("note"):
        parts.append(f"<p class='note'>{esc(tk['note'])}</p>")
    if task and task.get("denominator"):
        parts.append(f"<p class='note'>Task accuracy is over {esc(task['denominator'])}: "
                     "both models answer each once, greedily; an empty, cut-off or "
                     "unfinished answer is wrong, and unverifiable means a verifier could not "
                     "run.</p>")
        for side in ("student", "teacher"):
            wr = (task.get(side) or {}).get("wrong_reasons") or {}
            if wr:
                parts.append(f"<p class='note'>{side} wrong answers: {esc(_reasons(wr))}</p>")
    if not task:
        parts.append(_absent("No task accuracy: the held-out rows have no reference "
                             "answers."))
    return "".join(parts)


def _script_json(obj: Any) -> str:
    """JSON that is inert inside a ``<script type="application/json">``: no ``<``, ``>`` or
    ``&`` survives (``</script>`` cannot close the element, ``<!--`` cannot open a comment),
    and the line separators JS once choked on are escaped too."""
    return (json.dumps(obj, ensure_ascii=True).replace("<", "\\u003c")
            .replace(">", "\\u003e").replace("&", "\\u0026"))


_SCRIPT = """
(function () {
  "use strict";
  var rows = JSON.parse(document.getElementById("sample-data").textContent);
  var q = document.getElementById("sample-q");
  var which = document.getElementById("sample-which");
  var stage = document.getElementById("sample-stage");
  var body = document.getElementById("sample-body");
  var count = document.getElementById("sample-count");
  rows.forEach(function (r) {
    r.hay = [r.id, r.stage, r.teacher, r.dropped_by, r.drop_reason, r.prompt, r.response,
             r.reasoning].join("\\n").toLowerCase();
  });
  function cell(tr, text, cls) {
    var td = document.createElement("td");
    var div = document.createElement("div");
    div.className = cls || "txt";
    div.textContent = text == null ? "" : String(text);
    td.appendChild(div);
    tr.appendChild(td);
  }
  function wanted(r, needle, w, s) {
    if (w === "kept" && r.status !== "kept") return false;
    if (w === "rejected" && r.status !== "rejected") return false;
    if (w.indexOf("by:") === 0 && (r.status !== "rejected" || r.dropped_by !== w.slice(3)))
      return false;
    if (s && r.stage !== s) return false;
    return !needle || r.hay.indexOf(needle) >= 0;
  }
  function render() {
    var needle = q.value.trim().toLowerCase(), w = which.value, s = stage.value, shown = 0;
    var frag = document.createDocumentFragment();
    rows.forEach(function (r) {
      if (!wanted(r, needle, w, s)) return;
      shown += 1;
      var tr = document.createElement("tr");
      tr.className = r.status;
      cell(tr, r.status === "kept" ? "kept" : "rejected by " + r.dropped_by +
           (r.where ? " (" + r.where + ")" : ""), "tag");
      cell(tr, r.drop_reason, "tag");
      cell(tr, r.stage + (r.teacher ? "\\n" + r.teacher : ""), "tag");
      cell(tr, r.id, "tag");
      cell(tr, r.prompt);
      cell(tr, r.response);
      cell(tr, r.reasoning);
      frag.appendChild(tr);
    });
    body.replaceChildren(frag);
    count.textContent = shown + " of " + rows.length + " sample rows shown";
  }
  q.addEventListener("input", render);
  which.addEventListener("change", render);
  stage.addEventListener("change", render);
  render();
})();
"""


def _section_samples(d: dict[str, Any]) -> tuple[str, str]:
    rows = d["samples"]
    kept = sum(r["status"] == "kept" for r in rows)
    by = list(dict.fromkeys(r["dropped_by"] for r in rows if r["status"] == "rejected"))
    stages = list(dict.fromkeys(r["stage"] for r in rows if r["stage"]))
    opts = ["<option value=''>all rows</option>", "<option value='kept'>kept</option>",
            "<option value='rejected'>rejected (any step)</option>"]
    opts += [f"<option value='by:{esc(b, quote=True)}'>rejected by {esc(b)}</option>"
             for b in by]
    sopts = ["<option value=''>all stages</option>"] + [
        f"<option value='{esc(s, quote=True)}'>{esc(s)}</option>" for s in stages]
    page = f"""<p>A seeded sample: {kept:,} kept and {len(rows) - kept:,} rejected rows
(rejects spread evenly over the steps that dropped them); long texts are cut. Type to search
prompt, response, reasoning, id and reason.</p>
<div class='controls'><label>Search <input id='sample-q' type='search'
placeholder='search the sample rows' autocomplete='off'></label>
<label>Show <select id='sample-which'>{''.join(opts)}</select></label>
<label>Stage <select id='sample-stage'>{''.join(sopts)}</select></label>
<span id='sample-count' aria-live='polite'></span></div>
<noscript><p class='absent'>The row browser needs JavaScript.</p></noscript>
<table id='sample-table'><thead><tr><th>kept / dropped by</th><th>reason</th>
<th>stage / teacher</th><th>id</th><th>prompt</th><th>response</th><th>reasoning</th></tr>
</thead><tbody id='sample-body'></tbody></table>
<script type='application/json' id='sample-data'>{_script_json(rows)}</script>"""
    return page, _SCRIPT


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;max-width:1200px;margin:1.5em auto;
padding:0 1em;color:#222;line-height:1.4}
h1{font-size:1.6em;margin-bottom:0.2em}h2{margin-top:1.6em;border-bottom:2px solid #ddd;
padding-bottom:0.2em}
table{border-collapse:collapse;margin:0.8em 0;font-size:13px}
td,th{border:1px solid #ccc;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#f3f3f3}td:not(:first-child){font-variant-numeric:tabular-nums}
figure{margin:0.8em 0}img.plot{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:12px;color:#666}
.absent{color:#8a4b00}.note{color:#555;font-size:13px}
.alert{border:2px solid #c60;background:#fff4e5;padding:0.4em 1em;margin:0.8em 0}
nav a{margin-right:0.8em}pre{background:#f7f7f7;padding:0.6em;overflow:auto;font-size:12px}
.controls{display:flex;gap:1em;flex-wrap:wrap;align-items:center;margin:0.5em 0}
.controls input{width:22em}
#sample-table td{max-width:26em}
#sample-table div.txt{white-space:pre-wrap;max-height:11em;overflow:auto;font-size:12px}
#sample-table div.tag{white-space:pre-wrap;font-size:12px}
tr.rejected{background:#fff6f6}tr.kept{background:#f6fff6}
"""

_SECTIONS = [("funnel", "Funnel"), ("cost", "Cost"), ("diversity", "Diversity"),
             ("acceptance", "Acceptance per teacher"), ("training", "Training"),
             ("eval", "Evaluation"), ("rows", "Sample rows")]


def render_html(d: dict[str, Any]) -> str:
    """The page for :func:`collect_report`'s data."""
    samples, script = _section_samples(d)
    csp_hash = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    csp = (f"default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
           f"script-src 'sha256-{csp_hash}'; base-uri 'none'; form-action 'none'")
    body = {"funnel": _section_funnel(d), "cost": _section_costs(d),
            "diversity": _section_diversity(d), "acceptance": _section_acceptance(d),
            "training": _section_training(d), "eval": _section_eval(d), "rows": samples}
    nav = "".join(f"<a href='#{k}'>{esc(t)}</a>" for k, t in _SECTIONS)
    sections = "".join(f"<section id='{k}'><h2>{esc(t)}</h2>{body[k]}</section>"
                       for k, t in _SECTIONS)
    yaml_part = ""
    if d["pipeline_yaml"]:
        yaml_part = (f"<details><summary>pipeline.yaml as run</summary>"
                     f"<pre>{esc(d['pipeline_yaml'])}</pre></details>")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{esc(csp, quote=True)}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>synth pipeline: {esc(d['pipeline'])}</title><style>{_CSS}</style></head><body>
<header><h1>Pipeline <code>{esc(d['pipeline'])}</code></h1>{_section_header(d)}{yaml_part}
<nav>{nav}</nav></header>
{sections}
<script>{script}</script>
</body></html>
"""


def write_pipeline_report(run_dir: str | Path, *, encoder: str | None = "all-minilm-l6-v2",
                          seed: int = 0, sample_rows: int = SAMPLE_ROWS) -> Path:
    """Write ``run_dir/report.html`` (atomically) and return its path.

    ``encoder``: the sentence-embedding model for the Vendi score (``None``: not computed,
    and the page says so). ``seed`` fixes every sample (diversity, the row browser);
    ``sample_rows`` caps the kept and the rejected rows the browser holds."""
    from synth.io import write_atomic

    data = collect_report(run_dir, encoder=encoder, seed=seed, sample_rows=sample_rows)
    path = Path(run_dir) / "report.html"
    write_atomic(path, render_html(data))
    return path
