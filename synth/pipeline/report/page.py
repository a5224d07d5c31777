"""The page: :func:`collect_report`'s figures and :mod:`~synth.pipeline.report.plots`' images
rendered through the Jinja2 template ``page.html.j2`` (autoescaped), and written as
``report.html``.

This module turns figures into what a reader sees (``1,234``, ``$0.0123``, ``60.0%``, a
recipe's details as ``key: value`` text) and lays them out as tables; the template holds
the HTML, its words and its CSS, the row browser's script is ``rows.js``. Every number the
page shows is in a table, so it reads without its images.

Nothing is fetched from anywhere: a Content-Security-Policy allows images from ``data:``
only and runs only the page's own script (by its hash), so row text — untrusted, it is what
a teacher wrote — cannot run as code even if it tried.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import jinja2
from markupsafe import Markup

from synth.dataset.card import details_text
from synth.pipeline.report.figures import SAMPLE_ROWS, Headline, ReportData, collect_report

__all__ = ["render_html", "write_pipeline_report", "script_json",
           "MAX_MISSING_LISTED"]

#: Missing grid cells listed by name; past this a count says how many more.
MAX_MISSING_LISTED = 500


# ------------------------------------------------------------------------ cell values


class Absent(str):
    """Cell text saying a figure is missing (the template shows it as such)."""


class Strong(str):
    """Cell text shown in bold (a total row's label)."""


@dataclass
class Table:
    """One ``<table id=...>``: header texts, rows of cell values (formatted by the
    template's ``num`` filter) and, optionally, each row's ``data-key``."""

    id: str
    headers: list[str]
    rows: list[list[Any]]
    keys: list[str] | None = None


def section(tables: dict[str, Table], extra: dict[str, Any] | None = None) -> SimpleNamespace:
    """A section's tables (``v.tables.<name>`` in the template) and the few texts its words
    need (``v.<name>``)."""
    return SimpleNamespace(tables=tables, **(extra or {}))


def num(v: Any) -> Any:
    """A table cell or a number in a sentence: ``—`` for none, thousands separators,
    four significant digits; text as it is (the template escapes it)."""
    if isinstance(v, (Absent, Strong, Markup)):
        return v
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.4g}"
    return str(v)


def usd(x: Any) -> str:
    if x is None:
        return "unknown"
    return f"${x:,.4f}" if x < 1 else f"${x:,.2f}"


def speedup_text(x: float | None) -> str | None:
    """``2.25×``, ``14.1×``, ``1,234×``: three figures, never an exponent."""
    if x is None:
        return None
    return f"{x:,.0f}×" if x >= 100 else f"{x:.3g}×"


def pct(x: Any) -> str:
    return "—" if x is None else f"{x:.1%}"


def reasons_text(r: dict[str, Any]) -> str:
    return ", ".join(f"{k}: {v:,}" if isinstance(v, int) else f"{k}: {v}" for k, v in r.items())


def params_text(n: Any) -> str:
    """A parameter count the way model cards write it: ``135M``, ``1.7B``."""
    if not isinstance(n, (int, float)) or isinstance(n, bool):
        return "—"
    for size, unit in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= size:
            return f"{n / size:.3g}{unit}"
    return f"{n:,}"


def script_json(obj: Any) -> str:
    """JSON that is inert inside a ``<script type="application/json">``: no ``<``, ``>`` or
    ``&`` survives (``</script>`` cannot close the element, ``<!--`` cannot open a comment),
    and the line separators JS once choked on are escaped too."""
    return (json.dumps(obj, ensure_ascii=True).replace("<", "\\u003c")
            .replace(">", "\\u003e").replace("&", "\\u0026"))


# ------------------------------------------------------------------------ sections


