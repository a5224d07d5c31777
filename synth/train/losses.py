"""Distillation losses: small functions over logits, and one chunked driver that never builds
full-vocabulary logits for a whole batch.

Notation: ``N`` target positions (the assistant tokens of a batch, flattened), ``V`` the
vocabulary, ``H`` the hidden size, ``K`` the stored top-K of an offline teacher. Every
per-position function returns a ``(N,)`` tensor; the driver sums and the trainer divides by
the number of target tokens of the whole accumulated batch (so gradient accumulation gives
the update of one big batch).

Divergences, with ``p`` the teacher's and ``q`` the student's distribution at temperature τ:

* ``forward``: KL(p ‖ q), mass-covering (Hinton; what most KD uses);
* ``reverse``: KL(q ‖ p), mode-seeking (MiniLLM);
* ``jsd``: the generalised Jensen-Shannon divergence of GKD with mixture m = βp + (1−β)q,
  β·KL(p ‖ m) + (1−β)·KL(q ‖ m); as in GKD and TRL, β = 0 means forward KL and β = 1
  reverse KL (the JSD itself vanishes at both ends).

The KD term is multiplied by τ² (Hinton: keeps its gradient scale comparable to the CE term
as τ changes). What the log calls ``kl`` is the divergence itself, before that factor: it is
0 exactly when the student matches the teacher (a soft cross-entropy, which never reaches 0,
is never logged as KL). The loss temperature τ is not the sampling temperature the teacher's
answers were generated with; they are separate settings.

Offline (stored top-K logprobs): the teacher is known only on K tokens per position. Two
ways to treat the rest, chosen with ``tail``:

* ``tail=True`` (default): K + 1 buckets, the K stored tokens plus one bucket holding the
  rest of the mass (teacher: 1 − Σ exp(top-K logprobs); student: its mass outside those
  K tokens). A student that puts too much or too little mass outside the teacher's top K is
  penalised. Needs τ = 1 (the teacher's tail cannot be re-tempered without its logits).
* ``tail=False``: renormalise both sides over the K stored tokens and compare there only.
  The student's mass outside the top K is not penalised at all; works at any τ.

Why a hand-written chunked driver: Liger and torchtune do the same (fused linear + loss in
chunks), but neither covers stored top-K targets or the three divergences together behind one
function, and Liger's kernels need Triton (no CPU).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = [
    "DIVERGENCES",
    "divergence",
    "sparse_divergence",
    "cross_entropy",
    "HeadLoss",
    "chunked_head_loss",
]

DIVERGENCES = ("forward", "reverse", "jsd")

#: Positions per chunk. 1024 x 49,152 fp32 logits = 200 MB per live tensor; a handful are
#: alive at once (logits, softmax, their gradient), so a chunk stays well under 1 GB.
DEFAULT_CHUNK = 1024

#: A log-probability whose exp is exactly 0 in fp32, for padded top-K slots.
_LOG0 = -1e4


def _kl(logp: torch.Tensor, logq: torch.Tensor) -> torch.Tensor:
    """KL(p ‖ q) per row from log-probabilities. ``(N, V), (N, V) → (N,)``; rows where p is
    0 contribute 0 (``xlogy`` semantics), so no NaN from ``0 · log 0``."""
    p = logp.exp()
    live = p > 0
    # masked before subtracting: where p = 0 a -inf - -inf would be NaN, and a NaN in the
    # branch torch.where discards still poisons the gradient (0 * NaN)
    return (p * (torch.where(live, logp, 0.0) - torch.where(live, logq, 0.0))).sum(-1)


def divergence(student_logits: torch.Tensor, teacher_logits: torch.Tensor, *,
               kind: str = "forward", beta: float = 0.5,
               temperature: float = 1.0) -> torch.Tensor:
    """Per-position divergence between teacher and student at ``temperature``.

    ``student_logits``, ``teacher_logits``: ``(N, V)`` (any float dtype; computed in fp32).
    Returns ``(N,)``, not multiplied by τ². ``kind`` is ``forward`` | ``reverse`` | ``jsd``
    (``beta`` only matters for ``jsd``).
    """
    logq = F.log_softmax(student_logits.float() / temperature, dim=-1)
    logp = F.log_softmax(teacher_logits.float() / temperature, dim=-1)
    return _from_logprobs(logq, logp, kind=kind, beta=beta)


def _from_logprobs(logq: torch.Tensor, logp: torch.Tensor, *, kind: str,
                   beta: float) -> torch.Tensor:
    """``(N, B)`` student and teacher log-probabilities over the same B outcomes → ``(N,)``."""
    if kind == "forward" or (kind == "jsd" and beta == 0):
        return _kl(logp, logq)
    if kind == "reverse" or (kind == "jsd" and beta == 1):
        return _kl(logq, logp)
    if kind != "jsd":
        raise ValueError(f"kind must be one of {', '.join(DIVERGENCES)}, not {kind!r}")
    # log m = log(β p + (1−β) q), computed in log space so small probabilities survive
    logm = torch.logsumexp(torch.stack([logp + math.log(beta), logq + math.log(1 - beta)]), 0)
    return beta * _kl(logp, logm) + (1 - beta) * _kl(logq, logm)


def sparse_divergence(student_logits: torch.Tensor, top_ids: torch.Tensor,
                      top_logprobs: torch.Tensor, *, kind: str = "forward", beta: float = 0.5,
                      temperature: float = 1.0, tail: bool = True) -> torch.Tensor:
    """Per-position divergence against a teacher known only by its stored top-K.

    ``student_logits``: ``(N, V)``; ``top_ids``: ``(N, K)`` int64 token ids (``-1`` pads a
    position that has fewer than K alternatives); ``top_logprobs``: ``(N, K)`` the teacher's
    log-probabilities at τ = 1 (full-vocabulary ``log_softmax``). Returns ``(N,)``. See the
    module docstring for ``tail``.
    """
    if tail and temperature != 1:
        raise ValueError("the tail bucket needs temperature 1 (the teacher's mass outside "
                         "its top K cannot be re-tempered); use tail=False")
    valid = top_ids >= 0
    ids = top_ids.clamp(min=0)
    # padded slots get a finite "log 0" (exp underflows to exactly 0 in fp32): -inf there
    # would make logsumexp's and log_softmax's gradients NaN even though p = q = 0
    t_lp = top_logprobs.float().masked_fill(~valid, _LOG0)
    s_all = F.log_softmax(student_logits.float() / temperature, dim=-1)
    s_lp = s_all.gather(1, ids).masked_fill(~valid, _LOG0)
    if tail:
        # teacher tail: log(1 − Σ p_k); student tail: log(1 − Σ q_k). log1p(−x) is exact
        # near 0; the clamp keeps a rounding excess (Σ slightly > 1) from making a NaN.
        t_tail = torch.log1p(-t_lp.exp().sum(-1).clamp(max=1 - 1e-6)).unsqueeze(-1)
        s_tail = torch.log1p(-s_lp.exp().sum(-1).clamp(max=1 - 1e-6)).unsqueeze(-1)
        logp, logq = torch.cat([t_lp, t_tail], -1), torch.cat([s_lp, s_tail], -1)
    else:
        logp = torch.log_softmax(t_lp / temperature, -1)
        logq = torch.log_softmax(s_lp, -1)  # s_lp is already at τ; renormalise over K
    return _from_logprobs(logq, logp, kind=kind, beta=beta)  # padded slots: p = q = 0


def cross_entropy(student_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Next-token cross-entropy per position. ``(N, V), (N,) int64 → (N,)`` (fp32)."""
    return F.cross_entropy(student_logits.float(), labels, reduction="none")


