"""Bytes per generated token of stored top-K logprobs: synth's parquet columns vs the same
data as OpenAI-style JSON lines (what you would store by dumping the API's ``logprobs``).

Uses the embedded local teacher (real tokens, real distributions, token ids included).

    python bench/logprobs_size.py --k 20 --max-tokens 128
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

import orjson
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import synth  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--teacher", default="local:smollm2-135m-instruct")
    args = ap.parse_args()
    logging.getLogger("synth").setLevel(logging.ERROR)
    root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as tmp:
        res = synth.generate(input=root / "examples" / "prompts.jsonl", teacher=args.teacher,
                             out=Path(tmp) / "run", max_tokens=args.max_tokens,
                             logprobs=args.k, progress=False)
        rows = res.table().to_pylist()
        meta = pq.ParquetFile(res.traces).metadata
        parquet_bytes = sum(
            meta.row_group(g).column(c).total_compressed_size
            for g in range(meta.num_row_groups) for c in range(meta.num_columns)
            if meta.row_group(g).column(c).path_in_schema.startswith("logprobs"))
    tokens = sum(len(r["logprobs"]["tokens"]) for r in rows)
    # The same information as the OpenAI chat API returns it, one JSON line per row.
    json_bytes = 0
    for r in rows:
        lp = r["logprobs"]
        content = [{"token": t, "logprob": lp_t, "bytes": list(t.encode()),
                    "top_logprobs": [{"token": a, "logprob": b, "bytes": list(a.encode())}
                                     for a, b in zip(ta, tb)]}
                   for t, lp_t, ta, tb in zip(lp["tokens"], lp["logprobs"], lp["top_tokens"],
                                           lp["top_logprobs"])]
        json_bytes += len(orjson.dumps({"content": content})) + 1
    print(f"teacher {args.teacher}, K={args.k}, {len(rows)} rows, {tokens} generated tokens")
    print(f"synth parquet (zstd, float32, with token ids): {parquet_bytes / tokens:8.1f} bytes/token")
    print(f"OpenAI-style JSON lines (no ids):               {json_bytes / tokens:8.1f} bytes/token")
    print(f"ratio JSON/synth: {json_bytes / parquet_bytes:.1f}x smaller")


if __name__ == "__main__":
    main()