def headline_view(h: Headline) -> SimpleNamespace:
    """The block the page opens on: quality kept, speed-up, size, money and rows."""
    rows, keys = [], []

    def add(key: str, label: str, value: Any, how: str) -> None:  # how: text or Absent
        rows.append([label, value, how])
        keys.append(key)

    no_eval = Absent("evaluation did not run (no eval/eval.json)")
    if not h.evaluated:
        add("quality", "teacher's score kept by the student", None, no_eval)
    elif not h.task_scored:
        add("quality", "teacher's score kept by the student", None,
            Absent("no task score: the held-out rows have no reference answers"))
    else:
        add("quality", "teacher's score kept by the student", pct(h.retained),
            f"task accuracy {pct(h.student_accuracy)} (student) vs "
            f"{pct(h.teacher_accuracy)} (teacher) on {num(h.scored)} held-out prompts")
    if not h.evaluated:
        add("speed", "speed-up", None, no_eval)
        add("size", "model size", None, no_eval)
    else:
        add("speed", "speed-up", speedup_text(h.speedup),
            f"{num(h.student_tokens_per_s)} vs {num(h.teacher_tokens_per_s)} generated "
            "tokens/s (student vs teacher)")
        size = (f"{h.size_ratio:.1%} of the teacher" if h.size_ratio is not None else None)
        add("size", "model size", size,
            f"{params_text(h.student_params)} vs {params_text(h.teacher_params)} parameters "
            "(student vs teacher)")
    if h.spent_usd is None and h.unpriced:
        spent, how = None, Absent(f"unknown: no price for the {h.unpriced} teacher"
                                  f"{'s' if h.unpriced != 1 else ''} that ran")
    elif h.spent_usd is None:
        spent, how = None, Absent("no teacher was called")
    else:
        spent = usd(h.spent_usd)
        how = ("estimated " + usd(h.estimated_usd) if h.estimated_usd is not None
               else "no estimate to compare with")
        if h.unpriced:
            how += (f"; {h.unpriced} teacher{'s' if h.unpriced != 1 else ''} with no price "
                    "not counted")
    add("spent", "money spent on teachers", spent, how)
    if h.kept_rows is None:
        add("rows", "rows kept", None, Absent("no generate stage wrote anything"))
    else:
        if h.heldout_rows is not None and h.kept_by == "curation":
            # the split comes first, so curation's share is of what it was given; the
            # held-out rows are not lost, they are what eval scored
            share = h.kept_rows / h.curated_from_rows if h.curated_from_rows else None
            how = (f"train rows after curation: {pct(share)} of the "
                   f"{num(h.curated_from_rows)} it was given; {num(h.heldout_rows)} held out "
                   f"for eval before it; {num(h.generated_rows)} generated in all")
        else:
            share = h.kept_rows / h.generated_rows if h.generated_rows else None
            how = (f"of {num(h.generated_rows)} the teachers generated ({pct(share)}), "
                   f"after {h.kept_by}")
        add("rows", "rows kept", h.kept_rows, how)
    table = Table("headline-table", ["", "this run", "measured as"], rows, keys)
    return section({"headline": table}, {"student": h.student, "teacher": h.teacher})


def header_view(d: ReportData) -> SimpleNamespace:
    st = d["manifest_stages"]
    rows = [[s["key"], s["status"], s["seconds"], (s["fingerprint"] or "")[:12] or None,
             s["outputs"]] for s in st]
    counts = ", ".join(f"{n} {s}" for s, n in sorted(d["status_counts"].items()))
    return section({"stages": Table("stages-table", ["stage", "status", "seconds",
                                                     "fingerprint", "output files"],
                                    rows, [s["key"] for s in st])},
                   {"n": len(st), "counts": counts, "not_run": "; ".join(d["not_run"]),
                    "seconds": f"{d['stage_seconds']:,.1f}"})


def funnel_view(d: ReportData) -> SimpleNamespace:
    rows, keys = [], []
    for r in d["funnel"]:
        out = (f"{r['out']:,} train + {r['heldout']:,} held-out" if r["kind"] == "split"
               else r["out"])
        rows.append([r["step"], r["what"], r["in"], r["dropped"], out,
                     reasons_text(r["reasons"])])
        keys.append(r["step"])
    st = d["stages"]
    return section({
        "funnel": Table("funnel-table", ["step", "what", "rows in", "dropped", "rows out",
                                         "dropped by reason"], rows, keys),
        "generate": Table(
            "generate-table", ["stage", "recipe", "status", "generated", "kept", "rejected",
                               "rejects by reason", "seconds", "recipe details"],
            [[s["name"], s["recipe"], s["status"], s["generated"], s["rows"], s["rejected"],
              reasons_text(s["rejects"]), s["wall_s"], stage_details(s)] for s in st],
            [s["name"] for s in st])})


