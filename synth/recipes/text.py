"""Text utilities the instruction-growing recipes share: ROUGE-L the way Google's
``rouge-score`` computes it (the package Self-Instruct used), English stop words, and a
task pool whose "is this new task too close to one we have?" check is a MinHash-LSH
pre-filter followed by exact ROUGE-L on the candidates only.

ROUGE-L
    :func:`rouge_tokens` is ``rouge_score.tokenize`` without a stemmer: lowercase, every
    run of characters outside ``[a-z0-9]`` becomes a space (so non-ASCII letters vanish,
    as there), split. :func:`rouge_l_f` is ``RougeScorer(["rougeL"]).score(a, b)
    .fmeasure`` to the last bit: precision ``LCS/|b|``, recall ``LCS/|a|``,
    ``2PR/(P+R)``, 0 when either side has no tokens (IEEE ``*`` and ``+`` commute, so the
    value is symmetric in ``a`` and ``b`` as the formula is).

The pre-filter bound
    With ``A``, ``B`` the token multisets, ``I = |A ∩ B|`` (sum of the smaller count of
    each token) and ``L`` the LCS length: every LCS is a common sub-multiset, so
    ``L <= I`` and

        F = 2L / (|A| + |B|)  <=  2I / (|A| + |B|) = D      (multiset Dice)

    and ``D = 2J / (1 + J)`` with ``J = I / (|A| + |B| - I)`` the multiset Jaccard. So
    ``F > t`` implies ``J > t / (2 - t)``: 0.7 / 1.3 = 0.5385 at Self-Instruct's
    threshold. Tagging each token with its occurrence number (``the``, ``the#2``...) makes
    the *set* Jaccard of the tagged tokens equal the multiset Jaccard, so plain MinHash on
    the tagged sets estimates it. Classic MinHash (``K`` independent hash functions, one
    minimum each; not the one-permutation hashing of :mod:`synth.curate.minhash`, whose
    densified slots are correlated for documents of ~15 tokens, so a band's collision
    probability would not be ``J**r``) gives ``P[band collides] = J**r``, and a pair at
    Jaccard ``J`` is missed by all ``b`` bands with probability ``(1 - J**r)**b``.
    :func:`lsh_params` picks ``(b, r)`` so that this is at most ``eps`` (1e-6) at the
    bound ``J* = t / (2 - t)``: at ``t = 0.7`` that is ``b = 158`` bands of ``r = 4``
    rows (632 hash functions), missing a pair at the bound with probability 9.4e-7, one at
    J = 0.6 with 2.9e-10, one at J = 0.7 with 1.4e-19. Every pair with ``F > t`` has
    ``J > J*``, so each is missed with probability below 1e-6; a miss would let one
    near-duplicate task into the pool (the decision is otherwise exact: ROUGE-L is
    computed exactly on every candidate). Where no ``b * r <= 1024`` reaches ``eps`` with
    fewer than half of the pairs at Jaccard 0.1 as candidates (a threshold below ~0.55) the
    pool scores every pair.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass

import numpy as np

from synth.hashing import mix64  # splitmix64 finaliser, one copy

__all__ = ["rouge_tokens", "lcs_length", "rouge_l_f", "STOP_WORDS", "words",
           "only_stop_words", "lsh_params", "miss_probability", "MinHasher", "PoolMatch",
           "RougePool"]

_NON_ALNUM = re.compile(r"[^a-z0-9]+")


def rouge_tokens(text: str) -> list[str]:
    """``rouge_score``'s tokens, no stemming: lowercase, non-``[a-z0-9]`` runs to spaces."""
    return _NON_ALNUM.sub(" ", text.lower()).split()


def _masks(a: list[str]) -> dict[str, int]:
    m: dict[str, int] = {}
    for i, tok in enumerate(a):
        m[tok] = m.get(tok, 0) | (1 << i)
    return m


