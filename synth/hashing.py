"""Text hashing kernels several stages share: the splitmix64 mixer, word n-gram hashes and
the chunking that bounds a vectorised kernel's memory.

MinHash near-dedup (``synth.curate.minhash``), n-gram decontamination
(``synth.curate.decontam``), language id (``synth.curate.langid``) and the recipes'
n-gram novelty check (``synth.recipes.text``) all hash the same way, so a text hashes to the
same value in each. numpy only; written by hand because no library hashes a flat word array
into windowed n-grams without a Python object per n-gram (datasketch and rensa hash one
shingle at a time). Ground floor: imports nothing of synth.
"""

from __future__ import annotations

import numpy as np

__all__ = ["mix64", "ngram_sums", "text_chunks"]


def mix64(z: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser, in place on a uint64 array."""
    with np.errstate(over="ignore"):
        z ^= z >> np.uint64(30)
        z *= np.uint64(0xBF58476D1CE4E5B9)
        z ^= z >> np.uint64(27)
        z *= np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(31)
    return z


def ngram_sums(wh: np.ndarray, wcount: np.ndarray, k: int, M: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
    """Unmixed word ``k``-gram hashes ``sum_j wh[i + j] * M[j]`` of every window inside one
    document of the flat word-hash array ``wh`` (documents of ``wcount`` words, back to
    back), in document order; a document of 1..k-1 words gives one hash of all its words
    tagged with its length (``* M[k]``), an empty one none. Returns ``(sums, counts)``.
    Shared by the MinHash shingles and decontamination's n-grams."""
    W = len(wh)
    with np.errstate(over="ignore"):
        if W >= k:
            acc = wh[: W - k + 1] * M[0]
            tmp = np.empty_like(acc)
            for j in range(1, k):  # in place: k passes, no temporaries
                np.multiply(wh[j : W - k + 1 + j], M[j], out=tmp)
                acc += tmp
            valid = np.ones(W - k + 1, bool)
            wend = np.cumsum(wcount)
            for j in range(1, k):  # windows starting in a document's last k-1 words
                e = wend[wcount >= j] - j
                valid[e[e < W - k + 1]] = False
            sums = acc[valid]
        else:
            sums = np.zeros(0, np.uint64)
        counts = np.maximum(wcount - k + 1, 0)
        short = np.flatnonzero((wcount > 0) & (wcount < k))
        if len(short):
            # one hash from all the words of a short doc, tagged with its length
            f = (np.cumsum(wcount) - wcount)[short]
            m = wcount[short]
            acc_s = m.astype(np.uint64) * M[k]
            for j in range(k - 1):
                okj = j < m
                acc_s += np.where(okj, wh[np.where(okj, f + j, 0)], np.uint64(0)) * M[j]
            counts[short] = 1
            full = np.empty(len(sums) + len(short), np.uint64)
            off = np.cumsum(counts) - counts
            is_short = np.zeros(len(full), bool)
            is_short[off[short]] = True
            full[is_short] = acc_s
            full[~is_short] = sums
            sums = full
    return sums, counts


def text_chunks(texts: list[str], max_docs: int, max_chars: int) -> list[list[str]]:
    """Consecutive runs of at most ``max_docs`` documents and ``max_chars`` characters (a
    longer document is a chunk of its own): a vectorised kernel's working memory per chunk
    is a few times its text, so long documents must not make huge chunks."""
    out, start, size = [], 0, 0
    for i, t in enumerate(texts):
        n = len(t)
        if i > start and (i - start >= max_docs or size + n > max_chars):
            out.append(texts[start:i])
            start, size = i, 0
        size += n
    if start < len(texts):
        out.append(texts[start:])
    return out