def stage_details(s: dict[str, Any]) -> str:
    """A generate stage's ``info``: acceptance and grid in words, the rest as
    :func:`synth.dataset.card.details_text`."""
    info = s.get("info") or {}
    bits = []
    acc = info.get("acceptance")
    if isinstance(acc, dict):
        per = acc.get("per_prompt") or []
        none = sum(1 for p in per if isinstance(p, dict) and not p.get("accepted"))
        bits.append(f"accepted {acc.get('accepted', 0):,} of {acc.get('samples', 0):,} samples "
                    f"({pct(acc.get('rate'))}) over {acc.get('prompts', 0):,} prompts"
                    + (f"; {none:,} prompt{'s' if none != 1 else ''} with no accepted sample"
                       if per else ""))
    grid = info.get("grid")
    if isinstance(grid, dict):
        bits.append(f"grid: {grid.get('planned', len(grid.get('cells') or [])):,} cells planned, "
                    f"{grid.get('written', 0) or 0:,} written")
    rest = {k: v for k, v in info.items() if k not in ("acceptance", "grid")}
    if rest:
        bits.append(details_text(rest))
    return "; ".join(b for b in bits if b)


def costs_view(d: ReportData) -> SimpleNamespace:
    c = d["costs"]
    rows, keys = [], []
    for r in c["rows"]:
        est_out = None
        if r["est_output_tokens"] is not None:
            est_out = f"{r['est_output_tokens']:,}" + (
                f" (p90 {r['est_output_p90']:,})" if r["est_output_p90"] is not None else "")
        est_cost = (usd(r["est_cost"]) + (f" (p90 {usd(r['est_cost_p90'])})"
                                          if r["est_cost_p90"] is not None else "")
                    if r["has_estimate"] else "not estimated")
        rows.append([r["stage"], r["teacher"], r["est_requests"],
                     r["requests"] if r["ran"] else "did not run", r["sent"],
                     r["est_input_tokens"], r["input_tokens"], est_out, r["output_tokens"],
                     r["errors"], est_cost,
                     usd(r["est_batch_cost"]) if r["est_batch_cost"] is not None else None,
                     usd(r["cost"]) if r["ran"] else "did not run"])
        keys.append(f"{r['stage']}|{r['teacher']}")
    t = c["total"]
    spent = usd(t["cost"]) + (f" + {t['unpriced']} unpriced" if t["unpriced"] else "")
    est_total = "not estimated"
    if c["estimate"]:
        est_total = usd(t["est_cost"]) + (f" (p90 {usd(t['est_cost_p90'])})"
                                          if t["est_cost_p90"] is not None else "")
    rows.append([Strong("total"), "", t["est_requests"] if c["estimate"] else None,
                 t["requests"], t["sent"], None, t["input_tokens"], None, t["output_tokens"],
                 t["errors"], est_total,
                 usd(t["est_batch_cost"]) if t["est_batch_cost"] is not None else None, spent])
    keys.append("total")
    tables = {"costs": Table("cost-table", [
        "stage", "teacher", "est. requests", "requests", "sent (not cached)",
        "est. input tokens", "input tokens", "est. output tokens", "output tokens", "errors",
        "est. cost", "est. batch cost", "spent"], rows, keys)}
    batched = [r for r in c["rows"] if r["ran"] and r.get("batch_rows")]
    if batched:  # --batch / batch: true: what the batch route spent and saved
        brows = [[r["stage"], r["teacher"], r["batch_rows"], usd(r["batch_spent"]),
                  usd(r["batch_at_sync"]), usd(r["batch_at_sync"] - r["batch_spent"]),
                  usd(r["sync_spent"])] for r in batched]
        tables["batch"] = Table("batch-table", [
            "stage", "teacher", "rows from batches", "spent in batches",
            "the same rows synchronously", "saved", "spent synchronously"], brows,
            [f"{r['stage']}|{r['teacher']}" for r in batched])
    notes = [f"{r['stage']} / {r['teacher']}: {n}" for r in c["rows"] for n in r["notes"]]
    extra: dict[str, Any] = {"unpriced": t["unpriced"], "estimated": c["estimate"],
                             "notes": notes, "break_even": None}
    be = c.get("break_even")
    if isinstance(be, dict) and be:
        extra["break_even"] = break_even_view(be, tables)
    return section(tables, extra)


