"""Near-duplicate detection: synth.curate.minhash vs datasketch vs rensa on one corpus.

    python bench/minhash.py            # 100k documents
    python bench/minhash.py --quick    # 10k documents

Corpus (deterministic, --seed): documents of 100-400 words drawn from a 20k-word synthetic
vocabulary with a Zipf(1.1) distribution; 5% of the documents are planted near-duplicate
copies of other documents, made with a controlled number of random word edits
(substitute / insert / delete) aimed at a true 5-word-shingle Jaccard spread over
0.55-1.0.  The true Jaccard of every planted pair is computed exactly from shingle sets.

Every tool runs in its own subprocess (clean peak RSS) on the same corpus, timed end to end
from the list of strings to clusters (normalise, shingle, signatures, LSH, clustering):

* synth: ``near_duplicates`` (LSH candidates verified with exact shingle Jaccard), with
  its numba kernel loaded before the clock starts (the load time is printed); synth-numpy
  is the same code on its numpy fallback (``SYNTH_MINHASH_NUMPY=1``, no numba).
* datasketch: ``MinHash.update_batch`` + ``MinHashLSH(threshold=0.8)`` insert and query;
  a query hit is a duplicate (datasketch's own semantics, no verification).
* rensa: ``RMinHash`` + ``RMinHashLSH(threshold=0.8, num_bands=16)``; a query hit is kept
  when ``RMinHash.jaccard >= 0.8`` (the pattern in rensa's README).

All tools: 128 permutations, 5-word shingles, threshold 0.8, clusters = connected
components of the reported pairs.

Metrics (same definitions for every tool):

* recall: share of planted pairs with true Jaccard >= 0.85 whose two documents end up in
  the same cluster.
* precision: share of *flagged pairs* with true Jaccard >= 0.7, where a flagged pair is any
  pair of documents in the same output cluster (so chaining counts against a tool).  All
  flagged pairs are checked when there are at most 20k, else a uniform sample of 20k; true
  Jaccard is computed exactly from shingle sets.
* peak RSS: VmHWM of the tool's subprocess (peak reset after loading the corpus via
  /proc/self/clear_refs); "delta" subtracts the RSS right after loading the corpus, i.e.
  it is the tool's own peak working memory.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

K = 5
NUM_PERM = 128
THRESHOLD = 0.8


# ----------------------------------------------------------------------------- corpus


def make_corpus(n_docs: int, seed: int, dup_share: float = 0.05):
    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    vocab = set()
    while len(vocab) < 20_000:
        ln = int(rng.integers(2, 11))
        vocab.add("".join(rng.choice(letters, ln)))
    vocab = np.array(sorted(vocab))
    rng.shuffle(vocab)
    p = 1.0 / np.arange(1, len(vocab) + 1) ** 1.1
    p /= p.sum()
    n_dup = int(n_docs * dup_share)
    n_base = n_docs - n_dup
    lens = rng.integers(100, 401, n_base)
    flat = rng.choice(len(vocab), size=int(lens.sum()), p=p)
    docs: list[list[str]] = []
    off = 0
    for ln in lens:
        docs.append(list(vocab[flat[off : off + ln]]))
        off += ln
    pairs = []
    srcs = rng.integers(0, n_base, n_dup)
    targets = rng.uniform(0.55, 1.0, n_dup)
    for s, tj in zip(srcs, targets):
        w = list(docs[s])
        S = max(1, len(w) - K + 1)
        edits = int(round(S * (1 - tj) / (K * (1 + tj))))
        for _ in range(edits):
            op = rng.integers(3)
            pos = int(rng.integers(len(w)))
            word = str(vocab[rng.choice(len(vocab), p=p)])
            if op == 0:
                w[pos] = word
            elif op == 1:
                w.insert(pos, word)
            elif len(w) > K + 1:
                del w[pos]
        pairs.append((int(s), len(docs)))
        docs.append(w)
    # shuffle document order so duplicates are not at the end
    perm = rng.permutation(len(docs))
    inv = np.empty_like(perm)
    inv[perm] = np.arange(len(perm))
    docs = [docs[i] for i in perm]
    pairs = [(int(inv[a]), int(inv[b])) for a, b in pairs]
    texts = [" ".join(d) for d in docs]
    true_j = np.array([jaccard(shingles(texts[a]), shingles(texts[b])) for a, b in pairs])
    return texts, np.array(pairs, dtype=np.int64), true_j


def shingles(text: str) -> set:
    w = text.lower().split()
    if len(w) < K:
        return {tuple(w)} if w else set()
    return {tuple(w[i : i + K]) for i in range(len(w) - K + 1)}


def jaccard(a: set, b: set) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


# ----------------------------------------------------------------------------- workers


def _components(n: int, a, b) -> np.ndarray:
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    a = np.asarray(a, np.int64)
    b = np.asarray(b, np.int64)
    g = coo_matrix((np.ones(len(a), np.int8), (a, b)), shape=(n, n))
    return connected_components(g, directed=False)[1].astype(np.int64)


def _shingle_strings(text: str) -> list[str]:
    w = text.lower().split()
    if len(w) < K:
        return [" ".join(w)]
    return [" ".join(w[i : i + K]) for i in range(len(w) - K + 1)]


def run_synth(texts):
    from synth.curate.minhash import MinHashConfig, near_duplicates

    r = near_duplicates(texts, MinHashConfig(num_perm=NUM_PERM, shingle=K, threshold=THRESHOLD))
    return r.cluster_id, {"pairs_checked": r.pairs_checked, "pairs_confirmed": r.pairs_confirmed}


def run_datasketch(texts):
    from datasketch import MinHash, MinHashLSH

    lsh = MinHashLSH(threshold=THRESHOLD, num_perm=NUM_PERM)
    mhs = []
    for i, t in enumerate(texts):
        m = MinHash(num_perm=NUM_PERM, seed=1)
        m.update_batch([s.encode() for s in _shingle_strings(t)])
        lsh.insert(i, m)
        mhs.append(m)
    a, b = [], []
    for i, m in enumerate(mhs):
        for j in lsh.query(m):
            if j != i:
                a.append(i)
                b.append(j)
    return _components(len(texts), a, b), {"b,r": list(lsh.b_r) if hasattr(lsh, "b_r") else [lsh.b, lsh.r]}


def run_rensa(texts):
    from rensa import RMinHash, RMinHashLSH

    lsh = RMinHashLSH(threshold=THRESHOLD, num_perm=NUM_PERM, num_bands=16)
    mhs = []
    for i, t in enumerate(texts):
        m = RMinHash(num_perm=NUM_PERM, seed=1)
        m.update(_shingle_strings(t))
        lsh.insert(i, m)
        mhs.append(m)
    a, b = [], []
    for i, m in enumerate(mhs):
        for j in lsh.query(m):
            if j > i and m.jaccard(mhs[j]) >= THRESHOLD:
                a.append(i)
                b.append(j)
    return _components(len(texts), a, b), {"bands": 16}


TOOLS = {"synth": run_synth, "synth-numpy": run_synth, "datasketch": run_datasketch,
         "rensa": run_rensa}


def _rss_kb(field: str) -> int:
    """VmRSS / VmHWM of this process in kB (Linux).  ru_maxrss is not used: after
    fork+exec it still carries the parent's peak."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _reset_peak() -> None:
    try:  # "5" resets the peak RSS (VmHWM) to the current RSS
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def worker(tool: str, corpus: str, out: str) -> None:
    with open(corpus, "rb") as f:
        texts = pickle.load(f)
    # import each tool before the clock starts (synth's package import is heavy and unrelated)
    warm = None
    if tool.startswith("synth"):
        if tool == "synth-numpy":  # the fallback without numba, same hashes
            os.environ["SYNTH_MINHASH_NUMPY"] = "1"
        import synth.curate.minhash as mh

        # load the compiled kernel (numba import + on-disk cache) before the clock too;
        # its one-time cost is reported separately
        t = time.perf_counter()
        if tool == "synth":
            mh._kernel()
        warm = time.perf_counter() - t
    elif tool == "datasketch":
        import datasketch  # noqa: F401
    else:
        import rensa  # noqa: F401
    import scipy.sparse.csgraph  # noqa: F401
    base = _rss_kb("VmRSS")
    _reset_peak()
    t0 = time.perf_counter()
    labels, extra = TOOLS[tool](texts)
    dt = time.perf_counter() - t0
    peak = _rss_kb("VmHWM")
    np.save(out + ".npy", np.asarray(labels, np.int64))
    with open(out + ".json", "w") as f:
        if warm is not None:
            extra = {**extra, "kernel_load_s": round(warm, 2),
                     "kernel": "numba" if mh._kernel() else "numpy"}
        json.dump({"seconds": dt, "peak_kb": peak, "base_kb": base, "extra": extra}, f)


