"""The PNGs of training and evaluation: the loss curve of a run, the cascade curve and the
size/accuracy trade of the student's versions of an eval (matplotlib, no display needed)."""

from __future__ import annotations

import io
from typing import Any

__all__ = ["loss_plot", "cascade_plot", "variants_plot"]


def loss_plot(history: list[dict[str, Any]]) -> bytes | None:
    """Training loss (and CE, KL) per step, held-out loss where logged; ``None`` when the
    log is empty. One figure, two axes when a KL term is present."""
    train = [h for h in history if h.get("split") != "eval" and "loss" in h]
    evals = [h for h in history if h.get("split") == "eval"]
    if not train:
        return None
    from matplotlib.figure import Figure

    has_kl = any(h.get("kl") is not None for h in train)
    fig = Figure(figsize=(9 if has_kl else 6, 3.6))
    axes = fig.subplots(1, 2 if has_kl else 1, squeeze=False)[0]
    steps = [h["step"] for h in train]
    ax = axes[0]
    ax.plot(steps, [h["loss"] for h in train], label="train loss", lw=1.2)
    if any("ce" in h for h in train) and has_kl:
        ax.plot(steps, [h.get("ce") for h in train], label="train CE", lw=0.9, alpha=0.7)
    if evals:
        ax.plot([h["step"] for h in evals], [h["eval_loss"] for h in evals], "o-",
                label="held-out loss", ms=3)
    ax.set_xlabel("step")
    ax.set_ylabel("loss per target token")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if has_kl:
        ax = axes[1]
        ax.plot(steps, [h.get("kl") for h in train], label="train KL (true divergence)",
                color="tab:red", lw=1.2)
        if any("eval_kl" in h for h in evals):
            ax.plot([h["step"] for h in evals], [h.get("eval_kl") for h in evals], "o-",
                    color="tab:purple", label="held-out KL", ms=3)
        ax.set_xlabel("step")
        ax.set_ylabel("KL to the teacher per token")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _png(fig)


def cascade_plot(cascade: dict[str, Any]) -> bytes:
    """``synth eval --cascade``'s curve on the dev half: accuracy against the share of
    requests the teacher still answers, the target line and the chosen threshold, and the
    test half's point at that threshold."""
    from matplotlib.figure import Figure

    dev, test = cascade["dev"], cascade["test"]
    pts = dev["points"]
    fig = Figure(figsize=(6, 3.8))
    ax = fig.subplots()
    ax.plot([100 * p["teacher_share"] for p in pts], [100 * p["accuracy"] for p in pts],
            "o-", ms=3, lw=1.2, label=f"cascade, dev half (n = {dev['n']})")
    if dev.get("teacher_accuracy") is not None:  # None: no prompt in the dev half
        ax.axhline(100 * dev["target"] * dev["teacher_accuracy"], color="tab:red", lw=0.9,
                   ls="--", label=f"{dev['target']:.0%} of the teacher (dev)")
    ch = dev.get("chosen")
    if ch is not None:
        ax.plot([100 * ch["teacher_share"]], [100 * ch["accuracy"]], "s", ms=8,
                mfc="none", color="tab:green", label=f"chosen threshold {ch['threshold']}")
    if test is not None:
        ax.plot([100 * test["teacher_share"]], [100 * test["accuracy"]], "D", ms=6,
                color="tab:purple", label=f"its test half (n = {test['n']})")
    ax.set_xlabel("requests the teacher answers (%)")
    ax.set_ylabel("accuracy (%)")
    ax.set_xlim(-3, 103)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _png(fig)


def variants_plot(rows: list[dict[str, Any]], teacher_accuracy: float | None) -> bytes:
    """``synth eval --compare``: each version of the student as a point, size on disk
    against held-out accuracy, with the teacher's accuracy as a line."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 3.8))
    ax = fig.subplots()
    pts = [r for r in rows if r.get("bytes") and r.get("accuracy") is not None]
    for i, r in enumerate(pts):
        x, y = r["bytes"] / 2**20, 100 * r["accuracy"]
        ax.plot([x], [y], "o", ms=6, label=f"{r['name']} ({r.get('format') or '?'})")
        ax.annotate(r.get("format") or "", (x, y), fontsize=8,  # alternate: close sizes
                    xytext=(4, 6 if i % 2 else -12), textcoords="offset points")
    if teacher_accuracy is not None:
        ax.axhline(100 * teacher_accuracy, color="tab:red", lw=0.9, ls="--",
                   label="teacher")
    ax.legend(fontsize=7, loc="lower right")
    n = rows[0]["n"] if rows else 0
    ax.set_xlabel("weights on disk (MiB)")
    ax.set_ylabel(f"held-out accuracy (%, n = {n})")
    if pts:
        ax.set_xlim(0, 1.25 * max(r["bytes"] for r in pts) / 2**20)
    ax.grid(alpha=0.3)
    return _png(fig)


def _png(fig: Any) -> bytes:
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return buf.getvalue()