def break_even_view(be: dict[str, Any], tables: dict[str, Table]) -> dict[str, Any]:
    """estimate.json's break-even: distilling vs calling the teacher (or why it is not
    known); its table goes into ``tables``."""
    if "reason" in be or "missing" in be:
        return {"not_computed": be.get("reason") or ", ".join(be["missing"])}

    def days(x: Any) -> str:
        return f"{x:,.1f} days" if isinstance(x, (int, float)) else str(x)

    def line(r: dict[str, Any]) -> list[Any]:
        sp, bd = r.get("student_per_day_usd") or {}, r.get("break_even_days") or {}
        return [r.get("requests_per_day"), usd(r.get("teacher_per_day_usd")),
                usd(sp.get("pay_per_use")), usd(sp.get("always_on")),
                days(bd.get("pay_per_use")), days(bd.get("always_on"))]

    inputs = be.get("inputs") or {}
    here = {**be, "requests_per_day": inputs.get("requests_per_day")}
    tables["break_even"] = Table(
        "break-even-table", ["requests / day", "teacher / day", "student / day (pay per use)",
                             "student / day (always on)", "break-even (pay per use)",
                             "break-even (always on)"],
        [line(here)] + [line(r) for r in be.get("table") or [] if isinstance(r, dict)])
    return {"not_computed": None, "one_time": usd(be.get("one_time_usd")),
            "per_request": usd(inputs.get("teacher_cost_per_request")),
            "per_hour": usd(inputs.get("student_cost_per_hour")),
            "requests_per_hour": f"{inputs.get('student_requests_per_hour', 0):,}",
            "assumptions": [str(a) for a in be.get("assumptions") or []]}


def acceptance_view(d: ReportData) -> SimpleNamespace:
    acc, cur = d["acceptance"], d["curation"] is not None
    rows = [[a["teacher"], ", ".join(a["stages"]), a["generated"], a["errors"],
             a["recipe_kept"], a["curated"] if cur else "curation did not run",
             pct(a["rate"])] for a in acc]
    return section({"acceptance": Table(
        "acceptance-table", ["teacher", "stages", "rows generated", "errors",
                             "kept by the recipe", "kept after curation", "acceptance"],
        rows, [a["teacher"] for a in acc])}, {"curated": cur})


METRIC_NAMES = {"distinct_1": "distinct-1", "distinct_2": "distinct-2",
                "self_bleu": "self-BLEU (0–100)", "vendi": "Vendi score (MiniLM embeddings)"}
METRIC_READ = {"distinct_1": "unique words / words; higher = more varied",
               "distinct_2": "unique word pairs / word pairs; higher = more varied",
               "self_bleu": "each text vs the others; lower = more varied",
               "vendi": "effective number of distinct texts; higher = more varied"}


def diversity_view(d: ReportData) -> SimpleNamespace:
    div = d["diversity"] or {}
    rows = []
    for k, m in div.items():
        v = (Absent(f"not computed: {m['reason'] or ''}") if m["value"] is None
             else round(m["value"], 4))
        rows.append([METRIC_NAMES.get(k, k), v, m["n"], METRIC_READ.get(k, "")])
    return section({"diversity": Table("diversity-table", ["metric", "value", "texts",
                                                           "how to read it"], rows, list(div))},
                   {"grids": [grid_view(g) for g in d["grids"]]})


def grid_view(g: dict[str, Any]) -> SimpleNamespace:
    sid = g["stage"]
    share = g["covered"] / g["planned_cells"] if g["planned_cells"] else None
    shown = g["missing"][:MAX_MISSING_LISTED]
    return section({
        "summary": Table(f"grid-{sid}-summary", ["planned cells", "written by the recipe",
                                                 "covered", "coverage", "missing"],
                         [[g["planned_cells"], g["written"], g["covered"], pct(share),
                           len(g["missing"])]]),
        "dims": Table(f"grid-{sid}-dims", ["dimension", "values planned", "values covered",
                                           "values with no covered cell"],
                      [[x["dim"], x["planned"], x["covered"], ", ".join(x["uncovered"]) or None]
                       for x in g["dims"]], [x["dim"] for x in g["dims"]]),
        "missing": Table(f"grid-{sid}-missing", list(g["names"]) + ["why"],
                         [m["cell"] + [m["reason"]] for m in shown])},
        {"stage": g["stage"], "measured_on": g["measured_on"], "n_missing": len(g["missing"]),
         "more": len(g["missing"]) - len(shown)})


