"""The report's parts, each on its own: the figures are plain data read from a run
directory (no browser, no matplotlib), the page opens on its headline, a recipe's details
read as text (never a Python repr), the page's script is the one its CSP allows, and the
template ships with the package."""

import base64
import dataclasses
import fnmatch
import hashlib
import html
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from synth.dataset.card import details_text
from synth.pipeline.report import Headline, collect_report, render_html, write_pipeline_report
from synth.pipeline.report.page import stage_details
from synth.pipeline.report.plots import acceptance_plot, cost_plot, funnel_plot, grid_plot
from tests.test_pipeline_report import CLAUDE, GPT, Tables, make_run, row, table

ROOT = Path(__file__).resolve().parents[1]

#: stage.json ``info`` the way the Evol recipe writes it (synth/recipes/evol.py): rounds
#: and operations are nested, which a plain ``str()`` would show as Python dicts.
EVOL_INFO = {
    "inputs": 4,
    "rounds": [{"round": 1, "pool": 4, "evolved": 3,
                "eliminated": {"rule1": 1, "rule2": 0, "rule3": 0, "rule4": 0, "error": 0},
                "back_to_pool": 1},
               {"round": 2, "pool": 4, "evolved": 4,
                "eliminated": {"rule1": 0, "rule2": 1, "rule3": 0, "rule4": 0, "error": 0},
                "back_to_pool": 1}],
    "rows": 8,
    "eliminated": {"rule1": 1, "rule2": 1, "rule3": 0, "rule4": 0, "error": 0},
    "operations": {"deepen": {"tried": 4, "evolved": 3, "eliminated": 1},
                   "breadth": {"tried": 4, "evolved": 4, "eliminated": 1}},
    "final_generations": {"1": 1, "2": 3},
    "equality": "similarity",
}


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    run = make_run(tmp_path_factory.mktemp("parts"))
    return run, collect_report(run, encoder=None)


def add_evol_stage(run: Path) -> None:
    """A third generate stage, ``evolved``, with the Evol recipe's info and two kept rows."""
    d = run / "generate" / "evolved"
    d.mkdir(parents=True)
    kept = [row(f"e{i}", "evolved", prompt=f"Harder question {i}", response=f"Answer {i}.")
            for i in range(2)]
    from synth.io import write_atomic

    write_atomic(d / "traces.parquet", table(kept))
    (d / "stage.json").write_text(json.dumps({
        "stage": "evolved", "recipe": "evol", "rows": 2, "rejected": 0, "rejects": {},
        "wall_s": 1.5, "teachers": {GPT: {"requests": 2, "sent": 2, "rows": 2, "accepted": 2,
                                          "errors": 0, "cost_usd": 0.001}},
        "info": EVOL_INFO}))


# ------------------------------------------------------------------------ figures: plain data


def test_figures_hold_the_runs_numbers(full):
    _, d = full
    h = d["headline"]
    assert isinstance(h, Headline) and h.evaluated and h.task_scored
    assert (h.student, h.teacher) == ("runs/demo/student", "local:teacher")
    assert (h.retained, h.student_accuracy, h.teacher_accuracy, h.scored) == (0.5, 0.5, 1.0, 2)
    assert (h.speedup, h.student_tokens_per_s, h.teacher_tokens_per_s) == (7.04, 321.0, 45.6)
    assert (h.student_params, h.teacher_params, h.size_ratio) == (1234567, 9876543, 0.125)
    assert h.spent_usd == pytest.approx(0.0123 + 0.0188) and h.unpriced == 1
    assert h.estimated_usd == 0.03
    assert (h.generated_rows, h.kept_rows, h.kept_by) == (17, 8, "curation")

    f = {r["step"]: r for r in d["funnel"]}
    assert [f["generate textbook"][k] for k in ("in", "dropped", "out")] == [7, 2, 5]
    assert f["generate cot"]["reasons"] == {"wrong answer": 3, "no answer": 1}
    assert (f["split"]["out"], f["split"]["heldout"]) == (6, 2)
    assert [f["curated"][k] for k in ("in", "dropped", "out")] == [11, 3, 8]
    t = d["costs"]["total"]
    assert (t["requests"], t["errors"], t["unpriced"]) == (18, 1, 1)
    acc = {a["teacher"]: a for a in d["acceptance"]}
    assert (acc[GPT]["generated"], acc[GPT]["curated"], acc[GPT]["rate"]) == (14, 7, 0.5)
    assert (acc[CLAUDE]["curated"], acc[CLAUDE]["rate"]) == (1, pytest.approx(1 / 3))
    (g,) = d["grids"]
    assert (g["planned_cells"], g["covered"], len(g["missing"])) == (6, 4, 2)
    assert d["diversity"]["distinct_1"]["n"] == 8 and d["diversity"]["vendi"]["value"] is None
    assert [s["key"] for s in d["manifest_stages"]][:2] == ["generate.textbook", "generate.cot"]


