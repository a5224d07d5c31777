"""Curation steps: each takes a columnar batch of trace rows and says, per row, keep or drop
with a reason; scoring steps add columns. A reason reads ``kind`` or ``kind: detail``; the
runner (``synth.curate.runner``) counts the reasons by ``kind`` and sends every dropped row,
with its whole reason, to ``rejects.parquet``.

A step is a small keyword-only config object with ``name`` and ``__call__(df) -> Verdict``.
Everything a step reports goes back in its :class:`Verdict`: the decisions, the rows with
any new columns, warnings, and extra figures (``figures``, recorded in ``curation.json``).
A step that needs to know about the run it is part of (where the curation writes) sets
``takes_context = True`` and is called ``step(df, ctx)`` with a :class:`StepContext`.
Batches are polars DataFrames so the same step can later run unchanged on a distributed
engine that hands out Arrow batches.

``field:`` means the same in every step that reads text (:func:`field_texts`):
``response`` is the answer, ``prompt`` the request (every message of it, or a ``prompt``
column), ``both`` the two joined, and any other name a text column of that name. A step
declares the columns it reads (:meth:`Step.reads`) and adds (:meth:`Step.adds`), so the
runner can refuse a filter set that reads a column the data lacks before any step runs,
and the packages it needs (``requires``), so a missing one fails when the filter set loads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import polars as pl

from synth.deps import Requirement
from synth.plugins import GROUPS, Registry, named_class

__all__ = [
    "Verdict",
    "StepContext",
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
    "field_texts",
    "field_columns",
    "check_field",
]


@dataclass
class Verdict:
    """What a step decided for a batch: ``drop`` holds a reason per row (null = keep);
    ``df`` is the batch, possibly with new score columns, same rows in the same order.
    ``warnings``: what the user must hear even though the step ran (e.g. most rows could
    not be verified); the runner prints them and keeps them in ``curation.json``.
    ``figures``: the step's extra figures, small and JSON-able, by section (e.g.
    ``{"verdicts": {"correct": 3, ...}}``); the runner records them as the step's ``info``
    in ``curation.json``, where the card and the report show them."""

    df: pl.DataFrame
    drop: pl.Series
    warnings: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StepContext:
    """What the runner tells a step that sets ``takes_context``: ``out`` is the curation's
    output directory (None when ``curate()`` writes nothing), so a step that makes files
    of its own, like ``llm_judge``'s generation run, can put them beside the outputs."""

    out: Path | None = None


class Step:
    """Base of the built-in steps: a name, what it reads, adds and needs installed."""

    name: ClassVar[str] = ""
    needs: ClassVar[tuple[str, ...]] = ("id",)  # columns the step always reads
    produces: ClassVar[tuple[str, ...]] = ()    # columns it adds
    requires: ClassVar[tuple[Requirement, ...]] = ()  # (import name, pip name) it needs
    # each row's verdict depends on that row alone: an engine may run the step on any
    # split of the rows (``synth.curate.ray_engine``); its figures and warnings, if any,
    # must come back whole from figures_from_rows
    row_local: ClassVar[bool] = False
    # rows that share this column's value are decided together, and only with each other:
    # an engine may split the rows by it (each part in input order)
    group_key: ClassVar[str | None] = None
    # loads a model once per process (an encoder): an engine runs it in long-lived
    # workers, on GPUs where there are any
    uses_model: ClassVar[bool] = False
    extra: ClassVar[str | None] = "curate"      # the synth extra that installs them
    # True: the runner calls ``step(df, ctx)`` with a StepContext; else ``step(df)``
    takes_context: ClassVar[bool] = False

    def text_fields(self) -> tuple[str, ...]:
        """The ``field:`` values the step reads text from (its ``field`` parameter)."""
        f = getattr(self, "field", None)
        return (f,) if isinstance(f, str) else ()

    def reads(self) -> list[tuple[str, ...]]:
        """Columns read, each as alternatives (one of them suffices): ``needs``, the
        columns of its :meth:`text_fields`, and the ``score_column`` it ranks by."""
        out = [(c,) for c in self.needs]
        out += [cols for f in self.text_fields() for cols in field_columns(f)]
        sc = getattr(self, "score_column", None)
        if isinstance(sc, str):
            out.append((sc,))
        return out

    def figures_from_rows(self, df: pl.DataFrame) -> tuple[dict[str, Any], list[str]] | None:
        """A row-local step's figures and warnings, recomputed from its own output columns
        over every row it saw (``df``, in input order): what an engine that ran it block by
        block reports for the whole run. None: the step reports none."""
        return None

    def adds(self) -> tuple[str, ...]:
        return self.produces

    def __call__(self, df: pl.DataFrame) -> Verdict:  # pragma: no cover - interface
        raise NotImplementedError


