"""The loss-curve PNG of a training run (matplotlib, no display needed)."""

from __future__ import annotations

import io
from typing import Any

__all__ = ["loss_plot"]


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
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return buf.getvalue()
