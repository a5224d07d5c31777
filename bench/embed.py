"""Quality-scoring throughput: synth's ``quality`` step vs a bare
``SentenceTransformer.encode`` loop on the same rows and batch size (goal: ≥ 95%).

synth's side is the whole step: column extraction, embedding, the trained head, the new
column. GPU is used automatically when present.

    python bench/embed.py --rows 2000 --batch-size 64
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import polars as pl  # noqa: E402

from synth.curate.embed import QualityScore, load_encoder, train_scorer  # noqa: E402

WORDS = ("the model learns structure from data while energy flows through cells and "
         "markets respond to prices as rivers carve valleys over time because numbers "
         "obey rules that proofs make precise").split()


def texts(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(40, 160)))
            for _ in range(n)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=2000)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    rows = texts(args.rows)
    model = load_encoder()
    device = str(model.device)
    with tempfile.TemporaryDirectory() as tmp:
        labels = Path(tmp) / "labels.jsonl"
        labels.write_text("".join(json.dumps({"text": t, "score": i % 6}) + "\n"
                                  for i, t in enumerate(texts(64, seed=1))))
        train_scorer(labels, out=Path(tmp) / "head.npz")
        step = QualityScore(scorer=str(Path(tmp) / "head.npz"), batch_size=args.batch_size)
        df = pl.DataFrame({"id": [str(i) for i in range(len(rows))], "response": rows})
        model.encode(rows[:128], batch_size=args.batch_size)  # warm-up
        bare, ours = [], []
        for _ in range(args.repeats):  # alternate, keep the best of each
            t = time.perf_counter()
            model.encode(rows, batch_size=args.batch_size, convert_to_numpy=True,
                         normalize_embeddings=True, show_progress_bar=False)
            bare.append(len(rows) / (time.perf_counter() - t))
            t = time.perf_counter()
            out = step(df)
            ours.append(len(rows) / (time.perf_counter() - t))
            assert out.df["quality"].null_count() == 0
    print(f"device {device}, {len(rows)} rows of 40-160 words, batch {args.batch_size}")
    print(f"bare SentenceTransformer.encode: {max(bare):8.1f} rows/s  (passes: "
          f"{', '.join(f'{x:.1f}' for x in bare)})")
    print(f"synth quality step:              {max(ours):8.1f} rows/s  (passes: "
          f"{', '.join(f'{x:.1f}' for x in ours)})")
    print(f"ratio synth/bare: {max(ours) / max(bare):.3f}")


if __name__ == "__main__":
    main()
