"""MinHash-LSH near-duplicate detection for text, vectorised with numpy.

Pipeline (all numpy, no per-shingle Python objects):

1. **Normalise** a chunk of documents at once: join with NUL, ``str.lower`` (when
   ``lowercase``), encode UTF-8.  Word breaks are bytes <= 0x20 (whitespace, controls,
   the NUL document separator), DEL and, with ``normalize_punct``, every ASCII
   punctuation byte (so ``Hello, world!`` == ``hello world``; ``don't`` -> ``don t``).
   Non-ASCII bytes are word characters.  The break mask is a few numpy comparisons.
2. **Words** are the runs between breaks (one ``flatnonzero`` of the mask's transitions).
   Each word is hashed without Python objects: a uint64 view of the byte buffer with a
   1-byte stride loads the 8 bytes at every word start (and at start+8), masked to the
   word's length, combined with the length by odd multipliers and splitmix64-mixed;
   words longer than 16 bytes (rare) fold in 8 more bytes per round.
3. **Shingles** (``shingle`` consecutive words) are ``mix(sum_j word[i+j] * M_j)`` over the
   flat word-hash array, keeping only the window starts that stay inside one document.
   A document with fewer words than ``shingle`` has one shingle made from all its words
   (tagged with its word count).
4. **Signatures** use one-permutation hashing (OPH) with optimal densification
   (Li, Owen & Zhang 2012; Shrivastava 2017): each shingle hash is hashed once; its high
   32 bits pick one of ``num_perm`` bins (multiply-shift range reduction) and its low 32
   bits are the value; a signature slot is the minimum value in its bin
   (``np.minimum.at``).  Empty bins are filled by probing other bins in a fixed pseudo-random
   order shared by all documents, which keeps ``P[sig_a[j] == sig_b[j]] = Jaccard(a, b)``.
   This costs O(shingles) instead of O(shingles * num_perm) for classic k-permutation
   MinHash (128 multiply-min passes per shingle would alone exceed the time budget in
   numpy).  Signatures are uint32.  Densification makes the estimate a little noisier
   than k-permutation MinHash for documents with fewer shingles than ``num_perm``, which
   is one reason candidates are verified exactly (step 6).
5. **LSH**: ``b`` bands of ``r`` rows (``optimal_bands``); each band is mixed to one 64-bit
   key; documents are sorted by key (stably: input order within a key) and every pair of
   equal keys within ``GROUP_WINDOW`` positions of each other in the sorted order becomes a
   candidate (all pairs for groups up to that size; for bigger groups each member is paired
   with its next ``GROUP_WINDOW`` neighbours in input order, which still connects the whole
   group).
6. **Verify**: every candidate pair is checked with the *exact* Jaccard of the two
   documents' shingle-hash sets (vectorised: one sort of packed ``(pair, shingle, side)``
   keys, count duplicates) and confirmed when it is ``>= threshold``.  So a confirmed pair
   is a true near-duplicate (up to hash collisions); LSH only decides which pairs are
   looked at, and the recall-leaning banding (see ``optimal_bands``) is affordable
   because false candidates are cheap to reject.
7. **Cluster**: connected components of the confirmed pairs (a small vectorised
   union-find; ``scipy.sparse.csgraph.connected_components`` from ``synth.curate.clusters.SCIPY_MIN_EDGES``
   pairs on, when scipy is installed: both give the same labels, and importing scipy costs
   ~0.15 s, more than the union-find takes on a million pairs).  ``cluster_id[i]`` is the
   **lowest document index in i's cluster**, so a singleton's ``cluster_id`` is its own
   index.  ``keep`` marks one representative per cluster: highest score when ``scores`` is
   given (ties: lowest index), else the lowest index.

Empty documents (no words after normalisation) get no shingles and are never candidates:
each is its own cluster and is kept.

Shingling and signatures run per chunk (``_CHUNK_DOCS`` documents, at most ``_CHUNK_CHARS``
characters) on a thread pool with
one thread per available core (numpy releases the GIL in the heavy array operations; only
the join/lower/encode of each chunk holds it), and so do the LSH bands for large corpora.
Memory: 32 bits of every shingle hash of the corpus are kept for verification (4 bytes
per shingle, ~100 MB per 100k documents of 250 words) plus the uint32 signatures
(``4 * num_perm`` bytes per document).
"""

