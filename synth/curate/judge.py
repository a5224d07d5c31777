"""``llm_judge``: a teacher grades each row through a prompt template.

    - llm_judge: {teacher: "openai:gpt-4o-mini", intent: internal, min_score: 3}

Each row becomes one request, the template (default ``judge/quality``) rendered with the
row's prompt text, its ``response`` and, when the rows have one, its ``reference``. The
requests go through :func:`synth.generate.run.generate`, so the judge gets everything a
generation run has: the licence check before any request, the response cache, rate limits,
retries and cost accounting (``max_cost``).

Where the judge's run lives (its ``traces.parquet``, ``run.json``, dataset card and
``cache.sqlite``, so a rerun never pays twice), first match wins:

1. ``workdir`` when given;
2. ``<out>/judge/<teacher>-<template id>`` when the curation writes to ``out``
   (``synth curate ... --out DIR``); the runner says where in the
   :class:`~synth.curate.steps.StepContext` it calls the step with;
3. ``$SYNTH_CACHE_DIR/judge/<teacher>-<template id>`` (default ``~/.cache/synth``).

Reading the answer: the last JSON object in it that has a ``score`` key decides; without
one, a last line like ``Score: 4`` does. A score that is missing, not a number or outside
the template's ``score_range`` (default 1-5) leaves the row *unscored* (null, never a
fake 0), as does a failed judge request or a row with no response. Adds ``judge_score``
(Float64), ``judge_reason`` (the judge's sentence, or why the row is unscored) and
``judge_teacher``. Drops rows scoring below ``min_score`` (``judge: 2 < 3``); unscored rows
are kept unless ``drop_unscored`` (``unscored: <why>``): bad grading is not a bad row.
"""

from __future__ import annotations

import json
import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import polars as pl

from synth.curate.steps import Step, StepContext, Verdict, prompt_texts, register_step
from synth.errors import ConfigError, InputError

if TYPE_CHECKING:  # imported where used: `import synth.curate` stays light
    from synth.records import Prompt
    from synth.templates import Template

__all__ = ["LLMJudge", "parse_verdict"]

log = logging.getLogger("synth")

# "Score: 4", "**Score:** 4/5", "score = 4." on the answer's last line
_SCORE_LINE = re.compile(
    r"(?i)^[\s*_#>`-]*score[\s*_`]*[:=][\s*_`]*([+-]?\d+(?:\.\d+)?)(?:\s*/\s*\d+)?[\s*_`.]*$")
_TAIL = 8000  # a verdict sits at the end; bounds the brace scan on a rambling answer


def _last_scored_object(text: str) -> dict | None:
    dec = json.JSONDecoder()
    tail = text[-_TAIL:]
    i = len(tail)
    while (i := tail.rfind("{", 0, i)) >= 0:
        try:
            obj, _ = dec.raw_decode(tail, i)
        except ValueError:
            continue
        if isinstance(obj, dict) and "score" in obj:
            return obj
    return None


def _num(x: float) -> str:
    return f"{x:g}"


def parse_verdict(text: str | None, lo: float = 1, hi: float = 5
                  ) -> tuple[float | None, str | None]:
    """``(score, reason)`` from a judge's answer; score None means unscored and reason then
    says why."""
    if not text or not text.strip():
        return None, "empty answer"
    obj = _last_scored_object(text)
    if obj is not None:
        v = obj["score"]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            return None, f"score is not a number: {json.dumps(v)[:40]}"
        if not lo <= v <= hi:
            return None, f"score out of range: {_num(v)}"
        reason = obj.get("reason")
        return float(v), reason.strip() if isinstance(reason, str) else None
    last = text.strip().splitlines()[-1]
    m = _SCORE_LINE.match(last)
    if m:
        v = float(m.group(1))
        if not lo <= v <= hi:
            return None, f"score out of range: {_num(v)}"
        return v, None
    return None, "no score in the answer"


def _score_range(t: Template) -> tuple[float, float]:
    r = t.meta.get("score_range", [1, 5])
    if (not isinstance(r, list) or len(r) != 2
            or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in r)
            or not r[0] < r[1]):
        raise InputError("must be [low, high] numbers with low < high", path=t.path,
                         line=t.line_of("score_range"), field="score_range")
    return float(r[0]), float(r[1])


