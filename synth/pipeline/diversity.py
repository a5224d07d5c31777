"""How varied a set of texts is: distinct-n, self-BLEU and the Vendi score.

* **distinct-n** (Li et al. 2016): unique n-grams / total n-grams over all the texts
  (lower-cased 13a tokens). 1.0 = no n-gram repeats anywhere; identical texts score low.
  It falls as the set grows, so it is computed on a seeded sample of a fixed size.
* **self-BLEU** (Zhu et al. 2018): each text of a seeded sample scored by sentence BLEU-4
  against all the others as references, averaged; 0–100. High = the texts repeat each
  other (identical texts: 100), low = varied (disjoint texts: 0).
* **Vendi score** (Friedman & Dieng 2023): exp of the Shannon entropy of the eigenvalues of
  K/n, K the cosine-similarity matrix of L2-normalised embeddings (MiniLM by default). The
  "effective number of distinct texts": 1 for n copies of one text, n for n orthogonal ones.

A metric that cannot be computed (too few texts, no embedding model) comes back with
``value=None`` and the reason, never a made-up number.

BLEU is written here rather than imported: it reproduces ``sacrebleu.sentence_bleu`` with
its defaults (13a tokenizer, ``exp`` smoothing, effective order; the tests compare the two
on fixed cases) without making the report depend on sacrebleu, and scoring each text against
the rest of the sample needs a per-n-gram "best count among the *other* texts", which one
pass over the sample gives (top two counts per n-gram) instead of n merges of n-1 references.
"""

from __future__ import annotations

import math
import random
import re
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np

__all__ = ["Metric", "tokenize_13a", "distinct_n", "sentence_bleu", "self_bleu",
           "vendi_score", "diversity"]

MAX_ORDER = 4

#: Default sample sizes: distinct-n and Vendi depend on the set size, self-BLEU is O(n·len).
DISTINCT_SAMPLE = 5000
BLEU_SAMPLE = 200
VENDI_SAMPLE = 200  # MiniLM on 2 CPU cores: ~0.3 s a long text


@dataclass
class Metric:
    """One diversity number: ``value`` (``None`` = not computed, ``reason`` says why) and
    ``n``, the number of texts it was computed on."""

    name: str
    value: float | None
    n: int
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# ------------------------------------------------------------------------ tokenization

# sacrebleu's 13a (mteval-v13a) rules, in the same order. The first spaces out every
# character of [{-~[-` -&(-+:-@/]; here without the space itself (" " -> "   " changes no
# token and no later match), which it would otherwise match on every word boundary.
_13A = [
    (re.compile(r"([\{-\~\[-\`!-\&\(-\+\:-\@\/])"), r" \1 "),  # punctuation, symbols
    (re.compile(r"([^0-9])([\.,])"), r"\1 \2 "),  # period and comma unless after a digit
    (re.compile(r"([\.,])([^0-9])"), r" \1 \2"),  # ... unless before a digit
    (re.compile(r"([0-9])(-)"), r"\1 \2 "),  # dash after a digit
]


def tokenize_13a(text: str) -> list[str]:
    """The tokens sacrebleu's default ``13a`` tokenizer makes of ``text``."""
    line = text.rstrip().replace("<skipped>", "").replace("-\n", "").replace("\n", " ")
    if "&" in line:
        line = (line.replace("&quot;", '"').replace("&amp;", "&").replace("&lt;", "<")
                .replace("&gt;", ">"))
    line = f" {line} "
    for pattern, repl in _13A:
        line = pattern.sub(repl, line)
    return line.split()


def _sample(items: Sequence[Any], k: int | None, seed: int) -> list[Any]:
    if k is None or len(items) <= k:
        return list(items)
    idx = sorted(random.Random(seed).sample(range(len(items)), k))
    return [items[i] for i in idx]


# ------------------------------------------------------------------------ distinct-n


def _distinct(token_lists: Sequence[list[str]], n: int) -> float | None:
    seen: set[tuple[str, ...]] = set()
    total = 0
    for toks in token_lists:
        total += max(0, len(toks) - n + 1)
        seen.update(zip(*(toks[i:] for i in range(n))))
    return len(seen) / total if total else None


def distinct_n(texts: Sequence[str], n: int) -> float | None:
    """Unique n-grams / total n-grams over ``texts``; ``None`` when they have no n-gram."""
    return _distinct([tokenize_13a(t.lower()) for t in texts], n)


# ------------------------------------------------------------------------ BLEU


def _ngrams(tokens: list[str]) -> Counter:
    return Counter(tuple(tokens[i:i + n]) for n in range(1, MAX_ORDER + 1)
                   for i in range(len(tokens) - n + 1))


def _closest(hyp_len: int, ref_lens: Sequence[int]) -> int:
    """The reference length closest to the hypothesis' (the shorter on a tie)."""
    return min(ref_lens, key=lambda r: (abs(hyp_len - r), r))


def _bleu(correct: list[int], total: list[int], hyp_len: int, ref_len: int) -> float:
    """sacrebleu's ``compute_bleu`` with ``exp`` smoothing and effective order."""
    if not any(correct):
        return 0.0
    bp = 1.0 if hyp_len >= ref_len else (math.exp(1 - ref_len / hyp_len) if hyp_len else 0.0)
    logs, smooth = [], 1.0
    for c, t in zip(correct, total):
        if t == 0:
            break
        if c == 0:
            smooth *= 2
            p = 100.0 / (smooth * t)
        else:
            p = 100.0 * c / t
        logs.append(math.log(p))
    return bp * math.exp(sum(logs) / len(logs))


