"""How the Ray engine runs the steps that are not row-local, each giving the local
engine's answer (:mod:`synth.curate.ray_engine` says which step goes where):

- ``exact_dedup``: each block computes the step's own keys; a Ray Data groupby on a hash
  of the key brings every copy of a text into one group, where the lowest ``_row`` (the
  local engine's "first occurrence") is kept;
- ``near_dedup``: MinHash signatures, shingle hashes and LSH band keys per block
  (:mod:`synth.curate.minhash`'s own functions); a groupby on a hash of the band key
  gathers each bucket across blocks and nodes and pairs its members as the local engine
  does (each with its next ``GROUP_WINDOW`` in ``_row`` order); the driver verifies the
  distinct candidates by exact Jaccard on the shingles of the rows involved, joins the
  confirmed pairs by a union-find and picks each cluster's keeper by
  :func:`synth.curate.clusters.keepers`, so clusters and keepers are global, never per
  worker. The driver holds the candidate rows' shingles and one int64 per kept row;
- a step with a ``group_key`` (``self_consistency``: ``prompt_id``): a groupby on a hash
  of the key brings all the rows that share a key into one group, where the step runs on
  them in input order;
- ``verify_code``: the references are parsed block by block first, so that "every
  reference is malformed" is refused over the whole input as locally; the sandbox is
  probed on every node and a node where it is weak stops the run before any model code
  runs there (unless ``allow_weak_sandbox``), and each task checks its own process again;
  then the step runs block by block, in the same sandbox on every worker;
- steps that load a model (``uses_model``: ``quality``) run in an actor pool: one actor
  per GPU when the cluster has GPUs, else one per CPU, each loading the model once;
- ``semantic_dedup``: the embeddings are computed by such an actor pool; the driver
  gathers them (n × 384 float32: 1.5 GB at a million rows) and decides the clusters and
  keepers with the step's own code;
- any other step (``llm_judge``, a plugin's global step) runs on the driver over all the
  kept rows at once, exactly as the local engine runs it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from synth.curate.ray_blocks import (
    BOOK,
    apply_drops,
    collect,
    collect_columns,
    hash_parts,
    live_rows,
    lookup,
    row_local_map,
    run_steps,
    to_arrow,
)

#: each function: ``(ds, step, index) -> (ds, figures, warnings)``
__all__ = ["exact_dedup", "near_dedup", "grouped", "verify_code", "model_steps",
           "semantic_dedup", "on_driver"]


# ------------------------------------------------------------------------- exact_dedup

def _exact_keys(block: pa.Table, step, parts: int) -> pa.Table:
    _, live = live_rows(block)
    keys = step.keys(live.drop(list(BOOK)))
    part = keys.hash(seed=7) % parts
    return to_arrow(pl.DataFrame({"part": part.cast(pl.Int64), "key": keys,
                                  "_row": live["_row"], "id": live["id"].cast(pl.String)}))


def _exact_group(group: pa.Table) -> pa.Table:
    df = pl.from_arrow(group).sort("_row")
    out = df.select(pl.col("_row"), pl.col("id").first().over("key").alias("first"),
                    pl.col("_row").first().over("key").alias("first_row"))
    out = out.filter(pl.col("_row") != pl.col("first_row")).select(
        "_row", pl.format("duplicate: of {}", pl.col("first")).alias("reason"))
    return to_arrow(out)


def exact_dedup(ds, step, index: int):
    parts = hash_parts()
    keys = ds.map_batches(_exact_keys, batch_format="pyarrow", batch_size=None,
                          fn_args=(step, parts))
    drops = collect(keys.groupby("part", num_partitions=parts).map_groups(
        _exact_group, batch_format="pyarrow"))
    if drops.height:
        drops = drops.sort("_row")
        rows, reasons = drops["_row"].to_numpy(), drops["reason"].to_list()
    else:
        rows, reasons = np.zeros(0, np.int64), []
    out = ds.map_batches(apply_drops, batch_format="pyarrow", batch_size=None,
                         fn_args=(index, rows, reasons)).materialize()
    return out, {}, []


# -------------------------------------------------------------------------- near_dedup

def _minhash_cfg(step):
    from synth.curate.minhash import MinHashConfig

    return MinHashConfig(num_perm=step.num_perm, shingle=step.shingle,
                         threshold=step.threshold, seed=step.seed)


def _scores(rows: pl.DataFrame, score_column: str | None) -> np.ndarray:
    """The keeper scores of :func:`synth.curate.steps.keeper_scores` as float64 (NaN for
    a null; zeros when nothing ranks), so blocks can carry them."""
    from synth.curate.steps import keeper_scores

    scores, _ = keeper_scores(rows, score_column)
    return np.asarray(scores if scores is not None else np.zeros(rows.height), np.float64)


def _near_hash(block: pa.Table, step) -> pa.Table:
    """Per kept row: ``_row``, id, keeper score, shingle hashes (list) and band keys."""
    from synth.curate.minhash import band_keys, shingle_sets
    from synth.curate.steps import field_texts

    _, live = live_rows(block)
    rows = live.drop(list(BOOK))
    sig, sh, counts = shingle_sets(field_texts(rows, step.field).to_list(), _minhash_cfg(step))
    keys = band_keys(sig, _minhash_cfg(step))
    offs = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    shl = pa.LargeListArray.from_arrays(pa.array(offs), pa.array(sh, pa.uint32()))
    return pa.table({"_row": live["_row"].to_numpy(), "id": live["id"].cast(pl.String)
                     .to_arrow(), "score": _scores(rows, step.score_column), "sh": shl,
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
    hit, pos = lookup(rows, r)
    c = np.where(hit, cid[pos], own) if len(rows) else own
    s = np.where(hit, size[pos], 1) if len(rows) else np.ones(len(r), np.int64)
    return live.with_columns(pl.Series("cluster_id", c.astype(np.int64)),
                             pl.Series("cluster_size", s.astype(np.int64)))


def near_dedup(ds, step, index: int):
    from synth.curate.clusters import connected_components, keepers
    from synth.curate.minhash import exact_jaccard, kernel_name

    parts = hash_parts()
    hashed = ds.map_batches(_near_hash, batch_format="pyarrow", batch_size=None,
                            fn_args=(step,)).materialize()
    buckets = hashed.map_batches(_near_buckets, batch_format="pyarrow", batch_size=None,
                                 fn_args=(parts,))
    pairs = collect(buckets.groupby("part", num_partitions=parts).map_groups(
        _near_pairs, batch_format="pyarrow"))
    if pairs.height:
        a, b = pairs["a"].to_numpy(), pairs["b"].to_numpy()
        code = np.unique(np.minimum(a, b).astype(np.int64) << 32 | np.maximum(a, b))
        a, b = code >> 32, code & 0xFFFFFFFF
    else:
        a = b = np.zeros(0, np.int64)
    involved = np.unique(np.concatenate([a, b]))
    # every kept row's _row, sorted: its position is the local engine's row index
    order = np.sort(collect_columns(hashed, ["_row"])["_row"].to_numpy().astype(np.int64))
    rows = np.zeros(0, np.int64)
    cid = size = np.zeros(0, np.int64)
    drop_rows, reasons, confirmed = np.zeros(0, np.int64), [], 0
    if len(involved):
        got = collect(hashed.map_batches(_near_fetch, batch_format="pyarrow",
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

    def extra(live, order=order, rows=rows, cid=cid, size=size):
        return _near_mark(live, order, rows, cid, size)

    out = ds.map_batches(apply_drops, batch_format="pyarrow", batch_size=None,
                         fn_args=(index, drop_rows, reasons, extra)).materialize()
    largest = int(size.max(initial=1)) if len(order) else 0
    figures = {"minhash": {"pairs_checked": int(len(a)), "pairs_confirmed": confirmed,
                           "clusters": n_keep, "largest_cluster": largest,
                           "kernel": kernel_name(),
                           "keeper_by": _ranked_by(ds, step.score_column) or "first"}}
    return out, figures, []


def _ranked_by(ds, score_column: str | None) -> str | None:
    """Which column ranks a dedup step's keepers: the same for every block (it depends on
    the columns alone)."""
    from synth.curate.steps import keeper_scores

    schema = ds.schema()
    empty = pa.schema(list(zip(schema.names, schema.types))).empty_table()
    return keeper_scores(pl.from_arrow(empty), score_column)[1]


# ----------------------------------------------------------------------- grouped steps

def _tag_part(block: pa.Table, key: str, parts: int) -> pa.Table:
    df = pl.from_arrow(block)
    return to_arrow(df.with_columns((df[key].hash(seed=11) % parts).cast(pl.Int64)
                                    .alias("_part")))


def _group_run(group: pa.Table, index: int, step) -> pa.Table:
    # input order inside the group: a step that breaks ties by order decides as locally
    df = pl.from_arrow(group).drop("_part").sort("_row")
    return to_arrow(run_steps(df, [(index, step)]))


def grouped(ds, step, index: int):
    """A step whose rows are decided together by ``step.group_key`` (see the module)."""
    parts = hash_parts()
    tagged = ds.map_batches(_tag_part, batch_format="pyarrow", batch_size=None,
                            fn_args=(step.group_key, parts))
    out = tagged.groupby("_part", num_partitions=parts).map_groups(
        _group_run, batch_format="pyarrow", fn_args=(index, step))
    return out.materialize(), {}, []


# ------------------------------------------------------------------------- verify_code

def _code_refs(block: pa.Table, step) -> pa.Table:
    """Per block: references given, malformed, and the first malformed one's row."""
    _, live = live_rows(block)
    given, bad = step.reference_counts(live.drop(list(BOOK)))
    first = bad[0] if bad else (None, None, None)
    return pa.table({"given": [given], "bad": [len(bad)],
                     "row": pa.array([None if first[0] is None else
                                      int(live["_row"][first[0]])], pa.int64()),
                     "why": pa.array([first[2]], pa.string())})


