"""Answer verification steps. Three outcomes, never conflated: ``correct``, ``wrong`` and
``unverifiable`` (no answer to extract, no usable reference, a checker that timed out).
By default only ``wrong`` rows are dropped; ``drop_unverifiable`` drops the third kind too.

- ``verify_math``: final answer (``\\boxed{}``, ``####``, "the answer is", last number) vs
  ``reference`` through math-verify, in worker processes with a per-item timeout.
- ``self_consistency``: the majority answer across the samples of one ``prompt_id``.
- ``verify_code``: the response's code against the HumanEval-style tests in ``reference``,
  each run in the sandbox (``synth.curate.sandbox``).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import ClassVar

import polars as pl

from synth.curate.steps import Step, Verdict, register_step

__all__ = ["VerifyMath", "SelfConsistency", "VerifyCode"]


def _drops(outcomes: list[str], reasons: list[str], drop_unverifiable: bool) -> pl.Series:
    out = []
    for o, r in zip(outcomes, reasons):
        if o == "wrong":
            out.append(f"wrong: {r}")
        elif o == "unverifiable" and drop_unverifiable:
            out.append(f"unverifiable: {r}")
        else:
            out.append(None)
    return pl.Series("drop", out, dtype=pl.String)


@register_step
@dataclass(frozen=True, kw_only=True)
class VerifyMath(Step):
    """Adds ``math_answer``, ``math_verdict``, ``math_reason``; drops wrong answers."""

    name: ClassVar[str] = "verify_math"
    needs: ClassVar[tuple[str, ...]] = ("response",)
    timeout_s: float = 5.0
    workers: int = 2
    drop_unverifiable: bool = False

    def __call__(self, df: pl.DataFrame) -> Verdict:
        from synth.curate.verify_math import extract_answer, verify_many

        responses = [r or "" for r in df["response"].to_list()]
        refs = df["reference"].to_list() if "reference" in df.columns else [None] * df.height
        todo = [(i, (responses[i], ref)) for i, ref in enumerate(refs) if ref]
        results: list[tuple[str, str]] = [("unverifiable", "no reference")] * df.height
        if todo:
            checked = verify_many([p for _, p in todo], timeout_s=self.timeout_s,
                                  workers=self.workers)
            for (i, _), res in zip(todo, checked):
                results[i] = res
        outcomes = [o for o, _ in results]
        reasons = [r for _, r in results]
        out = df.with_columns(
            pl.Series("math_answer", [extract_answer(r)[0] for r in responses], pl.String),
            pl.Series("math_verdict", outcomes, pl.String),
            pl.Series("math_reason", reasons, pl.String))
        return Verdict(out, _drops(outcomes, reasons, self.drop_unverifiable))


@register_step
@dataclass(frozen=True, kw_only=True)
class SelfConsistency(Step):
    """Majority answer across the samples of each ``prompt_id``. Adds ``majority_answer``
    and ``agreement``; drops answers that disagree with the majority (``drop_minority``)
    and every sample of prompts whose agreement is below ``min_agreement``."""

    name: ClassVar[str] = "self_consistency"
    needs: ClassVar[tuple[str, ...]] = ("response", "prompt_id")
    min_agreement: float = 0.5
    drop_minority: bool = True

    def __post_init__(self):
        if not 0 <= self.min_agreement <= 1:
            raise ValueError("min_agreement must be in [0, 1]")

    def __call__(self, df: pl.DataFrame) -> Verdict:
        from synth.curate.verify_math import extract_answer, majority_vote, normalise_answer

        answers = [extract_answer(r or "")[0] for r in df["response"].to_list()]
        groups: dict[str, list[int]] = {}
        for i, pid in enumerate(df["prompt_id"].to_list()):
            groups.setdefault(pid, []).append(i)
        majority: list[str | None] = [None] * df.height
        agreement = [0.0] * df.height
        drops: list[str | None] = [None] * df.height
        for idx in groups.values():
            best, agree = majority_vote([answers[i] for i in idx])
            key = normalise_answer(best) if best is not None else None
            for i in idx:
                majority[i], agreement[i] = best, agree
                if agree < self.min_agreement:
                    drops[i] = f"low agreement: {agree:.2f} < {self.min_agreement}"
                elif self.drop_minority and (answers[i] is None or
                                             normalise_answer(answers[i]) != key):
                    drops[i] = f"minority answer: {answers[i]} vs majority {best}"
        out = df.with_columns(pl.Series("majority_answer", majority, pl.String),
                              pl.Series("agreement", agreement, pl.Float64))
        return Verdict(out, pl.Series("drop", drops, dtype=pl.String))


@register_step
@dataclass(frozen=True, kw_only=True)
class VerifyCode(Step):
    """Runs each response against the HumanEval-style tests in ``reference`` (JSON with
    ``test`` and ``entry_point``) in the sandbox. Adds ``code_verdict``, ``code_reason``."""

    name: ClassVar[str] = "verify_code"
    needs: ClassVar[tuple[str, ...]] = ("response",)
    wall_s: float = 10.0
    memory_mb: int = 512
    workers: int = 2
    drop_unverifiable: bool = False

    def __call__(self, df: pl.DataFrame) -> Verdict:
        from synth.curate.sandbox import SandboxLimits, check_solution

        limits = SandboxLimits(wall_s=self.wall_s, cpu_s=max(1, int(self.wall_s)),
                               memory_mb=self.memory_mb)
        refs = df["reference"].to_list() if "reference" in df.columns else [None] * df.height
        responses = [r or "" for r in df["response"].to_list()]

        def one(pair):
            resp, ref = pair
            if not ref:
                return "unverifiable", "no reference"
            v = check_solution(resp, ref, limits=limits)
            return v.outcome, v.reason

        with ThreadPoolExecutor(max_workers=max(1, self.workers)) as pool:
            results = list(pool.map(one, zip(responses, refs)))
        outcomes = [o for o, _ in results]
        reasons = [r for _, r in results]
        out = df.with_columns(pl.Series("code_verdict", outcomes, pl.String),
                              pl.Series("code_reason", reasons, pl.String))
        return Verdict(out, _drops(outcomes, reasons, self.drop_unverifiable))
