"""The report's plots: each a function of figures from :mod:`synth.pipeline.report.figures`
that returns a base64 PNG for an inline ``data:`` image, or ``None`` when there is nothing to
draw. Only this module draws: matplotlib's object API (no pyplot state), imported inside each
function so that reading a run's figures never loads it."""

from __future__ import annotations

import base64
import io
from typing import Any

__all__ = ["funnel_plot", "cost_plot", "acceptance_plot", "grid_plot", "training_plot",
           "all_plots"]


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode()


def funnel_plot(funnel: list[dict[str, Any]]) -> str | None:
    """Rows left after each step (a split as its two sides)."""
    if not funnel:
        return None
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    first = [f for f in funnel if f["kind"] == "total"]
    bars = [("generated (all stages)", first[0]["in"] if first else funnel[0]["in"])]
    for f in funnel:
        if f["kind"] in ("total", "curate", "train"):
            bars.append((f["step"], f["out"]))
        elif f["kind"] == "split":
            bars += [(f"{f['step']}: train side", f["out"]),
                     (f"{f['step']}: held out", f["heldout"])]
    fig = Figure(figsize=(7.5, 0.38 * len(bars) + 1.1))
    ax = fig.subplots()
    labels = [b[0] for b in bars][::-1]
    values = [b[1] for b in bars][::-1]
    ax.barh(labels, values, color="#4477aa")
    for y, v in enumerate(values):
        ax.text(v, y, f" {v:,}", va="center", fontsize=8)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("rows")
    ax.set_title("Rows left after each step")
    ax.margins(x=0.15)
    return _png(fig)


def cost_plot(costs: dict[str, Any]) -> str | None:
    """Estimated and spent dollars per stage and teacher."""
    rows = [r for r in costs["rows"] if r["cost"] is not None or r["est_cost"] is not None]
    if not rows:
        return None
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 0.5 * len(rows) + 1.2))
    ax = fig.subplots()
    ys = range(len(rows))
    ax.barh([y + 0.2 for y in ys], [r["est_cost"] or 0 for r in rows], height=0.4,
            color="#bbbbbb", label="estimated")
    ax.barh([y - 0.2 for y in ys], [r["cost"] or 0 for r in rows], height=0.4,
            color="#ee6677", label="spent")
    ax.set_yticks(list(ys), [f"{r['stage']}\n{r['teacher']}" for r in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("US dollars")
    ax.set_title("Cost per stage and teacher")
    ax.legend(fontsize=8)
    return _png(fig)


def acceptance_plot(acc: list[dict[str, Any]]) -> str | None:
    """Share of generated rows kept, per teacher."""
    rows = [a for a in acc if a["rate"] is not None]
    if not rows:
        return None
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 0.4 * len(rows) + 1.1))
    ax = fig.subplots()
    ax.barh([a["teacher"] for a in rows][::-1], [a["rate"] * 100 for a in rows][::-1],
            color="#228833")
    for y, a in enumerate(rows[::-1]):
        ax.text(a["rate"] * 100, y, f" {a['rate']:.1%}", va="center", fontsize=8)
    # past 100% only when the files disagree (more kept than generated): still drawn whole
    ax.set_xlim(0, 1.15 * max(100.0, max(a["rate"] * 100 for a in rows)))
    ax.set_xlabel("% of generated rows kept")
    ax.set_title("Acceptance per teacher")
    return _png(fig)


def grid_plot(g: dict[str, Any]) -> str | None:
    """Share of a textbook grid's planned cells covered, per value of each dimension."""
    dims = [d for d in g["dims"] if d["dim"] != "subtopic" and d["cells"]]
    if not dims:
        return None
    from matplotlib.figure import Figure

    tallest = max(len(d["cells"]) for d in dims)
    fig = Figure(figsize=(3.2 * len(dims), 0.3 * tallest + 1.4))
    axes = fig.subplots(1, len(dims), squeeze=False)[0]
    for ax, d in zip(axes, dims):
        names = list(d["cells"])[::-1]
        share = [100 * d["cells"][v][1] / d["cells"][v][0] for v in names]
        ax.barh([n[:28] for n in names], share, color="#66ccee")
        ax.set_xlim(0, 100)
        ax.set_title(d["dim"], fontsize=9)
        ax.tick_params(labelsize=7)
        ax.set_xlabel("% of cells covered", fontsize=8)
    fig.suptitle(f"Grid coverage of stage {g['stage']}", fontsize=10)
    fig.tight_layout()
    return _png(fig)


def training_plot(history: list[dict[str, Any]]) -> str | None:
    """Training loss (and KL) per step: the student card's own plot."""
    from synth.train.plot import loss_plot

    png = loss_plot(history)
    return base64.b64encode(png).decode() if png else None


def eval_plots(ev: dict[str, Any] | None) -> dict[str, str | None]:
    """eval.json's pictures, drawn again from its figures (the eval folder's PNGs are
    the same drawings): the quantised versions' size/accuracy and the cascade curve."""
    from synth.train.plot import cascade_plot, variants_plot

    ev = ev or {}
    var, cas = ev.get("variants") or {}, ev.get("cascade") or {}
    t_acc = ((ev.get("task") or {}).get("teacher") or {}).get("accuracy")
    return {
        "variants": base64.b64encode(variants_plot(var["rows"], t_acc)).decode()
        if var.get("rows") else None,
        "cascade": base64.b64encode(cascade_plot(cas)).decode() if cas.get("dev") else None}


def all_plots(d: dict[str, Any]) -> dict[str, Any]:
    """Every plot of a :func:`~synth.pipeline.report.figures.collect_report` result, by
    section; ``grids`` is one per textbook grid, in ``d["grids"]`` order."""
    return {"funnel": funnel_plot(d["funnel"]), "costs": cost_plot(d["costs"]),
            "acceptance": acceptance_plot(d["acceptance"]),
            "grids": [grid_plot(g) for g in d["grids"]],
            "training": training_plot(d["history"]), **eval_plots(d.get("eval"))}
