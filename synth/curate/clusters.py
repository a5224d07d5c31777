"""Groups of near-duplicate rows: connected components of a pair list and the row each
group keeps. Shared by MinHash near-dedup (``minhash``) and semantic dedup (``embed``).

A vectorised union-find serves small graphs without importing scipy; from
:data:`SCIPY_MIN_EDGES` pairs, scipy's ``connected_components`` (faster there) if installed.
"""

from __future__ import annotations

import numpy as np

__all__ = ["connected_components", "keepers", "sorted_unique", "SCIPY_MIN_EDGES"]

SCIPY_MIN_EDGES = 1_000_000  # fewer confirmed pairs: the union-find (as fast, no import)
_UNLOADED = object()
# scipy.sparse(.csgraph), imported on first need (None without scipy: it is optional)
_coo_matrix: object = _UNLOADED
_connected_components: object = _UNLOADED


def sorted_unique(a: np.ndarray) -> np.ndarray:
    """``np.unique`` for big integer arrays: in numpy 2.4 it is ~80x slower than a sort."""
    a = np.sort(a)
    if len(a):
        keep = np.ones(len(a), bool)
        keep[1:] = a[1:] != a[:-1]
        a = a[keep]
    return a


def _scipy_components():
    """scipy's ``connected_components`` (imported now if need be), or None without scipy."""
    global _coo_matrix, _connected_components
    if _connected_components is _UNLOADED:
        try:
            from scipy.sparse import coo_matrix
            from scipy.sparse.csgraph import connected_components
        except ImportError:  # pragma: no cover - scipy is optional
            coo_matrix = connected_components = None
        _coo_matrix, _connected_components = coo_matrix, connected_components
    return _connected_components


def connected_components(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Label = lowest node index in each connected component."""
    if len(a) < SCIPY_MIN_EDGES or _scipy_components() is None:  # vectorised union-find
        parent = np.arange(n, dtype=np.int64)
        a, b = a.astype(np.int64), b.astype(np.int64)
        while True:
            pa, pb = parent[a], parent[b]
            lo = np.minimum(pa, pb)
            np.minimum.at(parent, pa, lo)
            np.minimum.at(parent, pb, lo)
            # pointer jumping
            while True:
                nxt = parent[parent]
                if np.array_equal(nxt, parent):
                    break
                parent = nxt
            if np.array_equal(parent[a], parent[b]):
                return parent
    g = _coo_matrix((np.ones(len(a), np.int8), (a, b)), shape=(n, n))
    _, lab = _connected_components(g, directed=False)
    first = np.full(lab.max() + 1 if n else 0, n, np.int64)
    np.minimum.at(first, lab, np.arange(n, dtype=np.int64))
    return first[lab]


def keepers(labels: np.ndarray, scores: np.ndarray | list | None) -> np.ndarray:
    """Per row, the row its cluster keeps: the highest score (first on ties, NaN lowest),
    else the first row."""
    n = len(labels)
    idx = np.arange(n)
    if scores is None:
        s = np.zeros(n)
    else:
        s = np.asarray(scores, dtype=np.float64)
        s = np.where(np.isnan(s), -np.inf, s)
    order = np.lexsort((idx, -s, labels))
    first = np.ones(n, bool)
    first[1:] = labels[order][1:] != labels[order][:-1]
    keeper = np.empty(labels.max() + 1 if n else 0, np.int64)
    keeper[labels[order[first]]] = order[first]
    return keeper[labels]