def _id_at(block: pa.Table, row: int) -> pa.Table:
    r = block.column("_row").to_numpy()
    return block.filter(pa.array(r == row)).select(["id"])


def node_sandboxes() -> list[tuple[str, dict]]:
    """``(node address, containment())`` for every live node, each probed by a task
    pinned to that node: what protects model code there."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    @ray.remote(num_cpus=0)
    def probe() -> dict:
        from synth.curate.sandbox import containment

        return containment()

    nodes = [n for n in ray.nodes() if n.get("Alive")]
    refs = [probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(
        n["NodeID"], soft=False)).remote() for n in nodes]
    # nodes may share an address (several on one machine): the id tells them apart
    return [(f"{n.get('NodeManagerAddress', '?')} (node {n['NodeID'][:8]})", box)
            for n, box in zip(nodes, ray.get(refs))]


def _protections(box: dict) -> tuple:
    """What a containment report says is in force (not how the probe went about it)."""
    return tuple(repr(box.get(k)) for k in ("mode", "weak", "in_force", "missing", "summary"))


def _sandbox_figure(boxes: list[tuple[str, dict]], allow_weak: bool) -> dict[str, Any]:
    """``info.sandbox`` for a run on several nodes: the one description when every node
    has the same protections, else each node's, and ``weak`` when any node is weak."""
    first = dict(boxes[0][1])
    same = all(_protections(b) == _protections(boxes[0][1]) for _, b in boxes)
    out = {**first, "allow_weak_sandbox": allow_weak,
           "nodes": [{"node": n, "weak": b.get("weak"), "summary": b.get("summary")}
                     for n, b in boxes]}
    if not same:
        out["weak"] = any(b.get("weak") for _, b in boxes)
        out["summary"] = "not the same on every node: " + "; ".join(
            f"{n}: {b.get('summary')}" for n, b in boxes)
    return out


