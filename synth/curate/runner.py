"""Run a curation recipe: rows in, kept rows and rejected rows (with who and why) out.
Writes ``curated.parquet``, ``rejects.parquet``, ``curation.json`` and ``report.html``.

setup (read rows, build steps) → each step sees the rows the previous steps kept → kept rows
to ``curated.parquet``, dropped rows to ``rejects.parquet`` with ``dropped_by`` and
``drop_reason``, counts to ``curation.json``. Nothing is lost: the runner checks that kept +
rejected ids are exactly the input ids before writing anything.

While a step runs, :data:`CURRENT_STEP` holds a :class:`StepContext`: the output directory
(so a step that makes files of its own, like ``llm_judge``'s generation run, can put them
beside the curation outputs) and an ``info`` dict whose contents land in ``curation.json``
under that step's entry. A context variable keeps the step protocol ``step(df)`` unchanged.
"""

from __future__ import annotations

import time
from collections import Counter
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import orjson
import polars as pl

from synth.curate.recipe import Recipe, load_recipe
from synth.curate.report import write_report
from synth.errors import InputError, SynthError

__all__ = ["CurationResult", "curate", "read_rows", "StepContext", "CURRENT_STEP"]


@dataclass
class StepContext:
    """What the runner tells the running step: ``out`` is the curation's output directory
    (None when ``curate()`` writes nothing); a step may put a small JSON-able summary in
    ``info``."""

    out: Path | None
    info: dict[str, Any] = field(default_factory=dict)


CURRENT_STEP: ContextVar[StepContext | None] = ContextVar("synth_curate_step", default=None)


def read_rows(path: str | Path) -> pl.DataFrame:
    """A traces parquet (or a run directory holding one) or a JSONL file of rows."""
    p = Path(path)
    if p.is_dir():
        p = p / "traces.parquet"
    if not p.exists():
        raise InputError("no such file", path=str(p))
    try:
        df = pl.read_parquet(p) if p.suffix == ".parquet" else pl.read_ndjson(p)
    except Exception as e:  # polars raises several types for unreadable input
        raise InputError(f"cannot read rows: {str(e).splitlines()[0]}", path=str(p)) from None
    for col in ("id", "response"):
        if col not in df.columns:
            raise InputError("missing column", path=str(p), field=col)
    if df["id"].n_unique() != df.height:
        dup = df["id"].filter(df["id"].is_duplicated()).first()
        raise InputError(f"ids must be unique; {dup!r} repeats", path=str(p), field="id")
    return df


@dataclass
class CurationResult:
    kept: pl.DataFrame
    rejected: pl.DataFrame
    summary: dict[str, Any]


def _apply(recipe: Recipe, df: pl.DataFrame, out_dir: Path | None = None,
           on_step: Callable[[dict[str, Any]], None] | None = None) -> CurationResult:
    t0 = time.perf_counter()
    kept = df
    rejected: list[pl.DataFrame] = []
    steps = []
    for step, where in zip(recipe.steps, recipe.origins):
        missing = [c for c in step.needs if c not in kept.columns]
        if missing:
            raise InputError(f"step {step.name!r} needs column(s) {', '.join(missing)}",
                             path=where.path, line=where.line, field=step.name)
        t = time.perf_counter()
        ctx = StepContext(out=out_dir)
        token = CURRENT_STEP.set(ctx)
        try:
            verdict = step(kept)
        finally:
            CURRENT_STEP.reset(token)
        if verdict.df.height != kept.height or len(verdict.drop) != kept.height:
            raise SynthError(f"step {step.name!r} changed the number of rows")
        out = verdict.df.with_columns(verdict.drop.alias("_drop"))
        dropped = out.filter(pl.col("_drop").is_not_null())
        kept = out.filter(pl.col("_drop").is_null()).drop("_drop")
        if dropped.height:
            rejected.append(dropped.rename({"_drop": "drop_reason"})
                            .with_columns(pl.lit(step.name).alias("dropped_by")))
        reasons = Counter(r.split(":", 1)[0] for r in dropped["_drop"].to_list())
        steps.append({"step": step.name, "in": out.height, "kept": kept.height,
                      "dropped": dropped.height,
                      "reasons": dict(reasons.most_common()),
                      "seconds": round(time.perf_counter() - t, 4)})
        if ctx.info:
            steps[-1]["info"] = ctx.info
        if on_step is not None:
            on_step(steps[-1])
    rej = pl.concat(rejected, how="diagonal_relaxed") if rejected else \
        df.clear().with_columns(pl.lit(None, pl.String).alias("drop_reason"),
                                pl.lit(None, pl.String).alias("dropped_by"))
    seen = kept["id"].to_list() + rej["id"].to_list()
    if len(seen) != df.height or set(seen) != set(df["id"].to_list()):
        raise SynthError("curation lost or duplicated rows: kept + rejected != input")
    summary = {
        "recipe": recipe.name, "recipe_file": recipe.path, "input_rows": df.height,
        "kept": kept.height, "rejected": rej.height, "steps": steps,
        "wall_s": round(time.perf_counter() - t0, 3),
    }
    return CurationResult(kept, rej, summary)


def curate(input: str | Path | pl.DataFrame, *, recipe: str | Path | Recipe,
           out: str | Path | None = None,
           on_step: Callable[[dict[str, Any]], None] | None = None) -> CurationResult:
    """Apply a recipe (a name like ``default``, a YAML path, or a :class:`Recipe`).
    ``on_step`` is called with each step's summary as soon as the step is done."""
    from synth.generate.run import write_atomic

    df = input if isinstance(input, pl.DataFrame) else read_rows(input)
    rec = recipe if isinstance(recipe, Recipe) else load_recipe(recipe)
    out = Path(out) if out is not None else None
    result = _apply(rec, df, out, on_step)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        write_atomic(out / "curated.parquet", result.kept.to_arrow())
        write_atomic(out / "rejects.parquet", result.rejected.to_arrow())
        write_atomic(out / "curation.json",
                     orjson.dumps(result.summary, option=orjson.OPT_INDENT_2))
        write_report(out, result.summary, result.kept, result.rejected)
    return result