from __future__ import annotations

import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from synth.curate.clusters import connected_components, keepers, sorted_unique
from synth.hashing import mix64, ngram_sums, text_chunks

log = logging.getLogger("synth")

__all__ = ["MinHashConfig", "DedupResult", "optimal_bands", "signatures", "near_duplicates",
           "repeated_ngram_ratios", "shingle_sets", "band_keys", "exact_jaccard",
           "GROUP_WINDOW", "prewarm"]

_U64 = np.uint64
_MASK64 = (1 << 64) - 1
_EMPTY = np.uint32(0xFFFFFFFF)
_CHUNK_DOCS = 1024
_JIT_MIN_CHARS = 64_000_000  # below this, a process that has not loaded numba keeps numpy
_CHUNK_CHARS = 4_000_000  # and at most this much text per chunk: bounds per-thread memory
#: candidate pairs within one band bucket: each doc with the next GROUP_WINDOW in key order
GROUP_WINDOW = 32
_MAX_PROBES = 64


@dataclass(frozen=True, kw_only=True)
class MinHashConfig:
    num_perm: int = 128
    shingle: int = 5  # word n-grams
    threshold: float = 0.8
    seed: int = 1
    lowercase: bool = True
    normalize_punct: bool = True

    def __post_init__(self) -> None:
        if self.num_perm < 1:
            raise ValueError("num_perm must be >= 1")
        if self.shingle < 1:
            raise ValueError("shingle must be >= 1")
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError("threshold must be in (0, 1]")


@dataclass
class DedupResult:
    cluster_id: np.ndarray  # int64; lowest doc index in the cluster (own index if singleton)
    keep: np.ndarray  # bool; one representative per cluster
    pairs_checked: int  # distinct candidate pairs from LSH that were verified
    pairs_confirmed: int  # of those, pairs with exact shingle Jaccard >= threshold

    @property
    def num_clusters(self) -> int:
        return int(np.count_nonzero(self.keep))


# ----------------------------------------------------------------------------- bands


def _simpson(y: np.ndarray, a: float, b: float) -> np.ndarray:
    """Simpson's rule over the last axis of ``y`` sampled on an odd-sized grid in [a, b]."""
    n = y.shape[-1] - 1
    w = np.ones(n + 1)
    w[1:-1:2], w[2:-1:2] = 4.0, 2.0
    return (y @ w) * (b - a) / (3 * n)


