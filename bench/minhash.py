"""Near-duplicate detection: synth.curate.minhash vs datasketch vs rensa on one corpus.

    python bench/minhash.py                 # 100k documents: step-only table, then end to end
    python bench/minhash.py --quick         # 10k documents
    python bench/minhash.py --e2e-only      # only the end-to-end comparison
    python bench/minhash.py --no-e2e        # only the step-only table

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

End to end (``--e2e-tools``, default ``synth,datasketch``; printed after the step-only table):
what a user waits for, from process start to exit.  The corpus is written as a
``traces.parquet`` with every column of ``synth.records.TRACE_SCHEMA`` (what ``synth
generate`` writes: ids, prompt ids, chat messages, the response, params, token counts,
request hashes, provenance; logprobs and reasoning null), zstd like ``synth generate``.

* synth: the ``synth`` command as a subprocess,
  ``synth curate traces.parquet --filters near_dedup.yaml --out DIR`` with a filter set of only
  ``near_dedup: {field: response, threshold: 0.8}``; it writes curated.parquet,
  rejects.parquet, curation.json, report.html and plots/*.png.  Run ``--e2e-repeat`` times
  (default 3; the median counts).  The numba kernel's on-disk cache is warm (the step-only
  run above, or any earlier run, filled it), as on a user's second run.
* datasketch / rensa: ``python bench/minhash.py --e2e-worker TOOL``, a process that imports
  polars and the tool, reads the same parquet (all columns), runs exactly the step-only code
  above (MinHash + LSH + connected components), keeps the first document of each cluster
  and writes the kept rows (all columns) to a zstd parquet.  It writes no rejects file and
  no report, so the comparison flatters the peer.  Run once (datasketch takes ~2 minutes).

Wall time = ``time.perf_counter()`` around ``subprocess.run`` in this process, so interpreter
start-up and imports count for everybody.  Recall and precision of the end-to-end runs are
computed from their outputs (synth: ``cluster_id`` of curated + rejects rows; peers: the
labels the worker saved) with the same definitions, and synth's end-to-end clusters are
checked to be identical to the in-process ``near_duplicates`` clusters.
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


def make_corpus(n_docs: int, seed: int, dup_share: float = 0.05,
                words: tuple[int, int] = (100, 400)):
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
    lens = rng.integers(words[0], words[1] + 1, n_base)
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


# ----------------------------------------------------------------------------- end to end

RECIPE = "name: near_dedup_only\nsteps:\n  - near_dedup: {field: response, threshold: 0.8}\n"


def write_traces(texts: list[str], path: str, seed: int = 0) -> int:
    """The corpus as trace rows with every column ``synth generate`` writes; returns the
    number of columns."""
    import hashlib
    from datetime import datetime, timedelta, timezone

    import pyarrow as pa
    import pyarrow.parquet as pq

    from synth.records import TRACE_SCHEMA

    n = len(texts)
    rng = np.random.default_rng(seed + 1)
    samples = 4
    pid = [f"q{i // samples:06d}" for i in range(n)]
    topics = rng.integers(0, 5_000, n // samples + 1)
    system = "You are a helpful assistant. Answer clearly and completely."
    messages = [[{"role": "system", "content": system},
                 {"role": "user", "content": f"Write a few paragraphs about topic "
                  f"{topics[i // samples]} for a general audience, question {i // samples}."}]
                for i in range(n)]
    words = np.array([t.count(" ") + 1 for t in texts])
    out_tok = (words * 1.3).astype(np.int64)
    in_tok = rng.integers(30, 60, n)
    t0 = datetime(2026, 11, 20, tzinfo=timezone.utc)
    cols = {
        "id": [f"{p}:{i % samples}" for i, p in enumerate(pid)],
        "prompt_id": pid,
        "sample_index": [i % samples for i in range(n)],
        "messages": messages,
        "response": texts,
        "reasoning": [None] * n,
        "logprobs": [None] * n,
        "finish_reason": ["stop"] * n,
        "status": ["ok"] * n,
        "error": [None] * n,
        "provider": ["openai"] * n,
        "model": ["gpt-4o-mini"] * n,
        "model_version": ["gpt-4o-mini-2024-07-18"] * n,
        "base_url": ["https://api.openai.com"] * n,
        "params": [{"temperature": 0.7, "top_p": None, "max_tokens": 1024, "seed": None,
                    "top_logprobs": None, "reasoning_effort": None, "dtype": None}] * n,
        "request_hash": [hashlib.sha256(f"{i}".encode()).hexdigest() for i in range(n)],
        "input_tokens": in_tok,
        "cached_input_tokens": np.zeros(n, np.int64),
        "output_tokens": out_tok,
        "cost_usd": in_tok * 0.15e-6 + out_tok * 0.6e-6,
        "latency_s": rng.uniform(0.5, 8.0, n),
        "created_at": [t0 + timedelta(seconds=0.05 * i) for i in range(n)],
        "reference": [None] * n,
        "metadata": ["{}"] * n,
        "intent": ["research"] * n,
        "licence_entries": [["host:api.openai.com", "model:gpt-4o-mini"]] * n,
        "terms_versions": [["OpenAI Terms of Use (2024-01-31)"]] * n,
        "licence_rule": ["allow"] * n,
        "licence_decision": ["allow"] * n,
        "terms_accepted": [False] * n,
        "accepted_terms": [[]] * n,
        "template_id": [None] * n,
        "template_hash": [None] * n,
        "batch_id": [None] * n,
        "served_by": [None] * n,
    }
    table = pa.table({f.name: pa.array(cols[f.name], f.type) for f in TRACE_SCHEMA},
                     schema=TRACE_SCHEMA)
    pq.write_table(table, path, compression="zstd")
    return len(TRACE_SCHEMA)


def e2e_worker(tool: str, traces: str, out: str) -> None:
    """A peer's whole job: read the traces, cluster the responses, write the kept rows."""
    import polars as pl

    df = pl.read_parquet(traces)
    texts = [t or "" for t in df["response"].to_list()]
    labels, _ = TOOLS[tool](texts)
    labels = np.asarray(labels, np.int64)
    first = np.zeros(len(labels), bool)
    first[np.unique(labels, return_index=True)[1]] = True  # lowest index per cluster
    df.filter(pl.Series(first)).write_parquet(out + ".parquet", compression="zstd")
    np.save(out + ".npy", labels)