def _stats(hyp: Counter, hyp_len: int, best: Any) -> tuple[list[int], list[int]]:
    correct, total = [0] * MAX_ORDER, [0] * MAX_ORDER
    for gram, count in hyp.items():
        k = len(gram) - 1
        total[k] += count
        correct[k] += min(count, best(gram))
    return correct, total


def sentence_bleu(hypothesis: str, references: Sequence[str]) -> float:
    """Sentence BLEU-4 (0–100) of ``hypothesis`` against ``references``: the same number as
    ``sacrebleu.sentence_bleu(hypothesis, references).score``."""
    hyp_toks = tokenize_13a(hypothesis)
    refs = [tokenize_13a(r) for r in references]
    if not refs:
        raise ValueError("sentence_bleu needs at least one reference")
    ref_max: Counter = Counter()
    for r in refs:
        for gram, c in _ngrams(r).items():
            if c > ref_max[gram]:
                ref_max[gram] = c
    correct, total = _stats(_ngrams(hyp_toks), len(hyp_toks), lambda g: ref_max.get(g, 0))
    return _bleu(correct, total, len(hyp_toks), _closest(len(hyp_toks), [len(r) for r in refs]))


def self_bleu(texts: Sequence[str], *, sample: int | None = BLEU_SAMPLE, seed: int = 0
              ) -> Metric:
    """Mean sentence BLEU of each text of a seeded sample against all the others."""
    chosen = _sample(texts, sample, seed)
    if len(chosen) < 2:
        return Metric("self_bleu", None, len(chosen), "needs at least 2 texts")
    toks = [tokenize_13a(t) for t in chosen]
    grams = [_ngrams(t) for t in toks]
    lens = [len(t) for t in toks]
    # per n-gram, the two highest counts and who has the highest: the best count among
    # the texts other than i is top[0] unless i holds it, then top[1]
    top: dict[tuple[str, ...], list[int]] = {}  # gram -> [count1, owner1, count2]
    for i, g in enumerate(grams):
        for gram, c in g.items():
            t = top.get(gram)
            if t is None:
                top[gram] = [c, i, 0]
            elif c > t[0]:
                t[2], t[0], t[1] = t[0], c, i
            elif c > t[2]:
                t[2] = c
    scores = []
    for i, g in enumerate(grams):
        def best(gram: tuple[str, ...], i: int = i) -> int:
            t = top[gram]
            return t[2] if t[1] == i else t[0]

        correct, total = _stats(g, lens[i], best)
        others = lens[:i] + lens[i + 1:]
        scores.append(_bleu(correct, total, lens[i], _closest(lens[i], others)))
    return Metric("self_bleu", sum(scores) / len(scores), len(chosen))


# ------------------------------------------------------------------------ Vendi


def vendi_score(embeddings: np.ndarray) -> float:
    """exp(entropy of the eigenvalues of K/n), K = cosine similarities of the rows.

    Written out rather than taken from the ``vendi-score`` package: it is four lines of
    numpy, and that package would bring scikit-learn (and its own torch helpers) into a
    report. K = X Xᵀ for L2-normalised rows X (n × d) has the same non-zero eigenvalues as
    XᵀX (d × d), so the smaller of the two is decomposed: a 384-wide MiniLM embedding of
    any number of texts costs one 384 × 384 eigendecomposition."""
    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim != 2 or len(x) == 0:
        raise ValueError("vendi_score needs a non-empty (n, d) array")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if np.any(norms == 0):
        raise ValueError("vendi_score: an embedding is all zeros")
    x = x / norms
    n, d = x.shape
    gram = x.T @ x if d < n else x @ x.T
    lam = np.linalg.eigvalsh(gram / n)
    lam = lam[lam > 1e-12]  # zero (and round-off negative) eigenvalues add 0·log 0 = 0
    return float(np.exp(-np.sum(lam * np.log(lam))))


def _vendi_of_texts(texts: Sequence[str], encoder: str | None) -> Metric:
    if encoder is None:
        return Metric("vendi", None, len(texts), "no embedding model was asked for (the "
                      "pipeline file's report.vendi is false)")
    if not texts:
        return Metric("vendi", None, 0, "no texts")
    try:
        from synth.curate.embed import embed
        from synth.models import encoder_path

        encoder_path(encoder)  # cheap: a missing model is known before torch is imported
        e = embed(list(texts), encoder=encoder)
    except Exception as e:  # any failure to load or run the model: say so, never guess
        return Metric("vendi", None, len(texts),
                      f"embedding model {encoder!r} could not be used: "
                      f"{type(e).__name__}: {e}")
    return Metric("vendi", vendi_score(e), len(texts))


# ------------------------------------------------------------------------ all of them


def diversity(texts: Sequence[str | None], *, encoder: str | None = "all-minilm-l6-v2",
              seed: int = 0, distinct_sample: int | None = DISTINCT_SAMPLE,
              bleu_sample: int | None = BLEU_SAMPLE,
              vendi_sample: int | None = VENDI_SAMPLE) -> dict[str, Metric]:
    """distinct-1, distinct-2, self-BLEU and Vendi of ``texts`` (empty and ``None`` texts
    left out), each on its own seeded sample. ``encoder=None`` skips the embeddings."""
    clean = [t for t in texts if isinstance(t, str) and t.strip()]
    out: dict[str, Metric] = {}
    d_texts = _sample(clean, distinct_sample, seed)
    d_tokens = [tokenize_13a(t.lower()) for t in d_texts]
    for n in (1, 2):
        v = _distinct(d_tokens, n)
        out[f"distinct_{n}"] = Metric(f"distinct_{n}", v, len(d_texts),
                                      None if v is not None else f"no {n}-grams in the texts")
    out["self_bleu"] = self_bleu(clean, sample=bleu_sample, seed=seed)
    out["vendi"] = _vendi_of_texts(_sample(clean, vendi_sample, seed), encoder)
    return out