def optimal_bands(threshold: float, num_perm: int, *, fp_weight: float = 0.1,
                  fn_weight: float = 0.9) -> tuple[int, int]:
    """Pick LSH ``(b, r)`` with ``b * r <= num_perm``.

    Minimises ``fp_weight * FP + fn_weight * FN`` where FP is the area under the S-curve
    ``P(s) = 1 - (1 - s**r)**b`` below ``threshold`` and FN the area above it of
    ``1 - P(s)`` (the same objective as datasketch's ``optimal_param``, which weights them
    0.5/0.5).  The 0.1/0.9 default favours recall: a false positive only costs one exact
    Jaccard check (every candidate is verified), a false negative is a missed duplicate.
    At threshold 0.8 / 128 perms the choices are::

        weights   (b, r)   P(0.7)  P(0.8)  P(0.85)  P(0.9)
        0.5/0.5   (9, 13)  0.08    0.40    0.69     0.93   (datasketch's objective)
        0.3/0.7   (11, 11) 0.20    0.63    0.87     0.98
        0.1/0.9   (14, 9)  0.44    0.87    0.975    0.999  (default)

    0.3/0.7 would miss ~13% of pairs at Jaccard 0.85; 0.1/0.9 keeps recall >= 0.95 there
    while the extra candidates (mostly pairs at Jaccard 0.6-0.8) are rejected by the exact
    check.
    """
    if not 0.0 < threshold <= 1.0:
        raise ValueError("threshold must be in (0, 1]")
    br = np.array([(b, r) for b in range(1, num_perm + 1) for r in range(1, num_perm // b + 1)])
    bb, rr = br[:, :1].astype(float), br[:, 1:].astype(float)
    lo = np.linspace(0.0, threshold, 121)[None, :]
    hi = np.linspace(threshold, 1.0, 121)[None, :]
    fp = _simpson(1 - (1 - lo**rr) ** bb, 0.0, threshold)
    fn = _simpson((1 - hi**rr) ** bb, threshold, 1.0)
    err = fp_weight * fp + fn_weight * fn
    b, r = br[int(np.argmin(err))]
    return int(b), int(r)


_BANDS_CACHE: dict[tuple[float, int], tuple[int, int]] = {}


def _bands(cfg: MinHashConfig) -> tuple[int, int]:
    key = (cfg.threshold, cfg.num_perm)
    if key not in _BANDS_CACHE:
        _BANDS_CACHE[key] = optimal_bands(cfg.threshold, cfg.num_perm)
    return _BANDS_CACHE[key]


# ----------------------------------------------------------------------------- hashing


class _Params:
    """Seed-derived constants shared by every chunk."""

    def __init__(self, cfg: MinHashConfig):
        rng = np.random.Generator(np.random.PCG64(cfg.seed))
        self.cfg = cfg
        self.W = rng.integers(1, 1 << 63, size=4, dtype=np.uint64) | _U64(1)
        self.M = rng.integers(1, 1 << 63, size=cfg.shingle + 1, dtype=np.uint64) | _U64(1)
        self.salt = rng.integers(0, 1 << 63, dtype=np.uint64)
        self.band_M = rng.integers(1, 1 << 63, size=cfg.num_perm, dtype=np.uint64) | _U64(1)
        # Densification probe order: for empty bin j, attempt t looks at bin probes[t, j].
        self.probes = rng.integers(0, cfg.num_perm, size=(_MAX_PROBES, cfg.num_perm))
        # byte -> is a word break, for the compiled kernel (same classes as _separators)
        self.sep_table = _separators(np.arange(256, dtype=np.uint8), cfg.normalize_punct)


_PARAMS_CACHE: dict[MinHashConfig, _Params] = {}


def _params(cfg: MinHashConfig) -> _Params:
    pr = _PARAMS_CACHE.get(cfg)
    if pr is None:
        if len(_PARAMS_CACHE) > 8:
            _PARAMS_CACHE.clear()
        pr = _PARAMS_CACHE.setdefault(cfg, _Params(cfg))
    return pr


_CASEFOLD = np.uint64(0xDFDFDFDFDFDFDFDF)
_LOW_MASKS = np.array([0] + [(1 << (8 * i)) - 1 for i in range(1, 8)] + [_MASK64], dtype=np.uint64)


def _encode(texts: list[str], pr: _Params) -> tuple[bytes, bool]:
    """UTF-8 of the chunk, documents separated by NUL, framed by spaces, plus padding for
    the 8-byte word loads; and whether word bytes must be case-folded.

    With ``lowercase`` and ``normalize_punct`` the only ASCII word bytes are
    ``[0-9A-Za-z]``, and clearing bit 0x20 of every word byte maps them one-to-one onto
    ``[0-9A-Z]`` -- ASCII lowercasing at no cost.  It is applied to every chunk (so hashes
    agree across chunks); a chunk with non-ASCII text is also ``str.lower``-ed first (for
    non-ASCII letters).  On non-ASCII bytes the fold merges byte values that differ only in
    bit 0x20, so two different words can share a hash only if every byte where they differ
    differs in that bit alone: a negligible loss for similarity estimation.
    """
    joined = "\x00".join(texts)
    cfg = pr.cfg
    casefold = cfg.lowercase and cfg.normalize_punct
    if cfg.lowercase and not (casefold and joined.isascii()):
        joined = joined.lower()
    b = b" " + joined.encode("utf-8", "surrogatepass") + b"\x00"
    return b + b" " * (24 - len(b) % 8), casefold  # padding: 16..23 bytes, length % 8 == 0


def _separators(body: np.ndarray, punct: bool) -> np.ndarray:
    """Word-break mask: NUL, controls and space (bytes <= 0x20), DEL, and with ``punct``
    all ASCII punctuation.  Bytes >= 0x80 (non-ASCII UTF-8) are word characters."""
    if not punct:
        sep = body <= 0x20
        sep |= body == 0x7F
        return sep
    sep = body <= 0x2F  # controls, space, !"#$%&'()*+,-./
    tmp = np.subtract(body, np.uint8(0x3A))
    sep |= tmp <= 6  # :;<=>?@
    np.subtract(body, np.uint8(0x5B), out=tmp)
    sep |= tmp <= 5  # [\]^_`
    np.subtract(body, np.uint8(0x7B), out=tmp)
    sep |= tmp <= 4  # {|}~ DEL
    return sep


def _chunk_shingles(texts: list[str], pr: _Params) -> tuple[np.ndarray, np.ndarray]:
    """Shingle hashes of a chunk of documents.

    Returns ``(hashes uint64[S], counts int64[n])`` with the shingles of document ``i`` at
    ``hashes[sum(counts[:i]) : sum(counts[:i+1])]``.
    """
    cfg = pr.cfg
    k = cfg.shingle
    n = len(texts)
    buf, casefold = _encode(texts, pr)
    raw = np.frombuffer(buf, dtype=np.uint8)
    body = raw[: len(raw) - 16]
    doc_end = np.flatnonzero(body == 0)  # one NUL after every document
    if len(doc_end) != n:  # a document contains NUL: replace it (it is a word break anyway)
        buf, casefold = _encode([t.replace("\x00", " ") for t in texts], pr)
        raw = np.frombuffer(buf, dtype=np.uint8)
        body = raw[: len(raw) - 16]
        doc_end = np.flatnonzero(body == 0)
    sep = _separators(body, cfg.normalize_punct)
    # word boundaries: body starts and ends with a separator, so transitions alternate
    tr = np.flatnonzero(sep[1:] != sep[:-1]) + 1
    starts, ends = tr[0::2], tr[1::2]
    wcount = np.diff(np.searchsorted(starts, doc_end), prepend=0)
    # word hashes: load the 8-byte little-endian words at every word start and start+8
    # straight from the buffer (a uint64 view with a 1-byte stride), mask them to the word
    # length with shifts, combine with the length and mix
    U = np.ndarray(shape=(len(raw) - 7,), dtype="<u8", buffer=raw, strides=(1,))
    ln = ends - starts
    lu = ln.astype(np.uint64)
    wh = U[starts]
    g = U[starts + 8]
    with np.errstate(over="ignore"):
        # keep the word's first min(len, 8) bytes: shift the rest out and back
        s1 = np.minimum(lu, _U64(8))
        s1 *= _U64(8)
        np.subtract(_U64(64), s1, out=s1)
        wh <<= s1
        wh >>= s1
        # bytes 8..15 (a shift of 64 gives 0 for words of <= 8 bytes)
        np.minimum(lu, _U64(16), out=s1)
        s1 *= _U64(8)
        np.subtract(_U64(128), s1, out=s1)
        g <<= s1
        g >>= s1
        if casefold:
            wh &= _CASEFOLD
            g &= _CASEFOLD
        wh *= pr.W[0]
        g *= pr.W[2]
        wh += g
        lu *= pr.W[1]
        wh += lu
        del g, s1, lu
        long_ = np.flatnonzero(ln > 16)
        q = 16
        while len(long_):  # rare: words longer than 16 bytes, 8 more bytes per round
            rest = ln[long_] - q
            h = mix64(wh[long_])
            x = U[starts[long_] + q] & _LOW_MASKS[np.minimum(rest, 8)]
            if casefold:
                x &= _CASEFOLD
            h += x * pr.W[3]
            wh[long_] = h
            q += 8
            long_ = long_[rest > 8]
        mix64(wh)
        sh, counts = ngram_sums(wh, wcount, k, pr.M)
        sh ^= pr.salt
    mix64(sh)
    return sh, counts


def _oph(sh: np.ndarray, counts: np.ndarray, pr: _Params) -> np.ndarray:
    """One-permutation MinHash with optimal densification: (n, num_perm) uint32.

    The (already mixed) shingle hash's high 32 bits choose the bin, its low 32 bits are the
    value."""
    K = pr.cfg.num_perm
    n = len(counts)
    with np.errstate(over="ignore"):
        b = ((sh >> _U64(32)) * _U64(K)) >> _U64(32)
    key = np.repeat(np.arange(0, n * K, K, dtype=np.int64), counts)
    key += b.view(np.int64)
    sig = np.full(n * K, _EMPTY, np.uint32)
    np.minimum.at(sig, key, sh.astype(np.uint32))
    return _densify(sig.reshape(n, K), counts, pr)


def _densify(sig: np.ndarray, counts: np.ndarray, pr: _Params) -> np.ndarray:
    """Fill the empty bins of non-empty documents (in place) by the shared probe order."""
    orig_empty = sig == _EMPTY
    orig_empty[counts == 0] = False
    rows, cols = np.nonzero(orig_empty)
    if len(rows):
        orig = sig.copy()
        for t in range(_MAX_PROBES):
            v = orig[rows, pr.probes[t, cols]]
            hit = v != _EMPTY
            sig[rows[hit], cols[hit]] = v[hit]
            miss = ~hit
            rows, cols = rows[miss], cols[miss]
            if not len(rows):
                break
        if len(rows):
            # very small docs: fall back to the nearest originally non-empty bin to the right
            for i in np.unique(rows):
                ne = np.flatnonzero(orig[i] != _EMPTY)
                sel = cols[rows == i]
                pos = np.searchsorted(ne, sel) % len(ne)
                sig[i, sel] = orig[i, ne[pos]]
    return sig



_KERNEL: list = []  # [compiled kernel or None], filled on first use
_KERNEL_LOCK = threading.Lock()  # one load, whether prewarm's thread or a step asks first


def prewarm() -> threading.Thread:
    """Load the numba kernel on a daemon thread, so that its ~0.5 s (numba import, cache
    load) overlaps whatever the caller does next (reading the rows releases the GIL); a
    step that needs it meanwhile waits for the same load. Returns the thread."""
    t = threading.Thread(target=_kernel, name="synth-minhash-prewarm", daemon=True)
    t.start()
    return t


def _kernel():
    """The numba kernel (bit-identical to the numpy path, ~1.8x faster end to end), or None
    without numba or with ``SYNTH_MINHASH_NUMPY=1``."""
    with _KERNEL_LOCK:
        return _load_kernel()


def _load_kernel():
    if not _KERNEL:
        fn = None
        if os.environ.get("SYNTH_MINHASH_NUMPY", "") in ("", "0"):
            try:
                from synth.curate._minhash_jit import chunk_signatures as fn

                # compile (or load from numba's cache) now, on a tiny input, so that a
                # numba that cannot compile here degrades to numpy instead of failing a run
                _chunk_jit(fn, ["a b c d e f"], _params(MinHashConfig()), True)
            except ImportError:  # numba is optional (the ``curate`` extra)
                fn = None
            except Exception as e:  # noqa: BLE001 - any numba/LLVM failure: numpy path
                log.warning("minhash: numba kernel unavailable (%s: %s); using numpy",
                            type(e).__name__, str(e).splitlines()[0] if str(e) else "")
                fn = None
        _KERNEL.append(fn)
    return _KERNEL[0]


def kernel_name() -> str:
    """Which MinHash kernel this process has run: ``numba`` once the compiled kernel is
    loaded, else ``numpy`` (recorded in a step's figures; never loads numba itself)."""
    return "numba" if _KERNEL and _KERNEL[0] is not None else "numpy"


def _chunk_jit(kernel, texts: list[str], pr: _Params, want_sh: bool):
    buf, casefold = _encode(texts, pr)
    if len(buf) >= 2**31 - 64:  # one document of 2 GB: the kernel's int32 offsets overflow
        sh, counts = _chunk_shingles(texts, pr)
        return (_oph(sh, counts, pr),
                (sh >> _U64(32)).astype(np.uint32) if want_sh else None, counts)
    if buf.count(0) != len(texts):  # a document contains NUL: it is a word break anyway
        buf, casefold = _encode([t.replace("\x00", " ") for t in texts], pr)
    arr = np.frombuffer(buf, dtype=np.uint8)
    u64 = np.ndarray(shape=(len(arr) - 7,), dtype="<u8", buffer=arr, strides=(1,))
    sig, sh32, counts = kernel(arr, u64, len(arr) - 16, len(texts), pr.sep_table, casefold,
                               pr.W, pr.M, pr.salt, pr.cfg.num_perm, _LOW_MASKS,
                               pr.probes, want_sh)
    return sig, (sh32 if want_sh else None), counts


def _workers() -> int:
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        n = os.cpu_count() or 1
    return max(1, min(n, 8))


def _process(texts: list[str], cfg: MinHashConfig, want_shingles: bool):
    pr = _params(cfg)
    chunks = text_chunks(texts, _CHUNK_DOCS, _CHUNK_CHARS)

    # Loading numba and the compiled kernel costs ~0.7 s per process; at ~7 ns saved per
    # character it pays for itself from ~100M characters, or at once when already loaded.
    kernel = _KERNEL[0] if _KERNEL else (
        _kernel() if sum(map(len, texts)) >= _JIT_MIN_CHARS else None)

    def run(ch):
        if kernel is not None:
            return _chunk_jit(kernel, ch, pr, want_shingles)
        sh, counts = _chunk_shingles(ch, pr)
        sig = _oph(sh, counts, pr)
        # verification keeps 32 bits per shingle (see exact_jaccard): half the memory
        return sig, ((sh >> _U64(32)).astype(np.uint32) if want_shingles else None), counts

    nw = _workers()
    if nw > 1 and len(chunks) > 1:
        with ThreadPoolExecutor(nw) as ex:
            out = list(ex.map(run, chunks))
    else:
        out = [run(ch) for ch in chunks]
    K = cfg.num_perm
    if not out:
        return np.zeros((0, K), np.uint32), np.zeros(0, np.uint64), np.zeros(0, np.int64)
    sig = np.concatenate([o[0] for o in out])
    counts = np.concatenate([o[2] for o in out])
    sh = np.concatenate([o[1] for o in out]) if want_shingles else None
    return sig, sh, counts


def signatures(texts: list[str], cfg: MinHashConfig = MinHashConfig()) -> np.ndarray:
    """MinHash signatures, shape ``(len(texts), cfg.num_perm)``, dtype uint32.

    Empty documents get a row of ``0xFFFFFFFF``.  For two non-empty documents,
    ``mean(sig_a == sig_b)`` estimates the Jaccard similarity of their shingle sets.
    """
    return _process(list(texts), cfg, False)[0]


def _band_key(sig: np.ndarray, band: int, r: int, pr: _Params) -> np.ndarray:
    """The LSH key of band ``band`` (``r`` rows) of each signature."""
    cols = sig[:, band * r : (band + 1) * r].astype(np.uint64)
    with np.errstate(over="ignore"):
        cols *= pr.band_M[band * r : (band + 1) * r]
        key = cols.sum(axis=1, dtype=np.uint64)
    mix64(key)
    return key


def shingle_sets(texts: list[str], cfg: MinHashConfig = MinHashConfig()):
    """``(signatures, sh32, counts)`` of texts: what :func:`near_duplicates` computes
    first, for an engine that hashes blocks of rows apart (``synth.curate.ray_engine``).
    ``sh32`` holds the top 32 bits of every shingle hash, ``counts[i]`` of them for text i
    (0: no shingle, never a candidate)."""
    return _process(list(texts), cfg, True)


def band_keys(sig: np.ndarray, cfg: MinHashConfig = MinHashConfig()) -> np.ndarray:
    """``(len(sig), bands)`` uint64: the LSH band keys :func:`near_duplicates` groups by
    (two texts with an equal key in some band are a candidate pair)."""
    b, r = _bands(cfg)
    pr = _params(cfg)
    out = np.empty((len(sig), b), np.uint64)
    for band in range(b):
        out[:, band] = _band_key(sig, band, r, pr)
    return out


def _candidates(sig: np.ndarray, valid: np.ndarray, cfg: MinHashConfig) -> np.ndarray:
    """Distinct candidate pairs (i < j) as an int64 array of ``i * n + j``."""
    n = len(sig)
    b, r = _bands(cfg)
    pr = _params(cfg)
    idx = np.flatnonzero(valid)
    if len(idx) < 2:
        return np.zeros(0, np.int64)
    sub = sig if len(idx) == n else sig[idx]

    def band_pairs(band: int) -> list[np.ndarray]:
        key = _band_key(sub, band, r, pr)
        # stable: equal keys stay in input order, so a big bucket's members are paired with
        # their next GROUP_WINDOW in input order, whichever engine (or split) made the keys
        order = np.argsort(key, kind="stable")
        ks = key[order]
        docs = idx[order]
        out = []
        for d in range(1, min(GROUP_WINDOW, len(ks) - 1) + 1):
            eq = np.flatnonzero(ks[d:] == ks[:-d])
            if not len(eq):
                break
            x, y = docs[eq], docs[eq + d]
            out.append(np.minimum(x, y) * n + np.maximum(x, y))
        return out

    nw = _workers()
    if nw > 1 and n > 20_000:
        with ThreadPoolExecutor(nw) as ex:
            found = [p for ps in ex.map(band_pairs, range(b)) for p in ps]
    else:
        found = [p for band in range(b) for p in band_pairs(band)]
    if not found:
        return np.zeros(0, np.int64)
    return sorted_unique(np.concatenate(found))


def exact_jaccard(pairs_a: np.ndarray, pairs_b: np.ndarray, sh32: np.ndarray,
                   offs: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Exact Jaccard of the shingle-hash sets of documents ``a[p]``, ``b[p]``.

    ``sh32`` holds the top 32 bits of every shingle hash.  For a batch of pairs, every
    shingle of both documents becomes one uint64 key ``pair << 33 | hash32 << 1 | side``;
    one sort puts equal shingles of a pair next to each other, adjacent equal keys are
    in-document repeats (dropped) and adjacent keys equal but for ``side`` are the
    intersection.  32 bits are plenty *within one pair*: with a few hundred shingles per
    document a spurious match has probability ~1e-5 per pair and moves the Jaccard by
    ~0.002 when it happens.
    """
    m = len(pairs_a)
    out = np.zeros(m)
    if m == 0:
        return out
    step = max(1, min(1 << 30, 8_000_000 // max(1, 2 * int(counts.mean()) + 1)))
    for s in range(0, m, step):
        pa, pb = pairs_a[s : s + step], pairs_b[s : s + step]
        k = len(pa)
        docs = np.concatenate([pa, pb])
        c = counts[docs]
        tot = int(c.sum())
        rel = np.arange(tot, dtype=np.int64) - np.repeat(np.cumsum(c) - c, c)
        keys = sh32[np.repeat(offs[docs], c) + rel].astype(np.uint64)
        keys <<= _U64(1)
        tag = (np.arange(2 * k, dtype=np.uint64) % _U64(k)) << _U64(33)
        tag[k:] |= _U64(1)  # side bit
        keys |= np.repeat(tag, c)
        keys.sort()
        keys = keys[np.concatenate(([True], keys[1:] != keys[:-1]))]  # drop in-doc repeats
        pid = (keys >> _U64(33)).astype(np.int64)
        both = (keys[1:] >> _U64(1)) == (keys[:-1] >> _U64(1))
        inter = np.bincount(pid[1:][both], minlength=k)
        union = np.bincount(pid, minlength=k) - inter
        out[s : s + step] = np.where(union > 0, inter / np.maximum(union, 1), 1.0)
    return out


def near_duplicates(texts: list[str], cfg: MinHashConfig = MinHashConfig(), *,
                    scores: list[float] | None = None) -> DedupResult:
    """Cluster near-duplicate documents (exact shingle Jaccard >= ``cfg.threshold``)."""
    texts = list(texts)
    n = len(texts)
    if scores is not None and len(scores) != n:
        raise ValueError("scores must have one value per text")
    sig, sh, counts = _process(texts, cfg, True)
    offs = np.cumsum(counts) - counts
    cand = _candidates(sig, counts > 0, cfg)
    del sig
    a, b = cand // max(n, 1), cand % max(n, 1)
    jac = exact_jaccard(a, b, sh, offs, counts)
    ok = jac >= cfg.threshold - 1e-12
    a, b = a[ok], b[ok]
    cluster = connected_components(n, a, b) if n else np.zeros(0, np.int64)
    keep = keepers(cluster, scores) == np.arange(n)
    return DedupResult(cluster_id=cluster.astype(np.int64), keep=keep,
                       pairs_checked=int(len(cand)), pairs_confirmed=int(ok.sum()))


def repeated_ngram_ratios(texts: list[str], n: int) -> np.ndarray:
    """Per text, the share of its word ``n``-grams that repeat an earlier one
    (``1 - distinct / total``); 0.0 for texts of fewer than ``2 * n`` words.

    Words are runs of bytes between ASCII whitespace/control bytes, case and punctuation
    kept (``str.split()`` but for non-ASCII spaces). Uses the shingle hashing above (32
    bits per n-gram: a collision among a text's few hundred n-grams is a ~1e-5 event), so
    it runs at MinHash speed instead of building Python tuples.
    """
    if n < 1:
        raise ValueError("n must be >= 1")
    texts = list(texts)
    if not texts:
        return np.zeros(0)
    cfg = MinHashConfig(num_perm=1, shingle=n, lowercase=False, normalize_punct=False)
    _, sh32, counts = _process(texts, cfg, True)
    doc = np.repeat(np.arange(len(texts), dtype=np.uint64), counts)
    keys = sorted_unique((doc << _U64(32)) | sh32.astype(np.uint64))
    distinct = np.bincount((keys >> _U64(32)).astype(np.int64), minlength=len(texts))
    # ``counts`` is words - n + 1 for texts of >= n words (1 for shorter ones)
    long_enough = counts >= n + 1
    out = np.zeros(len(texts))
    out[long_enough] = 1.0 - distinct[long_enough] / counts[long_enough]
    return out