#: name → :class:`Step` subclass: synth's own (registered as :mod:`synth.curate` imports
#: their modules) and every installed plugin's ``synth.steps`` entry point.
STEPS: Registry[type] = Registry("step", GROUPS["step"], builtins=("synth.curate",),
                                 check=named_class(Step))


def register_step(cls: type) -> type:
    """Class decorator: make a step available to filter sets under ``cls.name``."""
    return STEPS.register(cls.name, cls)


def _keep_all(df: pl.DataFrame) -> pl.Series:
    return pl.Series("drop", [None] * df.height, dtype=pl.String)


def reason_where(df: pl.DataFrame, mask: pl.Expr, reason: pl.Expr | str) -> pl.Series:
    r = pl.lit(reason) if isinstance(reason, str) else reason
    return df.select(pl.when(mask).then(r).otherwise(None).cast(pl.String).alias("drop"))[
        "drop"]


@register_step
@dataclass(frozen=True, kw_only=True)
class DropErrors(Step):
    """Rows whose request failed (``status != ok``)."""

    name: ClassVar[str] = "drop_errors"
    row_local: ClassVar[bool] = True

    def __call__(self, df: pl.DataFrame) -> Verdict:
        if "status" not in df.columns:  # rows from elsewhere: nothing says they failed
            return Verdict(df, _keep_all(df))
        if "error" not in df.columns:
            df = df.with_columns(pl.lit(None, pl.String).alias("error"))
        reason = pl.concat_str([pl.lit("error "),
                                pl.col("error").fill_null("").str.split(":").list.first()])
        return Verdict(df, reason_where(df, pl.col("status") != "ok", reason))


@register_step
@dataclass(frozen=True, kw_only=True)
class Truncated(Step):
    """Answers cut off by ``max_tokens`` (``finish_reason == "length"``)."""

    name: ClassVar[str] = "truncated"
    row_local: ClassVar[bool] = True

    def __call__(self, df: pl.DataFrame) -> Verdict:
        if "finish_reason" not in df.columns:
            return Verdict(df, _keep_all(df))
        return Verdict(df, reason_where(df, pl.col("finish_reason") == "length",
                                         "truncated"))


@register_step
@dataclass(frozen=True, kw_only=True)
class Empty(Step):
    """No answer text (after stripping whitespace)."""

    name: ClassVar[str] = "empty"
    row_local: ClassVar[bool] = True
    needs: ClassVar[tuple[str, ...]] = ("response",)

    def __call__(self, df: pl.DataFrame) -> Verdict:
        blank = pl.col("response").is_null() | (pl.col("response").str.strip_chars() == "")
        return Verdict(df, reason_where(df, blank, "empty"))


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
    row_local: ClassVar[bool] = True
    needs: ClassVar[tuple[str, ...]] = ("response",)
    patterns: tuple[str, ...] = _REFUSALS
    head_chars: int = 400

    def __call__(self, df: pl.DataFrame) -> Verdict:
        rx = "(?i)" + "|".join(f"(?:{p})" for p in self.patterns)
        head = pl.col("response").fill_null("").str.slice(0, self.head_chars)
        return Verdict(df, reason_where(df, head.str.contains(rx), "refusal"))


