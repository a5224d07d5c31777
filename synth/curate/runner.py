"""Run a filter set: rows in, kept rows and rejected rows (with who and why) out.
Writes ``curated.parquet``, ``rejects.parquet``, ``curation.json`` and ``report.html``.

setup (read rows, build steps) → each step sees the rows the previous steps kept → kept rows
to ``curated.parquet``, dropped rows to ``rejects.parquet`` with ``dropped_by`` and
``drop_reason``, counts to ``curation.json``. Nothing is lost: the runner checks that kept +
rejected ids are exactly the input ids before writing anything.

A step gets what it needs from the runner as an argument (a
:class:`~synth.curate.steps.StepContext`, for the steps that set ``takes_context``) and
returns everything it reports in its :class:`~synth.curate.steps.Verdict`; the verdict's
``figures`` land in ``curation.json`` as that step's ``info``.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import orjson
import polars as pl

from synth.curate.filterset import FilterSet, load_filter_set
from synth.curate.report import write_report
from synth.curate.steps import StepContext
from synth.errors import ConfigError, InputError, SynthError, UserError

__all__ = ["CurationResult", "curate", "read_rows", "check_columns"]


def read_rows(path: str | Path) -> pl.DataFrame:
    """The rows a path means (:func:`synth.rows.read_table`: a run directory's
    traces.parquet, a curate directory's curated.parquet, a pipeline run's training rows, a
    parquet or JSONL file), as a DataFrame with unique ``id`` and a ``response`` column."""
    from synth import rows as R

    table, where = R.read_table(path)
    df = pl.from_arrow(table)
    p = where.file
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


def check_columns(filters: FilterSet, schema: dict[str, Any]) -> None:
    """Refuse, before any step runs, a filter set whose step reads a column the rows lack
    (and that no earlier step adds), or a text ``field`` that is not text. The error names
    the filter set's file, the line and the step, and what the rows do have."""
    have = dict(schema)
    for step, where in zip(filters.steps, filters.origins):
        # a step need not inherit from Step: one that only declares ``needs`` is checked
        # for those columns
        reads = step.reads() if hasattr(step, "reads") else \
            [(c,) for c in getattr(step, "needs", ())]
        for alternatives in reads:
            if not any(c in have for c in alternatives):
                what = " or ".join(repr(c) for c in alternatives)
                hint = ""
                if "messages" in alternatives:
                    hint = " (`prompt` reads the request: a messages or a prompt column)"
                raise InputError(
                    f"reads column {what}, which the rows do not have and no earlier step "
                    f"adds{hint}; the rows have: {', '.join(schema)}", path=where.path,
                    line=where.line, field=step.name)
        for f in (step.text_fields() if hasattr(step, "text_fields") else ()):
            if f not in ("prompt", "both") and f in schema and schema[f] != pl.String:
                raise InputError(f"field {f!r} holds {schema[f]}, not text (choose a text "
                                 "column)", path=where.path, line=where.line, field=step.name)
        for c in (step.adds() if hasattr(step, "adds") else ()):
            have.setdefault(c, None)  # added by the step: present for later steps


def _apply(filters: FilterSet, df: pl.DataFrame, out_dir: Path | None = None,
           on_step: Callable[[dict[str, Any]], None] | None = None) -> CurationResult:
    """Run the steps (the caller has checked the filter set against the rows)."""
    t0 = time.perf_counter()
    kept = df
    rejected: list[pl.DataFrame] = []
    steps = []
    ctx = StepContext(out=out_dir)
    for step in filters.steps:
        t = time.perf_counter()
        # duck-typed steps need not declare takes_context: they are called step(df)
        verdict = step(kept, ctx) if getattr(step, "takes_context", False) else step(kept)
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
        figures = getattr(verdict, "figures", None)
        if figures:
            steps[-1]["info"] = dict(figures)
        if getattr(verdict, "warnings", None):
            steps[-1]["warnings"] = list(verdict.warnings)
        if on_step is not None:
            on_step(steps[-1])
    rej = pl.concat(rejected, how="diagonal_relaxed") if rejected else \
        df.clear().with_columns(pl.lit(None, pl.String).alias("drop_reason"),
                                pl.lit(None, pl.String).alias("dropped_by"))
    return _result(filters, df["id"], kept, rej, steps, t0)