@register_step
@dataclass(frozen=True, kw_only=True)
class LLMJudge(Step):
    """A teacher scores each row through a template; see the module docstring."""

    name: ClassVar[str] = "llm_judge"
    needs: ClassVar[tuple[str, ...]] = ("id", "response")
    produces: ClassVar[tuple[str, ...]] = ("judge_score", "judge_reason", "judge_teacher")
    takes_context: ClassVar[bool] = True  # its run goes under the curation's output folder
    teacher: str
    template: str = "judge/quality"
    min_score: float | None = None
    drop_unscored: bool = False
    intent: str | None = None
    accept_terms: tuple[str, ...] = ()
    base_url: str | None = None
    api_key_env: str | None = None
    concurrency: int = 16
    rpm: float | None = None
    tpm: float | None = None
    max_tokens: int = 256
    temperature: float = 0.0
    max_cost: float | None = None
    max_retries: int = 5
    timeout: float = 120.0
    price_file: str | None = None
    licence_file: str | None = None
    workdir: str | None = None
    _template: Template = field(init=False, repr=False, compare=False)
    _range: tuple[float, float] = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        from synth.generate.config import GenerateConfig
        from synth.licences import INTENTS
        from synth.options import make_config
        from synth.teachers import check_requirements, parse_spec, provider_traits
        from synth.templates import load_template

        terms = self.accept_terms
        if isinstance(terms, str):
            terms = (terms,)
        object.__setattr__(self, "accept_terms", tuple(terms or ()))
        provider, _ = parse_spec(self.teacher)
        if self.intent is not None and self.intent not in INTENTS:
            raise ValueError(f"intent must be one of {', '.join(INTENTS)}")
        if self.intent is None and provider_traits(provider).needs_intent:
            raise ValueError(f"intent is required for API teachers ({self.teacher}): "
                             f"what is the data for? {', '.join(INTENTS)}")
        # the generation options are checked by GenerateConfig, where each is defined
        # (so a bad one fails here, as the filter set loads, by the same rule as the CLI's)
        try:
            make_config(None, {**self._generate_options(), "out": Path("."), "prompts": []},
                        cls=GenerateConfig, names="fields")
        except ConfigError as e:
            raise ValueError(str(e)) from None
        check_requirements(self.teacher)
        tmpl = load_template(self.template)
        lo, hi = _score_range(tmpl)
        m = self.min_score
        if m is not None and (isinstance(m, bool) or not isinstance(m, (int, float))
                              or not lo <= m <= hi):
            raise ValueError(f"min_score must be a number in [{_num(lo)}, {_num(hi)}] "
                             f"(the score range of {tmpl.id}) or null")
        object.__setattr__(self, "_template", tmpl)
        object.__setattr__(self, "_range", (lo, hi))

    @property
    def slug(self) -> str:
        """Folder name of this judge's run: teacher and template, filesystem-safe."""
        return re.sub(r"[^A-Za-z0-9._]+", "-", f"{self.teacher}-{self._template.id}").strip("-")

    def run_dir(self, out: Path | None = None) -> Path:
        """Where the judge's generation run (and its cache) lives when the curation writes
        to ``out`` (None: nowhere); see the module docs."""
        if self.workdir:
            return Path(self.workdir).expanduser()
        if out is not None:
            return out / "judge" / self.slug
        from synth.cache import cache_root

        return cache_root() / "judge" / self.slug

    def _prompts(self, df: pl.DataFrame) -> tuple[list[Prompt], list[int], list[str | None]]:
        """Requests for the rows that have a response; why the others are not judged."""
        from synth.records import Prompt

        ids = [str(i) for i in df["id"].to_list()]
        if len(set(ids)) != len(ids):
            raise InputError("llm_judge needs unique row ids", field="id")
        texts = prompt_texts(df)
        responses = df["response"].to_list()
        status = df["status"].to_list() if "status" in df.columns else [None] * df.height
        refs = df["reference"].to_list() if "reference" in df.columns else [None] * df.height
        t = self._template
        meta = {"template_id": t.id, "template_hash": t.hash}
        prompts, where, why = [], [], [None] * df.height
        for i, rid in enumerate(ids):
            if status[i] not in (None, "ok") or responses[i] is None:
                why[i] = "row has no response"
                continue
            messages = t.render(prompt=texts[i], response=responses[i], reference=refs[i])
            prompts.append(Prompt(id=rid, messages=messages, metadata=dict(meta)))
            where.append(i)
        return prompts, where, why

    def _generate_options(self) -> dict[str, Any]:
        """The judge's parameters that are ``synth generate`` options."""
        return dict(
            teacher=self.teacher, temperature=self.temperature, max_tokens=self.max_tokens,
            concurrency=self.concurrency, rpm=self.rpm, tpm=self.tpm, max_cost=self.max_cost,
            base_url=self.base_url, api_key_env=self.api_key_env, timeout=self.timeout,
            max_retries=self.max_retries, intent=self.intent, accept_terms=self.accept_terms,
            price_file=self.price_file, licence_file=self.licence_file)

    def _ask(self, prompts: list[Prompt], out: Path):
        from synth.generate.run import generate

        return generate(out=out, prompts=prompts, **self._generate_options())

    def __call__(self, df: pl.DataFrame, ctx: StepContext | None = None) -> Verdict:
        n = df.height
        scores: list[float | None] = [None] * n
        teachers: list[str | None] = [None] * n
        prompts, where, reasons = self._prompts(df)
        info: dict[str, Any] = {"teacher": self.teacher, "template": self._template.id,
                                "template_hash": self._template.hash, "requests": 0}
        if prompts:
            import pyarrow.parquet as pq

            out = self.run_dir(ctx.out if ctx is not None else None)
            result = self._ask(prompts, out)  # licence errors surface from here as they are
            table = pq.read_table(result.traces,
                                  columns=["prompt_id", "status", "error", "response"])
            answers = {r["prompt_id"]: r for r in table.to_pylist()}
            lo, hi = self._range
            for p, i in zip(prompts, where):
                a = answers[p.id]
                teachers[i] = self.teacher
                if a["status"] != "ok":
                    kind = (a["error"] or "error").split(":", 1)[0]
                    reasons[i] = f"judge request failed ({kind})"
                else:
                    scores[i], reasons[i] = parse_verdict(a["response"], lo, hi)
            s = result.summary
            info.update({"run_dir": str(out), "requests": len(prompts),
                         "from_cache": s["from_cache"], "sent": s["sent"],
                         "failed": s["status"]["error"], "tokens": s["tokens"],
                         "cost_usd": s["cost_usd"]})
            if info["failed"]:
                log.warning("llm_judge %s: %d judge request(s) failed; those rows are "
                            "unscored. A rerun retries them (answers so far are cached in %s)",
                            self.teacher, info["failed"], out)
        scored = sum(v is not None for v in scores)
        info.update({"scored": scored, "unscored": n - scored})
        log.info("llm_judge %s: %d rows, %d requests (%d from cache, %d sent), cost %s USD, "
                 "%d unscored; run in %s", self.teacher, n, info["requests"],
                 info.get("from_cache", 0), info.get("sent", 0), info.get("cost_usd"),
                 n - scored, info.get("run_dir", "-"))

        drops: list[str | None] = []
        for v, why in zip(scores, reasons):
            if v is None:
                drops.append(f"unscored: {why}" if self.drop_unscored else None)
            elif self.min_score is not None and v < self.min_score:
                drops.append(f"judge: {_num(v)} < {_num(self.min_score)}")
            else:
                drops.append(None)
        out_df = df.with_columns(pl.Series("judge_score", scores, pl.Float64),
                                 pl.Series("judge_reason", reasons, pl.String),
                                 pl.Series("judge_teacher", teachers, pl.String))
        warnings = []
        if n and scored == 0:
            warnings.append(f"llm_judge: no row got a score from {self.teacher} (it wrote no "
                            "valid verdict); every row was kept unjudged")
        elif n and (n - scored) / n > 0.5:
            warnings.append(f"llm_judge: {n - scored} of {n} rows ({(n - scored) / n:.0%}) "
                            f"got no valid score from {self.teacher}; they were kept unjudged "
                            "(drop_unscored: true drops them)")
        return Verdict(out_df, pl.Series("drop", drops, dtype=pl.String), warnings,
                       {"judge": info})
