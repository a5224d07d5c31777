"""``synth curate --engine ray``: the same filter set, steps and parameters on Ray Data.

Rows are read as Ray Data blocks (one task per parquet row group) that carry bookkeeping
columns (:mod:`synth.curate.ray_blocks`). Each step sees the rows that the steps before it
kept, as in the local engine (:mod:`synth.curate.runner`), and answers the same. Where a
step runs (:func:`placements`; ``curation.json`` records it under ``engine.placement``):

- ``blocks``: a row-local step (``Step.row_local``: the heuristics, ``language``,
  ``decontaminate``, ``verify_math``) is the step's own code mapped over blocks; only the
  block's kept rows reach it, so every verdict is the local one; a step that reports
  figures or warnings recomputes them on the driver over every row it saw
  (``Step.figures_from_rows``). ``verify_code`` runs so too, in the sandbox of each
  worker, after the checks :func:`synth.curate.ray_steps.verify_code` makes over the
  whole input;
- ``actors``: a row-local step that loads a model (``quality``), on an actor pool (GPU
  actors where the cluster has GPUs);
- ``shuffle``: ``exact_dedup`` and ``near_dedup``, global across blocks and nodes through
  Ray Data groupbys;
- ``groups``: a step with a ``group_key`` (``self_consistency``), on each group of rows
  that share the key;
- ``actors + driver``: ``semantic_dedup``: embeddings on an actor pool, clusters on the
  driver;
- ``driver``: any other step (``llm_judge``, a plugin's global step), over every kept row
  on the driver, as the local engine runs it.

:mod:`synth.curate.ray_steps` has the details. The kept and rejected rows come back to the
driver, which checks kept + rejected = input and writes the same files as the local
engine.
"""

from __future__ import annotations

import glob as globmod
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import polars as pl
import pyarrow as pa

from synth.curate.ray_blocks import BOOK, collect, collect_columns, conform, row_local_map, to_arrow
from synth.errors import InputError

__all__ = ["RayRun", "placements", "parquet_sources", "input_schema", "row_count", "run"]

_SPECIAL = {"exact_dedup": "shuffle", "near_dedup": "shuffle", "verify_code": "blocks",
            "semantic_dedup": "actors + driver"}


@dataclass
class RayRun:
    """What the Ray engine hands back to the runner: the rows (polars, on the driver), every
    input id (for the kept + rejected = input check), the step summaries, the schema."""

    kept: pl.DataFrame
    rejected: pl.DataFrame
    input_ids: pl.Series
    steps: list[dict[str, Any]]
    nodes: int
    placement: list[str] = field(default_factory=list)


def placements(filters) -> list[str]:
    """Where each step of ``filters`` runs on Ray (see the module)."""
    out = []
    for step in filters.steps:
        if step.name in _SPECIAL and type(step).__module__.startswith("synth."):
            out.append(_SPECIAL[step.name])
        elif getattr(step, "takes_context", False):  # it writes beside the outputs
            out.append("driver")
        elif getattr(step, "row_local", False):
            out.append("actors" if getattr(step, "uses_model", False) else "blocks")
        elif getattr(step, "group_key", None):
            out.append("groups")
        else:
            out.append("driver")
    return out


def _synth_dir(source: str) -> bool:
    """A synth output directory (a generate, curate or pipeline run), not a folder of
    shards: its own rows file names the rows, never every parquet below it."""
    from pathlib import Path

    from synth.rows import PIPELINE_MANIFEST

    d = Path(source)
    return d.is_dir() and any((d / n).is_file() for n in (
        "traces.parquet", "curated.parquet", "rejects.parquet", PIPELINE_MANIFEST))


def parquet_sources(source: str) -> tuple[Any, list[str]]:
    """``(filesystem, files)`` a source means: one parquet file, a synth run directory (its
    rows, as :func:`synth.rows.locate` finds them), a directory of parquet shards (every
    ``*.parquet`` below it), a glob, or a URI pyarrow understands
    (``s3://bucket/shards/``, ``gs://``, ``hdfs://``, ``file://``). Sorted: that order is
    the rows' order."""
    import pyarrow.fs as pafs

    if "://" in source:
        fs, path = pafs.FileSystem.from_uri(source)
    else:
        fs, path = pafs.LocalFileSystem(), source
        if _synth_dir(source):  # a run directory: its rows, as every synth command reads it
            from synth.rows import locate

            return fs, [str(locate(source).file)]
        if any(c in source for c in "*?["):
            files = sorted(f for f in globmod.glob(source, recursive=True)
                           if f.endswith(".parquet"))
            if not files:
                raise InputError("no parquet file matches", path=source)
            return fs, files
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.File:
        return fs, [path]
    if info.type != pafs.FileType.Directory:
        raise InputError("no such file or directory", path=source)
    sel = pafs.FileSelector(path, recursive=True)
    files = sorted(i.path for i in fs.get_file_info(sel)
                   if i.type == pafs.FileType.File and i.path.endswith(".parquet")
                   and not i.base_name.startswith((".", "_")))
    if not files:
        raise InputError("the Ray engine reads parquet: no *.parquet file below", path=source)
    return fs, files