@register_step
@dataclass(frozen=True, kw_only=True)
class Repetition(Step):
    """Degenerate loops: the share of word n-grams that repeat an earlier one.
    Adds ``repetition_ratio``; drops above ``max_ratio``."""

    name: ClassVar[str] = "repetition"
    row_local: ClassVar[bool] = True
    needs: ClassVar[tuple[str, ...]] = ("response",)
    produces: ClassVar[tuple[str, ...]] = ("repetition_ratio",)
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
        return Verdict(out, reason_where(
            out, pl.col("repetition_ratio") > self.max_ratio,
            pl.format("repetition: {}", pl.col("repetition_ratio").round(2))))


@register_step
@dataclass(frozen=True, kw_only=True)
class Length(Step):
    """Word-count bounds on the text of ``field``. Adds ``{field}_words``."""

    name: ClassVar[str] = "length"
    row_local: ClassVar[bool] = True
    needs: ClassVar[tuple[str, ...]] = ()
    field: str = "response"
    min_words: int = 1
    max_words: int | None = None

    def __post_init__(self):
        check_field(self.field)

    def adds(self) -> tuple[str, ...]:
        return (f"{self.field}_words",)

    def __call__(self, df: pl.DataFrame) -> Verdict:
        words = field_texts(df, self.field).str.count_matches(r"\S+")
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


#: Score columns a dedup step keeps the best of when its filter set names none: the
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


def check_field(value: object, *, name: str = "field") -> str:
    """``value`` as a ``field:`` parameter, or a ValueError saying what it may be."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be response, prompt, both or a text column name, "
                         f"not {value!r}")
    return value


def field_columns(field: str) -> list[tuple[str, ...]]:
    """The columns ``field`` reads, each as alternatives (see :func:`field_texts`)."""
    prompt = ("messages", "prompt")
    if field == "prompt":
        return [prompt]
    if field == "both":
        return [prompt, ("response",)]
    return [(field,)]


def field_texts(df: pl.DataFrame, field: str) -> pl.Series:
    """The text a ``field:`` parameter names, one string per row (null → ""):
    ``response``; ``prompt``: the request's messages (every turn, few-shot answers
    included, one per line), else a ``prompt`` column; ``both``: prompt, newline, response;
    else the column of that name."""
    if field == "prompt":
        return pl.Series(field, prompt_texts(df, include_assistant=True), dtype=pl.String)
    if field == "both":
        both = [f"{p}\n{r}" for p, r in zip(prompt_texts(df, include_assistant=True),
                                             df["response"].fill_null("").to_list())]
        return pl.Series(field, both, dtype=pl.String)
    col = df[field]
    if col.dtype != pl.String:
        raise ValueError(f"field {field!r}: column holds {col.dtype}, not text")
    return col.fill_null("")


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
    """Exact duplicates after :func:`normalized` text of ``field``; the first occurrence
    is kept (``both``: the same request with the same answer)."""

    name: ClassVar[str] = "exact_dedup"
    needs: ClassVar[tuple[str, ...]] = ("id",)
    field: str = "response"

    def __post_init__(self):
        check_field(self.field)

    def keys(self, df: pl.DataFrame) -> pl.Series:
        """The text each row is compared by (an engine that groups blocks apart uses it)."""
        # ``both`` keeps its two parts apart, so ("a b", "c") never equals ("a", "b c")
        fields = ("prompt", "response") if self.field == "both" else (self.field,)
        parts = [field_texts(df, f) for f in fields]
        frame = pl.DataFrame({f"c{i}": normalized(p) for i, p in enumerate(parts)})
        return frame.select(pl.concat_str(pl.all(), separator="\x00").alias("key"))["key"]

    def __call__(self, df: pl.DataFrame) -> Verdict:
        first = pl.DataFrame({"key": self.keys(df), "id": df["id"].cast(pl.String)}).select(
            pl.col("id"), pl.col("id").first().over("key").alias("first"))
        reason = pl.when(pl.col("id") != pl.col("first")).then(
            pl.format("duplicate: of {}", pl.col("first")))
        return Verdict(df, first.select(reason.otherwise(None).cast(pl.String)
                                        .alias("drop"))["drop"])