def test_figures_are_plain_data(full):
    _, d = full
    rest = {k: v for k, v in d.items() if k != "headline"}
    again = json.loads(json.dumps(rest))  # nothing but JSON types: no frames, no HTML
    assert again["funnel"] == d["funnel"] and again["samples"] == d["samples"]
    assert json.dumps(dataclasses.asdict(d["headline"]))
    assert not any("<" in json.dumps(v) for k, v in rest.items()
                   if k not in ("samples", "pipeline", "pipeline_yaml", "not_run"))


def test_figures_only_run_without_matplotlib(tmp_path):
    run = make_run(tmp_path, only_generate=True)
    code = ("import sys\nfrom synth.pipeline.report import collect_report\n"
            f"d = collect_report({str(run)!r}, encoder=None)\n"
            "print(d['headline'].kept_rows, 'matplotlib' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split() == ["11", "False"]


def test_headline_of_a_run_that_did_not_evaluate(tmp_path):
    d = collect_report(make_run(tmp_path, only_generate=True), encoder=None)
    h = d["headline"]
    assert not h.evaluated and not h.task_scored
    assert h.retained is None and h.speedup is None and h.student_params is None
    assert (h.generated_rows, h.kept_rows, h.kept_by) == (17, 11, "the recipes")
    t = Tables(render_html(d, plots={"funnel": None, "costs": None, "acceptance": None,
                                     "grids": [None], "training": None}))
    hl = t.keys["headline-table"]
    assert hl["quality"][1:] == ["—", "evaluation did not run (no eval/eval.json)"]
    assert hl["rows"][1:] == ["11", "of 17 the teachers generated (64.7%), after the recipes"]
    assert hl["spent"][1:] == ["$0.0311", "estimated $0.0300; 1 teacher with no price not counted"]


def test_bare_directory_headline_says_what_is_missing(tmp_path):
    (tmp_path / "r").mkdir()
    d = collect_report(tmp_path / "r", encoder=None)
    assert d["headline"] == Headline()
    hl = Tables(render_html(d, plots={"funnel": None, "costs": None, "acceptance": None,
                                      "grids": [], "training": None})).keys["headline-table"]
    assert hl["spent"][1:] == ["—", "no teacher was called"]
    assert hl["rows"][1:] == ["—", "no generate stage wrote anything"]


# ------------------------------------------------------------------------ the page


def test_page_opens_on_the_headline(full):
    run, _ = full
    page = write_pipeline_report(run, encoder=None).read_text(encoding="utf-8")
    at = {k: page.index(k) for k in ("id='headline'", "id='headline-table'",
                                     "id='stages-table'", "<nav>", "id='funnel'")}
    assert at["id='headline'"] < at["id='headline-table'"] < at["id='stages-table'"] \
        < at["<nav>"] < at["id='funnel'"]
    assert page.index("<h1>") < at["id='headline'"]
    hl = Tables(page).keys["headline-table"]
    assert hl["quality"][1:] == [
        "50.0%", "task accuracy 50.0% (student) vs 100.0% (teacher) on 2 held-out prompts"]
    assert hl["speed"][1:] == ["7.04×", "321 vs 45.6 generated tokens/s (student vs teacher)"]
    assert hl["size"][1:] == ["12.5% of the teacher",
                              "1.23M vs 9.88M parameters (student vs teacher)"]
    assert hl["spent"][1:] == ["$0.0311", "estimated $0.0300; 1 teacher with no price not counted"]
    # the split is made before curation: its share is of what curation was given
    assert hl["rows"][1:] == ["8", "train rows after curation: 72.7% of the 11 it was given; "
                              "2 held out for eval before it; 17 generated in all"]


def test_evol_details_read_as_text_not_a_python_dict(tmp_path):
    run = make_run(tmp_path, only_generate=True)
    add_evol_stage(run)
    page = write_pipeline_report(run, encoder=None).read_text(encoding="utf-8")
    # outside the two scripts (the row browser's code and its JSON data), no Python repr
    text = html.unescape(re.sub(r"<script[^>]*>.*?</script>", "", page, flags=re.S))
    assert "{'" not in text and "'}" not in text and "[{" not in text
    details = Tables(page).keys["generate-table"]["evolved"][8]
    assert "{" not in details and "[" not in details and "'" not in details
    assert details.startswith("inputs: 4; rounds: (round 1, pool 4, evolved 3, eliminated "
                              "(rule1 1, rule2 0, rule3 0, rule4 0, error 0), back_to_pool 1), "
                              "(round 2, ")
    assert "; eliminated: rule1 1, rule2 1, rule3 0, rule4 0, error 0; " in details
    assert "operations: deepen (tried 4, evolved 3, eliminated 1), breadth (tried 4" in details
    assert details.endswith("final_generations: 1 1, 2 3; equality: similarity")


def test_details_text_shapes():
    assert details_text(None) == "" and details_text({}) == ""
    assert details_text({"unrouted": 0, "template": None, "ok": True, "rate": 0.123456}) == \
        "unrouted: 0; template: none; ok: yes; rate: 0.1235"
    assert details_text({"checks": {"math": 1200}}) == "checks: math 1,200"
    assert details_text({"seen": list(range(12))}) == "seen: 0, 1, 2, 3, 4, 5, 6, 7, … 4 more"
    assert details_text({"seen": []}) == "seen: none"
    assert details_text({"subtopics": {"asked": 2, "without": ["a", "b"]}}) == \
        "subtopics: asked 2, without (a, b)"
    assert details_text({"subtopics": {"without": [{"topic": "a", "reason": "r"}]}}) == \
        "subtopics: without (topic a, reason r)"
    assert details_text({"path": "x" * 100}) == "path: " + "x" * 60 + "…"
    # acceptance and grid keep their own words; the rest follows
    s = {"info": {"acceptance": {"prompts": 2, "samples": 4, "accepted": 3, "rate": 0.75},
                  "verdicts": {"correct": 3, "wrong": 1}}}
    assert stage_details(s) == ("accepted 3 of 4 samples (75.0%) over 2 prompts; "
                                "verdicts: correct 3, wrong 1")


def test_the_only_script_is_the_one_the_csp_allows(full):
    run, _ = full
    page = write_pipeline_report(run, encoder=None).read_text(encoding="utf-8")
    csp = html.unescape(re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"',
                                  page).group(1))
    allowed = re.search(r"script-src 'sha256-([A-Za-z0-9+/=]+)'", csp).group(1)
    scripts = re.findall(r"<script>(.*?)</script>", page, re.S)  # runnable: no type=
    assert len(scripts) == 1
    assert base64.b64encode(hashlib.sha256(scripts[0].encode()).digest()).decode() == allowed
    assert "'unsafe-inline'" not in csp.split("script-src")[1].split(";")[0]


