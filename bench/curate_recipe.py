"""A whole filter set at scale: seconds per step on 100k generated trace rows.

    python bench/curate_recipe.py                    # default filter set, 100k rows
    python bench/curate_recipe.py --filters textbook --rows 20000

Rows: the corpus of ``bench/minhash.py`` (100-400 words, 5% planted near-duplicates) as
trace rows with ``status=ok``, 2% ``finish_reason=length`` and prompts from 5,000 distinct
questions. Prints each step's rows, drops and seconds, and rows/s for the whole filter set
(the filter set only: reading and writing files are not timed). There is no peer tool that
runs the same filter set, so this is a regression figure rather than a ratio.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import polars as pl

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from minhash import make_corpus  # noqa: E402

from synth.curate import curate  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--filters", default="default",
                    help="a shipped filter set name or a YAML path")
    # the old spelling of --filters, from when filter sets were called curation recipes
    ap.add_argument("--recipe", dest="filters", default=argparse.SUPPRESS,
                    help=argparse.SUPPRESS)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    texts = make_corpus(args.rows, args.seed)[0]
    rng = np.random.default_rng(args.seed)
    n = len(texts)
    df = pl.DataFrame({
        "id": [f"r{i}" for i in range(n)], "response": texts,
        "prompt": [f"question {i % 5000}" for i in range(n)], "status": ["ok"] * n,
        "finish_reason": np.where(rng.random(n) < 0.02, "length", "stop").tolist()})
    t = time.perf_counter()
    res = curate(df, filters=args.filters)
    dt = time.perf_counter() - t
    print(f"{n:,} rows, filter set {args.filters}: {res.kept.height:,} kept, "
          f"{res.rejected.height:,} rejected in {dt:.1f} s ({n / dt:,.0f} rows/s)")
    for st in res.summary["steps"]:
        why = ", ".join(f"{k}={v}" for k, v in st["reasons"].items())
        print(f"  {st['step']:<16} {st['in']:>8} in {st['dropped']:>7} dropped "
              f"{st['seconds']:>7.2f} s  {why}")


if __name__ == "__main__":
    main()
