"""Tests for synth.curate.minhash (MinHash-LSH near-duplicate detection)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from synth.curate.minhash import (
    DedupResult,
    MinHashConfig,
    near_duplicates,
    optimal_bands,
    signatures,
)

CFG = MinHashConfig()


def _vocab(rng, size=3000):
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    words = {"".join(rng.choice(letters, int(rng.integers(2, 14)))) for _ in range(size)}
    return np.array(sorted(words))


def _doc(rng, vocab, n=None):
    n = int(rng.integers(100, 301)) if n is None else n
    return list(rng.choice(vocab, n))


def _shingles(words, k=5):
    if len(words) < k:
        return {tuple(words)}
    return {tuple(words[i : i + k]) for i in range(len(words) - k + 1)}


def _jaccard(a, b):
    sa, sb = _shingles(a), _shingles(b)
    return len(sa & sb) / len(sa | sb)


def _edit(rng, vocab, words, n_edits):
    w = list(words)
    for _ in range(n_edits):
        w[int(rng.integers(len(w)))] = str(rng.choice(vocab))
    return w


@pytest.fixture(scope="module")
def corpus():
    rng = np.random.default_rng(7)
    vocab = _vocab(rng)
    return rng, vocab, [_doc(rng, vocab) for _ in range(40)]


def test_identical_docs_cluster(corpus):
    _, _, docs = corpus
    texts = [" ".join(d) for d in docs] + [" ".join(docs[3]), " ".join(docs[3])]
    r = near_duplicates(texts, CFG)
    assert isinstance(r, DedupResult)
    assert r.cluster_id.dtype == np.int64 and r.keep.dtype == bool
    assert r.cluster_id[40] == r.cluster_id[41] == r.cluster_id[3] == 3
    assert r.keep[3] and not r.keep[40] and not r.keep[41]
    # everything else is a singleton whose cluster id is its own index
    others = [i for i in range(40) if i != 3]
    assert (r.cluster_id[others] == np.array(others)).all()
    assert r.keep.sum() == 40
    assert r.pairs_confirmed >= 2


def test_few_edits_cluster_with_source(corpus):
    rng, vocab, docs = corpus
    src = _doc(rng, vocab, 250)
    copy = list(src)
    copy[60], copy[180] = "qqqq", "wwww"  # two isolated substitutions: 10 of 246 shingles
    j = _jaccard(src, copy)
    assert 0.85 <= j < 1.0
    # punctuation and case differences are normalised away
    copy_text = " ".join(copy).upper().replace(" ", ", ", 3) + "!"
    texts = [" ".join(d) for d in docs] + [" ".join(src), copy_text]
    r = near_duplicates(texts, CFG)
    assert r.cluster_id[41] == r.cluster_id[40] == 40
    assert r.num_clusters == 41


def test_unrelated_and_low_similarity_docs_do_not_cluster(corpus):
    rng, vocab, docs = corpus
    far = _edit(rng, vocab, docs[0], 40)  # Jaccard well below 0.8
    assert _jaccard(docs[0], far) < 0.6
    texts = [" ".join(d) for d in docs] + [" ".join(far)]
    r = near_duplicates(texts, CFG)
    assert (r.cluster_id == np.arange(len(texts))).all()
    assert r.keep.all()
    assert r.pairs_confirmed == 0


def test_representative_honours_scores(corpus):
    _, _, docs = corpus
    t = " ".join(docs[0])
    texts = [t, " ".join(docs[1]), t, t]
    r = near_duplicates(texts, CFG, scores=[0.1, 5.0, 0.9, 0.5])
    assert r.cluster_id.tolist() == [0, 1, 0, 0]
    assert r.keep.tolist() == [False, True, True, False]
    # without scores: the first document of the cluster
    r2 = near_duplicates(texts, CFG)
    assert r2.keep.tolist() == [True, True, False, False]
    # ties go to the lowest index
    r3 = near_duplicates(texts, CFG, scores=[1.0, 0.0, 2.0, 2.0])
    assert r3.keep.tolist() == [False, True, True, False]
    with pytest.raises(ValueError):
        near_duplicates(texts, CFG, scores=[1.0])


@pytest.mark.parametrize("threshold,num_perm", [(0.8, 128), (0.5, 64), (0.9, 256), (0.7, 100)])
def test_optimal_bands_sane(threshold, num_perm):
    b, r = optimal_bands(threshold, num_perm)
    assert b >= 1 and r >= 1 and b * r <= num_perm
    p_at_t = 1 - (1 - threshold**r) ** b
    assert p_at_t >= 0.5
    # recall-favouring: a pair a little above the threshold is very likely a candidate
    s = min(1.0, threshold + 0.1)
    assert 1 - (1 - s**r) ** b >= 0.9
    # and unrelated documents almost never are
    assert 1 - (1 - 0.1**r) ** b < 0.05


def test_optimal_bands_weights_move_the_curve():
    b1, r1 = optimal_bands(0.8, 128, fp_weight=0.5, fn_weight=0.5)
    b2, r2 = optimal_bands(0.8, 128)
    curve = lambda b, r, s: 1 - (1 - s**r) ** b  # noqa: E731
    assert curve(b2, r2, 0.85) > curve(b1, r1, 0.85)


def test_short_and_empty_docs():
    texts = ["", "   ", "hello world", "Hello, world!", "hello there", "!!!", "", "a b c d"]
    r = near_duplicates(texts, CFG)
    cid = r.cluster_id.tolist()
    # empty / punctuation-only documents are their own clusters and are kept
    for i in (0, 1, 5, 6):
        assert cid[i] == i and r.keep[i]
    # short docs use the whole text as one shingle: normalised equal texts cluster
    assert cid[3] == 2 and not r.keep[3]
    assert cid[4] == 4 and cid[7] == 7
    sig = signatures(texts, CFG)
    assert sig.shape == (8, 128)
    assert (sig[2] == sig[3]).all() and not (sig[2] == sig[4]).any()


def test_signature_estimates_jaccard(corpus):
    rng, vocab, docs = corpus
    a = docs[1]
    est, true = [], []
    for n_edits in (0, 3, 8, 15, 30):
        b = _edit(rng, vocab, a, n_edits)
        sig = signatures([" ".join(a), " ".join(b)], CFG)
        est.append(float((sig[0] == sig[1]).mean()))
        true.append(_jaccard(a, b))
    assert sig.dtype == np.uint32
    assert np.max(np.abs(np.array(est) - np.array(true))) < 0.15
    assert est[0] == 1.0


def test_determinism_and_seed(corpus):
    rng, vocab, docs = corpus
    texts = [" ".join(d) for d in docs] + [" ".join(_edit(rng, vocab, d, 3)) for d in docs[:10]]
    r1 = near_duplicates(texts, CFG)
    r2 = near_duplicates(texts, CFG)
    assert (r1.cluster_id == r2.cluster_id).all() and (r1.keep == r2.keep).all()
    s1 = signatures(texts, CFG)
    assert (s1 == signatures(texts, CFG)).all()
    s2 = signatures(texts, MinHashConfig(seed=2))
    assert (s1 != s2).mean() > 0.9


def test_chunking_does_not_change_results(corpus, monkeypatch):
    import synth.curate.minhash as mh

    rng, vocab, docs = corpus
    texts = [" ".join(d) for d in docs] * 3 + ["x y"] * 3 + [""]
    full = mh.signatures(texts, CFG)
    res = mh.near_duplicates(texts, CFG)
    monkeypatch.setattr(mh, "_CHUNK_DOCS", 7)
    assert (mh.signatures(texts, CFG) == full).all()
    res2 = mh.near_duplicates(texts, CFG)
    assert (res.cluster_id == res2.cluster_id).all()


def test_planted_corpus_recall_and_precision():
    rng = np.random.default_rng(11)
    vocab = _vocab(rng, 8000)
    p = 1.0 / np.arange(1, len(vocab) + 1)
    p /= p.sum()
    lens = rng.integers(100, 401, 1500)
    flat = vocab[rng.choice(len(vocab), int(lens.sum()), p=p)].tolist()
    cuts = np.cumsum(lens)
    docs = [flat[e - n : e] for n, e in zip(lens.tolist(), cuts.tolist())]
    repl = vocab[rng.choice(len(vocab), 250 * 16, p=p)].tolist()
    pairs, true_j = [], []
    for _ in range(250):
        s = int(rng.integers(len(docs)))
        w = list(docs[s])
        for _ in range(int(rng.integers(0, 16))):
            w[int(rng.integers(len(w)))] = repl.pop()
        pairs.append((s, len(docs)))
        true_j.append(_jaccard(docs[s], w))
        docs.append(w)
    texts = [" ".join(d) for d in docs]
    r = near_duplicates(texts, CFG)
    cid = r.cluster_id
    true_j = np.array(true_j)
    strong = [pr for pr, j in zip(pairs, true_j) if j >= 0.85]
    assert len(strong) >= 60
    recall = np.mean([cid[a] == cid[b] for a, b in strong])
    assert recall >= 0.95
    # every flagged (same-cluster) pair must be a real near-duplicate
    flagged = []
    for c in np.unique(cid[~r.keep]):
        members = np.flatnonzero(cid == c)
        flagged += [(a, b) for i, a in enumerate(members) for b in members[i + 1 :]]
    assert flagged
    precision = np.mean([_jaccard(docs[a], docs[b]) >= 0.7 for a, b in flagged])
    assert precision >= 0.99
    # pairs well below the threshold stay apart
    weak = [pr for pr, j in zip(pairs, true_j) if j < 0.6]
    assert all(cid[a] != cid[b] for a, b in weak)


def test_config_validation():
    with pytest.raises(ValueError):
        MinHashConfig(threshold=0)
    with pytest.raises(ValueError):
        MinHashConfig(num_perm=0)
    with pytest.raises(TypeError):
        MinHashConfig(128)  # keyword-only


def test_union_find_fallback_matches_scipy(monkeypatch):

    rng = np.random.default_rng(3)
    a = rng.integers(0, 300, 200)
    b = rng.integers(0, 300, 200)
    pytest.importorskip("scipy")
    import synth.curate.clusters as cl

    monkeypatch.setattr(cl, "SCIPY_MIN_EDGES", 0)  # scipy even for a few pairs
    with_scipy = cl.connected_components(300, a, b)
    monkeypatch.setattr(cl, "SCIPY_MIN_EDGES", 1 << 62)  # the union-find
    monkeypatch.setattr(cl, "_connected_components", None)
    fallback = cl.connected_components(300, a, b)
    assert (with_scipy == fallback).all()
    # labels are the lowest index of each component
    assert (with_scipy <= np.arange(300)).all()
    assert (with_scipy[with_scipy] == with_scipy).all()


def test_unicode_nul_long_words_and_empty_corpus():
    texts = [
        "a\x00b c d e f g h",  # NUL inside a document is a word break
        "A b c d e f g h.",
        "ÉCOLE élève x y z w",  # unicode lowercasing
        "école élève x y z w",
        "x" * 40 + " y z w v u",  # words longer than 16 bytes
        "x" * 40 + " y z w v u",
        "x" * 39 + "q y z w v u",  # differs only in the tail of a long word
    ]
    r = near_duplicates(texts, CFG)
    assert r.cluster_id.tolist() == [0, 0, 2, 2, 4, 4, 6]
    empty = near_duplicates([], CFG)
    assert len(empty.cluster_id) == 0 and len(empty.keep) == 0
    assert signatures([], CFG).shape == (0, 128)


def test_normalisation_switches(corpus):
    _, _, docs = corpus
    t = " ".join(docs[2])
    texts = [t, t.upper(), t.replace(" ", ", ")]
    assert near_duplicates(texts, CFG).cluster_id.tolist() == [0, 0, 0]
    no_case = MinHashConfig(lowercase=False)
    assert near_duplicates(texts, no_case).cluster_id.tolist() == [0, 1, 0]
    no_punct = MinHashConfig(normalize_punct=False)
    assert near_duplicates(texts, no_punct).cluster_id.tolist() == [0, 0, 2]


# ----------------------------------------------------------------------------- numba kernel


def _awkward_texts(rng, vocab):
    texts = [" ".join(_doc(rng, vocab)) for _ in range(30)]
    texts += [" ".join(_doc(rng, vocab, n)) for n in range(0, 9)]  # around the shingle size
    # every word length 1..40 (the 8/16-byte loads and the long-word rounds)
    texts.append(" ".join("w" * n + "Q" * (n % 3) for n in range(1, 41)))
    texts += [
        "", "   \t\n ", "\x00", "a\x00b c d e f g h", "MiXeD CaSe, Punct!! (and) [more]; ok?",
        "ÉCOLE élève ÑANDÚ straße ΣΊΣΥΦΟΣ 東京 タワー 🙂🙂 x y", "don't stop-me now: a.b.c",
        "\x7f\x01ctrl\x1fbytes\x7fhere and there again", "tab\tsep\narated\r\nwords x y z",
        "x" * 40 + " y z w v u", "x" * 39 + "q y z w v u", "0123456789 ABCDEFGHIJ klmnopqrstuvwxyz" * 3,
    ]
    return texts


@pytest.mark.parametrize("cfg", [
    MinHashConfig(),
    MinHashConfig(lowercase=False),
    MinHashConfig(normalize_punct=False),
    MinHashConfig(lowercase=False, normalize_punct=False),
    MinHashConfig(shingle=1, num_perm=16),
    MinHashConfig(shingle=3, num_perm=256, seed=5),
], ids=["default", "no-lower", "no-punct", "raw", "k1-p16", "k3-p256"])
def test_numba_kernel_is_bit_identical_to_numpy(cfg, corpus):
    pytest.importorskip("numba")
    import synth.curate.minhash as mh

    rng, vocab, _ = corpus
    texts = _awkward_texts(np.random.default_rng(3), vocab)
    kernel = mh._kernel()
    assert kernel is not None
    pr = mh._params(cfg)
    for chunk in (texts, texts[:1], texts[-5:], [t.upper() for t in texts]):
        sig, sh32, counts = mh._chunk_jit(kernel, chunk, pr, True)
        sh, counts_np = mh._chunk_shingles(chunk, pr)
        assert counts.tolist() == counts_np.tolist()
        assert np.array_equal(sh32, (sh >> np.uint64(32)).astype(np.uint32))
        assert np.array_equal(sig, mh._oph(sh, counts_np, pr))
        sig2, none, _ = mh._chunk_jit(kernel, chunk, pr, False)
        assert none is None and np.array_equal(sig2, sig)


def test_numpy_fallback_gives_the_same_clusters(corpus, monkeypatch):
    import synth.curate.minhash as mh

    rng, vocab, docs = corpus
    texts = [" ".join(d) for d in docs] + [" ".join(_edit(rng, vocab, d, 2)) for d in docs]
    texts += _awkward_texts(np.random.default_rng(4), vocab)
    if importlib.util.find_spec("numba") is not None:
        assert mh._kernel() is not None  # loaded: near_duplicates uses it at any size
    fast = mh.near_duplicates(texts, CFG)
    monkeypatch.setenv("SYNTH_MINHASH_NUMPY", "1")
    monkeypatch.setattr(mh, "_KERNEL", [])
    assert mh._kernel() is None
    slow = mh.near_duplicates(texts, CFG)
    assert fast.cluster_id.tolist() == slow.cluster_id.tolist()
    assert (fast.pairs_checked, fast.pairs_confirmed) == (slow.pairs_checked, slow.pairs_confirmed)
    assert (slow.cluster_id[len(docs):2 * len(docs)] == np.arange(len(docs))).all()


def test_a_kernel_that_cannot_compile_falls_back_to_numpy(monkeypatch, caplog):
    pytest.importorskip("numba")
    import synth.curate._minhash_jit as jit
    import synth.curate.minhash as mh

    def broken(*args):
        raise RuntimeError("LLVM says no")

    monkeypatch.setattr(jit, "chunk_signatures", broken)
    monkeypatch.setattr(mh, "_KERNEL", [])
    with caplog.at_level("WARNING", logger="synth"):
        assert mh._kernel() is None
    assert "numba kernel unavailable (RuntimeError: LLVM says no)" in caplog.text
    r = mh.near_duplicates(["a b c d e f g"] * 2 + ["x y z"], CFG)
    assert r.cluster_id.tolist() == [0, 0, 2]


def test_chunks_bound_documents_and_characters():
    from synth.hashing import text_chunks

    texts = ["aaaa", "bbbb", "cc", "d", "e" * 25, "f", "g", "h", "i"]
    chunks = text_chunks(texts, 3, 10)
    assert chunks == [["aaaa", "bbbb", "cc"], ["d"], ["e" * 25], ["f", "g", "h"], ["i"]]
    assert text_chunks([], 3, 10) == []


def test_small_inputs_do_not_load_numba(monkeypatch):
    import synth.curate.minhash as mh

    monkeypatch.setattr(mh, "_KERNEL", [])
    r = mh.near_duplicates(["a b c d e f g"] * 3, CFG)
    assert r.cluster_id.tolist() == [0, 0, 0]
    assert mh._KERNEL == []  # ~0.7 s of loading would not pay off on 21 characters


def test_near_dedup_starts_loading_the_kernel_before_a_large_input_is_read():
    import subprocess
    import sys

    pytest.importorskip("numba")
    code = ("import threading, synth.curate.minhash as m\n"
            "from synth.curate.near_dedup import NearDedup\n"
            "NearDedup().prepare({size})\n"
            "[t.join() for t in threading.enumerate() if t.name == 'synth-minhash-prewarm']\n"
            "print(m.kernel_name())\n")
    got = [subprocess.run([sys.executable, "-c", code.format(size=size)], capture_output=True,
                          text=True, timeout=120).stdout.strip()
           for size in (100 * 2**20, 1024)]
    assert got == ["numba", "numpy"]  # large: loaded on the side; small: never loaded
