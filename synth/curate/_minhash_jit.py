"""Compiled (numba) kernel for MinHash shingling and one-permutation signatures.

It computes *bit-for-bit* what the numpy path in ``synth.curate.minhash`` computes (same
word hash, shingle hash, bin, value and densification; ``tests/test_minhash.py`` checks
equality on awkward text), in a few tight loops over one chunk instead of ~40 numpy passes
over word-sized temporaries.  The byte scan is branch-free (word boundaries and document
ends are written unconditionally and the write index advances by a 0/1 flag): with words of
2-10 letters a branch per boundary is mispredicted often enough to triple the cost.

Hand-written because no maintained library hashes word shingles into one-permutation
MinHash signatures (datasketch and rensa do k-permutation MinHash over Python-side
shingles; both are measured in ``bench/minhash.py``).  Imported lazily: numba is optional
(the ``curate`` extra); without it the numpy path runs.  ``cache=True`` keeps the compiled
code in numba's on-disk cache, so only the first call on a machine pays the compilation.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_C1 = np.uint64(0xBF58476D1CE4E5B9)
_C2 = np.uint64(0x94D049BB133111EB)
_FOLD = np.uint64(0xDFDFDFDFDFDFDFDF)
_EMPTY = np.uint32(0xFFFFFFFF)


@njit(inline="always")
def _mix(z):
    z ^= z >> np.uint64(30)
    z *= _C1
    z ^= z >> np.uint64(27)
    z *= _C2
    z ^= z >> np.uint64(31)
    return z


@njit(nogil=True, cache=True)
def chunk_signatures(buf, u64, nbody, ndocs, sep, casefold, W, M, salt, K, low_masks,
                     probes, want_sh):
    """Densified OPH signatures and shingle hashes of one encoded chunk.

    ``buf[:nbody]`` is the chunk as ``synth.curate.minhash._encode`` lays it out (a space,
    documents separated by NUL, a NUL after the last, then >= 16 bytes of padding); ``u64``
    is the 8-byte little-endian view of ``buf`` at every byte offset.  Returns ``(sig
    uint32[ndocs, K], sh32 uint32[S], counts int64[ndocs])``; ``sh32`` holds the top 32
    bits of every shingle hash in document order (empty unless ``want_sh``).
    """
    k = M.shape[0] - 1
    # ---- pass 1, branch-free: word boundaries (separator/word transitions) and doc ends
    # int32 halves the largest temporary (the caller keeps chunks far below 2 GB)
    bounds = np.empty(nbody + 1, dtype=np.int32)
    doc_end = np.empty(ndocs + 1, dtype=np.int64)
    nb = 0
    nd = 0
    prev = True  # byte 0 is a space
    for i in range(nbody):
        c = buf[i]
        s = sep[c]
        bounds[nb] = np.int32(i)
        nb += s != prev
        prev = s
        doc_end[nd] = i
        nd += c == 0
        if nd > ndocs:  # pragma: no cover - the caller guarantees ndocs NULs
            nd = ndocs
    nwords = nb // 2
    # ---- pass 2: word hashes (8-byte loads masked to the word, like the numpy path)
    words = np.empty(nwords, dtype=np.uint64)
    for w in range(nwords):
        start = bounds[2 * w]
        L = bounds[2 * w + 1] - start
        wh = u64[start] & low_masks[min(L, 8)]
        g = u64[start + 8] & low_masks[max(min(L - 8, 8), 0)]
        if casefold:
            wh &= _FOLD
            g &= _FOLD
        wh = wh * W[0] + g * W[2] + np.uint64(L) * W[1]
        q = 16
        while L - q > 0:  # rare: words longer than 16 bytes, 8 more bytes per round
            x = u64[start + q] & low_masks[min(L - q, 8)]
            if casefold:
                x &= _FOLD
            wh = _mix(wh) + x * W[3]
            q += 8
        words[w] = _mix(wh)
    # ---- pass 3: shingle hashes of every document, in document order.  Kept apart from
    # the binning below: with the signature stores in the same loop the compiler must
    # assume they alias ``words`` and the loop runs ~9x slower.
    sh = np.empty(nwords + ndocs, dtype=np.uint64)
    counts = np.zeros(ndocs, dtype=np.int64)
    nsh = 0
    w0 = 0
    for doc in range(ndocs):
        w1 = w0
        while w1 < nwords and bounds[2 * w1] < doc_end[doc]:
            w1 += 1
        m = w1 - w0
        if m >= k:
            for s in range(m - k + 1):
                acc = np.uint64(0)
                for j in range(k):
                    acc += words[w0 + s + j] * M[j]
                sh[nsh + s] = _mix(acc ^ salt)
            counts[doc] = m - k + 1
        elif m > 0:  # fewer words than a shingle: one shingle of all of them + the count
            acc = np.uint64(m) * M[k]
            for j in range(m):
                acc += words[w0 + j] * M[j]
            sh[nsh] = _mix(acc ^ salt)
            counts[doc] = 1
        nsh += counts[doc]
        w0 = w1
    # ---- pass 4: one-permutation binning; the high 32 bits pick the bin, the low 32 bits
    # are the value (and the high 32 bits are what verification keeps)
    sig = np.full((ndocs, K), _EMPTY, dtype=np.uint32)
    sh32 = np.empty(nsh if want_sh else 0, dtype=np.uint32)
    uK = np.uint64(K)
    s0 = 0
    for doc in range(ndocs):
        row = sig[doc]
        for s in range(s0, s0 + counts[doc]):
            h = sh[s]
            hi = h >> np.uint64(32)
            b = np.int64((hi * uK) >> np.uint64(32))
            row[b] = min(row[b], np.uint32(h & np.uint64(0xFFFFFFFF)))
            if want_sh:
                sh32[s] = np.uint32(hi)
        s0 += counts[doc]
    # ---- densification: empty bin j takes the first non-empty bin of its probe sequence
    # (computed on the original bins), else the next non-empty bin to its right
    orig = np.empty(K, dtype=np.uint32)
    for doc in range(ndocs):
        if counts[doc] == 0:
            continue
        row = sig[doc]
        n_empty = 0
        for j in range(K):
            orig[j] = row[j]
            n_empty += row[j] == _EMPTY
        if n_empty == 0:
            continue
        for j in range(K):
            if orig[j] != _EMPTY:
                continue
            found = False
            for t in range(probes.shape[0]):
                v = orig[probes[t, j]]
                if v != _EMPTY:
                    row[j] = v
                    found = True
                    break
            if not found:
                jj = (j + 1) % K
                while orig[jj] == _EMPTY:
                    jj = (jj + 1) % K
                row[j] = orig[jj]
    return sig, sh32, counts
