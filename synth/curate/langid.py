"""Language identification: keep rows written in the languages a dataset is meant to hold.

Uses py3langid (a maintained fork of langid.py): a naive Bayes model over byte n-grams that
ships inside the wheel, so it runs offline with no download. It classifies over all of its
languages (about 140), so a French row is recognised as French rather than forced onto the
nearest wanted language.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import ClassVar

import numpy as np
import polars as pl

from synth.curate.steps import Step, Verdict, check_field, field_texts, register_step
from synth.errors import ConfigError

__all__ = ["Language", "identifier", "strip_code", "classify_many"]

log = logging.getLogger("synth")

_HINT = "the language step needs `pip install py3langid` (or `pip install 'synth[curate]'`)"
_CODE = re.compile(r"^[a-z]{2}$")
# a fenced block, or an unclosed one running to the end (a truncated answer)
_FENCE = re.compile(r"(```|~~~).*?(?:\1|\Z)", re.S)


@lru_cache(maxsize=1)
def identifier():
    """The py3langid identifier with normalised probabilities; loaded once per process
    (decompressing the model takes about a second)."""
    try:
        from py3langid.langid import MODEL_FILE, LanguageIdentifier
    except ImportError:
        raise ConfigError(_HINT) from None
    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


class _Batch:
    """py3langid's ``classify`` for many texts at once: the byte DFA walk compiled
    (``_langid_jit``), the naive-Bayes scores as one sparse-by-dense product, the
    length-scaled softmax and alias folding vectorised. It reads the identifier's model
    arrays (py3langid 0.4's attributes) and proves itself against ``classify`` when built;
    any mismatch, missing attribute or missing numba means the per-text path instead."""

    _CHUNK_BYTES = 4_000_000  # the walk's scratch is 12 bytes per input byte: bound it

    def __init__(self, ident):
        from scipy import sparse

        from synth.curate._langid_jit import dfa_counts

        self.ident, self.walk, self.sparse = ident, dfa_counts, sparse
        # int32 tables: half the memory the walk jumps around in (~40 MB)
        self.nextmove = np.asarray(ident.tk_nextmove, dtype=np.int32)
        self.rowbase = np.asarray(ident._rowbase, dtype=np.int32)
        self.output = np.asarray(ident.tk_output, dtype=np.int32)
        self.ptc = np.asarray(ident.nb_ptc, dtype=np.float32)
        self.pc = np.asarray(ident.nb_pc, dtype=np.float32)
        self.classes = list(ident.nb_classes)
        self.alias = list(ident._alias_pairs)
        if not ident._norm_probs:  # pragma: no cover - identifier() sets it
            raise ValueError("needs norm_probs")

    def _chunk(self, texts: list[str]) -> list[tuple[str, float]]:
        raw = [self.ident._encode(t) for t in texts]
        lens = np.fromiter((len(b) for b in raw), dtype=np.int64, count=len(raw))
        offsets = np.zeros(len(raw) + 1, dtype=np.int64)
        np.cumsum(lens, out=offsets[1:])
        buf = np.frombuffer(b"".join(raw), dtype=np.uint8)
        indptr, indices, counts = self.walk(buf, offsets, self.nextmove, self.rowbase,
                                            self.output, self.ptc.shape[0])
        # log1p(counts) @ P(feature|class) + P(class), for every text in one product
        np.log1p(counts, out=counts)
        x = self.sparse.csr_matrix((counts, indices, indptr),
                                   shape=(len(raw), self.ptc.shape[0]))
        empty = np.diff(indptr) == 0  # no features: py3langid scores zeros (uniform)
        scores = np.asarray(x @ self.ptc, dtype=np.float32) + self.pc
        scores[empty] = 0.0
        scores *= (1.0 / np.sqrt(np.maximum(lens, 1))).astype(np.float32)[:, None]
        scores -= scores.max(axis=1, keepdims=True)
        np.exp(scores, out=scores)
        scores /= scores.sum(axis=1, keepdims=True)
        for i, j in self.alias:
            scores[:, i] += scores[:, j]
            scores[:, j] = 0.0
        best = scores.argmax(axis=1)
        conf = scores[np.arange(len(raw)), best]
        return [(self.classes[b], float(c)) for b, c in zip(best.tolist(), conf.tolist())]

    def __call__(self, texts: list[str]) -> list[tuple[str, float]]:
        from synth.hashing import text_chunks

        pieces = text_chunks(texts, max_docs=max(len(texts), 1), max_chars=self._CHUNK_BYTES)
        return [r for piece in pieces for r in self._chunk(piece)]


_PROOF = ("The committee will publish its findings after the summer recess.",
          "Le comité publiera ses conclusions après les vacances d'été.",
          "Der Ausschuss veröffentlicht seine Ergebnisse nach der Sommerpause.",
          "委員会は夏休みの後に調査結果を発表します。", "SHOUTING TEXT IS LOWERED FIRST",
          "12345 67890", "", "x")


@lru_cache(maxsize=1)
def _batch():
    """The batch classifier, or None (numba missing, or py3langid's internals moved)."""
    ident = identifier()
    try:
        batch = _Batch(ident)
        got = batch(list(_PROOF))
    except ImportError:  # numba or scipy missing: the ``curate`` extra brings both
        return None
    except Exception as e:  # noqa: BLE001 - a py3langid that changed: fall back, loudly
        log.warning("language: batch classifier unavailable (%s: %s); classifying per text",
                    type(e).__name__, e)
        return None
    for text, (lang, p) in zip(_PROOF, got):
        want_lang, want_p = ident.classify(text)
        if lang != want_lang or not math.isclose(p, want_p, rel_tol=1e-3, abs_tol=1e-5):
            log.warning("language: batch classifier disagrees with py3langid on %r "
                        "(%s %.4f vs %s %.4f); classifying per text", text[:30], lang, p,
                        want_lang, want_p)
            return None
    return batch


def classify_many(texts: list[str]) -> list[tuple[str, float]]:
    """``identifier().classify`` of each text: ``(language, probability)``, batched and
    compiled when numba is present (same answers, ~13x faster)."""
    batch = _batch()
    if batch is None:
        classify = identifier().classify
        return [classify(t) for t in texts]
    return batch(texts)


def strip_code(text: str) -> str:
    """``text`` without fenced code blocks: code is not prose in any language and pulls
    the byte n-gram model towards noise."""
    return _FENCE.sub(" ", text) if "```" in text or "~~~" in text else text


@register_step
@dataclass(frozen=True, kw_only=True)
class Language(Step):
    """Rows whose text is confidently in a language outside ``languages`` (ISO 639-1
    codes, e.g. ``[en]``).

    The text of ``field`` (``response``, ``prompt``, ``both`` or a column) is judged
    with fenced code blocks (```` ``` ```` or ``~~~``) removed. Texts shorter than
    ``min_chars`` after that are not judged and are kept. A judged row is dropped only when
    its top language is not wanted *and* that language's probability is at least
    ``min_confidence``: an unsure guess keeps the row. Adds ``lang`` and ``lang_score``
    (the top language and its probability; null when not judged). Only the first
    ``max_chars`` characters of prose are judged: the model's cost grows with the text and a
    couple of thousand characters settle the language (``null`` judges everything).
    """

    name: ClassVar[str] = "language"
    # one row's language is its own text's: any split of the rows gets the same verdicts
    row_local: ClassVar[bool] = True
    needs: ClassVar[tuple[str, ...]] = ()
    produces: ClassVar[tuple[str, ...]] = ("lang", "lang_score")
    requires: ClassVar = (("py3langid", "py3langid"),)
    languages: tuple[str, ...]
    field: str = "response"
    min_confidence: float = 0.5
    min_chars: int = 20
    max_chars: int | None = 2000

    def __post_init__(self):
        langs = (self.languages,) if isinstance(self.languages, str) else self.languages
        if not isinstance(langs, (list, tuple)) or not langs:
            raise ValueError("languages must be a non-empty list of ISO 639-1 codes, "
                             "e.g. [en]")
        bad = [c for c in langs if not isinstance(c, str) or not _CODE.match(c)]
        if bad:
            raise ValueError(f"languages: {', '.join(map(repr, bad))} not a two-letter "
                             "lowercase ISO 639-1 code, e.g. en")
        check_field(self.field)
        c = self.min_confidence
        if isinstance(c, bool) or not isinstance(c, (int, float)) or not 0 <= c <= 1:
            raise ValueError("min_confidence must be a number in [0, 1]")
        if isinstance(self.min_chars, bool) or not isinstance(self.min_chars, int) \
                or self.min_chars < 0:
            raise ValueError("min_chars must be a whole number >= 0")
        m = self.max_chars
        if m is not None and (isinstance(m, bool) or not isinstance(m, int)
                              or m < max(1, self.min_chars)):
            raise ValueError("max_chars must be a whole number >= min_chars, or null")
        # load now: a missing package or a code the model lacks fails when the filter set
        # loads, not after the earlier steps have run
        unknown = sorted(set(langs) - set(identifier().labels))
        if unknown:
            raise ValueError(f"languages: py3langid does not know {', '.join(unknown)}")
        object.__setattr__(self, "languages", tuple(langs))

    def _texts(self, df: pl.DataFrame) -> list[str]:
        return field_texts(df, self.field).to_list()

    def __call__(self, df: pl.DataFrame) -> Verdict:
        prose = [strip_code(t).strip() for t in self._texts(df)]
        judged = [i for i, t in enumerate(prose) if len(t) >= self.min_chars]
        found = classify_many([prose[i][: self.max_chars] for i in judged])
        wanted = set(self.languages)
        langs: list[str | None] = [None] * df.height
        scores: list[float | None] = [None] * df.height
        reasons: list[str | None] = [None] * df.height
        for i, (lang, p) in zip(judged, found):
            langs[i], scores[i] = lang, float(p)
            if lang not in wanted and p >= self.min_confidence:
                reasons[i] = f"language: {lang} ({p:.2f})"
        out = df.with_columns(pl.Series("lang", langs, dtype=pl.String),
                              pl.Series("lang_score", scores, dtype=pl.Float64))
        return Verdict(out, pl.Series("drop", reasons, dtype=pl.String))