def _synth_command() -> list[str]:
    exe = os.path.join(os.path.dirname(sys.executable), "synth")
    return [exe] if os.path.exists(exe) else [sys.executable, "-m", "synth"]


def _breakdown(wall: float, t: dict) -> str:
    """Where the last synth run's seconds went: the phases ``curation.json`` times, and the
    rest of the process (interpreter start-up, imports, option parsing, exit)."""
    phases = [("read", t.get("read_s")), ("near_dedup step", t.get("steps_s")),
              ("kept/rejected check", t.get("check_s")),
              ("write parquet", t.get("write_s")),
              ("outputs (report beside the writes, then curation.json)", t.get("outputs_s"))]
    known = sum(v for _, v in phases if v is not None)
    lines = [f"synth's last run, {wall:.2f} s:"]
    lines += [f"  {name:<58} {v:6.2f} s" for name, v in phases if v is not None]
    # both run while curated.parquet is encoded on another thread: inside write/outputs
    if t.get("card_s") is not None:
        lines.append(f"  {'  of which dataset card (beside curated.parquet)':<58} "
                     f"{t['card_s']:6.2f} s")
    if t.get("report_s") is not None:
        lines.append(f"  {'  of which report.html + plots (on a second thread)':<58} "
                     f"{t['report_s']:6.2f} s")
    rest = wall - known + (t.get("write_s") or 0.0)  # write_s is inside outputs_s
    lines.append(f"  {'start-up, imports, option parsing, exit':<58} {rest:6.2f} s")
    return "\n".join(lines)


