"""The Ray engine's ground floor: how a block of rows carries its bookkeeping, and the
block functions every step kind shares (:mod:`synth.curate.ray_engine` drives them,
:mod:`synth.curate.ray_steps` implements the steps that are not row-local).

A block is a pyarrow table of input rows plus three columns: ``_row`` (the row's place in
the input: files in sorted order, row groups in file order), ``_drop`` (its drop reason,
null while kept) and ``_by`` (the index of the step that dropped it). A dropped row stays
in its block with the columns it had when dropped, so the rejects are written as the
local engine writes them.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

__all__ = ["BOOK", "to_arrow", "live_rows", "run_steps", "row_local_map", "apply_drops",
           "collect", "hash_parts", "lookup", "peek", "collect_columns", "conform"]

#: the bookkeeping columns a block carries beside the rows' own
BOOK = ("_row", "_drop", "_by")
_PARTS_PER_CPU = 1  # hash groups per CPU for the shuffles (dedup, grouped steps)


def to_arrow(df: pl.DataFrame) -> pa.Table:
    # plain (not view) string types: every Ray version and pyarrow kernel takes them
    return df.to_arrow(compat_level=pl.CompatLevel.oldest())


def live_rows(block: pa.Table) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``(all rows, the kept rows)`` of a block, both with the bookkeeping columns."""
    df = pl.from_arrow(block)
    return df, df.filter(pl.col("_drop").is_null())


def _merge(index: int, live: pl.DataFrame, v: Any, dead: pl.DataFrame) -> pl.DataFrame:
    """A step's verdict ``v`` on the kept rows ``live`` back into the block."""
    if v.df.height != live.height or len(v.drop) != live.height:
        raise RuntimeError(f"a step (#{index}) changed the number of rows")
    new = v.df.with_columns(live["_row"], v.drop.alias("_drop"),
                            pl.when(v.drop.is_not_null()).then(pl.lit(index, pl.Int32))
                            .otherwise(None).alias("_by"))
    return pl.concat([new, dead], how="diagonal_relaxed")


def run_steps(df: pl.DataFrame, steps: list, *, ctx: Any = None,
              report: dict | None = None) -> pl.DataFrame:
    """``(index, step)`` pairs, each on the rows the steps before it kept, as the local
    engine runs them. On part of the rows a step's ``block_verdict`` (if it has one) is
    called: the checks over the whole input are then the engine's. ``ctx``: the
    StepContext for steps that take one (only given where the step sees every row);
    ``report[index]``: each step's ``(figures, warnings)``."""
    for index, step in steps:
        live = df.filter(pl.col("_drop").is_null())
        if ctx is None and live.height == 0:
            continue  # a part with no kept row: nothing to decide (the driver knows the columns)
        rows = live.drop(list(BOOK))
        if ctx is not None:
            v = step(rows, ctx) if getattr(step, "takes_context", False) else step(rows)
        else:
            v = getattr(step, "block_verdict", step)(rows)
        if report is not None:
            report[index] = (dict(getattr(v, "figures", None) or {}),
                             list(getattr(v, "warnings", None) or []))
        df = _merge(index, live, v, df.filter(pl.col("_drop").is_not_null()))
    return df


def row_local_map(block: pa.Table, steps: list) -> pa.Table:
    """Row-local steps (``(index, step)`` pairs, consecutive in the filter set) on a
    block: their own code, block by block."""
    return to_arrow(run_steps(pl.from_arrow(block), steps))


def lookup(rows: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(hit, at)``: which of ``r`` are in ``rows`` (sorted, unique), and where."""
    if not len(rows):
        return np.zeros(len(r), bool), np.zeros(len(r), np.int64)
    pos = np.minimum(np.searchsorted(rows, r), len(rows) - 1)
    return rows[pos] == r, pos


def apply_drops(block: pa.Table, index: int, rows: np.ndarray, reasons: list[str],
                extra=None) -> pa.Table:
    """Mark the kept rows of a block whose ``_row`` is in ``rows`` (sorted) as dropped
    with the matching reason; ``extra(live)`` adds columns to the kept rows."""
    df, live = live_rows(block)
    hit, pos = lookup(rows, live["_row"].to_numpy())
    why = np.full(live.height, None, dtype=object)
    why[hit] = np.asarray(reasons, dtype=object)[pos[hit]]
    new = live.with_columns(pl.Series("_drop", why.tolist(), dtype=pl.String))
    new = new.with_columns(pl.when(pl.col("_drop").is_not_null()).then(pl.lit(index, pl.Int32))
                           .otherwise(None).alias("_by"))
    if extra is not None:
        new = extra(new)
    dead = df.filter(pl.col("_drop").is_not_null())
    return to_arrow(pl.concat([new, dead], how="diagonal_relaxed"))


def collect(ds) -> pl.DataFrame:
    """A dataset's rows on the driver, as one frame."""
    import ray

    tables = [t for t in ray.get(ds.to_arrow_refs()) if t.num_rows]
    if not tables:
        return pl.DataFrame()
    return pl.concat([pl.from_arrow(t) for t in tables], how="diagonal_relaxed")


def hash_parts() -> int:
    """How many hash groups a shuffle makes: a few per CPU of the cluster."""
    import ray

    return max(2, int(ray.cluster_resources().get("CPU", 1)) * _PARTS_PER_CPU)


def peek(block: pa.Table, names: list[str]) -> pa.Table:
    """Only ``names`` of a block (null where a block lacks one): what the driver needs of
    every row to sum a step up."""
    df = pl.from_arrow(block)
    return to_arrow(df.select([pl.col(c) if c in df.columns else pl.lit(None).alias(c)
                               for c in names]))


@functools.cache
def _peek_task():
    import ray

    return ray.remote(peek)


def collect_columns(ds, names: list[str]) -> pl.DataFrame:
    """``names`` of every row of a materialized dataset, on the driver: one plain task per
    block (where the block is), not a Ray Data job, whose start alone costs ~0.8 s."""
    import ray

    task = _peek_task()
    tables = [t for t in ray.get([task.remote(ref, names) for ref in ds.to_arrow_refs()])
              if t.num_rows]
    if not tables:
        return pl.DataFrame(schema={n: pl.Null for n in names})
    return pl.concat([pl.from_arrow(t) for t in tables], how="diagonal_relaxed")


def conform(df: pl.DataFrame, like: pl.DataFrame) -> pl.DataFrame:
    """``df`` with exactly ``like``'s columns, order and types: a column no block made
    (no row reached the step that adds it) comes as nulls of its type, one that a block
    typed Null (all its values null) is cast to it."""
    out = []
    for c, t in like.schema.items():
        if c not in df.columns:
            out.append(pl.lit(None, dtype=t).alias(c))
        elif df.schema[c] != t and t != pl.Null:
            out.append(pl.col(c).cast(t))
        else:
            out.append(pl.col(c))
    return df.select(out)