# ----------------------------------------------------------------------------- metrics


def flagged_pairs(labels: np.ndarray, rng, limit: int = 20_000):
    order = np.argsort(labels, kind="stable")
    ls = labels[order]
    cut = np.flatnonzero(np.diff(ls)) + 1
    groups = [g for g in np.split(order, cut) if len(g) > 1]
    sizes = np.array([len(g) for g in groups], dtype=np.int64)
    npairs = sizes * (sizes - 1) // 2
    total = int(npairs.sum())
    if total <= limit:
        out = [(int(g[i]), int(g[j])) for g in groups for i in range(len(g)) for j in range(i + 1, len(g))]
        return out, total
    pick = rng.choice(len(groups), size=limit, p=npairs / total)
    out = []
    for gi in pick:
        i, j = rng.choice(len(groups[gi]), 2, replace=False)
        out.append((int(groups[gi][i]), int(groups[gi][j])))
    return out, total


def evaluate(labels, texts, pairs, true_j, cache, rng):
    strong = true_j >= 0.85
    same = labels[pairs[:, 0]] == labels[pairs[:, 1]]
    recall = float(same[strong].mean()) if strong.any() else float("nan")
    fl, total = flagged_pairs(labels, rng)

    def sh(i):
        if i not in cache:
            cache[i] = shingles(texts[i])
        return cache[i]

    good = sum(jaccard(sh(a), sh(b)) >= 0.7 for a, b in fl)
    precision = good / len(fl) if fl else float("nan")
    return recall, precision, total


