"""verify_math over the 270 CHAMP competition problems (``champ-dataset`` 1.0.0, in the
``dev`` extra, its data pinned by sha256): every reference given back is correct, every
natural restatement of it (its words, its parts in another order, the LaTeX forms of
``tests/data/verify_math_champ.json``) is correct, and no hedge, other problem's answer,
perturbed number or trick is. The cases are ``bench/verify_math_real.py``'s, which prints
the same counts for any checkout (issue 16). About 20 s on 2 cores."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest

pytest.importorskip("math_verify")

ROOT = Path(__file__).resolve().parent.parent


def _champ_problems():
    missing = [m for m in ("champ_dataset", "natsort") if importlib.util.find_spec(m) is None]
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"{', '.join(missing)} missing: CI installs the dev extra, which has "
                        "champ-dataset and natsort")
        pytest.skip(f"{', '.join(missing)} not installed: pip install -e '.[dev]' "
                    "(champ-dataset, natsort) to check verify_math on the 270 CHAMP problems")
    return _bench().load_problems()


def _bench():
    spec = importlib.util.spec_from_file_location("verify_math_real",
                                                  ROOT / "bench" / "verify_math_real.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_every_champ_reference_restatement_and_hedge():
    bench = _bench()
    problems = _champ_problems()
    assert len(problems) == 270
    cases = bench.build_cases(problems)
    counts = {}
    for c in cases:
        counts[c["category"]] = counts.get(c["category"], 0) + 1
    # each category really ran: self 2 per problem, the hand-written table, the tricks
    assert counts["a self"] == 540 and counts["b words"] > 400 and counts["c tricks"] > 2000, \
        counts
    results = bench.run(cases)
    table, failures = bench.summarise(cases, results)
    assert not failures, table + "\n" + "\n".join(failures[:40])


def test_the_table_names_real_problems():
    table = json.loads((ROOT / "tests" / "data" / "verify_math_champ.json").read_text())
    ids = {pid for pid, _ in _champ_problems()}
    assert set(table) <= ids, set(table) - ids
    assert sum(len(v.get("correct", [])) for v in table.values()) > 100