def _result(filters: FilterSet, input_ids: pl.Series, kept: pl.DataFrame,
            rej: pl.DataFrame, steps: list[dict[str, Any]], t0: float) -> CurationResult:
    """Check kept + rejected = input (whichever engine ran the steps), then the summary."""
    t_check = time.perf_counter()
    seen = pl.concat([kept.select("id"), rej.select("id")], how="vertical_relaxed")["id"]
    if seen.len() != len(input_ids) or \
            not seen.unique().sort().equals(input_ids.unique().sort()):
        raise SynthError("curation lost or duplicated rows: kept + rejected != input")
    # where the command's seconds go (the bench prints them; curate and _write add theirs)
    timings = {"steps_s": round(sum(st["seconds"] for st in steps), 4),
               "check_s": round(time.perf_counter() - t_check, 4)}
    summary = {
        "filter_set": filters.name, "filter_set_file": filters.path,
        "input_rows": len(input_ids),
        "kept": kept.height, "rejected": rej.height, "steps": steps,
        "warnings": [w for st in steps for w in st.get("warnings", [])],
        "wall_s": round(time.perf_counter() - t0, 3), "timings": timings,
        # the keys curation.json had when filter sets were called recipes: what reads
        # curation.json (the dataset card, merge, the output-folder check of synth.io, an
        # older synth) finds them there, in new folders as in old ones
        "recipe": filters.name, "recipe_file": filters.path,
    }
    return CurationResult(kept, rej, summary)


def curate(input: str | Path | pl.DataFrame, *,
           filters: str | Path | FilterSet | None = None,
           out: str | Path | None = None,
           on_start: Callable[[pl.DataFrame, FilterSet], None] | None = None,
           on_step: Callable[[dict[str, Any]], None] | None = None,
           recipe: str | Path | FilterSet | None = None, engine: str = "local",
           ray_address: str | None = None) -> CurationResult:
    """Apply a filter set (a name like ``default``, a YAML path, or a :class:`FilterSet`).

    Everything that can be wrong with the request is checked first, in this order: ``out``
    (a usable directory, not the input's own), the rows, the filter set, the filter set
    against the rows (:func:`check_columns`). ``on_start`` is then called with the rows and
    the filter set, before any step runs, and ``on_step`` with each step's summary as soon
    as it is done. ``recipe=`` is the deprecated spelling of ``filters=``.

    ``engine="ray"`` runs the same steps on Ray Data (:mod:`synth.curate.ray_engine`):
    ``input`` is then a parquet file, a directory or glob of parquet shards, or a URI
    pyarrow reads; ``ray_address`` joins that cluster (else a local Ray is started), and
    ``on_start`` gets the row count instead of the rows."""
    from synth.io import check_not_input, claim_out_dir

    filters = _filters_argument(filters, recipe)
    if engine not in ("local", "ray"):
        raise ConfigError(f"engine: local or ray, not {engine!r}")
    if ray_address is not None and engine != "ray":
        raise ConfigError("ray_address: only with engine ray")
    if out is not None and not isinstance(input, pl.DataFrame):
        check_not_input(Path(out), [input], why="the curated rows and their card would "
                        "replace the run's own, and a rerun would read its own output")
    # before anything is read: new, empty or an earlier curation's (synth.io's rule)
    out = claim_out_dir(out, "synth curate") if out is not None else None
    if engine == "ray":
        return _curate_ray(input, filters, out, on_start, on_step, ray_address)
    if not isinstance(input, pl.DataFrame):
        _prepare(filters, input)
    t_read = time.perf_counter()
    df = input if isinstance(input, pl.DataFrame) else read_rows(input)
    read_s = round(time.perf_counter() - t_read, 4)
    fs = filters if isinstance(filters, FilterSet) else load_filter_set(filters)
    check_columns(fs, dict(df.schema))  # a filter set that cannot run creates nothing
    if on_start is not None:
        on_start(df, fs)

    def apply() -> CurationResult:
        result = _apply(fs, df, out, on_step)
        result.summary["timings"] = {"read_s": read_s, **result.summary["timings"]}
        return result

    return apply() if out is None else _run_into(out, apply)


def _prepare(filters: Any, input: str | Path) -> None:
    """Let steps start slow set-up that does not depend on the rows (a step's
    ``prepare(input_bytes)``: the MinHash kernel) while the rows are read. Any problem here
    is left for the checks that follow, in their order."""
    try:
        from synth.rows import locate

        size = locate(input).file.stat().st_size
        fs = filters if isinstance(filters, FilterSet) else load_filter_set(filters)
    except (UserError, OSError):
        return
    for step in fs.steps:
        prepare = getattr(step, "prepare", None)
        if callable(prepare):
            prepare(size)