# ------------------------------------------------------------------------ the chunked driver

@dataclass(frozen=True, slots=True)
class HeadLoss:
    """What to compute at each target position.

    ``alpha`` weighs CE against KD: ``alpha · CE + (1 − alpha) · τ² · D``; ``alpha = 1`` is
    plain SFT (no teacher needed), ``alpha = 0`` pure distillation. ``teacher`` is ``online``
    (teacher hidden states and head given), ``offline`` (stored top-K) or ``None``.
    """

    alpha: float = 1.0
    kind: str = "forward"
    beta: float = 0.5
    temperature: float = 1.0
    tail: bool = True
    teacher: str | None = None

    def __post_init__(self):
        if not 0 <= self.alpha <= 1:
            raise ValueError("alpha must be in [0, 1]")
        if self.kind not in DIVERGENCES:
            raise ValueError(f"kind must be one of {', '.join(DIVERGENCES)}")
        if not 0 <= self.beta <= 1:
            raise ValueError("beta must be in [0, 1]")
        if self.temperature <= 0:
            raise ValueError("temperature must be > 0")
        if self.alpha < 1 and self.teacher not in ("online", "offline"):
            raise ValueError("a KD term (alpha < 1) needs an online or offline teacher")


def head_logits(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
            softcap: float | None, vocab: int | None) -> torch.Tensor:
    """``(n, H) @ (V, H)ᵀ → (n, V)`` in fp32, with the model's bias and soft-cap, for the
    first ``vocab`` rows only (the rows past the tokenizer are padding)."""
    if vocab is not None:
        weight = weight[:vocab]
        bias = None if bias is None else bias[:vocab]
    out = F.linear(hidden, weight, bias).float()
    if softcap:
        out = torch.tanh(out / softcap) * softcap
    return out


