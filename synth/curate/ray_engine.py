"""``synth curate --engine ray``: the same filter set, steps and parameters on Ray Data.

Rows are read as Ray Data blocks (one task per parquet row group) and carry three
bookkeeping columns: ``_row`` (the row's place in the input: files in sorted order, row
groups in file order), ``_drop`` (its drop reason, null while kept) and ``_by`` (the
index of the step that dropped it). Each step sees the rows that the steps before it kept,
as in the local engine (:mod:`synth.curate.runner`), and answers the same:

- a row-local step (``Step.row_local``: the heuristics, ``language``, ``decontaminate``,
  ``verify_math``) is the step's own code mapped over blocks; only the block's kept rows
  reach it, so every verdict is the local one; a step that reports figures or warnings
  recomputes them on the driver over every row it saw (``Step.figures_from_rows``);
- ``exact_dedup``: each block computes the step's own keys; a Ray Data groupby on a hash
  of the key brings every copy of a text into one group, where the lowest ``_row`` (the
  local engine's "first occurrence") is kept;
- ``near_dedup``: MinHash signatures, shingle hashes and LSH band keys per block
  (:mod:`synth.curate.minhash`'s own functions); a groupby on a hash of the band key
  gathers each bucket across blocks and nodes and pairs its members as the local engine
  does (each with its next ``GROUP_WINDOW`` in ``_row`` order); the driver verifies the
  distinct candidates by exact Jaccard on the shingles of the rows involved, joins the
  confirmed pairs by a union-find and picks each cluster's keeper by
  :func:`synth.curate.clusters.keepers` (best score, else first), so clusters and keepers
  are global, never per worker. The driver holds the candidate rows' shingles and one
  int64 per kept row: fine at millions of rows.

Any other step stops the run before Ray starts, naming the step (:func:`check_supported`).
The kept and rejected rows come back to the driver, which checks kept + rejected = input
and writes the same files as the local engine.
"""

from __future__ import annotations

import glob as globmod
import logging
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from synth.errors import ConfigError, InputError

__all__ = ["RayRun", "check_supported", "parquet_sources", "input_schema", "row_count", "run",
           "SPECIAL_STEPS"]

#: steps that are not row-local but have a Ray implementation here
SPECIAL_STEPS = ("exact_dedup", "near_dedup")
_BOOK = ("_row", "_drop", "_by")
_PARTS_PER_CPU = 1  # hash groups per CPU for the dedup shuffles


@dataclass
class RayRun:
    """What the Ray engine hands back to the runner: the rows (polars, on the driver), every
    input id (for the kept + rejected = input check), the step summaries, the schema."""

    kept: pl.DataFrame
    rejected: pl.DataFrame
    input_ids: pl.Series
    steps: list[dict[str, Any]]
    nodes: int


def check_supported(filters) -> None:
    """A ConfigError naming the first step that has no Ray implementation yet."""
    for step, where in zip(filters.steps, filters.origins):
        if not getattr(step, "row_local", False) and step.name not in SPECIAL_STEPS:
            raise ConfigError(
                f"step {step.name!r} ({where.path}, line {where.line}) does not run on the "
                "Ray engine yet (row-local steps, exact_dedup and near_dedup do): use "
                "--engine local, or leave the step out")


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


def _fragments(fs, files: list[str]) -> tuple[list[dict], pa.Schema]:
    """One item per row group: file, row group, first ``_row``; and the common schema."""
    import pyarrow.parquet as pq

    items, offset, schema = [], 0, None
    for f in files:
        with fs.open_input_file(f) as fh:
            meta = pq.ParquetFile(fh).metadata
            s = meta.schema.to_arrow_schema()
        if schema is None:
            schema = s
        elif s.names != schema.names:
            raise InputError(f"shard columns differ from the first shard's ({schema.names})",
                             path=f)
        for g in range(meta.num_row_groups):
            items.append({"file": f, "group": g, "offset": offset})
            offset += meta.row_group(g).num_rows
    if schema is None:
        raise InputError("no rows")
    return items, schema


def input_schema(fs, files: list[str]) -> dict[str, Any]:
    """The rows' columns and polars types (the first shard's: the others must match)."""
    import pyarrow.parquet as pq

    with fs.open_input_file(files[0]) as fh:
        schema = pq.read_schema(fh)
    return dict(pl.from_arrow(schema.empty_table()).schema)