def test_plots_are_functions_of_figures(full):
    _, d = full
    assert funnel_plot([]) is None and cost_plot({"rows": []}) is None
    assert acceptance_plot([{"teacher": GPT, "rate": None}]) is None
    png = base64.b64decode(grid_plot(d["grids"][0]))
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_template_and_script_ship_as_package_data():
    tomllib = pytest.importorskip("tomllib")
    pkg = ROOT / "synth" / "pipeline" / "report"
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = data["tool"]["setuptools"]["package-data"]["synth.pipeline.report"]
    files = [p.name for p in pkg.iterdir() if p.is_file() and p.suffix not in (".py", ".pyc")]
    assert {"page.html.j2", "rows.js"} <= set(files)
    assert all(any(fnmatch.fnmatch(f, pat) for pat in patterns) for f in files), files


def test_headline_money_counts_teachers_and_never_shows_an_unknown_as_zero():
    from synth.pipeline.report.figures import headline
    from synth.pipeline.report.page import headline_view, speedup_text

    rows = [{"stage": s, "teacher": t, "ran": True, "cost": None}
            for s, t in (("a", "openai:x"), ("b", "openai:x"), ("b", "custom:y"))]
    cost = {"rows": rows, "total": {"cost": 0, "unpriced": 3, "est_cost": None},
            "estimate": False}
    h = headline([], None, cost, None)
    assert h.spent_usd is None and h.unpriced == 2  # two teachers, over three stage pairs
    text = str(headline_view(h).__dict__)
    assert "no price for the 2 teachers that ran" in text and "$0.0000" not in text
    rows[2]["cost"] = 0.5
    cost["total"]["cost"] = 0.5
    h = headline([], None, cost, None)
    assert h.spent_usd == 0.5 and h.unpriced == 1
    assert [speedup_text(x) for x in (2.254, 14.06, 1234.5, None)] == \
        ["2.25×", "14.1×", "1,234×", None]
