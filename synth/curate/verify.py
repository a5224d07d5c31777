"""Answer verification steps. Three outcomes, never conflated: ``correct``, ``wrong`` and
``unverifiable`` (no answer to extract, no usable reference, a checker that timed out).
By default only ``wrong`` rows are dropped; ``drop_unverifiable`` drops the third kind too.

- ``verify_math``: final answer (``\\boxed{}``, ``####``, "the answer is", last number) vs
  ``reference`` through math-verify, in worker processes with a per-item timeout.
- ``self_consistency``: the majority answer across the samples of one ``prompt_id``.
- ``verify_code``: the response's code against the tests in ``reference`` (HumanEval
  ``check``, MBPP ``test_list`` or ``assert`` lines), run by ``synth.curate.verify_code`` in the
  sandbox (``synth.curate.sandbox``).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import ClassVar

import polars as pl

from synth.curate.steps import Step, Verdict, register_step

__all__ = ["VerifyMath", "SelfConsistency", "VerifyCode"]


def _report(step: str, outcomes: list[str], reasons: list[str],
            max_unverifiable: float) -> tuple[dict, list[str]]:
    """The step's figures (counts of each outcome, ``verdicts`` in its ``curation.json``
    entry) and the warning owed to the user when more than ``max_unverifiable`` of the rows
    could not be checked: a verify step that verified nothing must say so, never pass its
    rows off as checked."""
    from collections import Counter

    counts = Counter(outcomes)
    n = len(outcomes)
    unv = counts.get("unverifiable", 0)
    why = Counter(r.split(":", 1)[0] for o, r in zip(outcomes, reasons) if o == "unverifiable")
    info = {"correct": counts.get("correct", 0), "wrong": counts.get("wrong", 0),
            "unverifiable": unv, "unverifiable_share": round(unv / n, 4) if n else 0.0,
            "unverifiable_reasons": dict(why.most_common())}
    warnings = []
    if n and (unv == n or unv / n > max_unverifiable):
        top = ", ".join(f"{k} ({v})" for k, v in why.most_common(3))
        what = "every row" if unv == n else f"{unv} of {n} rows ({unv / n:.0%})"
        warnings.append(f"{step}: {what} could not be verified ({top}); they were kept "
                        "unchecked (drop_unverifiable: true drops them)")
    return {"verdicts": info}, warnings


def _check_share(value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ValueError(f"max_unverifiable must be a share in [0, 1], not {value!r}")


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
    """Adds ``math_answer``, ``math_verdict``, ``math_reason``; drops wrong answers. Warns
    (step line, ``curation.json``, report) when more than ``max_unverifiable`` of the rows
    could not be checked."""

    name: ClassVar[str] = "verify_math"
    # a row's verdict is its own answer against its own reference
    row_local: ClassVar[bool] = True
    needs: ClassVar[tuple[str, ...]] = ("response", "reference")
    produces: ClassVar[tuple[str, ...]] = ("math_answer", "math_verdict", "math_reason")
    requires: ClassVar = (("math_verify", "math-verify"),)
    timeout_s: float = 5.0
    workers: int = 2
    drop_unverifiable: bool = False
    max_unverifiable: float = 0.5

    def __post_init__(self):
        _check_share(self.max_unverifiable)
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or \
                self.workers < 1:
            raise ValueError("workers must be a whole number >= 1")
        if not isinstance(self.timeout_s, (int, float)) or self.timeout_s <= 0:
            raise ValueError("timeout_s must be a number of seconds > 0")

    def __call__(self, df: pl.DataFrame) -> Verdict:
        from synth.curate.verify_math import extract_answer, verify_many

        responses = [r or "" for r in df["response"].to_list()]
        refs = df["reference"].to_list()
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
        figures, warnings = _report(self.name, outcomes, reasons, self.max_unverifiable)
        return Verdict(out, _drops(outcomes, reasons, self.drop_unverifiable), warnings,
                       figures)

    def figures_from_rows(self, df: pl.DataFrame) -> tuple[dict, list[str]]:
        return _report(self.name, df["math_verdict"].to_list(), df["math_reason"].to_list(),
                       self.max_unverifiable)


@register_step
@dataclass(frozen=True, kw_only=True)
class SelfConsistency(Step):
    """Majority answer across the samples of each ``prompt_id``. Adds ``majority_answer``
    and ``agreement``; drops answers that disagree with the majority (``drop_minority``)
    and every sample of prompts whose agreement is below ``min_agreement``."""

    name: ClassVar[str] = "self_consistency"
    needs: ClassVar[tuple[str, ...]] = ("response", "prompt_id")
    produces: ClassVar[tuple[str, ...]] = ("majority_answer", "agreement")
    group_key: ClassVar[str] = "prompt_id"  # a prompt's samples are decided together
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
    """Runs each response against the tests in ``reference`` in the sandbox
    (``synth.curate.verify_code``): HumanEval-style JSON (``test`` with ``check(candidate)``
    + ``entry_point``, optionally ``prompt``), MBPP-style (``test_list``) or a plain
    Python script of ``assert`` lines. ``correct`` means the tests ran to the end in a
    process the answer's code cannot reach. Adds ``code_verdict``, ``code_reason``.

    Refuses (when the filter set loads) to run model code where the kernel's protections
    are not in force, unless ``allow_weak_sandbox``; what is in force goes to
    ``curation.json`` (``info.sandbox``). References that are all malformed are an error
    naming a row."""

    name: ClassVar[str] = "verify_code"
    needs: ClassVar[tuple[str, ...]] = ("response", "reference")
    produces: ClassVar[tuple[str, ...]] = ("code_verdict", "code_reason")
    wall_s: float = 10.0
    memory_mb: int = 512
    workers: int = 2
    drop_unverifiable: bool = False
    allow_weak_sandbox: bool = False
    max_unverifiable: float = 0.5

    def __post_init__(self):
        from synth.curate.sandbox import containment, weak_sandbox_message
        from synth.errors import ConfigError

        if not self.wall_s > 0 or self.memory_mb < 64 or self.workers < 1:
            raise ValueError("wall_s must be > 0, memory_mb >= 64 and workers >= 1")
        _check_share(self.max_unverifiable)
        box = containment()   # probed once per process
        if box["weak"] and not self.allow_weak_sandbox:
            raise ConfigError(weak_sandbox_message(box))

    def _parse(self, df: pl.DataFrame) -> tuple[list, int, list[tuple[int, object, str]]]:
        """Each row's test spec (None: no reference; a BadReference: malformed), how many
        rows give one, and ``(position, id, why)`` of each malformed one."""
        from synth.curate.verify_code import BadReference, parse_reference

        ids = df["id"].to_list() if "id" in df.columns else list(range(df.height))
        specs: list = []
        bad: list[tuple[int, object, str]] = []
        for i, (rid, ref) in enumerate(zip(ids, df["reference"].to_list())):
            try:
                specs.append(parse_reference(ref))
            except BadReference as e:
                specs.append(e)
                bad.append((i, rid, str(e)))
        return specs, sum(s is not None for s in specs), bad

    def reference_counts(self, df: pl.DataFrame) -> tuple[int, list[tuple[int, object, str]]]:
        """``(rows that give a reference, [(position, id, why) of each malformed one])``."""
        _, given, bad = self._parse(df)
        return given, bad

    def all_malformed(self, rid: object, why: str, n: int):
        """The error for rows whose references are all malformed (none can be verified)."""
        from synth.errors import InputError

        return InputError(f"row {rid!r}: {why} (all {n} references are malformed, so no "
                          "row could be verified)", path="verify_code", field="reference")

    def __call__(self, df: pl.DataFrame) -> Verdict:
        return self._verify(df, whole=True)

    def block_verdict(self, df: pl.DataFrame) -> Verdict:
        """The verdict on part of the rows: an engine that splits them checks "all
        references malformed" over the whole input itself (``reference_counts``)."""
        return self._verify(df, whole=False)

    def _verify(self, df: pl.DataFrame, *, whole: bool) -> Verdict:
        from synth.curate.sandbox import SandboxLimits, containment, weak_sandbox_message
        from synth.curate.verify_code import BadReference, check_solution
        from synth.errors import ConfigError

        # checked where the code runs too: a step sent to another process or machine was
        # built (and checked) elsewhere
        box = containment()
        if box["weak"] and not self.allow_weak_sandbox:
            raise ConfigError(weak_sandbox_message(box))
        limits = SandboxLimits(wall_s=self.wall_s, cpu_s=max(1, int(self.wall_s)),
                               memory_mb=self.memory_mb)
        responses = [r or "" for r in df["response"].to_list()]
        specs, given, bad = self._parse(df)
        if whole and given and len(bad) == given:
            _, rid, why = bad[0]
            raise self.all_malformed(rid, why, len(bad))

        def one(pair):
            resp, spec = pair
            if spec is None:
                return "unverifiable", "no reference"
            if isinstance(spec, BadReference):
                return "unverifiable", f"{_MALFORMED}{spec}"
            v = check_solution(resp, spec, limits=limits)
            return v.outcome, v.reason

        with ThreadPoolExecutor(max_workers=max(1, self.workers)) as pool:
            results = list(pool.map(one, zip(responses, specs)))
        outcomes = [o for o, _ in results]
        reasons = [r for _, r in results]
        out = df.with_columns(pl.Series("code_verdict", outcomes, pl.String),
                              pl.Series("code_reason", reasons, pl.String))
        figures, warnings = self.figures_from_rows(out)
        box["allow_weak_sandbox"] = self.allow_weak_sandbox
        figures["sandbox"] = box
        return Verdict(out, _drops(outcomes, reasons, self.drop_unverifiable), warnings,
                       figures)

    def figures_from_rows(self, df: pl.DataFrame) -> tuple[dict, list[str]]:
        reasons = df["code_reason"].to_list()
        figures, warnings = _report(self.name, df["code_verdict"].to_list(), reasons,
                                    self.max_unverifiable)
        bad = sum(1 for r in reasons if r is not None and r.startswith(_MALFORMED))
        if bad:
            figures["malformed_references"] = bad
        return figures, warnings


_MALFORMED = "malformed reference: "
