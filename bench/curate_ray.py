"""Local engine vs Ray engine (1 and 2 worker CPUs) on a generated corpus, same filter set.

    PYTHONPATH=. python bench/curate_ray.py --rows 100000

Prints each engine's wall time, Ray's fixed start-up (ray.init plus an empty Dataset
job), and checks that the three answers are identical. Rows: ~40 words, 10% exact and 15%
near duplicates, a few percent of each heuristic drop (tests/test_curate_ray.py's corpus).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--shards", type=int, default=8)
    ap.add_argument("--filters", default="default")
    a = ap.parse_args()

    import ray
    import ray.data

    from synth.curate import curate
    from tests.test_curate_ray import _corpus

    df = _corpus(a.rows)
    tmp = Path(tempfile.mkdtemp())
    step = -(-a.rows // a.shards)
    for i in range(a.shards):
        df.slice(i * step, step).write_parquet(tmp / f"part-{i:03d}.parquet",
                                               row_group_size=max(1, step // 4))
    t = time.perf_counter()
    local = curate(df, filters=a.filters)
    print(f"local      {a.rows:>9,} rows  {time.perf_counter() - t:7.1f}s  "
          f"kept {local.summary['kept']:,}")
    for cpus in (1, 2):
        t = time.perf_counter()
        ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
        ray.data.range(1).materialize()
        start = time.perf_counter() - t
        t = time.perf_counter()
        r = curate(tmp, filters=a.filters, engine="ray")
        wall = time.perf_counter() - t
        ray.shutdown()
        same = r.kept.equals(local.kept) and r.rejected.equals(local.rejected)
        print(f"ray {cpus} cpu  {a.rows:>9,} rows  {wall:7.1f}s  (+{start:.1f}s start-up)  "
              f"kept {r.summary['kept']:,}  identical to local: {same}")
        print("           " + ", ".join(f"{s['step']} {s['seconds']:.1f}s"
                                        for s in r.summary["steps"]))


if __name__ == "__main__":
    main()