def run_e2e(texts, pairs, true_j, cache, tools: list[str], repeat: int, seed: int,
            synth_labels: np.ndarray | None) -> None:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    rows = []
    with tempfile.TemporaryDirectory() as td:
        traces = os.path.join(td, "traces.parquet")
        ncols = write_traces(texts, traces, seed)
        recipe = os.path.join(td, "near_dedup.yaml")
        with open(recipe, "w") as f:
            f.write(RECIPE)
        mb = os.path.getsize(traces) / 2**20
        print(f"\nend to end: {len(texts):,} trace rows, {mb:.0f} MB parquet "
              f"({ncols} columns), "
              f"recipe: near_dedup only")
        for tool in tools:
            if tool == "synth":
                walls = []
                for r in range(repeat):
                    out = os.path.join(td, f"synth-out-{r}")
                    cmd = _synth_command() + ["curate", traces, "--filters", recipe, "--out", out]
                    t = time.perf_counter()
                    subprocess.run(cmd, check=True, env=env, stderr=subprocess.DEVNULL)
                    walls.append(time.perf_counter() - t)
                import polars as pl

                ids = pl.read_parquet(traces, columns=["id"])["id"]
                got = pl.concat([pl.read_parquet(os.path.join(out, f), columns=["id", "cluster_id"])
                                 for f in ("curated.parquet", "rejects.parquet")])
                lab = (pl.DataFrame({"id": ids}).join(got, on="id", how="left",
                                                      maintain_order="left")["cluster_id"])
                assert lab.null_count() == 0, "rows missing from curated + rejects"
                labels = lab.to_numpy().astype(np.int64)
                with open(os.path.join(out, "curation.json")) as f:
                    summ = json.load(f)
                kept = summ["kept"]
                same = "n/a" if synth_labels is None else \
                    ("identical" if np.array_equal(labels, synth_labels) else "DIFFERENT")
                wall = float(np.median(walls))
                note = (f"runs {', '.join(f'{w:.2f}' for w in walls)} s; step "
                        f"{summ['steps'][0]['seconds']:.2f} s; clusters vs in-process: {same}")
                breakdown = _breakdown(walls[-1], summ.get("timings") or {})
            else:
                out = os.path.join(td, f"{tool}-e2e")
                cmd = [sys.executable, os.path.abspath(__file__), "--e2e-worker", tool,
                       "--corpus", traces, "--out", out]
                t = time.perf_counter()
                subprocess.run(cmd, check=True, env=env)
                wall = time.perf_counter() - t
                labels = np.load(out + ".npy")
                kept = int(len(np.unique(labels)))
                note = "1 run"
            rec, prec, _ = evaluate(labels, texts, pairs, true_j, cache, np.random.default_rng(1))
            rows.append((tool, wall, kept, rec, prec, note))
    hdr = f"{'e2e tool':<11} {'wall s':>8} {'docs/s':>9} {'kept':>8} {'recall':>7} {'precision':>9}"
    print(hdr)
    print("-" * len(hdr))
    for tool, wall, kept, rec, prec, note in rows:
        print(f"{tool:<11} {wall:>8.2f} {len(texts) / wall:>9.0f} {kept:>8} {rec:>7.3f} "
              f"{prec:>9.4f}  {note}")
    if "synth" in [r[0] for r in rows]:
        print(breakdown)
    wall = {r[0]: r[1] for r in rows}
    if "synth" in wall:
        for other in ("datasketch", "rensa"):
            if other in wall:
                print(f"end to end synth/{other}: {wall[other] / wall['synth']:.1f}x "
                      f"(wall time, process start to exit)")


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
    ap.add_argument("--tools", default="synth,synth-numpy,datasketch,rensa",
                    help="tools of the step-only table")
    ap.add_argument("--e2e-tools", default="synth,datasketch",
                    help="tools timed end to end (synth, datasketch, rensa)")
    ap.add_argument("--e2e-repeat", type=int, default=3, help="synth end-to-end runs (median)")
    ap.add_argument("--no-e2e", action="store_true", help="only the step-only table")
    ap.add_argument("--e2e-only", action="store_true", help="only the end-to-end comparison")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--e2e-worker", help=argparse.SUPPRESS)
    ap.add_argument("--corpus", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--words", default="100,400",
                    help="document length in words, LO,HI (default 100,400: 64 MB of traces "
                         "at 100k docs; 150,520 makes the ~85 MB kind)")
    args = ap.parse_args()
    if args.worker:
        worker(args.worker, args.corpus, args.out)
        return
    if args.e2e_worker:
        e2e_worker(args.e2e_worker, args.corpus, args.out)
        return
    n = 10_000 if args.quick else args.docs
    t0 = time.perf_counter()
    lo, hi = (int(x) for x in args.words.split(","))
    texts, pairs, true_j = make_corpus(n, args.seed, words=(lo, hi))
    words = sum(t.count(" ") + 1 for t in texts)
    print(f"corpus: {len(texts)} docs, {words / len(texts):.0f} words/doc, {len(pairs)} planted pairs "
          f"(true Jaccard {true_j.min():.2f}-{true_j.max():.2f}, {int((true_j >= 0.85).sum())} >= 0.85), "
          f"built in {time.perf_counter() - t0:.1f}s; cores: {len(os.sched_getaffinity(0))}")
    rows = []
    cache: dict = {}
    synth_labels = None
    tools = [] if args.e2e_only else args.tools.split(",")
    with tempfile.TemporaryDirectory() as td:
        corpus = os.path.join(td, "corpus.pkl")
        with open(corpus, "wb") as f:
            pickle.dump(texts, f, protocol=pickle.HIGHEST_PROTOCOL)
        for tool in tools:
            out = os.path.join(td, tool)
            root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
            env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
            subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", tool, "--corpus", corpus,
                            "--out", out], check=True, env=env)
            labels = np.load(out + ".npy")
            if tool == "synth":
                synth_labels = labels
            with open(out + ".json") as f:
                info = json.load(f)
            rec, prec, total = evaluate(labels, texts, pairs, true_j, cache, np.random.default_rng(1))
            rows.append((tool, len(texts) / info["seconds"], info["seconds"], info["peak_kb"] / 1024,
                         (info["peak_kb"] - info["base_kb"]) / 1024, rec, prec, total, info["extra"]))
    if args.e2e_only and "synth" in args.e2e_tools.split(","):
        synth_labels = run_synth(texts)[0]  # the in-process clusters the e2e run must match
    if rows:
        print()
        hdr = (f"{'tool':<11} {'docs/s':>9} {'seconds':>8} {'peak MB':>8} {'delta MB':>9} "
               f"{'recall':>7} {'precision':>9} {'flagged':>8}")
        print(hdr)
        print("-" * len(hdr))
        for r in rows:
            print(f"{r[0]:<11} {r[1]:>9.0f} {r[2]:>8.2f} {r[3]:>8.0f} {r[4]:>9.0f} {r[5]:>7.3f} "
                  f"{r[6]:>9.4f} {r[7]:>8}  {r[8]}")
        speed = {r[0]: r[1] for r in rows}
        if "synth" in speed:
            for other in ("datasketch", "rensa"):
                if other in speed:
                    print(f"step only synth/{other} speed: {speed['synth'] / speed[other]:.1f}x")
    if not args.no_e2e:
        run_e2e(texts, pairs, true_j, cache, args.e2e_tools.split(","), args.e2e_repeat,
                args.seed, synth_labels)
    print("recall: planted pairs with true Jaccard >= 0.85 in one cluster; precision: flagged "
          "(same-cluster) pairs with true Jaccard >= 0.7")


if __name__ == "__main__":
    main()