def row_count(fs, files: list[str]) -> int:
    """Rows in all the files, from their footers."""
    import pyarrow.parquet as pq

    total = 0
    for f in files:
        with fs.open_input_file(f) as fh:
            total += pq.ParquetFile(fh).metadata.num_rows
    return total


def _to_arrow(df: pl.DataFrame) -> pa.Table:
    return df.to_arrow(compat_level=pl.CompatLevel.oldest())


def _read_fragment(batch: dict, uri_fs) -> pa.Table:
    import pyarrow.parquet as pq

    out = []
    for f, g, off in zip(batch["file"], batch["group"], batch["offset"]):
        with uri_fs.open_input_file(str(f)) as fh:
            t = pq.ParquetFile(fh).read_row_group(int(g))
        df = pl.from_arrow(t).with_columns(
            pl.int_range(int(off), int(off) + t.num_rows, dtype=pl.Int64).alias("_row"),
            pl.lit(None, pl.String).alias("_drop"), pl.lit(None, pl.Int32).alias("_by"))
        out.append(df)
    return _to_arrow(pl.concat(out, how="vertical_relaxed"))


def _live(block: pa.Table) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``(all rows, kept rows without the bookkeeping columns)`` of a block."""
    df = pl.from_arrow(block)
    return df, df.filter(pl.col("_drop").is_null())


def _row_local(block: pa.Table, steps: list) -> pa.Table:
    """Row-local steps, each on the rows the steps before it kept (``(index, step)``
    pairs, consecutive in the filter set): their own code, block by block."""
    df = pl.from_arrow(block)
    for index, step in steps:
        live = df.filter(pl.col("_drop").is_null())
        v = step(live.drop(list(_BOOK)))
        if v.df.height != live.height or len(v.drop) != live.height:
            raise RuntimeError(f"step {step.name!r} changed the number of rows")
        new = v.df.with_columns(live["_row"], v.drop.alias("_drop"),
                                pl.when(v.drop.is_not_null()).then(pl.lit(index, pl.Int32))
                                .otherwise(None).alias("_by"))
        dead = df.filter(pl.col("_drop").is_not_null())
        df = pl.concat([new, dead], how="diagonal_relaxed")
    return _to_arrow(df)


def _apply_drops(block: pa.Table, index: int, rows: np.ndarray, reasons: list[str],
                 extra=None) -> pa.Table:
    """Mark the kept rows of a block whose ``_row`` is in ``rows`` (sorted) as dropped
    with the matching reason; ``extra(live)`` adds columns to the kept rows."""
    df, live = _live(block)
    r = live["_row"].to_numpy()
    pos = np.searchsorted(rows, r)
    hit = (pos < len(rows)) & (rows[np.minimum(pos, max(len(rows) - 1, 0))] == r) \
        if len(rows) else np.zeros(len(r), bool)
    why = np.full(len(r), None, dtype=object)
    why[hit] = np.asarray(reasons, dtype=object)[pos[hit]]
    new = live.with_columns(pl.Series("_drop", why.tolist(), dtype=pl.String))
    new = new.with_columns(pl.when(pl.col("_drop").is_not_null()).then(pl.lit(index, pl.Int32))
                           .otherwise(None).alias("_by"))
    if extra is not None:
        new = extra(new)
    dead = df.filter(pl.col("_drop").is_not_null())
    return _to_arrow(pl.concat([new, dead], how="diagonal_relaxed"))


def _collect(ds) -> pl.DataFrame:
    import ray

    tables = [t for t in ray.get(ds.to_arrow_refs()) if t.num_rows]
    if not tables:
        return pl.DataFrame()
    return pl.concat([pl.from_arrow(t) for t in tables], how="diagonal_relaxed")


def _parts() -> int:
    import ray

    return max(2, int(ray.cluster_resources().get("CPU", 1)) * _PARTS_PER_CPU)


# ------------------------------------------------------------------------- exact_dedup

def _exact_keys(block: pa.Table, step, parts: int) -> pa.Table:
    _, live = _live(block)
    keys = step.keys(live.drop(list(_BOOK)))
    part = keys.hash(seed=7) % parts
    return _to_arrow(pl.DataFrame({"part": part.cast(pl.Int64), "key": keys,
                                   "_row": live["_row"], "id": live["id"].cast(pl.String)}))


def _exact_group(group: pa.Table) -> pa.Table:
    df = pl.from_arrow(group).sort("_row")
    out = df.select(pl.col("_row"), pl.col("id").first().over("key").alias("first"),
                    pl.col("_row").first().over("key").alias("first_row"))
    out = out.filter(pl.col("_row") != pl.col("first_row")).select(
        "_row", pl.format("duplicate: of {}", pl.col("first")).alias("reason"))
    return _to_arrow(out)


def _exact_dedup(ds, step, index: int):
    parts = _parts()
    keys = ds.map_batches(_exact_keys, batch_format="pyarrow", batch_size=None,
                          fn_args=(step, parts))
    drops = _collect(keys.groupby("part", num_partitions=parts).map_groups(_exact_group, batch_format="pyarrow"))
    if drops.height:
        drops = drops.sort("_row")
        rows, reasons = drops["_row"].to_numpy(), drops["reason"].to_list()
    else:
        rows, reasons = np.zeros(0, np.int64), []
    out = ds.map_batches(_apply_drops, batch_format="pyarrow", batch_size=None,
                         fn_args=(index, rows, reasons)).materialize()
    return out, {}


# -------------------------------------------------------------------------- near_dedup

def _minhash_cfg(step):
    from synth.curate.minhash import MinHashConfig

    return MinHashConfig(num_perm=step.num_perm, shingle=step.shingle,
                         threshold=step.threshold, seed=step.seed)


def _near_hash(block: pa.Table, step) -> pa.Table:
    """Per kept row: ``_row``, id, keeper score, shingle hashes (list) and band keys."""
    from synth.curate.minhash import band_keys, shingle_sets
    from synth.curate.steps import field_texts, keeper_scores

    _, live = _live(block)
    rows = live.drop(list(_BOOK))
    sig, sh, counts = shingle_sets(field_texts(rows, step.field).to_list(), _minhash_cfg(step))
    scores, _ = keeper_scores(rows, step.score_column)
    keys = band_keys(sig, _minhash_cfg(step))
    offs = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    shl = pa.LargeListArray.from_arrays(pa.array(offs), pa.array(sh, pa.uint32()))
    score = np.asarray(scores if scores is not None else np.zeros(len(rows)), np.float64)
    return pa.table({"_row": live["_row"].to_numpy(), "id": live["id"].cast(pl.String)
                     .to_arrow(), "score": score, "sh": shl,
                     "keys": pa.FixedSizeListArray.from_arrays(pa.array(keys.ravel()),
                                                               keys.shape[1])})


def _near_buckets(block: pa.Table, parts: int) -> pa.Table:
    """One row per (row, band) of the rows with shingles: the band key and its hash group."""
    r = block.column("_row").to_numpy()
    n_sh = pa.compute.list_value_length(block.column("sh")).to_numpy()
    keys = np.asarray(block.column("keys").combine_chunks().flatten()).reshape(len(r), -1)
    ok = n_sh > 0
    r, keys = r[ok], keys[ok]
    b = keys.shape[1]
    band = np.tile(np.arange(b, dtype=np.int64), len(r))
    key = keys.ravel()
    return pa.table({"part": ((key % np.uint64(parts)).astype(np.int64)), "band": band,
                     "key": key, "_row": np.repeat(r, b)})


def _near_pairs(group: pa.Table) -> pa.Table:
    """Candidate pairs of a hash group: in each (band, key) bucket, each row with the next
    ``GROUP_WINDOW`` rows in ``_row`` order (the local engine's pairing)."""
    from synth.curate.minhash import GROUP_WINDOW

    df = pl.from_arrow(group).sort(["band", "key", "_row"])
    band, key, row = (df[c].to_numpy() for c in ("band", "key", "_row"))
    out = []
    for d in range(1, min(GROUP_WINDOW, len(row) - 1) + 1):
        eq = np.flatnonzero((key[d:] == key[:-d]) & (band[d:] == band[:-d]))
        if not len(eq):
            break
        out.append(np.stack([row[eq], row[eq + d]], axis=1))
    pairs = np.concatenate(out) if out else np.zeros((0, 2), np.int64)
    return pa.table({"a": pairs[:, 0], "b": pairs[:, 1]})


def _near_fetch(block: pa.Table, wanted: np.ndarray) -> pa.Table:
    r = block.column("_row").to_numpy()
    return block.filter(pa.array(np.isin(r, wanted))).select(["_row", "id", "score", "sh"])


def _near_mark(live: pl.DataFrame, order: np.ndarray, rows: np.ndarray, cid: np.ndarray,
               size: np.ndarray) -> pl.DataFrame:
    """``cluster_id`` (the local engine's: the lowest position among the step's input
    rows) and ``cluster_size`` of a block's kept rows."""
    r = live["_row"].to_numpy()
    own = np.searchsorted(order, r).astype(np.int64)
    pos = np.searchsorted(rows, r)
    hit = (pos < len(rows)) & (rows[np.minimum(pos, max(len(rows) - 1, 0))] == r) \
        if len(rows) else np.zeros(len(r), bool)
    c = np.where(hit, cid[np.minimum(pos, max(len(rows) - 1, 0))] if len(rows) else own, own)
    s = np.where(hit, size[np.minimum(pos, max(len(rows) - 1, 0))] if len(rows) else 1, 1)
    return live.with_columns(pl.Series("cluster_id", c.astype(np.int64)),
                             pl.Series("cluster_size", s.astype(np.int64)))


def _near_dedup(ds, step, index: int):
    from synth.curate.clusters import connected_components, keepers
    from synth.curate.minhash import exact_jaccard, kernel_name

    parts = _parts()
    hashed = ds.map_batches(_near_hash, batch_format="pyarrow", batch_size=None,
                            fn_args=(step,)).materialize()
    buckets = hashed.map_batches(_near_buckets, batch_format="pyarrow", batch_size=None,
                                 fn_args=(parts,))
    pairs = _collect(buckets.groupby("part", num_partitions=parts).map_groups(_near_pairs, batch_format="pyarrow"))
    if pairs.height:
        a, b = pairs["a"].to_numpy(), pairs["b"].to_numpy()
        code = np.unique(np.minimum(a, b).astype(np.int64) << 32 | np.maximum(a, b))
        a, b = code >> 32, code & 0xFFFFFFFF
    else:
        a = b = np.zeros(0, np.int64)
    involved = np.unique(np.concatenate([a, b]))
    # every kept row's _row, sorted: its position is the local engine's row index
    order = np.sort(_collect(hashed.select_columns(["_row"]))["_row"].to_numpy()) \
        if hashed.count() else np.zeros(0, np.int64)
    rows = np.zeros(0, np.int64)
    cid = size = np.zeros(0, np.int64)
    drop_rows, reasons, confirmed = np.zeros(0, np.int64), [], 0
    if len(involved):
        got = _collect(hashed.map_batches(_near_fetch, batch_format="pyarrow",
                                          batch_size=None, fn_args=(involved,))).sort("_row")
        rows = got["_row"].to_numpy()
        counts = got["sh"].list.len().to_numpy().astype(np.int64)
        sh = got["sh"].explode().drop_nulls().to_numpy().astype(np.uint32)
        offs = np.cumsum(counts) - counts
        ia, ib = np.searchsorted(rows, a), np.searchsorted(rows, b)
        ok = exact_jaccard(ia, ib, sh, offs, counts) >= step.threshold - 1e-12
        confirmed = int(ok.sum())
        lab = connected_components(len(rows), ia[ok], ib[ok])
        keep_at = keepers(lab, got["score"].to_numpy())
        size = np.bincount(lab, minlength=len(rows))[lab].astype(np.int64)
        cid = np.searchsorted(order, rows[lab]).astype(np.int64)
        gone = np.flatnonzero(keep_at != np.arange(len(rows)))
        ids = got["id"].to_list()
        drop_rows = rows[gone]
        reasons = [f"near-duplicate: of {ids[keep_at[i]]}" for i in gone]
    n_keep = len(order) - len(drop_rows)
    # which score ranked the keepers: the same for every block (it depends on the columns)
    ranked_by = _ranked_by(ds, step)

    def extra(live, order=order, rows=rows, cid=cid, size=size):
        return _near_mark(live, order, rows, cid, size)

    out = ds.map_batches(_apply_drops, batch_format="pyarrow", batch_size=None,
                         fn_args=(index, drop_rows, reasons, extra)).materialize()
    largest = int(size.max(initial=1)) if len(order) else 0
    figures = {"minhash": {"pairs_checked": int(len(a)), "pairs_confirmed": confirmed,
                           "clusters": n_keep, "largest_cluster": largest,
                           "kernel": kernel_name(), "keeper_by": ranked_by or "first"}}
    return out, figures


def _ranked_by(ds, step) -> str | None:
    from synth.curate.steps import keeper_scores

    schema = ds.schema()
    empty = pa.schema(list(zip(schema.names, schema.types))).empty_table()
    return keeper_scores(pl.from_arrow(empty), step.score_column)[1]


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


def run(filters, source: str, *, address: str | None = None,
        on_step=None) -> RayRun:
    """Run ``filters`` over the parquet rows ``source`` means on Ray (see the module)."""
    import ray
    import ray.data

    check_supported(filters)
    fs, files = parquet_sources(str(source))
    items, _ = _fragments(fs, files)
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
            _read_fragment, batch_size=1, batch_format="numpy", fn_args=(fs,)).materialize()
        ids = _collect(ds.select_columns(["id"]))["id"] if ds.count() else pl.Series("id", [])
        if ids.n_unique() != len(ids):
            dup = ids.filter(ids.is_duplicated()).first()
            raise InputError(f"ids must be unique; {dup!r} repeats", path=str(source),
                             field="id")
        cols, figures, seconds = [], {}, {}
        have = pl.DataFrame(schema=input_schema(fs, files))  # the columns, step by step
        for group in _groups(filters.steps):
            t = time.perf_counter()
            first, step = group[0]
            if step.name == "exact_dedup":
                ds, figures[first] = _exact_dedup(ds, step, first)
            elif step.name == "near_dedup":
                ds, figures[first] = _near_dedup(ds, step, first)
            else:
                ds = ds.map_batches(_row_local, batch_format="pyarrow", batch_size=None,
                                    fn_args=(group,))
                ds = ds.materialize()
            for i, st in group:  # fused steps share the group's time
                seconds[i] = (time.perf_counter() - t) / len(group)
                have = st(have).df if getattr(st, "row_local", False) else \
                    have.with_columns(*[pl.lit(None).alias(c) for c in st.adds()])
                cols.append(list(have.columns))
        everything = _collect(ds)
    finally:
        if started:
            ray.shutdown()
    steps = _summaries(everything, filters, len(ids), seconds, figures)
    for st in steps:
        if on_step is not None:
            on_step(st)
    return _split(everything, filters, cols, ids, steps, nodes)