def _run_into(out: Path, apply: Callable[[], CurationResult]) -> CurationResult:
    from synth.io import exclusive_dir, make_out_dir

    created = not out.exists()
    make_out_dir(out)
    try:
        # two curations into one directory would mix their files; the judge's generation
        # run lives inside it (out/judge/...), which holding it allows
        with exclusive_dir(out):
            result = apply()
            _write(out, result)
    except BaseException:
        if created:  # leave no empty folder behind (a judge's cached answers do stay)
            (out / ".lock").unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                out.rmdir()
        raise
    return result


def _curate_ray(input, filters, out, on_start, on_step, address) -> CurationResult:
    """The Ray engine: every check the local engine makes, in the same order, then the
    steps on Ray, then the same files."""
    from synth.curate import ray_engine

    if isinstance(input, pl.DataFrame):
        raise ConfigError("engine ray reads parquet files (a file, a directory or glob of "
                          "shards, a URI), not a DataFrame")
    fs_, files = ray_engine.parquet_sources(str(input))
    schema = ray_engine.input_schema(fs_, files)
    for col in ("id", "response"):
        if col not in schema:
            raise InputError("missing column", path=str(input), field=col)
    fs = filters if isinstance(filters, FilterSet) else load_filter_set(filters)
    check_columns(fs, schema)
    if on_start is not None:
        on_start(ray_engine.row_count(fs_, files), fs)

    def apply() -> CurationResult:
        t0 = time.perf_counter()
        r = ray_engine.run(fs, str(input), address=address, on_step=on_step, out_dir=out)
        result = _result(fs, r.input_ids, r.kept, r.rejected, r.steps, t0)
        result.summary["engine"] = {"name": "ray", "nodes": r.nodes,
                                    "placement": r.placement}
        return result

    return apply() if out is None else _run_into(out, apply)


def _filters_argument(filters, recipe):
    """``filters=``, or the deprecated ``recipe=`` that means the same (not both)."""
    if recipe is not None:
        if filters is not None:
            raise TypeError("curate() takes filters= or its old name recipe=, not both")
        warnings.warn("curate(recipe=...) is deprecated: use curate(filters=...) (curation "
                      "recipes are now called filter sets)", DeprecationWarning, stacklevel=3)
        return recipe
    if filters is None:
        raise TypeError("curate() missing required keyword argument: 'filters'")
    return filters


def _write(out: Path, result: CurationResult) -> None:
    """Every output is made in a staging folder inside ``out``, then moved into place: an
    error or Ctrl-C while writing leaves the previous outputs (or none), never a mix of
    this run's and the last one's. The kept rows are encoded on one thread and the report
    drawn on another while this one writes the rest (parquet encoding releases the GIL)."""
    from concurrent.futures import ThreadPoolExecutor

    from synth.dataset.card import render_curated_card
    from synth.io import commit_staged, files_below, staging_dir, write_atomic

    timings = result.summary.setdefault("timings", {})

    def report(stage: Path) -> float:
        t = time.perf_counter()
        write_report(stage, result.summary, result.kept, result.rejected)
        return round(time.perf_counter() - t, 4)

    with staging_dir(out) as stage:
        t = time.perf_counter()
        # the kept rows are the longest job (zstd of most of the input, ~1 s per 250 MB of
        # text, on one core): it starts first, the rest is done beside it
        kept = result.kept.to_arrow()
        with ThreadPoolExecutor(max_workers=2) as pool:
            curated = pool.submit(write_atomic, stage / "curated.parquet", kept)
            drawn = pool.submit(report, stage)
            try:
                tc = time.perf_counter()
                card = render_curated_card(name=out.name, kept=result.kept,
                                           summary=result.summary,
                                           rejected_rows=result.rejected.height)
                timings["card_s"] = round(time.perf_counter() - tc, 4)
                write_atomic(stage / "rejects.parquet", result.rejected.to_arrow())
                write_atomic(stage / "README.md", card)
            finally:
                curated.result()  # its error first, as when it was written first
            timings["write_s"] = round(time.perf_counter() - t, 4)
            timings["report_s"] = drawn.result()  # drawn beside the writing, not after it
        timings["outputs_s"] = round(time.perf_counter() - t, 4)
        # every file, so a rerun can tell its own from anything put there since
        names = sorted(p.name for p in stage.iterdir())
        result.summary["files"] = files_below(stage, names) + ["curation.json"]
        write_atomic(stage / "curation.json",
                     orjson.dumps(result.summary, option=orjson.OPT_INDENT_2))
        commit_staged(stage, out)