def verify_code(ds, step, index: int):
    from synth.curate.sandbox import weak_sandbox_message
    from synth.errors import ConfigError

    boxes = node_sandboxes()
    for node, box in boxes:
        if box.get("weak") and not step.allow_weak_sandbox:
            raise ConfigError(f"verify_code on the Ray node {node}: "
                              + weak_sandbox_message(box))
    refs = collect(ds.map_batches(_code_refs, batch_format="pyarrow", batch_size=None,
                                  fn_args=(step,)))
    given, bad = (int(refs[c].sum()) for c in ("given", "bad")) if refs.height else (0, 0)
    if given and bad == given:
        first = refs.filter(pl.col("row").is_not_null()).sort("row").row(0, named=True)
        # the id as the rows hold it (an int stays an int in the message, as locally)
        rid = collect(ds.map_batches(_id_at, batch_format="pyarrow", batch_size=None,
                                     fn_args=(first["row"],)))["id"][0]
        raise step.all_malformed(rid, first["why"], bad)
    out = ds.map_batches(row_local_map, batch_format="pyarrow", batch_size=None,
                         fn_args=([(index, step)],)).materialize()
    return out, {"sandbox": _sandbox_figure(boxes, step.allow_weak_sandbox)}, []


# ---------------------------------------------------------------- steps with a model

