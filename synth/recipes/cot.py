"""``cot``: chain-of-thought distillation with rejection sampling (R1-distill / Orca style).

    recipe: cot
    params: {input: problems.jsonl, samples: 4}

Each prompt is rendered through ``template`` (default ``cot/solve``: reason step by step,
end with the final answer alone in ``\\boxed{}``, or for a coding problem with one final
Python code block; the template gets ``answer_format`` = ``code`` | ``boxed``) and asked
``samples`` times (call ``solve``). Only verified samples are kept.

**Which check** (``verify``; recorded per row as ``metadata.check``). ``auto``, per prompt:

* no reference → ``majority`` (self-consistency across the prompt's samples);
* a reference that :func:`synth.curate.verify_code.parse_reference` accepts (HumanEval
  JSON, MBPP ``test_list``, a script of ``assert`` lines) → ``code``; a reference that is
  meant as tests (a JSON object, or text with ``assert``) but is malformed is an error
  before any request;
* a reference math-verify parses as math → ``math`` — except plain words (``Paris``,
  ``yes``, ``B``), which math-verify reads as products of symbols (``New York`` would
  equal ``York New``): those, and references it cannot parse, → ``exact``.

``math``, ``code`` and ``exact`` need a reference on every prompt (an error before any
request otherwise); ``majority`` ignores references.

**The final answer and the reasoning/response split.** When the teacher returned its
reasoning separately (thinking blocks, ``reasoning_content``, ``<think>``), the row's
``reasoning`` stays as it is, ``response`` is the teacher's answer text, and the final
answer must be in that answer text: one in the reasoning alone does not count. Otherwise
the answer text is split at the line holding the final answer: for ``\\boxed{}`` answers
the line of the last ``\\boxed{}``, for code the opening fence of the last Python (or,
without any, unlabelled) code block. Everything before that line becomes ``reasoning``
(None when empty) and that line with everything after it becomes ``response``; an answer
with no final answer is left whole (and rejected). The final answer is the content of the
last ``\\boxed{}`` (never a "last number" guess) or the code of the response's Python
blocks; it is recorded as ``metadata.final_answer``.

**Verdicts** (``metadata.verdict``, with ``metadata.verify_reason``):

* ``correct`` / ``wrong`` / ``unverifiable`` against a reference: ``math`` through
  :func:`synth.curate.verify_math.verify_many` (math-verify in worker processes with a
  per-item timeout); ``exact`` by :func:`~synth.curate.verify_math.normalise_answer`
  equality; ``code`` by :func:`synth.curate.verify_code.check_solution` in the sandbox.
  Hedging is wrong: several different boxed answers in the answer text the split looks at
  (the whole text when there is no separate reasoning), or alternatives ("12 or 13",
  ``\\lor``) in the boxed answer.
* ``majority`` / ``minority`` without a reference: :func:`majority_vote` over the
  prompt's samples (agreement = votes / samples, every sample in the denominator). A
  sample is in the majority when its answer has the most votes, at least 2, with no tie,
  and agreement >= ``min_agreement``; ``metadata.agreement`` records it.
* a failed request, no final answer or a hedged answer under ``majority`` is
  ``unverifiable``.

Kept: ``correct`` and ``majority``. Everything else goes to ``rejects`` with
``dropped_by="cot_verify"`` and ``drop_reason`` such as ``wrong: got 12, expected 13``,
``wrong: hedged: 2 different boxed answers (12, 13)``, ``unverifiable: no final answer``,
``minority: 1 of 4 agree``. Nothing passes unchecked.

``info``: ``acceptance`` (``prompts``, ``samples``, ``accepted``, ``rate`` = accepted /
samples, ``per_prompt`` [{``prompt_id``, ``check``, ``accepted``, ``samples``}],
``prompts_with_none``), ``verdicts`` (a count for each of the five), ``checks`` (prompts
per check), ``unrouted``.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from synth.errors import ConfigError, InputError
from synth.recipes.base import (
    PlannedCall,
    Recipe,
    RecipeResult,
    Teaching,
    register_recipe,
    reject,
)
from synth.recipes.responses import (
    SourceParams,
    recipe_template,
    render_source,
    set_metadata,
    source_prompts,
    token_overrides,
)
from synth.records import Prompt

__all__ = ["Cot", "split_answer", "VERDICTS"]

VERDICTS = ("correct", "wrong", "unverifiable", "majority", "minority")
_DROPPED_BY = "cot_verify"
_BOX = re.compile(r"\\(?:boxed|fbox)\b")
_FENCE = re.compile(r"^[ \t]*```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n.*?(?:^[ \t]*```|\Z)",
                    re.S | re.M)
_PY = ("python", "py", "python3")
# plain words: math-verify would read them as products of symbols
_WORDS = re.compile(r"[^\W\d_]+(?:[\s'.,-]+[^\W\d_]+)*\.?")


def _final_start(text: str, code: bool) -> int | None:
    """Where the line holding the final answer starts (see the module docstring)."""
    if code:
        blocks = [(m.start(), m.group(1).lower()) for m in _FENCE.finditer(text)]
        py = [s for s, lang in blocks if lang in _PY]
        plain = [s for s, lang in blocks if lang == ""]
        chosen = py or plain
        return chosen[-1] if chosen else None
    last = None
    for m in _BOX.finditer(text):
        last = m
    return None if last is None else text.rfind("\n", 0, last.start()) + 1


def split_answer(response: str | None, reasoning: str | None, *, code: bool = False
                 ) -> tuple[str | None, str, str]:
    """``(reasoning, response, checked text)`` of one sample: the teacher's own reasoning
    when it has one (the answer text is then the response, and the text checked), else
    the answer text split at the final answer's line (module docstring); the checked text
    is then the whole answer, so a candidate boxed mid-way counts as hedging."""
    text = response or ""
    if reasoning:
        return reasoning, text, text
    start = _final_start(text, code)
    if start is None:
        return None, text, text
    return text[:start].strip() or None, text[start:].strip(), text


def _boxed_answer(response: str) -> str | None:
    from synth.curate.verify_math import extract_answer

    if not _BOX.search(response):
        return None
    ans, how = extract_answer(response)
    return ans if how == "boxed" else None


def _reference_answer(reference: str) -> str:
    """A reference's answer for display and exact matching (a worked solution's
    ``\\boxed{}`` / ``####`` answer, else the text)."""
    from synth.curate.verify_math import extract_answer

    ref = reference.strip()
    if _BOX.search(ref) or "####" in ref:
        ans, _ = extract_answer(ref)
        if ans is not None:
            return ans
    return ref


