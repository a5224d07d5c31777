"""Language identification: keep rows written in the languages a dataset is meant to hold.

Uses py3langid (a maintained fork of langid.py): a naive Bayes model over byte n-grams that
ships inside the wheel, so it runs offline with no download. It classifies over all of its
languages (about 140), so a French row is recognised as French rather than forced onto the
nearest wanted language.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import ClassVar

import polars as pl

from synth.curate.steps import Step, Verdict, prompt_texts, register_step
from synth.errors import ConfigError

__all__ = ["Language", "identifier", "strip_code"]

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


def strip_code(text: str) -> str:
    """``text`` without fenced code blocks: code is not prose in any language and pulls
    the byte n-gram model towards noise."""
    return _FENCE.sub(" ", text) if "```" in text or "~~~" in text else text


@register_step
@dataclass(frozen=True, kw_only=True)
class Language(Step):
    """Rows whose text is confidently in a language outside ``languages`` (ISO 639-1
    codes, e.g. ``[en]``).

    The text of ``field`` (``response``, or ``prompt``: the request's messages) is judged
    with fenced code blocks (```` ``` ```` or ``~~~``) removed. Texts shorter than
    ``min_chars`` after that are not judged and are kept. A judged row is dropped only when
    its top language is not wanted *and* that language's probability is at least
    ``min_confidence``: an unsure guess keeps the row. Adds ``lang`` and ``lang_score``
    (the top language and its probability; null when not judged). Only the first
    ``max_chars`` characters of prose are judged: the model's cost grows with the text and a
    couple of thousand characters settle the language (``null`` judges everything).
    """

    name: ClassVar[str] = "language"
    needs: ClassVar[tuple[str, ...]] = ("response",)
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
        if self.field not in ("response", "prompt"):
            raise ValueError("field must be response or prompt")
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
        # load now: a missing package or a code the model lacks fails at recipe load,
        # not after the earlier steps have run
        unknown = sorted(set(langs) - set(identifier().labels))
        if unknown:
            raise ValueError(f"languages: py3langid does not know {', '.join(unknown)}")
        object.__setattr__(self, "languages", tuple(langs))

    def _texts(self, df: pl.DataFrame) -> list[str]:
        if self.field == "prompt":
            return prompt_texts(df)
        return [t or "" for t in df["response"].to_list()]

    def __call__(self, df: pl.DataFrame) -> Verdict:
        # py3langid has no batch path (its DFA walk is per text), so loop
        classify = identifier().classify
        wanted = set(self.languages)
        langs: list[str | None] = []
        scores: list[float | None] = []
        reasons: list[str | None] = []
        for text in self._texts(df):
            prose = strip_code(text).strip()
            if len(prose) < self.min_chars:
                langs.append(None)
                scores.append(None)
                reasons.append(None)
                continue
            lang, p = classify(prose[: self.max_chars])
            langs.append(lang)
            scores.append(p)
            drop = lang not in wanted and p >= self.min_confidence
            reasons.append(f"language: {lang} ({p:.2f})" if drop else None)
        out = df.with_columns(pl.Series("lang", langs, dtype=pl.String),
                              pl.Series("lang_score", scores, dtype=pl.Float64))
        return Verdict(out, pl.Series("drop", reasons, dtype=pl.String))