def _pool() -> dict[str, Any]:
    """An actor pool's size and resources: one actor per GPU when the cluster has GPUs,
    else one per CPU."""
    import ray

    res = ray.cluster_resources()
    gpus = int(res.get("GPU", 0))
    if gpus:
        return {"concurrency": gpus, "num_gpus": 1}
    return {"concurrency": max(1, int(res.get("CPU", 1))), "num_cpus": 1}


class _StepActor:
    """An actor of the pool: runs its steps on each block it gets. The model loads once
    per actor (:func:`synth.curate.embed.load_encoder` keeps it for the process)."""

    def __init__(self, steps: list):
        self.steps = steps

    def __call__(self, block: pa.Table) -> pa.Table:
        return row_local_map(block, self.steps)


def model_steps(ds, steps: list):
    """Row-local steps that load a model, on an actor pool (see the module)."""
    out = ds.map_batches(_StepActor, fn_constructor_args=(steps,), batch_format="pyarrow",
                         batch_size=None, **_pool())
    return out.materialize(), {}, []


class _Embedder:
    """An actor of the pool: the step's embeddings of each block's kept rows."""

    def __init__(self, step):
        self.step = step

    def __call__(self, block: pa.Table) -> pa.Table:
        _, live = live_rows(block)
        rows = live.drop(list(BOOK))
        e = self.step.embeddings(rows) if rows.height else np.zeros((0, 1), np.float32)
        d = e.shape[1]
        return pa.table({"_row": live["_row"].to_numpy(), "id": live["id"].cast(pl.String)
                         .to_arrow(), "score": _scores(rows, self.step.score_column),
                         "dim": np.full(len(e), d, np.int64),
                         "emb": pa.LargeListArray.from_arrays(
                             pa.array(np.arange(len(e) + 1, dtype=np.int64) * d),
                             pa.array(e.ravel(), pa.float32()))})


def semantic_dedup(ds, step, index: int):
    """Embeddings on an actor pool, clusters and keepers on the driver (see the module)."""
    got = collect(ds.map_batches(_Embedder, fn_constructor_args=(step,),
                                 batch_format="pyarrow", batch_size=None, **_pool()))
    if not got.height:
        return ds, {}, []
    got = got.sort("_row")
    d = int(got["dim"][0])
    e = got["emb"].explode().to_numpy().astype(np.float32).reshape(got.height, d)
    scores = got["score"].to_numpy() if _ranked_by(ds, step.score_column) else None
    labels, reasons = step.decide(e, scores, got["id"].to_list())
    rows = got["_row"].to_numpy()
    gone = np.flatnonzero(np.asarray([r is not None for r in reasons], bool))

    def extra(live, rows=rows, labels=labels):
        hit, pos = lookup(rows, live["_row"].to_numpy())
        return live.with_columns(pl.Series("semantic_cluster",
                                           np.where(hit, labels[pos], -1).astype(np.int64)))

    out = ds.map_batches(apply_drops, batch_format="pyarrow", batch_size=None,
                         fn_args=(index, rows[gone], [reasons[i] for i in gone], extra))
    return out.materialize(), {}, []


# --------------------------------------------------------------------------- on the driver

def on_driver(ds, step, index: int, out_dir=None):
    """A step that needs every row at once and has no Ray form: on the driver, over the
    kept rows in input order, as the local engine runs it; its figures and warnings are
    its own. Returns the kept rows' columns too (no rows: whatever the step added)."""
    import ray.data

    from synth.curate.steps import StepContext

    blocks = max(1, ds.num_blocks())
    df = collect(ds).sort("_row")
    report: dict[int, tuple] = {}
    df = run_steps(df, [(index, step)], ctx=StepContext(out=out_dir), report=report)
    size = -(-df.height // blocks) if df.height else 1
    tables = [to_arrow(df.slice(i, size)) for i in range(0, max(df.height, 1), size)]
    figures, warnings = report.get(index, ({}, []))
    kept = df.filter(pl.col("_drop").is_null()).drop(list(BOOK)).clear()
    return ray.data.from_arrow(tables).materialize(), figures, warnings, kept
