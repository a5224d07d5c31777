"""Language id: synth's ``language`` step vs a bare py3langid ``classify`` loop.

    python bench/langid.py               # 8,000 rows
    python bench/langid.py --rows 20000

Rows: 100-300 words drawn from one of six short passages (en, fr, de, es, it, nl), one
language per row. synth's side is the whole step (code-fence stripping, the batch
classifier, the new columns, the verdict); the peer is ``identifier().classify`` on the
same texts cut to the same 2,000 characters. Both sides load the model before the clock.
Prints rows/s, the ratio and the share of rows where both give the same language.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import polars as pl

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from synth.curate.langid import Language, _batch, identifier  # noqa: E402

PASSAGES = {
    "en": "the committee will publish its findings after the summer recess and the public "
          "will then be able to comment on every proposal before the final vote",
    "fr": "le comité publiera ses conclusions après les vacances d'été et le public pourra "
          "alors commenter chaque proposition avant le vote final",
    "de": "der ausschuss veröffentlicht seine ergebnisse nach der sommerpause und die "
          "öffentlichkeit kann dann jeden vorschlag vor der abstimmung kommentieren",
    "es": "el comité publicará sus conclusiones después del receso de verano y el público "
          "podrá comentar cada propuesta antes de la votación final",
    "it": "il comitato pubblicherà le sue conclusioni dopo la pausa estiva e il pubblico "
          "potrà commentare ogni proposta prima del voto finale",
    "nl": "de commissie publiceert haar bevindingen na het zomerreces en het publiek kan "
          "dan op elk voorstel reageren voor de eindstemming",
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=8000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    words = {k: v.split() for k, v in PASSAGES.items()}
    langs = list(words)
    texts = [" ".join(rng.choice(words[langs[i % len(langs)]], int(rng.integers(100, 301))))
             for i in range(args.rows)]
    df = pl.DataFrame({"id": [str(i) for i in range(len(texts))], "response": texts})
    step = Language(languages=["en"])
    ident = identifier()
    kernel = _batch() is not None  # compile / load the batch classifier before the clock
    step(df.head(10))

    t = time.perf_counter()
    bare = [ident.classify(x[:2000]) for x in texts]
    t_bare = time.perf_counter() - t
    t = time.perf_counter()
    v = step(df)
    t_synth = time.perf_counter() - t
    same = np.mean([a[0] == b for a, b in zip(bare, v.df["lang"].to_list())])
    n = len(texts)
    print(f"{n:,} rows, {sum(map(len, texts)) / n:,.0f} chars/row; batch classifier: "
          f"{'numba' if kernel else 'off (per text)'}")
    print(f"bare py3langid classify loop: {n / t_bare:10,.0f} rows/s  ({t_bare:.2f} s)")
    print(f"synth language step:          {n / t_synth:10,.0f} rows/s  ({t_synth:.2f} s)")
    print(f"ratio synth/bare: {t_bare / t_synth:.1f}x; same language on {same:.4f} of rows")


if __name__ == "__main__":
    main()