# ----------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=100_000)
    ap.add_argument("--quick", action="store_true", help="10k documents")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tools", default="synth,synth-numpy,datasketch,rensa")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--corpus", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.worker, args.corpus, args.out)
        return
    n = 10_000 if args.quick else args.docs
    t0 = time.perf_counter()
    texts, pairs, true_j = make_corpus(n, args.seed)
    words = sum(t.count(" ") + 1 for t in texts)
    print(f"corpus: {len(texts)} docs, {words / len(texts):.0f} words/doc, {len(pairs)} planted pairs "
          f"(true Jaccard {true_j.min():.2f}-{true_j.max():.2f}, {int((true_j >= 0.85).sum())} >= 0.85), "
          f"built in {time.perf_counter() - t0:.1f}s; cores: {len(os.sched_getaffinity(0))}")
    rows = []
    cache: dict = {}
    with tempfile.TemporaryDirectory() as td:
        corpus = os.path.join(td, "corpus.pkl")
        with open(corpus, "wb") as f:
            pickle.dump(texts, f, protocol=pickle.HIGHEST_PROTOCOL)
        for tool in args.tools.split(","):
            out = os.path.join(td, tool)
            root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
            env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
            subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", tool, "--corpus", corpus,
                            "--out", out], check=True, env=env)
            labels = np.load(out + ".npy")
            with open(out + ".json") as f:
                info = json.load(f)
            rec, prec, total = evaluate(labels, texts, pairs, true_j, cache, np.random.default_rng(1))
            rows.append((tool, len(texts) / info["seconds"], info["seconds"], info["peak_kb"] / 1024,
                         (info["peak_kb"] - info["base_kb"]) / 1024, rec, prec, total, info["extra"]))
    print()
    hdr = f"{'tool':<11} {'docs/s':>9} {'seconds':>8} {'peak MB':>8} {'delta MB':>9} {'recall':>7} {'precision':>9} {'flagged':>8}"
    print(hdr)
    print("-" * len(hdr))
    for r in rows:
        print(f"{r[0]:<11} {r[1]:>9.0f} {r[2]:>8.2f} {r[3]:>8.0f} {r[4]:>9.0f} {r[5]:>7.3f} {r[6]:>9.4f} {r[7]:>8}  {r[8]}")
    speed = {r[0]: r[1] for r in rows}
    if "synth" in speed:
        for other in ("datasketch", "rensa"):
            if other in speed:
                print(f"synth/{other} speed: {speed['synth'] / speed[other]:.1f}x")
    print("recall: planted pairs with true Jaccard >= 0.85 in one cluster; precision: flagged "
          "(same-cluster) pairs with true Jaccard >= 0.7")


if __name__ == "__main__":
    main()