def training_view(d: ReportData) -> SimpleNamespace:
    tr, hist = d["train"], d["history"]
    tables, extra = {}, {"ran": tr is not None or bool(hist), "finished": tr is not None}
    if tr is not None:
        keys = [("student", "student"), ("teacher", "teacher"), ("loss", "loss"),
                ("steps", "steps"), ("epochs", "epochs"), ("train_s", "training seconds"),
                ("tokens_per_s", "tokens/s"), ("params", "student parameters"),
                ("device", "device"), ("precision", "precision")]
        rows = [[label, tr.get(k)] for k, label in keys if tr.get(k) is not None]
        rows += [[f"final {k}", v] for k, v in (tr.get("final") or {}).items()]
        tables["summary"] = Table("train-summary", ["", "value"], rows, [r[0] for r in rows])
    train = [h for h in hist if h.get("split") != "eval" and "loss" in h]
    evals = [h for h in hist if h.get("split") == "eval"]
    extra["steps"] = None
    if train:
        rows, keys = [], []
        for k in ("loss", "ce", "kl", "top1", "lr", "grad_norm", "tokens_per_s"):
            vals = [h[k] for h in train if isinstance(h.get(k), (int, float))]
            if vals:
                rows.append([k, vals[0], vals[-1], min(vals), max(vals)])
                keys.append(k)
        extra["steps"] = {"n": len(train), "first": train[0].get("step"),
                          "last": train[-1].get("step")}
        tables["log"] = Table("train-log", ["logged value", "first", "last", "min", "max"],
                              rows, keys)
    if evals:
        cols = [k for k in evals[0] if k not in ("split",)]
        tables["evals"] = Table("train-evals", cols, [[e.get(k) for k in cols] for e in evals])
    return section(tables, extra)


def eval_view(d: ReportData) -> SimpleNamespace:
    ev = d["eval"] or {}
    tk, sp = ev.get("tokens") or {}, ev.get("speed") or {}
    ps, task = ev.get("params") or {}, ev.get("task") or {}
    rows = [["held-out loss / token", tk.get("student_loss"), tk.get("teacher_loss")],
            ["perplexity", tk.get("student_ppl"), tk.get("teacher_ppl")],
            ["KL(teacher‖student) / token", tk.get("kl"), None],
            ["top-1 agreement", pct(tk.get("top1_agreement")), None]]
    wrong = {}
    if task:
        s, t = task.get("student") or {}, task.get("teacher") or {}
        n = task.get("n", task.get("rows"))
        rows += [["held-out prompts scored (n)", n, n],
                 ["task accuracy", pct(s.get("accuracy")), pct(t.get("accuracy"))],
                 ["correct / wrong / unverifiable",
                  f"{s.get('correct', 0)} / {s.get('wrong', 0)} / {s.get('unverifiable', 0)}",
                  f"{t.get('correct', 0)} / {t.get('wrong', 0)} / {t.get('unverifiable', 0)}"],
                 ["teacher quality retained", pct(task.get("retained")), None],
                 ["answer agreement", pct(task.get("agreement")), None]]
        wrong = {side: reasons_text(wr) for side in ("student", "teacher")
                 if (wr := (task.get(side) or {}).get("wrong_reasons"))}
    rows += [["generation tokens/s", (sp.get("student") or {}).get("gen_tokens_per_s"),
              (sp.get("teacher") or {}).get("gen_tokens_per_s")],
             ["speed-up", sp.get("speedup"), None],
             ["parameters", ps.get("student"), ps.get("teacher")],
             ["size ratio", ps.get("ratio"), None]]
    tables = {"eval": Table("eval-table", ["metric", "student", "teacher"], rows,
                            [r[0] for r in rows])}
    var = (ev.get("variants") or {}).get("rows") or []
    if var:
        tables["variants"] = Table(
            "variants-table", ["version", "format", "MiB on disk", "tokens/s", "accuracy",
                               "of teacher", "same verdict as teacher",
                               "same text as student"],
            [[v.get("name"), v.get("format"),
              None if v.get("bytes") is None else round(v["bytes"] / 2**20, 1),
              v.get("tokens_per_s"), pct(v.get("accuracy")), pct(v.get("retained")),
              pct(v.get("agreement")), pct(v.get("same_as_student"))] for v in var])
    return section(tables,
                   {"student": str(ev.get("student")), "teacher": str(ev.get("teacher")),
                    "examples": ev.get("examples", 0), "note": tk.get("note"),
                    "task": bool(task), "denominator": task.get("denominator"),
                    "wrong": wrong, "variants_n": var[0].get("n") if var else None,
                    "cascade": cascade_view(ev.get("cascade"), tables)})


