"""The curation report: one self-contained ``report.html`` (plots inlined) plus PNG copies.

Plots: the funnel (rows left after each step), drops per step and reason, a histogram of
every numeric score column the steps added, and duplicate-cluster sizes when a near-dedup
step ran. Tables carry the same numbers, so the page reads without the images too.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

import polars as pl

from synth.dataset.card import step_details

__all__ = ["write_report", "SCORE_SKIP"]

#: Numeric columns of trace rows that are not scores.
SCORE_SKIP = {"sample_index", "input_tokens", "cached_input_tokens", "output_tokens",
              "cost_usd", "latency_s", "cluster_id", "cluster_size"}


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return buf.getvalue()


def _plot_columns(kept: pl.DataFrame, rejected: pl.DataFrame) -> pl.DataFrame:
    """Kept and rejected rows stacked, only the columns a plot may use: the numeric ones
    (in either frame) and the cluster columns. Copying every text column of every row
    just to draw a few histograms would cost more than drawing them."""
    def wanted(df: pl.DataFrame) -> list[str]:
        return [c for c, dtype in df.schema.items()
                if c in ("cluster_id", "cluster_size")
                or (c not in SCORE_SKIP and not c.startswith("_") and dtype.is_numeric())]

    cols = set(wanted(kept)) | set(wanted(rejected))
    return pl.concat([kept.select([c for c in kept.columns if c in cols]),
                      rejected.select([c for c in rejected.columns if c in cols])],
                     how="diagonal_relaxed")


def _plots(summary: dict[str, Any], kept: pl.DataFrame,
           rejected: pl.DataFrame) -> list[tuple[str, str, bytes]]:
    # the object API with the Agg renderer: no pyplot (its import, global figure registry
    # and backend switch); the pictures are the same
    from matplotlib.figure import Figure

    out = []
    steps = summary["steps"]
    fig = Figure(figsize=(7, 0.45 * len(steps) + 1.2))
    ax = fig.subplots()
    names = ["input"] + [s["step"] for s in steps]
    left = [summary["input_rows"]] + [s["kept"] for s in steps]
    ax.barh(names[::-1], left[::-1], color="#4477aa")
    for y, v in enumerate(left[::-1]):
        ax.text(v, y, f" {v:,}", va="center", fontsize=8)
    ax.set_xlabel("rows left")
    ax.set_title("Curation funnel")
    out.append(("funnel", "Rows left after each step", _png(fig)))

    both = _plot_columns(kept, rejected)
    for col, dtype in both.schema.items():
        if col in SCORE_SKIP or not dtype.is_numeric() or col.startswith("_"):
            continue
        values = both[col].drop_nulls()
        if values.len() == 0:
            continue
        fig = Figure(figsize=(6, 3))
        ax = fig.subplots()
        ax.hist(values.to_numpy(), bins=40, color="#228833")
        ax.set_title(f"{col} (all rows)")
        ax.set_ylabel("rows")
        out.append((f"hist_{col}", f"Distribution of {col}", _png(fig)))

    if "cluster_size" in both.columns:
        sizes = both.filter(pl.col("cluster_size") > 1).group_by("cluster_id").agg(
            pl.col("cluster_size").first())["cluster_size"]
        if sizes.len():
            fig = Figure(figsize=(6, 3))
            ax = fig.subplots()
            ax.hist(sizes.to_numpy(), bins=range(2, int(sizes.max()) + 2), color="#aa3377")
            ax.set_title("Near-duplicate cluster sizes")
            ax.set_xlabel("documents in cluster")
            out.append(("clusters", "Near-duplicate cluster sizes", _png(fig)))
    return out


def write_report(out: Path, summary: dict[str, Any], kept: pl.DataFrame,
                 rejected: pl.DataFrame) -> Path:
    """Write ``out/report.html`` and ``out/plots/*.png``; returns the HTML path."""
    from synth.io import write_atomic

    plots = _plots(summary, kept, rejected)
    (out / "plots").mkdir(parents=True, exist_ok=True)
    for name, _, data in plots:
        write_atomic(out / "plots" / f"{name}.png", data)
    esc = html.escape
    rows = "".join(
        f"<tr><td>{esc(s['step'])}</td><td>{s['in']:,}</td><td>{s['dropped']:,}</td>"
        f"<td>{s['kept']:,}</td><td>{esc(', '.join(f'{k}: {v:,}' for k, v in s['reasons'].items()))}"
        f"</td><td>{s['seconds']:.3f}</td><td>{esc(step_details(s.get('info')))}</td></tr>"
        for s in summary["steps"])
    examples = ""
    if rejected.height:
        sample = rejected.group_by("dropped_by", maintain_order=True).head(3)
        examples = "".join(
            f"<tr><td>{esc(str(r['dropped_by']))}</td><td>{esc(str(r['id']))}</td>"
            f"<td>{esc(str(r['drop_reason']))}</td>"
            f"<td>{esc((r.get('response') or '')[:200])}</td></tr>"
            for r in sample.to_dicts())
    images = "".join(
        f"<figure><img alt='{esc(title)}' src='data:image/png;base64,"
        f"{base64.b64encode(data).decode()}'><figcaption>{esc(title)}</figcaption></figure>"
        for _, title, data in plots)
    warnings = ""
    if summary.get("warnings"):
        items = "".join(f"<li>{esc(w)}</li>" for w in summary["warnings"])
        warnings = (f"<div role='alert' style='border:2px solid #c60;background:#fff4e5;"
                    f"padding:0.5em 1em'><h2>Warnings</h2><ul>{items}</ul></div>")
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>synth curation: {esc(summary['filter_set'])}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;color:#222}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:4px 8px;
text-align:left;font-size:14px}}figure{{display:inline-block;margin:0.5em}}</style></head><body>
<h1>Curation report — filter set <code>{esc(summary['filter_set'])}</code></h1>
<p>{summary['input_rows']:,} rows in, <b>{summary['kept']:,} kept</b>,
{summary['rejected']:,} rejected (every rejected row is in <code>rejects.parquet</code>
with <code>dropped_by</code> and <code>drop_reason</code>). {summary['wall_s']:.2f} s.</p>
{warnings}<h2>Steps</h2><table><tr><th>step</th><th>in</th><th>dropped</th><th>kept</th>
<th>reasons</th><th>seconds</th><th>details</th></tr>{rows}</table>
<h2>Plots</h2>{images}
<h2>Examples of rejected rows</h2><table><tr><th>step</th><th>id</th><th>reason</th>
<th>response (first 200 characters)</th></tr>{examples}</table>
</body></html>"""
    path = out / "report.html"
    write_atomic(path, page.encode())
    return path