def _lcs_masks(masks: dict[str, int], m: int, b: list[str]) -> int:
    # Bit-parallel LCS length (Allison & Dix 1986; Hyyrö 2004): one bit per token of ``a``,
    # a zero bit marks a position that ends a match of the LCS so far. Each token of ``b``
    # costs a few big-int operations on an m-bit integer instead of a row of m Python-level
    # table cells: rouge-score's ``_lcs_table`` takes ~120 µs for two 15-token tasks, this
    # ~3 µs, and the pool check runs it on every candidate pair. Carries out of the top bit
    # never come back down, so the mask is applied once, at the end.
    v = full = (1 << m) - 1
    get = masks.get
    for tok in b:
        u = v & get(tok, 0)
        v = (v + u) | (v - u)
    return m - (v & full).bit_count()


def lcs_length(a: list[str], b: list[str]) -> int:
    """Length of the longest common subsequence of two token lists."""
    if not a or not b:
        return 0
    return _lcs_masks(_masks(a), len(a), b)


def _f(lcs: int, n_target: int, n_pred: int) -> float:
    if not n_target or not n_pred:
        return 0.0
    precision, recall = lcs / n_pred, lcs / n_target
    return 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0


def rouge_l_f(a: list[str] | str, b: list[str] | str) -> float:
    """ROUGE-L F of two texts (or token lists), bit-identical to ``rouge_score``'s
    ``RougeScorer(["rougeL"], use_stemmer=False).score(a, b)["rougeL"].fmeasure``."""
    ta = rouge_tokens(a) if isinstance(a, str) else a
    tb = rouge_tokens(b) if isinstance(b, str) else b
    return _f(lcs_length(ta, tb), len(ta), len(tb))


# ---------------------------------------------------------------------------- stop words

#: English function words (NLTK's English list), for Evol-Instruct's "the answer is only
#: punctuation and stop words" rule. Contractions appear split, as :func:`words` splits
#: them (``don't`` -> ``don``, ``t``).
STOP_WORDS: frozenset[str] = frozenset("""
i me my myself we our ours ourselves you your yours yourself yourselves he him his himself
she her hers herself it its itself they them their theirs themselves what which who whom
this that these those am is are was were be been being have has had having do does did
doing a an the and but if or because as until while of at by for with about against between
into through during before after above below to from up down in out on off over under again
further then once here there when where why how all any both each few more most other some
such no nor not only own same so than too very s t can will just don should now d ll m o re
ve y ain aren couldn didn doesn hadn hasn haven isn ma mightn mustn needn shan shouldn wasn
weren won wouldn
""".split())

_WORD = re.compile(r"[^\W_]+")


def words(text: str) -> list[str]:
    """Lower-cased runs of letters and digits (any script)."""
    return _WORD.findall(text.lower())


def only_stop_words(text: str) -> bool:
    """True when ``text`` has nothing but punctuation, spaces and :data:`STOP_WORDS`."""
    return all(w in STOP_WORDS for w in words(text))


# ---------------------------------------------------------------------------- MinHash LSH

_EPS = 1e-6
_MAX_HASHES = 1024
_TYPICAL_J = 0.1  # Jaccard of two unrelated instructions sharing a few function words
_MAX_FP = 0.5  # a banding that makes more such pairs candidates is not worth its hashing


def lsh_params(threshold: float, *, eps: float = _EPS, max_hashes: int = _MAX_HASHES
               ) -> tuple[int, int] | None:
    """``(bands, rows)`` for a ROUGE-L F threshold ``t``: among the ``(b, r)`` with
    ``b * r <= max_hashes`` that miss a pair at multiset Jaccard ``t / (2 - t)`` with
    probability ``(1 - J**r)**b <= eps``, the one that makes the fewest candidates of a
    pair at Jaccard 0.1 (fewest hashes on ties); None when there is none, or when even
    that one makes half of such pairs candidates (thresholds below ~0.55: the pool then
    scores every pair)."""
    if not 0.0 < threshold < 1.0:
        return None
    j = threshold / (2.0 - threshold)
    best = None
    for r in range(1, max_hashes + 1):
        p = j ** r
        if p <= 0.0 or p >= 1.0:
            break
        bf = math.log(eps) / math.log1p(-p)
        if bf * r > max_hashes:  # b * r only grows from here on
            break
        b = math.ceil(bf)
        if b * r > max_hashes:
            continue
        fp = 1.0 - (1.0 - _TYPICAL_J ** r) ** b
        key = (fp, b * r)
        if best is None or key < best[0]:
            best = (key, (b, r))
    return None if best is None or best[0][0] > _MAX_FP else best[1]