def _groups(steps: list) -> list[list]:
    """``[(index, step), ...]`` runs: consecutive row-local steps together (one pass over
    the blocks), each other step alone."""
    out: list[list] = []
    for i, st in enumerate(steps):
        if getattr(st, "row_local", False) and out and getattr(out[-1][0][1], "row_local",
                                                                False):
            out[-1].append((i, st))
        else:
            out.append([(i, st)])
    return out


def _summaries(df: pl.DataFrame, filters, total: int, seconds, figures) -> list[dict]:
    """Each step's line of ``curation.json``, from the rows' ``_by`` and ``_drop``."""
    out, live = [], total
    for i, step in enumerate(filters.steps):
        why = df.filter(pl.col("_by") == i)["_drop"].to_list() if df.height else []
        reasons = Counter(r.split(":", 1)[0] for r in why)
        out.append({"step": step.name, "in": live, "kept": live - len(why),
                    "dropped": len(why), "reasons": dict(reasons.most_common()),
                    "seconds": round(seconds.get(i, 0.0), 4)})
        if figures.get(i):
            out[-1]["info"] = figures[i]
        elif getattr(step, "row_local", False) and df.height:
            # ran block by block: its figures and warnings over every row it saw
            seen = df.filter(pl.col("_by").is_null() | (pl.col("_by") >= i)).sort("_row")
            made = all(c in seen.columns for c in step.adds())
            whole = step.figures_from_rows(seen) if made else None
            if whole is not None:
                info, warns = whole
                if info:
                    out[-1]["info"] = dict(info)
                if warns:
                    out[-1]["warnings"] = list(warns)
        live -= len(why)
    return out


def _split(df: pl.DataFrame, filters, cols, ids, steps, nodes) -> RayRun:
    """Kept rows in input order; rejected rows step by step, each in input order, with the
    columns they had when dropped (the local engine's frames)."""
    df = df.sort("_row")
    src = [c for c in df.columns if c not in _BOOK]
    kept_cols = cols[-1] if cols else src
    kept = df.filter(pl.col("_drop").is_null()).select(kept_cols)
    parts = []
    for i, step in enumerate(filters.steps):
        d = df.filter(pl.col("_by") == i)
        if d.height:
            parts.append(d.select(cols[i] + ["_drop"]).rename({"_drop": "drop_reason"})
                         .with_columns(pl.lit(step.name).alias("dropped_by")))
    rej = pl.concat(parts, how="diagonal_relaxed") if parts else \
        df.select(src).clear().with_columns(pl.lit(None, pl.String).alias("drop_reason"),
                                            pl.lit(None, pl.String).alias("dropped_by"))
    return RayRun(kept, rej, ids, steps, nodes)
