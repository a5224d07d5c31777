"""The card `synth curate` writes for what it kept, on rows from real `synth generate` runs
against the loopback server; curated rows keep their provenance."""

import json
import subprocess
import sys

import polars as pl
import pyarrow.parquet as pq
import pytest

import synth
from synth.curate import curate
from synth.dataset import render_curated_card, score_columns
from synth.dataset.card import acceptance_covers
from synth.records import TRACE_SCHEMA
from tests.conftest import ROOT

LLAMA = "openai:meta-llama/Llama-3.1-8B-Instruct"
# 6 distinct answers, one too short for the default recipe (length: min 3 words), one a
# copy of p0 (exact_dedup): the loopback server answers "Echo: <prompt>"
PROMPTS = ([{"id": f"p{i}", "prompt": f"tell me about topic number {i} in detail"}
            for i in range(6)]
           + [{"id": "short", "prompt": "hi"},
              {"id": "dup", "prompt": "tell me about topic number 0 in detail"}])


def gen(server, tmp_path, name, *, teacher=LLAMA, intent="distributed", **kw):
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(p) + "\n" for p in PROMPTS))
    return synth.generate(input=src, teacher=teacher, out=tmp_path / name,
                          base_url=f"{server.url}/v1", intent=intent, progress=False, **kw)


def test_curated_llama_card_lists_obligations_recipe_and_step_counts(server, tmp_path):
    gen(server, tmp_path, "run")
    res = curate(tmp_path / "run", filters="default", out=tmp_path / "cur")
    assert res.summary["kept"] == 6 and res.rejected.height == 2
    card = (tmp_path / "cur" / "README.md").read_text()
    header = card.split("---")[1]
    assert "license: llama3.1" in header and "path: curated.parquet" in header
    assert "traces.parquet" not in header and "n<1K" in header
    # teachers from the kept rows
    assert ("| `openai:meta-llama/Llama-3.1-8B-Instruct` | "
            "meta-llama/Llama-3.1-8B-Instruct-2026-01-01 |") in card
    assert "| 6 | 0 |" in card  # 6 ok rows kept, none in error
    # the licence, inherited: Llama 3.1's duties for a distributed student
    assert "Declared intent: **distributed**" in card
    assert "`llama-3.1` | Llama 3.1 Community License Agreement (2024-07-23)" in card
    assert 'Display "Built with Llama" with a distributed student' in card
    assert "A distributed student's name must begin with \"Llama\"" in card
    assert "The Llama Acceptable Use Policy binds the student" in card
    assert "700 million monthly active users" in card
    assert "| distributed | llama-3.1 | allow-with-conditions | warn | - | 6 |" in card
    # the recipe and the counts per step and reason, as curation.json has them
    assert "Filter set **default** (`filters/default.yaml`): 8 rows in, 6 kept, 2 rejected" in card
    assert "`rejects.parquet`" in card
    assert "| `length` | 8 | 7 | 1 | too short=1 |" in card
    assert "| `exact_dedup` | 7 | 6 | 1 | duplicate=1 |" in card
    assert "| `near_dedup` | 6 | 6 | 0 | - |" in card
    steps = json.loads((tmp_path / "cur" / "curation.json").read_text())["steps"]
    for st in steps:
        assert f"| `{st['step']}` | {st['in']} | {st['kept']} | {st['dropped']} |" in card
    # the score columns the steps added, with statistics
    scores = card.split("## Score columns")[1]
    assert "| `repetition_ratio` | Float64 | 6 | min 0 / mean 0 / max 0 |" in scores
    assert "| `cluster_id` | Int64 | 6 | 6 distinct clusters |" in scores
    assert "| `response_words` |" in scores and "`provider`" not in scores


def test_curated_rows_keep_their_provenance_columns(server, tmp_path):
    run = gen(server, tmp_path, "run", intent="research")
    before = {r["id"]: r for r in pq.read_table(run.traces).to_pylist()}
    res = curate(tmp_path / "run", filters="default", out=tmp_path / "cur")
    on_disk = pq.read_table(tmp_path / "cur" / "curated.parquet")
    assert set(TRACE_SCHEMA.names) <= set(on_disk.column_names)
    assert set(TRACE_SCHEMA.names) <= set(res.kept.columns)
    assert {"repetition_ratio", "cluster_id"} <= set(on_disk.column_names)
    kept = on_disk.to_pylist()
    assert len(kept) == 6
    for r in kept:
        for col in TRACE_SCHEMA.names:
            assert r[col] == before[r["id"]][col], (r["id"], col)
        assert r["intent"] == "research" and r["licence_entries"] == ["llama-3.1"]
        assert r["model_version"] == "meta-llama/Llama-3.1-8B-Instruct-2026-01-01"
    # rejected rows keep them too
    rej = pq.read_table(tmp_path / "cur" / "rejects.parquet")
    assert set(TRACE_SCHEMA.names) <= set(rej.column_names)
    assert sorted(rej["id"].to_pylist()) == ["dup:0", "short:0"]


def test_the_card_licence_depends_on_the_rows_intent(server, tmp_path):
    gen(server, tmp_path, "run", intent="internal")
    curate(tmp_path / "run", filters="default", out=tmp_path / "cur")
    card = (tmp_path / "cur" / "README.md").read_text()
    assert "Declared intent: **internal**" in card
    assert "Built with Llama" not in card and "Acceptable Use Policy" in card