def _footers(fs, files: list[str]) -> list[Any]:
    import pyarrow.parquet as pq

    out = []
    for f in files:
        with fs.open_input_file(f) as fh:
            out.append(pq.ParquetFile(fh).metadata)
    return out


def _unified(files: list[str], metas: list[Any]) -> pa.Schema:
    """The shards' common schema: the same column names in the same order, each column's
    types unified (a shard whose values were all null typed it Null; int32 in one, int64
    in another); a clash names the shard and the column."""
    first = metas[0].schema.to_arrow_schema()
    schema = first
    for f, m in zip(files[1:], metas[1:]):
        s = m.schema.to_arrow_schema()
        if s.names != first.names:
            raise InputError(f"shard columns differ from the first shard's ({first.names})",
                             path=f)
        try:
            schema = pa.unify_schemas([schema, s], promote_options="permissive")
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as e:
            bad = next((n for n in s.names if s.field(n).type != schema.field(n).type), None)
            raise InputError(f"its type {s.field(bad).type if bad else '?'} does not go with "
                             f"the other shards' ({e})", path=f, field=bad) from None
    return schema


def _fragments(fs, files: list[str]) -> tuple[list[dict], pa.Schema]:
    """One item per row group: file, row group, first ``_row``; and the common schema."""
    if not files:
        raise InputError("no rows")
    metas = _footers(fs, files)
    schema = _unified(files, metas)
    items, offset = [], 0
    for f, meta in zip(files, metas):
        for g in range(meta.num_row_groups):
            rows = meta.row_group(g).num_rows
            if rows:  # an empty row group is no block's business
                items.append({"file": f, "group": g, "offset": offset})
            offset += rows
    return items, schema


def input_schema(fs, files: list[str]) -> dict[str, Any]:
    """The rows' columns and polars types, unified over the shards."""
    schema = _unified(files, _footers(fs, files))
    return dict(pl.from_arrow(schema.empty_table()).schema)


def row_count(fs, files: list[str]) -> int:
    """Rows in all the files, from their footers."""
    return sum(m.num_rows for m in _footers(fs, files))


def _read_fragment(batch: dict, uri_fs, schema: pa.Schema) -> pa.Table:
    import pyarrow.parquet as pq

    out = []
    for f, g, off in zip(batch["file"], batch["group"], batch["offset"]):
        with uri_fs.open_input_file(str(f)) as fh:
            t = pq.ParquetFile(fh).read_row_group(int(g)).cast(schema)
        df = pl.from_arrow(t).with_columns(
            pl.int_range(int(off), int(off) + t.num_rows, dtype=pl.Int64).alias("_row"),
            pl.lit(None, pl.String).alias("_drop"), pl.lit(None, pl.Int32).alias("_by"))
        out.append(df)
    return to_arrow(pl.concat(out, how="vertical_relaxed"))


# ----------------------------------------------------------------------------- driver

def _connect(address: str | None) -> bool:
    """Join ``address``'s cluster, or start a local Ray; True when this call started it
    (and so must stop it)."""
    import ray

    if ray.is_initialized():
        return False
    ray.init(address=address, include_dashboard=False, log_to_driver=False,
             ignore_reinit_error=True, configure_logging=False)
    return True


def run(filters, source: str, *, address: str | None = None, on_step=None,
        out_dir=None) -> RayRun:
    """Run ``filters`` over the parquet rows ``source`` means on Ray (see the module);
    ``out_dir``: the curation's output folder, for a step that writes beside it."""
    import ray
    import ray.data

    from synth.curate import ray_steps

    fs, files = parquet_sources(str(source))
    items, schema = _fragments(fs, files)
    where = placements(filters)
    start = pl.from_arrow(schema.empty_table())  # the input's columns and types
    if not items:  # no rows: nothing to spread; the local engine's answer on none
        from synth.curate.runner import curate as curate_local

        r = curate_local(start, filters=filters, on_step=on_step)
        return RayRun(r.kept, r.rejected, start["id"], r.summary["steps"], 0, where)
    started = _connect(address)
    try:
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.print_on_execution_start = False
        # the sort-based shuffle: no aggregator actors to start (seconds per groupby)
        ctx.shuffle_strategy = ray.data.context.ShuffleStrategy.SORT_SHUFFLE_PULL_BASED
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
        ds = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
            _read_fragment, batch_size=1, batch_format="numpy",
            fn_args=(fs, schema)).materialize()
        ids = collect_columns(ds, ["id"])["id"]
        if ids.n_unique() != len(ids):
            dup = ids.filter(ids.is_duplicated()).first()
            raise InputError(f"ids must be unique; {dup!r} repeats", path=str(source),
                             field="id")
        # after each step: its kept rows' columns and types (an empty frame), as the
        # local engine's frames have them
        frames: list[pl.DataFrame] = []
        have, live, steps = start, len(ids), []
        for group in _groups(filters.steps, where):
            t = time.perf_counter()
            first, step = group[0]
            kind = where[first]
            now = None
            if kind == "blocks" and step.name != "verify_code":
                ds, *got = _blocks(ds, group)
            elif kind == "actors":
                ds, *got = ray_steps.model_steps(ds, group)
            elif kind == "groups":
                ds, *got = ray_steps.grouped(ds, step, first)
            elif kind == "driver":
                ds, *got, now = ray_steps.on_driver(ds, step, first, out_dir)
            else:  # exact_dedup, near_dedup, verify_code, semantic_dedup: their own
                ds, *got = getattr(ray_steps, step.name)(ds, step, first)
            seconds = (time.perf_counter() - t) / len(group)  # fused steps share it
            befores = []
            for _, st in group:
                befores.append(have)
                # the step on no rows says what it adds, with its types
                have = now if now is not None else st(have).df
                frames.append(have)
            seen = collect_columns(ds, _summed_columns(group, frames, befores))
            for k, (i, st) in enumerate(group):
                steps.append(_summary_line(seen, i, st, live, seconds, where[i],
                                           got if k == 0 else ({}, [])))
                live = steps[-1]["kept"]
                if on_step is not None:
                    on_step(steps[-1])
        everything = collect(ds)
    finally:
        if started:
            ray.shutdown()
    return _split(everything, filters, start, frames, ids, steps, nodes, where)