class _ChunkedHeadLoss(torch.autograd.Function):
    """Loss through the output head, chunk by chunk, with the gradients computed during the
    forward pass (the Liger approach): only one chunk's logits ever exist, so memory is
    bounded by ``chunk x V`` whatever the batch, instead of ``N x V`` logits saved for
    backward. ``chunk_loss(logits, start, end)`` returns the chunk's summed loss and its
    gradient with respect to the raw (pre-soft-cap) logits; the head's gradients follow by
    two matmuls."""

    @staticmethod
    def forward(ctx, hidden, weight, bias, chunk_loss, chunk, n, vocab):
        need_h, need_w = hidden.requires_grad, weight.requires_grad
        need_b = bias is not None and bias.requires_grad
        w = weight if vocab is None else weight[:vocab]
        b = None if bias is None else (bias if vocab is None else bias[:vocab])
        grad_h = torch.empty_like(hidden) if need_h else None
        grad_w = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) \
            if need_w else None
        grad_b = torch.zeros(bias.shape, dtype=torch.float32, device=bias.device) \
            if need_b else None
        rows = w.shape[0]
        total = hidden.new_zeros((), dtype=torch.float32)
        for start in range(0, n, chunk):
            end = min(n, start + chunk)
            h = hidden[start:end]
            raw = F.linear(h, w, b).float()
            loss, g = chunk_loss(raw, start, end)
            del raw
            total += loss
            if need_h:
                grad_h[start:end] = (g.to(w.dtype) @ w).to(hidden.dtype)
            if need_w:
                grad_w[:rows].addmm_(g.t(), h.float())
            if need_b:
                grad_b[:rows] += g.sum(0)
        ctx.save_for_backward(*(x for x in (grad_h, grad_w, grad_b) if x is not None))
        ctx.needs = (need_h, need_w, need_b)
        ctx.dtypes = (hidden.dtype, weight.dtype, None if bias is None else bias.dtype)
        return total

    @staticmethod
    def backward(ctx, grad_out):
        saved = list(ctx.saved_tensors)
        out = []
        for need, dtype in zip(ctx.needs, ctx.dtypes):
            out.append((saved.pop(0) * grad_out).to(dtype) if need else None)
        return out[0], out[1], out[2], None, None, None, None