def miss_probability(jaccard: float, bands: int, rows: int) -> float:
    """Probability that LSH with ``bands`` x ``rows`` misses a pair at ``jaccard``."""
    return (1.0 - jaccard ** rows) ** bands


_U64 = np.uint64


_OCC = _U64(0x9E3779B97F4A7C15)


class MinHasher:
    """Classic MinHash of occurrence-tagged token sets: ``bands * rows`` hash functions
    ``h_i(x) = splitmix64(x ^ s_i)``, one minimum each, and one LSH key per band. Token
    hashes are blake2b (not Python's per-process ``hash``), so signatures, and with them
    every candidate set, are the same in every run."""

    def __init__(self, bands: int, rows: int, *, seed: int = 0):
        self.bands, self.rows = bands, rows
        rng = np.random.Generator(np.random.PCG64(seed))
        k = bands * rows
        self.salts = rng.integers(0, 1 << 63, size=k, dtype=np.uint64)
        self.band_mult = rng.integers(1, 1 << 63, size=k, dtype=np.uint64) | _U64(1)
        self.band_salt = rng.integers(0, 1 << 63, size=bands, dtype=np.uint64)
        self._tok: dict[str, int] = {}

    def _token_hash(self, tok: str) -> int:
        h = self._tok.get(tok)
        if h is None:
            h = int.from_bytes(hashlib.blake2b(tok.encode(), digest_size=8).digest(), "little")
            self._tok[tok] = h
        return h

    def _tagged(self, tokens: list[str]) -> np.ndarray:
        seen: dict[str, int] = {}
        base, occ = [], []
        for tok in tokens:
            n = seen.get(tok, 0)
            seen[tok] = n + 1
            base.append(self._token_hash(tok))
            occ.append(n)
        x = np.array(base, dtype=np.uint64)
        with np.errstate(over="ignore"):
            x += np.array(occ, dtype=np.uint64) * _OCC
        return mix64(x)

    def signatures(self, token_lists: list[list[str]], *, chunk: int = 64) -> np.ndarray:
        """``(n, bands * rows)`` uint64 minima; an empty token list gets all ones."""
        k = self.bands * self.rows
        out = np.full((len(token_lists), k), np.iinfo(np.uint64).max, dtype=np.uint64)
        for s in range(0, len(token_lists), chunk):
            part = token_lists[s:s + chunk]
            idx = [i for i, t in enumerate(part) if t]
            if not idx:
                continue
            xs = [self._tagged(part[i]) for i in idx]
            x = np.concatenate(xs)
            h = mix64(x[:, None] ^ self.salts[None, :])
            starts = np.cumsum([0] + [len(v) for v in xs[:-1]])
            out[s + np.array(idx)] = np.minimum.reduceat(h, starts, axis=0)
        return out

    def band_keys(self, sig: np.ndarray) -> np.ndarray:
        """``(n, bands)`` uint64 keys: equal keys for equal bands (and, rarely, others)."""
        sig = np.atleast_2d(sig)
        with np.errstate(over="ignore"):
            prod = sig * self.band_mult[None, :]
            key = prod.reshape(len(sig), self.bands, self.rows).sum(axis=2, dtype=np.uint64)
            key ^= self.band_salt[None, :]
        return mix64(key)


# ---------------------------------------------------------------------------- the pool


@dataclass(frozen=True)
class PoolMatch:
    """The pool task a new task is too close to: the highest ROUGE-L F above the
    threshold (the earliest such task on ties)."""

    score: float
    id: str
    index: int