def _summed_columns(group: list, frames: list, befores: list) -> list[str]:
    """What the driver reads of every row to sum a group of steps up: the bookkeeping and
    the columns the steps added (their figures come from them)."""
    added = [c for (_, st), after, before in zip(group, frames[-len(group):], befores)
             for c in after.columns if c not in before.columns]
    return list(BOOK) + list(dict.fromkeys(added))


def _blocks(ds, group: list):
    """Consecutive row-local steps in one pass over the blocks."""
    out = ds.map_batches(row_local_map, batch_format="pyarrow", batch_size=None,
                         fn_args=(group,))
    return out.materialize(), {}, []


def _groups(steps: list, where: list[str]) -> list[list]:
    """``[(index, step), ...]`` runs: consecutive steps that run per block together (one
    pass over the blocks), each other step alone."""
    out: list[list] = []
    for i, st in enumerate(steps):
        fuse = where[i] == "blocks" and st.name != "verify_code"
        if fuse and out and out[-1][-1][0] == i - 1 and where[i - 1] == "blocks" and \
                steps[i - 1].name != "verify_code":
            out[-1].append((i, st))
        else:
            out.append([(i, st)])
    return out


def _summary_line(seen: pl.DataFrame, i: int, step, live: int, seconds: float,
                  where: str, got) -> dict[str, Any]:
    """Step ``i``'s line of ``curation.json``, from every row's ``_by`` and ``_drop`` right
    after it ran; the figures and warnings of a step that ran in parts are recomputed from
    every row it saw (``figures_from_rows``), a whole step's are its own."""
    why = seen.filter(pl.col("_by") == i)["_drop"].to_list()
    reasons = Counter(r.split(":", 1)[0] for r in why)
    line: dict[str, Any] = {"step": step.name, "in": live, "kept": live - len(why),
                            "dropped": len(why), "reasons": dict(reasons.most_common()),
                            "seconds": round(seconds, 4)}
    info, warns = {}, []
    if where != "driver" and hasattr(step, "figures_from_rows"):
        rows = seen.filter(pl.col("_by").is_null() | (pl.col("_by") >= i)).sort("_row")
        if rows.height and all(c in rows.columns for c in step.adds()):
            whole = step.figures_from_rows(rows)
            if whole is not None:
                info, warns = dict(whole[0]), list(whole[1])
    figures, more = got
    info.update(figures)
    warns += more
    if info:
        line["info"] = info
    if warns:
        line["warnings"] = warns
    return line


def _split(df: pl.DataFrame, filters, start: pl.DataFrame, frames: list, ids, steps,
           nodes, where) -> RayRun:
    """Kept rows in input order; rejected rows step by step, each in input order, with the
    columns (and types) they had when dropped: the local engine's frames."""
    df = df.sort("_row")
    kept = conform(df.filter(pl.col("_drop").is_null()), frames[-1] if frames else start)
    parts = []
    for i, step in enumerate(filters.steps):
        d = df.filter(pl.col("_by") == i)
        if d.height:
            parts.append(conform(d, frames[i]).with_columns(
                d["_drop"].alias("drop_reason"), pl.lit(step.name).alias("dropped_by")))
    rej = pl.concat(parts, how="diagonal_relaxed") if parts else \
        start.with_columns(pl.lit(None, pl.String).alias("drop_reason"),
                           pl.lit(None, pl.String).alias("dropped_by"))
    return RayRun(kept, rej, ids, steps, nodes, where)