def _ce_and_forward_kl(s: torch.Tensor, labels: torch.Tensor, t: torch.Tensor | None, *,
                       alpha: float, tau: float, stats: dict[str, float]
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """Closed-form loss and gradient for ``alpha · CE + (1 − alpha) · τ² · KL(p ‖ q)``.

    ``s``: ``(n, V)`` student logits, ``t``: teacher logits or None (CE only). The gradient
    with respect to ``s`` is ``alpha · (softmax(s) − onehot) + (1 − alpha) · τ · (q_τ − p_τ)``;
    written out, it needs four ``(n, V)`` buffers where autograd keeps every intermediate.
    """
    total = s.new_zeros(())
    grad = None
    if alpha > 0:
        lse = torch.logsumexp(s, -1, keepdim=True)
        ce = lse.squeeze(-1) - s.gather(1, labels[:, None]).squeeze(-1)
        stats["ce"] += float(ce.sum())
        total = total + alpha * ce.sum()
        grad = (s - lse).exp_()
        grad[torch.arange(len(labels), device=s.device), labels] -= 1.0
        grad.mul_(alpha)
    if alpha < 1:
        stats["top1"] += float((s.argmax(-1) == t.argmax(-1)).sum())
        lq = torch.log_softmax(s / tau if tau != 1 else s, -1)
        lp = torch.log_softmax(t / tau if tau != 1 else t, -1)
        p = lp.exp()
        kl = lp.sub_(lq).mul_(p).sum(-1)  # Σ p (log p − log q), in lp's buffer
        del lp
        stats["kl"] += float(kl.sum())
        total = total + (1 - alpha) * tau * tau * kl.sum()
        g = lq.exp_().sub_(p)  # q − p
        del p
        grad = g.mul_((1 - alpha) * tau) if grad is None else grad.add_(g, alpha=(1 - alpha) * tau)
    return total, grad


def chunked_head_loss(hidden: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor, *,
                      spec: HeadLoss, bias: torch.Tensor | None = None,
                      softcap: float | None = None, vocab: int | None = None,
                      teacher_hidden: torch.Tensor | None = None,
                      teacher_weight: torch.Tensor | None = None,
                      teacher_bias: torch.Tensor | None = None,
                      teacher_softcap: float | None = None,
                      top_ids: torch.Tensor | None = None,
                      top_logprobs: torch.Tensor | None = None,
                      chunk: int = DEFAULT_CHUNK) -> tuple[torch.Tensor, dict[str, float]]:
    """Summed loss over N target positions, through the student's output head in chunks.

    ``hidden``: ``(N, H)`` the student's final hidden states at the positions that predict a
    target; ``weight``: ``(V, H)`` its output head (``bias`` ``(V,)``); ``labels``: ``(N,)``
    the target token ids. Online KD adds ``teacher_hidden`` ``(N, Ht)`` and
    ``teacher_weight`` ``(Vt, Ht)`` (no gradient); offline KD ``top_ids`` / ``top_logprobs``
    ``(N, K)``. ``vocab`` cuts both heads to a shared vocabulary size (padding rows differ).

    Returns ``(loss_sum, stats)``: ``loss_sum`` is a 0-d tensor with a gradient (divide it by
    the accumulated batch's token count), ``stats`` sums over the N positions: ``ce``,
    ``kl`` (the divergence, τ² not applied), ``top1`` (positions where student and teacher
    argmax agree; online only), ``tokens``.
    """
    n = hidden.shape[0]
    stats = {"ce": 0.0, "kl": 0.0, "top1": 0.0, "tokens": float(n)}
    if n == 0:
        zero = hidden.sum() * 0.0 + weight.sum() * 0.0  # keeps the graph for backward
        return zero, stats
    a, tau = spec.alpha, spec.temperature
    if spec.alpha < 1 and spec.teacher == "online" and teacher_hidden is None:
        raise ValueError("online KD needs teacher_hidden and teacher_weight")
    if spec.alpha < 1 and spec.teacher == "offline" and top_ids is None:
        raise ValueError("offline KD needs top_ids and top_logprobs")

    fast = not softcap and (a == 1 or (spec.teacher == "online" and spec.kind == "forward")
                            or (spec.kind == "jsd" and spec.beta == 0 and
                                spec.teacher == "online"))

    def teacher_logits(start: int, end: int) -> torch.Tensor:
        with torch.no_grad():
            return head_logits(teacher_hidden[start:end], teacher_weight, teacher_bias,
                           teacher_softcap, vocab)

    def generic(raw: torch.Tensor, start: int, end: int) -> torch.Tensor:
        s = torch.tanh(raw / softcap) * softcap if softcap else raw
        loss = s.new_zeros(())
        if a > 0:
            ce = cross_entropy(s, labels[start:end])
            stats["ce"] += float(ce.detach().sum())
            loss = loss + a * ce.sum()
        if a < 1:
            if spec.teacher == "online":
                t = teacher_logits(start, end)
                d = divergence(s, t, kind=spec.kind, beta=spec.beta, temperature=tau)
                stats["top1"] += float((s.detach().argmax(-1) == t.argmax(-1)).sum())
            else:
                d = sparse_divergence(s, top_ids[start:end], top_logprobs[start:end],
                                      kind=spec.kind, beta=spec.beta, temperature=tau,
                                      tail=spec.tail)
                stats["top1"] += float((s.detach().argmax(-1) == top_ids[start:end, 0]).sum())
            stats["kl"] += float(d.detach().sum())
            loss = loss + (1 - a) * tau * tau * d.sum()
        return loss

    def chunk_loss(raw: torch.Tensor, start: int, end: int):
        if fast:
            t = teacher_logits(start, end) if a < 1 else None
            return _ce_and_forward_kl(raw, labels[start:end], t, alpha=a, tau=tau, stats=stats)
        with torch.enable_grad():
            x = raw.requires_grad_(True)
            loss = generic(x, start, end)
            (g,) = torch.autograd.grad(loss, x)
        return loss.detach(), g

    chunk = max(1, int(chunk))
    if not torch.is_grad_enabled():
        # evaluation: the loss alone, chunk by chunk. The autograd function below would
        # still build the head's (V, H) gradient in its forward pass, because the weight
        # itself requires grad whatever the grad mode
        w = weight if vocab is None else weight[:vocab]
        b = None if bias is None else (bias if vocab is None else bias[:vocab])
        total = hidden.new_zeros((), dtype=torch.float32)
        for start in range(0, n, chunk):
            end = min(n, start + chunk)
            total += generic(F.linear(hidden[start:end], w, b).float(), start, end)
        return total, stats
    if not fast:
        # autograd keeps every intermediate of the divergence (~15 chunk x V buffers for the
        # JSD, against the closed form's ~6): quarter chunks hold the same memory
        chunk = max(1, chunk // 4)
    total = _ChunkedHeadLoss.apply(hidden, weight, bias, chunk_loss, chunk, n, vocab)
    return total, stats