class RougePool:
    """Tasks kept so far, and the Self-Instruct check of a new one: is its ROUGE-L F
    against some pool task above ``threshold``? With ``prefilter`` (the default where
    :func:`lsh_params` finds bands) only the LSH candidates are scored; otherwise every
    pool task is. ``pairs`` counts the pool tasks a brute-force check would have scored,
    ``candidates`` those the LSH proposed, ``scored`` those ROUGE-L was computed for."""

    def __init__(self, threshold: float = 0.7, *, seed: int = 0, prefilter: bool = True,
                 eps: float = _EPS):
        self.threshold = threshold
        params = lsh_params(threshold, eps=eps) if prefilter else None
        self.hasher = MinHasher(*params, seed=seed) if params else None
        self.ids: list[str] = []
        self.texts: list[str] = []
        self.tokens: list[list[str]] = []
        self._index: dict[int, list[int]] = {}
        self.pairs = self.candidates = self.scored = 0

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def lsh(self) -> dict[str, float | int] | None:
        """The banding in use (None when every pair is scored)."""
        if self.hasher is None:
            return None
        b, r = self.hasher.bands, self.hasher.rows
        j = self.threshold / (2.0 - self.threshold)
        return {"bands": b, "rows": r, "hashes": b * r, "jaccard_bound": round(j, 4),
                "miss_probability_at_bound": miss_probability(j, b, r)}

    def signatures(self, token_lists: list[list[str]]) -> list[np.ndarray | None]:
        """Signatures for :meth:`match` / :meth:`add`, many at a time (faster)."""
        if self.hasher is None:
            return [None] * len(token_lists)
        return list(self.hasher.signatures(token_lists))

    def add(self, id: str, text: str, *, tokens: list[str] | None = None,
            sig: np.ndarray | None = None) -> None:
        toks = rouge_tokens(text) if tokens is None else tokens
        i = len(self.ids)
        self.ids.append(id)
        self.texts.append(text)
        self.tokens.append(toks)
        if self.hasher is not None and toks:
            if sig is None:
                sig = self.hasher.signatures([toks])[0]
            for key in self.hasher.band_keys(sig)[0].tolist():
                self._index.setdefault(key, []).append(i)

    def match(self, text: str, *, tokens: list[str] | None = None,
              sig: np.ndarray | None = None) -> PoolMatch | None:
        """The pool task ``text`` is too close to, or None when it may join the pool."""
        toks = rouge_tokens(text) if tokens is None else tokens
        n = len(self.ids)
        self.pairs += n
        if not toks or not n:
            return None
        if self.hasher is None:
            cands = range(n)
            self.candidates += n
        else:
            if sig is None:
                sig = self.hasher.signatures([toks])[0]
            found: set[int] = set()
            get = self._index.get
            for key in self.hasher.band_keys(sig)[0].tolist():
                hit = get(key)
                if hit:
                    found.update(hit)
            cands = sorted(found)
            self.candidates += len(cands)
        m = len(toks)
        masks = _masks(toks)
        best: tuple[float, int] | None = None
        t = self.threshold
        for i in cands:
            other = self.tokens[i]
            if not other:
                continue
            # LCS <= min(|a|, |b|): no LCS needed when F at that length is <= t (the
            # same float formula, so a pair exactly at the threshold is decided the same)
            if _f(min(m, len(other)), m, len(other)) <= t:
                continue
            self.scored += 1
            f = _f(_lcs_masks(masks, m, other), m, len(other))
            if f > t and (best is None or f > best[0]):
                best = (f, i)
        if best is None:
            return None
        return PoolMatch(score=best[0], id=self.ids[best[1]], index=best[1])

    def offer(self, id: str, text: str) -> PoolMatch | None:
        """:meth:`match`, then :meth:`add` when there is no match."""
        toks = rouge_tokens(text)
        sig = self.signatures([toks])[0]
        hit = self.match(text, tokens=toks, sig=sig)
        if hit is None:
            self.add(id, text, tokens=toks, sig=sig)
        return hit
