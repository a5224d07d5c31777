"""Compiled (numba) walk of py3langid's byte DFA over many texts at once.

py3langid finds its byte n-gram features with a Python loop over every byte of the text
(~0.5 ms per 1,000 characters); this is the same walk over the same tables, compiled. The
scoring that follows stays in numpy/scipy (``synth.curate.langid``).  Optional: numba comes
with the ``curate`` extra; without it the step calls py3langid per text.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(nogil=True, cache=True)
def dfa_counts(buf, offsets, nextmove, rowbase, output, n_features):
    """Feature counts of every text, as a CSR matrix ``(indptr, indices, counts)``.

    ``buf`` holds the UTF-8 bytes of all texts back to back, text ``d`` at
    ``buf[offsets[d]:offsets[d + 1]]``; the DFA restarts at state 0 for each text, as a
    separate ``classify`` call would. A row's features are in order of first appearance,
    as in py3langid's ``Counter`` (so the scores sum in the same order); counting goes
    through a dense scratch row that is reset by the features touched.
    """
    n = offsets.shape[0] - 1
    scratch = np.zeros(n_features, dtype=np.int32)
    indptr = np.zeros(n + 1, dtype=np.int64)
    indices = np.empty(buf.shape[0], dtype=np.int32)
    counts = np.empty(buf.shape[0], dtype=np.float32)
    nnz = 0
    for d in range(n):
        start = nnz
        state = 0
        for i in range(offsets[d], offsets[d + 1]):
            state = nextmove[rowbase[state] + buf[i]]
            f = output[state]
            if f >= 0:
                if scratch[f] == 0:
                    indices[nnz] = f
                    nnz += 1
                scratch[f] += 1
        for t in range(start, nnz):
            f = indices[t]
            counts[t] = scratch[f]
            scratch[f] = 0
        indptr[d + 1] = nnz
    return indptr, indices[:nnz], counts[:nnz]