def test_rows_of_several_intents_are_cleared_for_the_narrowest(server, tmp_path):
    gen(server, tmp_path, "a", intent="distributed")
    gen(server, tmp_path, "b", intent="research")
    a = pl.read_parquet(tmp_path / "a" / "traces.parquet")
    b = pl.read_parquet(tmp_path / "b" / "traces.parquet").with_columns(
        ("b/" + pl.col("id")).alias("id"))
    recipe = tmp_path / "light.yaml"
    recipe.write_text("name: light\nsteps:\n  - drop_errors\n")
    res = curate(pl.concat([a, b]), filters=recipe)
    assert set(res.kept["intent"]) == {"research", "distributed"}
    card = render_curated_card(name="mixed", kept=res.kept, summary=res.summary,
                               rejected_rows=res.rejected.height)
    assert "Declared intent: **research**" in card
    assert "generated for intents research, distributed" in card
    assert "cleared for **research** only" in card and "Built with Llama" not in card
    assert "Filter set **light**" in card and "| `drop_errors` | 16 | 16 | 0 |" in card


def test_terms_accepted_at_generate_time_carry_into_the_card(server, tmp_path):
    gen(server, tmp_path, "run", teacher="openai:mystery-model", intent="research",
        accept_terms=("unknown",))
    curate(tmp_path / "run", filters="default", out=tmp_path / "cur")
    card = (tmp_path / "cur" / "README.md").read_text()
    assert "license: other" in card and "license_name: unknown" in card
    assert "| unknown | no registry entry matched | - |" in card
    assert "no registry entry for model 'mystery-model'" in card
    assert "generated only because the user passed `--accept-terms` for: `unknown`" in card
    assert "Before you use this dataset" not in card  # accepted: nothing left to do
    assert "| research | - | unknown | warn | unknown |" in card


def test_rows_without_provenance_get_a_card_that_says_so(tmp_path):
    src = tmp_path / "plain.jsonl"
    src.write_text("".join(json.dumps({"id": f"r{i}", "response": f"answer number {i} here"})
                           + "\n" for i in range(4)))
    p = subprocess.run([sys.executable, "-m", "synth", "curate", str(src), "--out",
                        str(tmp_path / "cur")], cwd=ROOT, capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr
    card = (tmp_path / "cur" / "README.md").read_text()
    assert "license: other" in card and "license_name: unknown" in card
    assert "**Provenance unknown.**" in card and "no teacher or licence columns" in card
    assert "| `drop_errors` | 4 | 4 | 0 |" in card and "path: curated.parquet" in card
    assert "## Teachers" in card and "`openai:" not in card


def test_score_columns_statistics():
    df = pl.DataFrame({
        "id": ["a", "b", "c", "d"], "response": ["x"] * 4, "cost_usd": [1.0, 2.0, 3.0, 4.0],
        "judge_score": [1.0, 2.0, 6.0, None], "math_verdict": ["pass", "fail", "pass", None],
        "cluster_id": [0, 0, 2, 3], "judge_reason": ["r"] * 4})
    got = {s["column"]: s for s in score_columns(df)}
    assert set(got) == {"judge_score", "math_verdict", "cluster_id", "judge_reason"}
    assert (got["judge_score"]["min"], got["judge_score"]["mean"], got["judge_score"]["max"]) \
        == (1.0, 3.0, 6.0) and got["judge_score"]["values"] == 3
    assert got["math_verdict"]["counts"] == {"pass": 2, "fail": 1, "null": 1}
    assert got["cluster_id"]["kind"] == "cluster" and got["cluster_id"]["clusters"] == 3
    assert got["judge_reason"]["kind"] == "other"


@pytest.mark.parametrize("recorded, now, covered", [
    ("research", "research", True), ("distributed", "internal", True),
    ("competing", "research", True), ("research", "distributed", False),
    ("internal", "distributed", False), (None, "research", True), (None, "internal", False),
])
def test_which_recorded_acceptances_cover_an_intent(recorded, now, covered):
    assert acceptance_covers(recorded, now) is covered


def test_a_curation_that_keeps_nothing_still_gets_a_card(server, tmp_path):
    gen(server, tmp_path, "run")
    recipe = tmp_path / "strict.yaml"
    recipe.write_text("name: strict\nsteps:\n  - length: {field: response, min_words: 500}\n")
    res = curate(tmp_path / "run", filters=recipe, out=tmp_path / "cur")
    assert res.kept.height == 0
    card = (tmp_path / "cur" / "README.md").read_text()
    assert "No rows were kept: there is nothing to license" in card
    assert "license_name: unknown" in card and "Provenance unknown" not in card
    assert "| `length` | 8 | 0 | 8 | too short=8 |" in card


def test_step_details_never_show_a_python_repr():
    from synth.dataset.card import step_details

    text = step_details({"minhash": {"pairs_checked": 1200, "kernel": "numpy"},
                         "rounds": [{"round": 1, "pool": 4}], "operations": ["deepen"]})
    assert text == ("minhash: pairs_checked 1,200, kernel numpy; rounds: (round 1, pool 4); "
                    "operations: (deepen)")
    assert "{" not in text and "[" not in text
