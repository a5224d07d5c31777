"""The ``near_dedup`` step: MinHash-LSH near-duplicates (``synth.curate.minhash``), one
representative kept per cluster: the highest ``score_column`` when given, else the highest
``quality`` / ``judge_score`` when an earlier step added one, else the first."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import polars as pl

from synth.curate.steps import (
    Step,
    Verdict,
    check_field,
    field_texts,
    keeper_scores,
    register_step,
)

__all__ = ["NearDedup"]


@register_step
@dataclass(frozen=True, kw_only=True)
class NearDedup(Step):
    """Adds ``cluster_id`` and ``cluster_size``; drops all but one member per cluster."""

    name: ClassVar[str] = "near_dedup"
    needs: ClassVar[tuple[str, ...]] = ("id",)
    produces: ClassVar[tuple[str, ...]] = ("cluster_id", "cluster_size")
    field: str = "response"
    threshold: float = 0.8
    num_perm: int = 128
    shingle: int = 5
    seed: int = 1
    score_column: str | None = None

    #: Inputs from this size on (bytes on disk) will take the numba kernel: load it while
    #: the rows are read (about 64M characters of text; parquet compresses them ~3x).
    PREPARE_FROM_BYTES: ClassVar[int] = 16 * 1024 * 1024

    def prepare(self, input_bytes: int) -> None:
        """Before the rows are read: start loading the MinHash kernel for a large input."""
        if input_bytes >= self.PREPARE_FROM_BYTES:
            from synth.curate.minhash import prewarm

            prewarm()

    def __post_init__(self):
        if not 0 < self.threshold <= 1 or self.num_perm < 8 or self.shingle < 1:
            raise ValueError("threshold in (0, 1], num_perm >= 8, shingle >= 1")
        check_field(self.field)

    def __call__(self, df: pl.DataFrame) -> Verdict:
        from synth.curate.minhash import MinHashConfig, kernel_name, near_duplicates

        cfg = MinHashConfig(num_perm=self.num_perm, shingle=self.shingle,
                            threshold=self.threshold, seed=self.seed)
        texts = field_texts(df, self.field).to_list()
        scores, ranked_by = keeper_scores(df, self.score_column)
        res = near_duplicates(texts, cfg, scores=scores)
        cluster = np.asarray(res.cluster_id, dtype=np.int64)
        keep = np.asarray(res.keep, dtype=bool)
        n = len(cluster)
        sizes = np.bincount(cluster, minlength=n)[cluster] if n else np.empty(0, np.int64)
        # reasons for the dropped rows only (columnar: no per-row Python over all rows)
        rep_of = np.zeros(n, np.int64)  # cluster id -> the row it keeps
        rep_of[cluster[keep]] = np.flatnonzero(keep)
        gone = np.flatnonzero(~keep)
        reasons = [f"near-duplicate: of {i}" for i in df["id"].gather(rep_of[cluster[gone]])
                   .to_list()]
        drops = pl.repeat(None, n, dtype=pl.String, eager=True).alias("drop")
        if len(gone):
            drops = drops.scatter(gone, pl.Series(reasons, dtype=pl.String))
        # what LSH looked at, for curation.json
        figures = {"minhash": {
            "pairs_checked": res.pairs_checked, "pairs_confirmed": res.pairs_confirmed,
            "clusters": res.num_clusters, "largest_cluster": int(sizes.max(initial=0)),
            "kernel": kernel_name(),
            "keeper_by": ranked_by or "first"}}
        out = df.with_columns(pl.Series("cluster_id", cluster),
                              pl.Series("cluster_size", sizes.astype(np.int64)))
        return Verdict(out, drops, figures=figures)
