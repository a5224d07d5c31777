"""Curation steps: each takes a columnar batch of trace rows and says, per row, keep or drop
with a reason; scoring steps add columns. A reason reads ``kind`` or ``kind: detail``; the
runner counts by ``kind`` and keeps the whole reason on the rejected row. The runner (``synth.curate.runner``) counts the
reasons and sends every dropped row to ``rejects.parquet``.

A step is a small keyword-only config object with ``name`` and ``__call__(df) -> Verdict``.
Batches are polars DataFrames so the same step can later run unchanged on a distributed
engine that hands out Arrow batches.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import polars as pl

__all__ = [
    "Verdict",
    "Step",
    "STEPS",
    "register_step",
    "DropErrors",
    "Truncated",
    "Empty",
    "Refusal",
    "Repetition",
    "Length",
    "ExactDedup",
    "normalize_text",
    "normalized",
    "keeper_scores",
    "SCORE_COLUMNS",
    "prompt_texts",
]


@dataclass
class Verdict:
    """What a step decided for a batch: ``drop`` holds a reason per row (null = keep);
    ``df`` is the batch, possibly with new score columns, same rows in the same order."""

    df: pl.DataFrame
    drop: pl.Series


class Step:
    """Base of the built-in steps: a name and a registry; no behaviour is inherited."""

    name: ClassVar[str] = ""
    needs: ClassVar[tuple[str, ...]] = ("id",)  # columns the step reads

    def __call__(self, df: pl.DataFrame) -> Verdict:  # pragma: no cover - interface
        raise NotImplementedError


STEPS: dict[str, type] = {}


def register_step(cls: type) -> type:
    """Make a step available to recipes under ``cls.name``."""
    STEPS[cls.name] = cls
    return cls


def _keep_all(df: pl.DataFrame) -> pl.Series:
    return pl.Series("drop", [None] * df.height, dtype=pl.String)


def _reason_where(df: pl.DataFrame, mask: pl.Expr, reason: pl.Expr | str) -> pl.Series:
    r = pl.lit(reason) if isinstance(reason, str) else reason
    return df.select(pl.when(mask).then(r).otherwise(None).cast(pl.String).alias("drop"))[
        "drop"]


@register_step
@dataclass(frozen=True, kw_only=True)
class DropErrors(Step):
    """Rows whose request failed (``status != ok``)."""

    name: ClassVar[str] = "drop_errors"

    def __call__(self, df: pl.DataFrame) -> Verdict:
        if "status" not in df.columns:  # rows from elsewhere: nothing says they failed
            return Verdict(df, _keep_all(df))
        if "error" not in df.columns:
            df = df.with_columns(pl.lit(None, pl.String).alias("error"))
        reason = pl.concat_str([pl.lit("error "),
                                pl.col("error").fill_null("").str.split(":").list.first()])
        return Verdict(df, _reason_where(df, pl.col("status") != "ok", reason))


@register_step
@dataclass(frozen=True, kw_only=True)
class Truncated(Step):
    """Answers cut off by ``max_tokens`` (``finish_reason == "length"``)."""

    name: ClassVar[str] = "truncated"

    def __call__(self, df: pl.DataFrame) -> Verdict:
        if "finish_reason" not in df.columns:
            return Verdict(df, _keep_all(df))
        return Verdict(df, _reason_where(df, pl.col("finish_reason") == "length",
                                         "truncated"))


@register_step
@dataclass(frozen=True, kw_only=True)
class Empty(Step):
    """No answer text (after stripping whitespace)."""

    name: ClassVar[str] = "empty"
    needs: ClassVar[tuple[str, ...]] = ("response",)

    def __call__(self, df: pl.DataFrame) -> Verdict:
        blank = pl.col("response").is_null() | (pl.col("response").str.strip_chars() == "")
        return Verdict(df, _reason_where(df, blank, "empty"))


_REFUSALS = (
    r"\bI(?:'m| am) (?:sorry|afraid),? (?:but )?I (?:can(?:no|')t|won't|am unable|'m unable)",
    r"\bI (?:cannot|can't|won't) (?:help|assist|provide|comply|do that)",
    r"\bas an AI(?: language model)?,? I (?:cannot|can't|don't|am not able)",
    r"\bI'm not able to (?:help|assist|provide)",
    r"\bI must (?:decline|refuse)",
)


@register_step
@dataclass(frozen=True, kw_only=True)
class Refusal(Step):
    """Answers that refuse instead of answering (English patterns; extend with
    ``patterns``). Looks at the first ``head_chars`` characters only: a refusal leads."""

    name: ClassVar[str] = "refusal"
    needs: ClassVar[tuple[str, ...]] = ("response",)
    patterns: tuple[str, ...] = _REFUSALS
    head_chars: int = 400

    def __call__(self, df: pl.DataFrame) -> Verdict:
        rx = "(?i)" + "|".join(f"(?:{p})" for p in self.patterns)
        head = pl.col("response").fill_null("").str.slice(0, self.head_chars)
        return Verdict(df, _reason_where(df, head.str.contains(rx), "refusal"))


@register_step
@dataclass(frozen=True, kw_only=True)
class Repetition(Step):
    """Degenerate loops: the share of word n-grams that repeat an earlier one.
    Adds ``repetition_ratio``; drops above ``max_ratio``."""

    name: ClassVar[str] = "repetition"
    needs: ClassVar[tuple[str, ...]] = ("response",)
    ngram: int = 3
    max_ratio: float = 0.3

    def __post_init__(self):
        if self.ngram < 1 or not 0 < self.max_ratio <= 1:
            raise ValueError("ngram must be >= 1 and max_ratio in (0, 1]")

    def __call__(self, df: pl.DataFrame) -> Verdict:
        from synth.curate.minhash import repeated_ngram_ratios

        texts = df["response"].fill_null("").to_list()
        ratios = pl.Series("repetition_ratio", repeated_ngram_ratios(texts, self.ngram),
                           dtype=pl.Float64)
        out = df.with_columns(ratios)
        return Verdict(out, _reason_where(
            out, pl.col("repetition_ratio") > self.max_ratio,
            pl.format("repetition: {}", pl.col("repetition_ratio").round(2))))


@register_step
@dataclass(frozen=True, kw_only=True)
class Length(Step):
    """Word-count bounds on a text column."""

    name: ClassVar[str] = "length"
    needs: ClassVar[tuple[str, ...]] = ("response",)
    field: str = "response"
    min_words: int = 1
    max_words: int | None = None

    def __call__(self, df: pl.DataFrame) -> Verdict:
        words = pl.col(self.field).fill_null("").str.count_matches(r"\S+")
        out = df.with_columns(words.alias(f"{self.field}_words"))
        w = pl.col(f"{self.field}_words")
        reason = pl.when(w < self.min_words).then(pl.format("too short: {} words", w))
        if self.max_words is not None:
            reason = reason.when(w > self.max_words).then(pl.format("too long: {} words", w))
        return Verdict(out, out.select(reason.otherwise(None).cast(pl.String)
                                       .alias("drop"))["drop"])


def normalized(texts: pl.Series) -> pl.Series:
    """Case-, compatibility-form-, punctuation- and whitespace-insensitive form of texts
    (NFKC, lowercase, every non-word character a space, spaces collapsed), vectorised.

    NFKC runs only on the rows that hold non-ASCII characters (it is the identity on ASCII
    and the slowest part), and whitespace runs are matched so that a lone space, the
    common case, is not rewritten: together ~6x faster than the plain expression.
    """
    s = texts.fill_null("").cast(pl.String)
    wide = s.str.len_bytes() != s.str.len_chars()
    if wide.any():
        s = s.scatter(wide.arg_true(), s.filter(wide).str.normalize("NFKC"))
    c = pl.col(s.name)
    return s.to_frame().select(
        c.str.to_lowercase().str.replace_all(r"[^\w\s]", " ")
        .str.replace_all(r"\s\s+|[^\S ]", " ").str.strip_chars())[s.name]


def normalize_text(text: str | None) -> str:
    """:func:`normalized` for one string."""
    return normalized(pl.Series("t", [text], dtype=pl.String))[0]


#: Score columns a dedup step keeps the best of when its recipe names none: the
#: ``quality`` step's and the ``llm_judge`` step's.
SCORE_COLUMNS = ("quality", "judge_score")


def keeper_scores(df: pl.DataFrame, score_column: str | None) -> tuple[list | None, str | None]:
    """``(scores, column)`` a dedup step ranks a cluster's members by: ``score_column``
    when given (it must exist), else the first of :data:`SCORE_COLUMNS` the rows have,
    else ``(None, None)`` (the first member is kept)."""
    from synth.errors import InputError

    if score_column is not None:
        if score_column not in df.columns:
            raise InputError(f"no column {score_column!r} to rank duplicates by "
                             f"(columns: {', '.join(df.columns)})", field="score_column")
        return df[score_column].to_list(), score_column
    for col in SCORE_COLUMNS:
        if col in df.columns and df.schema[col].is_numeric():
            return df[col].to_list(), col
    return None, None


def prompt_texts(df: pl.DataFrame, *, include_assistant: bool = False) -> list[str]:
    """The request text of each row: its ``messages`` (few-shot assistant turns only when
    asked), else a plain ``prompt`` column, else empty strings."""
    if "messages" in df.columns:
        return ["\n".join(m["content"] for m in (ms or [])
                          if include_assistant or m["role"] != "assistant")
                for ms in df["messages"].to_list()]
    if "prompt" in df.columns:
        return [p or "" for p in df["prompt"].to_list()]
    return [""] * df.height


@register_step
@dataclass(frozen=True, kw_only=True)
class ExactDedup(Step):
    """Exact duplicates after :func:`normalized` text; the first occurrence is kept.
    ``field``: ``response``, ``prompt`` (the request's messages) or ``both``."""

    name: ClassVar[str] = "exact_dedup"
    needs: ClassVar[tuple[str, ...]] = ("id",)
    field: str = "response"

    def __post_init__(self):
        if self.field not in ("response", "prompt", "both"):
            raise ValueError("field must be response, prompt or both")

    def _key(self, df: pl.DataFrame) -> pl.Series:
        parts = []
        if self.field in ("prompt", "both"):
            parts.append(pl.Series("p", prompt_texts(df), dtype=pl.String))
        if self.field in ("response", "both"):
            parts.append(df["response"])
        frame = pl.DataFrame({f"c{i}": normalized(p) for i, p in enumerate(parts)})
        return frame.select(pl.concat_str(pl.all(), separator="\x00").alias("key"))["key"]

    def __call__(self, df: pl.DataFrame) -> Verdict:
        first = pl.DataFrame({"key": self._key(df), "id": df["id"].cast(pl.String)}).select(
            pl.col("id"), pl.col("id").first().over("key").alias("first"))
        reason = pl.when(pl.col("id") != pl.col("first")).then(
            pl.format("duplicate: of {}", pl.col("first")))
        return Verdict(df, first.select(reason.otherwise(None).cast(pl.String)
                                        .alias("drop"))["drop"])