def _short(s: str, n: int = 80) -> str:
    s = " ".join(s.split())
    return s if len(s) <= n else s[:n - 3] + "..."


def _looks_like_tests(reference: str) -> bool:
    try:
        return isinstance(json.loads(reference), dict)
    except ValueError:
        return re.search(r"^\s*assert\b", reference, re.M) is not None


@register_recipe
class Cot(Recipe):
    """N reasoning samples per prompt, only verified ones kept; see the module docstring."""

    name = "cot"
    description = "N reasoning samples per prompt, only verified ones kept"

    class Params(SourceParams):
        samples: int = Field(4, ge=1, le=64, strict=True,
                             description="Samples (reasoning traces) per prompt.")
        template: str = Field("cot/solve", description="Template (shipped name or .j2 "
                              "file) rendering each prompt from prompt, reference, metadata "
                              "and answer_format (code | boxed).")
        verify: Literal["auto", "math", "code", "exact", "majority"] = Field(
            "auto", description="How samples are checked: auto (math, code or exact from "
            "the reference; majority without one), or one check for every prompt.")
        min_agreement: float = Field(0.5, gt=0, le=1, strict=True, description="Majority "
                                     "check: the share of a prompt's samples that must "
                                     "agree for the majority answer to be kept.")
        verify_timeout_s: float = Field(10.0, gt=0, le=600, strict=True, description=
                                        "Seconds per check (math: per answer; code: per "
                                        "test run in the sandbox).")
        allow_weak_sandbox: bool = Field(False, strict=True, description="Run code checks "
                                         "even where the sandbox's kernel protections are "
                                         "not in force.")

        @model_validator(mode="after")
        def _majority_needs_samples(self):
            if self.verify == "majority" and self.samples < 2:
                raise ValueError("verify: majority needs samples >= 2 (a majority is at "
                                 "least 2 agreeing samples)")
            return self

    # ------------------------------------------------------------------ prompts

    def _prompts(self, params: Params, base_dir: Path
                 ) -> tuple[list[Prompt], dict[str, str]]:
        """The rendered prompts and, by prompt id, the check planned for each: ``code``,
        ``math``, ``exact``, ``majority``, or ``text`` (auto: math or exact, decided once
        the reference is parsed)."""
        from synth.curate.verify_code import BadReference, parse_reference

        src = source_prompts(params.input, params.prompts, params.system, base_dir)
        tmpl = recipe_template(params.template, base_dir, needs="prompt")
        where = params.source_name()
        out: list[Prompt] = []
        checks: dict[str, str] = {}
        for p in src:
            ref = p.reference if p.reference and p.reference.strip() else None
            if params.verify == "majority" or (ref is None and params.verify == "auto"):
                check = "majority"
            elif ref is None:
                raise InputError(f"verify: {params.verify} needs a reference on every "
                                 "prompt (use verify: auto to vote where there is none)",
                                 path=where, line=p.line, field="reference")
            elif params.verify in ("code", "auto"):
                try:
                    spec = parse_reference(ref)
                except BadReference as e:
                    if params.verify == "code" or _looks_like_tests(ref):
                        raise InputError(f"not usable as tests: {e}", path=where,
                                         line=p.line, field="reference") from None
                    spec = None
                check = "code" if spec is not None else "text"
            else:
                check = params.verify
            fmt = "code" if check == "code" else "boxed"
            q = render_source(tmpl, p, path=where, extra={"answer_format": fmt})
            checks[q.id] = check
            out.append(q)
        return out, checks

    def plan(self, params: Params, *, base_dir: Path, samples: int = 1) -> list[PlannedCall]:
        prompts, _ = self._prompts(params, base_dir)
        return [PlannedCall("solve", len(prompts) * params.samples, prompts,
                            params.max_tokens)]

    # ------------------------------------------------------------------ run

    def run(self, params: Params, teaching: Teaching, *, base_dir: Path) -> RecipeResult:
        prompts, planned = self._prompts(params, base_dir)
        if "code" in planned.values():
            from synth.curate.sandbox import containment, weak_sandbox_message

            box = containment()
            if box["weak"] and not params.allow_weak_sandbox:
                raise ConfigError("cot: " + weak_sandbox_message(box))
        before = teaching.unrouted
        rows = teaching.ask("solve", prompts, samples=params.samples,
                            **token_overrides(params.max_tokens))

        def check_of(row: dict[str, Any]) -> str:
            pid = row["prompt_id"]
            return planned.get(pid) or planned[pid.rsplit("@", 1)[0]]  # mode "all": id@teacher

        samples = [self._sample(r, check_of(r)) for r in rows]
        self._verify_math(samples, params)
        self._verify_code(samples, params)
        for s in samples:
            if s["check"] == "exact" and s["verdict"] is None:
                self._exact(s)
        self._vote(samples, params)

        kept, rejects = [], []
        per: dict[str, dict[str, Any]] = {}
        for s in samples:
            row = {**s["row"], "reasoning": s["reasoning"], "response": s["response"]}
            meta = {"final_answer": s["final"], "verdict": s["verdict"],
                    "check": s["check"], "verify_reason": s["why"]}
            if s["check"] == "majority":
                meta["agreement"] = s.get("agreement", 0.0)
            row = set_metadata(row, **meta)
            ok = s["verdict"] in ("correct", "majority")
            entry = per.setdefault(row["prompt_id"], {"prompt_id": row["prompt_id"],
                                                      "check": s["check"],
                                                      "accepted": 0, "samples": 0})
            entry["samples"] += 1
            if ok:
                entry["accepted"] += 1
                kept.append(row)
            else:
                rejects.append(reject(row, _DROPPED_BY, s["reason"]))
        n = len(samples)
        verdicts = Counter(s["verdict"] for s in samples)
        info = {
            "acceptance": {
                "prompts": len(per), "samples": n, "accepted": len(kept),
                "rate": round(len(kept) / n, 4) if n else 0.0,
                "per_prompt": list(per.values()),
                "prompts_with_none": sum(e["accepted"] == 0 for e in per.values()),
            },
            "verdicts": {v: verdicts.get(v, 0) for v in VERDICTS},
            "checks": dict(Counter(e["check"] for e in per.values())),
            "unrouted": teaching.unrouted - before,
        }
        return RecipeResult(kept, rejects, info)

    # ------------------------------------------------------------------ checks

    @staticmethod
    def _sample(row: dict[str, Any], check: str) -> dict[str, Any]:
        from synth.curate.verify_code import extract_code

        code = check == "code"
        reasoning, response, checked = split_answer(row.get("response"),
                                                    row.get("reasoning"), code=code)
        s = {"row": row, "check": check, "reasoning": reasoning, "response": response,
             "checked": checked, "ref": row.get("reference"), "final": None,
             "verdict": None, "why": None, "reason": None}
        if row.get("status") != "ok":
            err = row.get("error") or "request failed"
            _set(s, "unverifiable", f"request failed ({err})")
            return s
        s["final"] = extract_code(response) if code else _boxed_answer(response)
        if s["final"] is None:
            what = "no code block" if code else "no final answer"
            if row.get("reasoning") and (extract_code(row["reasoning"]) if code
                                         else _boxed_answer(row["reasoning"])):
                what += " in the response (only in the reasoning)"
            _set(s, "unverifiable", what)
        return s

    @staticmethod
    def _verify_math(samples: list[dict[str, Any]], params: Params) -> None:
        """Math samples through verify_many; and, for auto's ``text`` references, whether
        they are math: a reference math-verify parses as math (checked against itself,
        in the same batch) and that is not plain words is checked as math, any other as
        exact."""
        from synth.curate.verify_math import verify_many

        refs = sorted({s["ref"] for s in samples if s["check"] == "text"})
        mathy = [r for r in refs if not _WORDS.fullmatch(r.strip())]
        maybe = set(mathy)
        todo = [s for s in samples if s["verdict"] is None and
                (s["check"] == "math" or (s["check"] == "text" and s["ref"] in maybe))]
        pairs = [("\\boxed{" + _reference_answer(r) + "}", r) for r in mathy]
        pairs += [(s["checked"], s["ref"]) for s in todo]
        results = verify_many(pairs, timeout_s=params.verify_timeout_s) if pairs else []
        is_math = {r: o == "correct" and why.startswith("equivalent")
                   for r, (o, why) in zip(mathy, results)}
        for s in samples:
            if s["check"] == "text":
                s["check"] = "math" if is_math.get(s["ref"], False) else "exact"
        for s, (outcome, why) in zip(todo, results[len(mathy):]):
            if s["check"] != "math":
                continue
            if outcome == "wrong" and not why.startswith("hedged"):
                _set(s, "wrong", why, f"got {_short(s['final'])}, expected "
                     f"{_short(_reference_answer(s['ref']))}")
            else:
                _set(s, outcome, why)

    @staticmethod
    def _verify_code(samples: list[dict[str, Any]], params: Params) -> None:
        from synth.curate.sandbox import SandboxLimits
        from synth.curate.verify_code import check_solution

        todo = [s for s in samples if s["check"] == "code" and s["verdict"] is None]
        if not todo:
            return
        t = params.verify_timeout_s
        limits = SandboxLimits(wall_s=t, cpu_s=max(1, int(t)), memory_mb=512)
        with ThreadPoolExecutor(max_workers=2) as pool:
            verdicts = list(pool.map(
                lambda s: check_solution(s["response"], s["ref"], limits=limits), todo))
        for s, v in zip(todo, verdicts):
            _set(s, v.outcome, v.reason)

    @staticmethod
    def _exact(s: dict[str, Any]) -> None:
        from synth.curate.verify_math import hedge_reason, normalise_answer

        expected = _reference_answer(s["ref"])
        hedged = hedge_reason(s["checked"], s["final"], s["ref"])
        if hedged:
            _set(s, "wrong", hedged)
        elif normalise_answer(s["final"]) == normalise_answer(expected):
            _set(s, "correct", "exact match")
        else:
            _set(s, "wrong", "no exact match",
                 f"got {_short(s['final'])}, expected {_short(expected)}")

    @staticmethod
    def _vote(samples: list[dict[str, Any]], params: Params) -> None:
        from synth.curate.verify_math import hedge_reason, majority_vote, normalise_answer

        groups: dict[str, list[dict[str, Any]]] = {}
        for s in samples:
            if s["check"] == "majority":
                groups.setdefault(s["row"]["prompt_id"], []).append(s)
        for group in groups.values():
            for s in group:
                if s["verdict"] is None:
                    hedged = hedge_reason(s["checked"], s["final"], "")
                    if hedged:
                        _set(s, "unverifiable", hedged)
            answers = [s["final"] if s["verdict"] is None else None for s in group]
            best, agreement = majority_vote(answers)
            keys = [normalise_answer(a) if a is not None else None for a in answers]
            votes = Counter(k for k in keys if k is not None)
            top = votes.most_common(2)
            best_key = normalise_answer(best) if best is not None else None
            tie = len(top) == 2 and top[0][1] == top[1][1]
            n = len(group)
            for s, key in zip(group, keys):
                s["agreement"] = round(agreement, 4)
                if key is None:
                    continue
                k = votes[key]
                said = f"{k} of {n} agree"
                if key == best_key and not tie and k >= 2 and \
                        agreement >= params.min_agreement:
                    _set(s, "majority", said)
                    continue
                if votes[key] == top[0][1] and tie:
                    said += " (tied with another answer)"
                elif key == best_key and k < 2:
                    said += " (a majority needs at least 2 agreeing samples)"
                elif key == best_key:
                    said += f" (agreement {agreement:.2f} < min_agreement " \
                            f"{params.min_agreement:g})"
                _set(s, "minority", said)


def _set(s: dict[str, Any], verdict: str, why: str, detail: str | None = None) -> None:
    """Record a sample's verdict; ``reason`` is ``verdict: detail`` (the verifier's own
    words unless a clearer detail is given)."""
    s["verdict"], s["why"] = verdict, why
    s["reason"] = f"{verdict}: {detail or why}"