def cascade_view(cas: dict[str, Any] | None, tables: dict[str, Table]) -> dict | None:
    """eval.json's ``cascade``: a dozen points of the dev curve (the chosen one marked)
    into ``tables["cascade"]``, and the test half's figures."""
    if not cas or not cas.get("dev"):
        return None
    dev, test = cas["dev"], cas.get("test")
    from synth.train.cascade import curve_sample

    shown = curve_sample(dev.get("points") or [])
    chosen = dev.get("chosen") or {}

    def thr(p: dict) -> str:
        t = p.get("threshold")
        mark = " (chosen)" if p == chosen else ""
        return (t if isinstance(t, str) else f"{t:.3f}") + mark

    tables["cascade"] = Table(
        "cascade-table", ["threshold", "teacher sees", "accuracy", "of teacher",
                          "cost / 1k requests (USD)"],
        [[thr(p), pct(p.get("teacher_share")), pct(p.get("accuracy")), pct(p.get("retained")),
          p.get("cost_per_1k_usd")] for p in shown])
    return {"signal": cas.get("signal"), "priced_as": cas.get("priced_as"),
            "dev_n": dev.get("n"), "target": pct(dev.get("target")),
            "threshold": chosen.get("threshold") if chosen else None,
            "test": None if not test else {
                "n": test.get("n"), "accuracy": pct(test.get("accuracy")),
                "retained": pct(test.get("retained")),
                "teacher_share": pct(test.get("teacher_share")),
                "teacher_accuracy": pct(test.get("teacher_accuracy")),
                "student_accuracy": pct(test.get("student_accuracy")),
                "cost": test.get("cost_per_1k_usd"),
                "teacher_only": test.get("teacher_only_per_1k_usd"),
                "saving": pct(test.get("saving"))}}


def samples_view(d: ReportData) -> SimpleNamespace:
    rows = d["samples"]
    kept = sum(r["status"] == "kept" for r in rows)
    return section({}, {
        "kept": kept, "rejected": len(rows) - kept,
        "by": list(dict.fromkeys(r["dropped_by"] for r in rows if r["status"] == "rejected")),
        "stages": list(dict.fromkeys(r["stage"] for r in rows if r["stage"])),
        "json": Markup(script_json(rows))})  # inert by construction: no <, > or &


# ------------------------------------------------------------------------ the page


def _escape(v: Any) -> Any:
    # the standard library's entities (&#x27;, &quot;), as the page always had, so a search
    # of the source for escaped text finds it; Markup (macros, inert JSON) passes through
    return v if isinstance(v, Markup) else Markup(html.escape(str(v)))


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """The page's Jinja2 environment: autoescaped, strict about undefined names."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(Path(__file__).parent)), autoescape=True,
        undefined=jinja2.StrictUndefined, finalize=_escape, trim_blocks=True,
        lstrip_blocks=True)
    env.filters.update(num=num, usd=usd, pct=pct)
    env.tests.update(absent=lambda v: isinstance(v, Absent),
                     strong=lambda v: isinstance(v, Strong))
    return env


def render_html(d: ReportData, plots: dict[str, Any] | None = None) -> str:
    """The page for :func:`collect_report`'s data; ``plots`` as
    :func:`~synth.pipeline.report.plots.all_plots` returns them (drawn here when ``None``)."""
    if plots is None:
        from synth.pipeline.report.plots import all_plots

        plots = all_plots(d)
    env = environment()
    script = env.loader.get_source(env, "rows.js")[0]  # type: ignore[union-attr]
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    csp = (f"default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
           f"script-src 'sha256-{digest}'; base-uri 'none'; form-action 'none'")
    return env.get_template("page.html.j2").render(
        d=d, csp=csp, script=Markup(script), plots=plots, headline=headline_view(d["headline"]),
        header=header_view(d), funnel=funnel_view(d), costs=costs_view(d),
        diversity=diversity_view(d), acceptance=acceptance_view(d),
        training=training_view(d), evaluation=eval_view(d), samples=samples_view(d))


def write_pipeline_report(run_dir: str | Path, *, encoder: str | None = "all-minilm-l6-v2",
                          seed: int = 0, sample_rows: int = SAMPLE_ROWS) -> Path:
    """Write ``run_dir/report.html`` (atomically) and return its path.

    ``encoder``: the sentence-embedding model for the Vendi score (``None``: not computed,
    and the page says so). ``seed`` fixes every sample (diversity, the row browser);
    ``sample_rows`` caps the kept and the rejected rows the browser holds."""
    from synth.io import write_atomic

    data = collect_report(run_dir, encoder=encoder, seed=seed, sample_rows=sample_rows)
    path = Path(run_dir) / "report.html"
    write_atomic(path, render_html(data))
    return path
