"""synth.train.losses against independent reference computations on random tensors.

The references below use torch.nn.functional.kl_div / cross_entropy and plain probabilities
with torch.log, never the module's helpers, and the chunked driver is compared with an
unchunked computation through ordinary autograd (loss value and every gradient).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from synth.train.data import Example, collate
from synth.train.losses import (
    HeadLoss,
    chunked_head_loss,
    cross_entropy,
    divergence,
    sparse_divergence,
)

ATOL, RTOL = 1e-5, 1e-4


def close(a, b, atol=ATOL, rtol=RTOL):
    a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    assert torch.allclose(a, b, atol=atol, rtol=rtol), (a, b, (a - b).abs().max())


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def logits(n=6, v=11, scale=2.0, seed=0):
    return torch.randn(n, v, generator=gen(seed)) * scale


# ------------------------------------------------------------------------------ references

def ref_forward(s, t, tau=1.0):
    """KL(p_teacher || q_student) at temperature tau, via F.kl_div."""
    return F.kl_div(F.log_softmax(s / tau, -1), F.log_softmax(t / tau, -1), log_target=True,
                    reduction="none").sum(-1)


def ref_reverse(s, t, tau=1.0):
    return F.kl_div(F.log_softmax(t / tau, -1), F.log_softmax(s / tau, -1), log_target=True,
                    reduction="none").sum(-1)


def kl_probs(p, q):
    """KL(p || q) per row from probabilities, written with torch.log; 0 · log 0 = 0."""
    safe_p = torch.where(p > 0, p, torch.ones_like(p))
    safe_q = torch.where(p > 0, q, torch.ones_like(q))
    return torch.where(p > 0, p * (torch.log(safe_p) - torch.log(safe_q)), 0.0).sum(-1)


def jsd_probs(p, q, beta):
    m = beta * p + (1 - beta) * q
    return beta * kl_probs(p, m) + (1 - beta) * kl_probs(q, m)


def div_probs(p, q, kind, beta):
    """Divergence between teacher probabilities p and student probabilities q."""
    if kind == "forward":
        return kl_probs(p, q)
    if kind == "reverse":
        return kl_probs(q, p)
    return jsd_probs(p, q, beta)


def ref_jsd(s, t, beta, tau=1.0):
    return jsd_probs(torch.softmax(t / tau, -1), torch.softmax(s / tau, -1), beta)


def ref_sparse(s, top_ids, top_lp, *, kind="forward", beta=0.5, tau=1.0, tail=True):
    """Stored top-K divergence with probabilities: K (+1 tail) buckets."""
    q_all = torch.softmax(s.double() / tau, -1)
    valid = top_ids >= 0
    q = torch.where(valid, q_all.gather(1, top_ids.clamp(min=0)), 0.0)
    p = torch.where(valid, torch.exp(top_lp.double()), 0.0)
    if tail:
        p = torch.cat([p, (1 - p.sum(-1, keepdim=True)).clamp(min=0)], -1)
        q = torch.cat([q, (1 - q.sum(-1, keepdim=True)).clamp(min=0)], -1)
    else:
        p = torch.where(valid, torch.exp(top_lp.double() / tau), 0.0)
        p = p / p.sum(-1, keepdim=True)
        q = q / q.sum(-1, keepdim=True)
    return div_probs(p, q, kind, beta)


def stored_top_k(t_logits, k):
    """What an offline teacher stores: the top-K full-vocabulary logprobs at tau = 1."""
    lp, ids = F.log_softmax(t_logits, -1).topk(k, -1)
    return ids, lp


# ------------------------------------------------------------------------------ divergence

def test_forward_equals_kl_div():
    s, t = logits(seed=1), logits(seed=2)
    close(divergence(s, t, kind="forward"), ref_forward(s, t))


def test_reverse_equals_kl_div_with_roles_swapped():
    s, t = logits(seed=1), logits(seed=2)
    close(divergence(s, t, kind="reverse"), ref_reverse(s, t))
    assert not torch.allclose(divergence(s, t, kind="reverse"), ref_forward(s, t))


@pytest.mark.parametrize("beta", [0.1, 0.5, 0.9])
def test_jsd_equals_hand_written_mixture(beta):
    s, t = logits(seed=3), logits(seed=4)
    close(divergence(s, t, kind="jsd", beta=beta), ref_jsd(s, t, beta))


def test_jsd_ends_are_forward_and_reverse():
    s, t = logits(seed=5), logits(seed=6)
    close(divergence(s, t, kind="jsd", beta=0.0), ref_forward(s, t))
    close(divergence(s, t, kind="jsd", beta=1.0), ref_reverse(s, t))


@pytest.mark.parametrize("kind", ["forward", "reverse", "jsd"])
@pytest.mark.parametrize("tau", [0.5, 2.0, 3.7])
def test_temperature_divides_the_logits(kind, tau):
    s, t = logits(seed=7), logits(seed=8)
    want = {"forward": lambda: ref_forward(s, t, tau), "reverse": lambda: ref_reverse(s, t, tau),
            "jsd": lambda: ref_jsd(s, t, 0.3, tau)}[kind]()
    got = divergence(s, t, kind=kind, beta=0.3, temperature=tau)
    close(got, want)
    assert not torch.allclose(got, divergence(s, t, kind=kind, beta=0.3), atol=1e-4)


@pytest.mark.parametrize("kind", ["forward", "reverse", "jsd"])
def test_identical_logits_give_zero_not_soft_cross_entropy(kind):
    s = logits(seed=9)
    d = divergence(s, s.clone(), kind=kind)
    close(d, torch.zeros(len(s)), atol=1e-6)
    soft_ce = -(torch.softmax(s, -1) * torch.log_softmax(s, -1)).sum(-1)  # = the entropy
    assert (soft_ce > 0.05).all()
    assert not torch.allclose(d, soft_ce, atol=1e-3)


def test_divergence_of_low_precision_logits_is_fp32():
    s, t = logits(seed=10).bfloat16(), logits(seed=11).bfloat16()
    d = divergence(s, t)
    assert d.dtype == torch.float32
    close(d, ref_forward(s.float(), t.float()))


def test_unknown_kind_raises():
    with pytest.raises(ValueError, match="kind"):
        divergence(logits(), logits(seed=1), kind="tvd")


def test_cross_entropy_matches_reference():
    s = logits(seed=12)
    labels = torch.randint(0, s.shape[1], (len(s),), generator=gen(12))
    close(cross_entropy(s, labels), -torch.log_softmax(s, -1)[torch.arange(len(s)), labels])


# ----------------------------------------------------------------------- sparse_divergence

@pytest.mark.parametrize("kind", ["forward", "reverse", "jsd"])
def test_sparse_matches_probability_reference(kind):
    s, t = logits(n=8, v=20, seed=13), logits(n=8, v=20, seed=14)
    ids, lp = stored_top_k(t, 5)
    for tail in (True, False):
        got = sparse_divergence(s, ids, lp, kind=kind, beta=0.3, tail=tail)
        close(got, ref_sparse(s, ids, lp, kind=kind, beta=0.3, tail=tail))


def test_sparse_full_distribution_with_tail_equals_divergence():
    s, t = logits(n=8, v=12, seed=15), logits(n=8, v=12, seed=16)
    ids, lp = stored_top_k(t, 12)  # K = V: the whole distribution is stored
    got = sparse_divergence(s, ids, lp, kind="forward", tail=True)
    close(got, divergence(s, t, kind="forward"))
    close(got, ref_forward(s, t))


@pytest.mark.parametrize("kind", ["forward", "reverse", "jsd"])
@pytest.mark.parametrize("tail", [True, False])
def test_sparse_padded_slots_are_ignored(kind, tail):
    s, t = logits(n=6, v=15, seed=17), logits(n=6, v=15, seed=18)
    ids, lp = stored_top_k(t, 4)
    pad_ids = torch.cat([ids, torch.full((6, 3), -1)], -1)
    pad_lp = torch.cat([lp, torch.zeros(6, 3)], -1)  # garbage in padded logprob slots
    tau = 1.0 if tail else 2.0
    want = sparse_divergence(s, ids, lp, kind=kind, tail=tail, temperature=tau)
    got = sparse_divergence(s, pad_ids, pad_lp, kind=kind, tail=tail, temperature=tau)
    close(got, want)
    assert torch.isfinite(got).all()
    # ragged: a position with fewer alternatives equals that position computed alone
    ragged_ids, ragged_lp = ids.clone(), lp.clone()
    ragged_ids[0, 2:] = -1
    one = sparse_divergence(s[:1], ids[:1, :2], lp[:1, :2], kind=kind, tail=tail,
                            temperature=tau)
    close(sparse_divergence(s, ragged_ids, ragged_lp, kind=kind, tail=tail,
                            temperature=tau)[:1], one)


# padded slots once gave NaN gradients for reverse / jsd without the tail bucket
# (0 * (-inf - -inf) in a branch torch.where discards): every kind and mode is covered
PAD_CASES = [(kind, tail) for kind in ("forward", "reverse", "jsd") for tail in (True, False)]


@pytest.mark.parametrize("kind, tail", PAD_CASES)
def test_sparse_padded_slots_give_finite_gradients(kind, tail):
    s, t = logits(n=6, v=15, seed=19), logits(n=6, v=15, seed=20)
    ids, lp = stored_top_k(t, 4)
    ids[:2, 3], lp[:2, 3] = -1, -math.inf  # as collate pads: id -1, logprob -inf
    ref_s = s.clone().requires_grad_(True)
    s.requires_grad_(True)
    sparse_divergence(s, ids, lp, kind=kind, tail=tail).sum().backward()
    ref_sparse(ref_s, ids, lp, kind=kind, tail=tail).sum().backward()
    assert torch.isfinite(s.grad).all(), s.grad
    close(s.grad, ref_s.grad)


@pytest.mark.parametrize("kind, tail", PAD_CASES)
def test_chunked_offline_with_padded_top_k_has_finite_gradients(kind, tail):
    """One ragged position (fewer stored alternatives) must not poison the head's gradient."""
    hidden, weight, _, labels, *_ = _inputs(4)
    ids, lp = stored_top_k(torch.randn(N, V, generator=gen(5)), 4)
    ids[0, 3], lp[0, 3] = -1, -math.inf
    h, w = hidden.requires_grad_(True), weight.requires_grad_(True)
    loss, _ = chunked_head_loss(h, w, labels, top_ids=ids, top_logprobs=lp, chunk=5,
                                spec=HeadLoss(alpha=0.5, kind=kind, tail=tail,
                                              teacher="offline"))
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(h.grad).all() and torch.isfinite(w.grad).all()


def _student_matching_top_k(p_full, top, tail_mass):
    """Student probabilities: the teacher's top-K shape renormalised to 1 - tail_mass, and
    tail_mass spread evenly over the other tokens."""
    q = torch.zeros_like(p_full)
    q[top] = p_full[top] / p_full[top].sum() * (1 - tail_mass)
    rest = torch.ones_like(p_full, dtype=torch.bool)
    rest[top] = False
    q[rest] = tail_mass / rest.sum()
    return q


def test_tail_choice_both_sides():
    v, k = 12, 3
    t = torch.tensor([[4.0, 3.5, 3.0] + [0.0] * (v - 3)])
    p = torch.softmax(t, -1)[0]
    teacher_tail = float(1 - p[:k].sum())
    assert 0.05 < teacher_tail < 0.5
    ids, lp = stored_top_k(t, k)
    # same top-K shape, tail mass 0.6 instead of the teacher's
    q = _student_matching_top_k(p, ids[0], 0.6)
    s = torch.log(q).unsqueeze(0)
    with_tail = sparse_divergence(s, ids, lp, tail=True)
    without = sparse_divergence(s, ids, lp, tail=False)
    close(without, torch.zeros(1), atol=1e-6)   # top-K renormalised: identical
    assert float(with_tail) > 0.05                # the tail mismatch is penalised
    close(with_tail, ref_sparse(s, ids, lp, tail=True))
    # bucket reference by hand: K stored tokens + one tail bucket
    P = torch.cat([p[:k], p[k:].sum().reshape(1)]).double()
    Q = torch.cat([q[ids[0]], torch.tensor([0.6])]).double()
    close(with_tail, (P * torch.log(P / Q)).sum().reshape(1))
    # a student matching the teacher's tail mass too: ~0 with the tail
    q2 = _student_matching_top_k(p, ids[0], teacher_tail)
    close(sparse_divergence(torch.log(q2).unsqueeze(0), ids, lp, tail=True), torch.zeros(1),
          atol=1e-5)


def test_tail_with_temperature_raises():
    s, t = logits(seed=21), logits(seed=22)
    ids, lp = stored_top_k(t, 3)
    with pytest.raises(ValueError, match="temperature"):
        sparse_divergence(s, ids, lp, tail=True, temperature=2.0)
    close(sparse_divergence(s, ids, lp, tail=False, temperature=2.0),
          ref_sparse(s, ids, lp, tail=False, tau=2.0))


@pytest.mark.parametrize("kind", ["forward", "reverse", "jsd"])
def test_teacher_top_k_summing_to_one_stays_finite(kind):
    v = 10
    t = torch.full((4, v), -60.0)
    t[:, :3] = torch.tensor([5.0, 4.0, 3.0])  # all the mass on 3 tokens
    ids, lp = stored_top_k(t, 3)
    lp = lp + 1e-7  # rounding pushes the stored sum slightly above 1
    assert float(lp.exp().sum(-1).max()) >= 1.0
    for student in (logits(n=4, v=v, seed=23), t.clone()):
        s = student.clone().requires_grad_(True)
        d = sparse_divergence(s, ids, lp, kind=kind, tail=True)
        d.sum().backward()
        assert torch.isfinite(d).all() and torch.isfinite(s.grad).all()
    close(sparse_divergence(t, ids, lp, kind=kind, tail=True), torch.zeros(4), atol=1e-4)


# ------------------------------------------------------------------- chunked_head_loss

N, H, V = 13, 8, 24


def _inputs(seed=0, *, bias=False, v=V, vt=V, ht=6):
    g = gen(seed)
    hidden = torch.randn(N, H, generator=g)
    weight = torch.randn(v, H, generator=g) * 0.7
    b = torch.randn(v, generator=g) if bias else None
    labels = torch.randint(0, min(v, vt), (N,), generator=g)
    t_hidden = torch.randn(N, ht, generator=g)
    t_weight = torch.randn(vt, ht, generator=g) * 0.7
    return hidden, weight, b, labels, t_hidden, t_weight


def _ref_logits(hidden, weight, bias=None, softcap=None, vocab=None):
    out = hidden @ weight.T
    if bias is not None:
        out = out + bias
    if softcap:
        out = softcap * torch.tanh(out / softcap)
    return out if vocab is None else out[:, :vocab]


def _ref_loss(s, labels, spec, *, t=None, top=None):
    """Unchunked reference: summed alpha*CE + (1-alpha)*tau^2*D, and the stats."""
    a, tau = spec.alpha, spec.temperature
    ce = F.cross_entropy(s, labels, reduction="none")
    stats = {"ce": float(ce.detach().sum()) if a > 0 else 0.0, "kl": 0.0, "top1": 0.0,
             "tokens": float(len(s))}
    loss = a * ce.sum()
    if a < 1:
        if t is not None:
            d = {"forward": lambda: ref_forward(s, t, tau),
                 "reverse": lambda: ref_reverse(s, t, tau),
                 "jsd": lambda: ref_jsd(s, t, spec.beta, tau)}[spec.kind]()
            stats["top1"] = float((s.argmax(-1) == t.argmax(-1)).sum())
        else:
            ids, lp = top
            d = ref_sparse(s, ids, lp, kind=spec.kind, beta=spec.beta, tau=tau,
                           tail=spec.tail).float()
            stats["top1"] = float((s.argmax(-1) == ids[:, 0]).sum())
        stats["kl"] = float(d.detach().sum())
        loss = loss + (1 - a) * tau * tau * d.sum()
    return loss, stats


def _compare(spec, *, chunk, bias=False, softcap=None, vocab=None, teacher="online",
             vt=V, weight_grad=True, seed=0, k=5):
    hidden, weight, b, labels, t_hidden, t_weight = _inputs(seed, bias=bias, vt=vt)
    if softcap:
        hidden = hidden * 3  # large logits, so the cap matters
    tv = vocab if vocab is not None else min(V, vt)
    t_logits = _ref_logits(t_hidden, t_weight, vocab=tv)
    top = stored_top_k(t_logits, k)

    def leaves():
        out = [hidden.clone().requires_grad_(True),
               weight.clone().requires_grad_(weight_grad)]
        out.append(None if b is None else b.clone().requires_grad_(True))
        return out

    h1, w1, b1 = leaves()
    kw = {}
    if teacher == "online":
        kw = dict(teacher_hidden=t_hidden, teacher_weight=t_weight)
    elif teacher == "offline":
        kw = dict(top_ids=top[0], top_logprobs=top[1])
    loss, stats = chunked_head_loss(h1, w1, labels, spec=spec, bias=b1, softcap=softcap,
                                    vocab=vocab, chunk=chunk, **kw)
    (loss * 1.5).backward()  # the upstream gradient is applied

    h2, w2, b2 = leaves()
    s = _ref_logits(h2, w2, b2, softcap, vocab)
    ref, ref_stats = _ref_loss(s, labels, spec, t=t_logits if teacher == "online" else None,
                               top=top if teacher == "offline" else None)
    (ref * 1.5).backward()

    assert loss.shape == ()
    close(loss.detach(), ref.detach())
    close(h1.grad, h2.grad)
    if weight_grad:
        close(w1.grad, w2.grad)
    else:
        assert w1.grad is None
    if b is not None:
        close(b1.grad, b2.grad)
    assert set(stats) == {"ce", "kl", "top1", "tokens"}
    for key in stats:
        assert math.isclose(stats[key], ref_stats[key], rel_tol=1e-4, abs_tol=1e-4), \
            (key, stats, ref_stats)
    return stats


CHUNKS = [1, 7, N, N + 50]


@pytest.mark.parametrize("chunk", CHUNKS)
@pytest.mark.parametrize("kind", ["forward", "reverse", "jsd"])
def test_chunked_online_equals_unchunked(chunk, kind):
    stats = _compare(HeadLoss(alpha=0.3, kind=kind, beta=0.4, temperature=1.0,
                              teacher="online"), chunk=chunk, bias=True)
    assert stats["kl"] > 0 and stats["ce"] > 0


@pytest.mark.parametrize("chunk", CHUNKS)
def test_chunked_online_temperature_and_pure_kd(chunk):
    _compare(HeadLoss(alpha=0.0, kind="forward", temperature=2.0, teacher="online"),
             chunk=chunk)
    stats = _compare(HeadLoss(alpha=0.5, kind="jsd", beta=0.7, temperature=0.7,
                              teacher="online"), chunk=chunk)
    assert 0 <= stats["top1"] <= N


@pytest.mark.parametrize("chunk", CHUNKS)
@pytest.mark.parametrize("tail", [True, False])
def test_chunked_offline_equals_unchunked(chunk, tail):
    _compare(HeadLoss(alpha=0.2, kind="forward", tail=tail, teacher="offline"),
             chunk=chunk, teacher="offline", bias=True)
    _compare(HeadLoss(alpha=0.0, kind="jsd", beta=0.5, tail=tail, teacher="offline"),
             chunk=chunk, teacher="offline", seed=3)


def test_chunked_offline_tail_false_at_temperature():
    _compare(HeadLoss(alpha=0.4, kind="forward", tail=False, temperature=2.0,
                      teacher="offline"), chunk=4, teacher="offline")


def test_chunked_offline_tail_at_temperature_raises():
    with pytest.raises(ValueError, match="temperature"):
        _compare(HeadLoss(alpha=0.4, tail=True, temperature=2.0, teacher="offline"),
                 chunk=4, teacher="offline")


@pytest.mark.parametrize("chunk", CHUNKS)
def test_chunked_pure_ce_equals_unchunked(chunk):
    stats = _compare(HeadLoss(alpha=1.0), chunk=chunk, teacher=None, bias=True)
    assert stats["kl"] == 0 and stats["top1"] == 0 and stats["tokens"] == N


@pytest.mark.parametrize("chunk", [1, 7, N + 50])
def test_chunked_vocab_cut(chunk):
    # student head has 24 rows, teacher 28; both cut to the shared 20
    _compare(HeadLoss(alpha=0.5, teacher="online"), chunk=chunk, vocab=20, vt=28)
    _compare(HeadLoss(alpha=1.0), chunk=chunk, vocab=20, teacher=None)


@pytest.mark.parametrize("chunk", [1, 7, N + 50])
def test_chunked_softcap(chunk):
    _compare(HeadLoss(alpha=0.5, teacher="online"), chunk=chunk, softcap=5.0, bias=True)
    _compare(HeadLoss(alpha=1.0), chunk=chunk, softcap=5.0, teacher=None)


def test_softcap_changes_the_loss():
    hidden, weight, _, labels, *_ = _inputs(0)
    spec = HeadLoss(alpha=1.0)
    capped, _ = chunked_head_loss(hidden * 3, weight, labels, spec=spec, softcap=5.0)
    plain, _ = chunked_head_loss(hidden * 3, weight, labels, spec=spec)
    assert abs(float(capped) - float(plain)) > 1e-3


@pytest.mark.parametrize("chunk", [1, 7, N + 50])
def test_frozen_head_only_hidden_gets_a_gradient(chunk):
    """LoRA: the output head is frozen; the driver must not need or produce its gradient."""
    _compare(HeadLoss(alpha=0.5, teacher="online"), chunk=chunk, weight_grad=False)
    _compare(HeadLoss(alpha=0.5, teacher="offline"), chunk=chunk, weight_grad=False,
             teacher="offline")


def test_no_target_positions_gives_zero_with_a_graph():
    hidden = torch.zeros(0, H, requires_grad=True)
    weight = torch.randn(V, H, requires_grad=True)
    loss, stats = chunked_head_loss(hidden, weight, torch.zeros(0, dtype=torch.long),
                                    spec=HeadLoss(alpha=1.0))
    loss.backward()
    assert float(loss.detach()) == 0 and stats["tokens"] == 0
    assert torch.equal(weight.grad, torch.zeros_like(weight))


def test_driver_missing_teacher_inputs_raise():
    hidden, weight, _, labels, *_ = _inputs(0)
    with pytest.raises(ValueError, match="online KD"):
        chunked_head_loss(hidden, weight, labels, spec=HeadLoss(alpha=0.5, teacher="online"))
    with pytest.raises(ValueError, match="offline KD"):
        chunked_head_loss(hidden, weight, labels, spec=HeadLoss(alpha=0.5, teacher="offline"))


# ---------------------------------------------------------------------- HeadLoss checks

@pytest.mark.parametrize("kw, match", [
    (dict(alpha=-0.1), "alpha"),
    (dict(alpha=1.5), "alpha"),
    (dict(alpha=0.5), "teacher"),
    (dict(alpha=0.0, teacher="sometimes"), "teacher"),
    (dict(kind="tvd"), "kind"),
    (dict(beta=1.5, teacher="online", alpha=0.5), "beta"),
    (dict(beta=-0.5), "beta"),
    (dict(temperature=0.0), "temperature"),
    (dict(temperature=-1.0), "temperature"),
])
def test_head_loss_validation(kw, match):
    with pytest.raises(ValueError, match=match):
        HeadLoss(**kw)


def test_head_loss_valid_specs():
    HeadLoss()
    HeadLoss(alpha=0.0, teacher="online", kind="reverse")
    HeadLoss(alpha=0.5, teacher="offline", kind="jsd", beta=1.0, temperature=2.0, tail=False)


# ------------------------------------------------------------ padding never reaches the loss

def test_right_padded_batch_selects_no_padding():
    rng = np.random.default_rng(0)
    lengths = [5, 9, 3, 12]
    exs = [Example(rng.integers(3, 50, n).astype(np.int32), start=max(1, n // 2), row=i,
                   group=str(i)) for i, n in enumerate(lengths)]
    pad = 0
    batch = collate(exs, [[i] for i in range(len(exs))], pad_id=pad, packed=False)
    width = max(lengths)
    assert batch.input_ids.shape == (len(exs), width)
    mask = batch.attention_mask.reshape(-1)
    sel = batch.select
    assert (mask[sel] == 1).all()        # a selected position is a real token
    assert (mask[sel + 1] == 1).all()    # and so is the token it predicts
    # exactly the target positions of each example, in order
    want, labels = [], []
    for b, ex in enumerate(exs):
        want += [b * width + p for p in range(ex.start - 1, len(ex) - 1)]
        labels += ex.ids[ex.start:].tolist()
    assert sel.tolist() == want
    assert batch.labels.tolist() == labels
    assert batch.tokens == sum(lengths)
    # padded positions (the last of each short row included) never appear
    pad_flat = set(torch.nonzero(mask == 0).flatten().tolist())
    assert pad_flat and not pad_flat & set(sel.tolist())


@pytest.mark.parametrize("kind, teacher", [("forward", "online"), ("jsd", "online"),
                                           ("forward", "offline"), ("reverse", "offline")])
def test_no_grad_evaluation_builds_no_head_gradient(kind, teacher, monkeypatch):
    """Regression: under torch.no_grad() (evaluation) the chunked head still computed the
    (V, H) weight gradient in its forward pass, because it asked weight.requires_grad, not
    whether gradients are wanted at all."""
    import synth.train.losses as L

    hidden, weight, _, labels, t_hidden, t_weight = _inputs(3)
    weight.requires_grad_(True)  # a model parameter, as in evaluate_loss
    top = stored_top_k(_ref_logits(t_hidden, t_weight), 5)
    kw = dict(teacher_hidden=t_hidden, teacher_weight=t_weight) if teacher == "online" \
        else dict(top_ids=top[0], top_logprobs=top[1])
    spec = HeadLoss(alpha=0.5, kind=kind, teacher=teacher)
    want, want_stats = chunked_head_loss(hidden, weight, labels, spec=spec, chunk=4, **kw)

    def forbidden(*a, **k):
        raise AssertionError("the gradient-building head ran under no_grad")

    monkeypatch.setattr(L._ChunkedHeadLoss, "apply", forbidden)
    with torch.no_grad():
        got, stats = chunked_head_loss(hidden, weight, labels, spec=spec, chunk=4, **kw)
    assert not got.requires_grad and weight.grad is None
    assert torch.allclose(got, want.detach(), rtol=1e-5, atol=1e-5)
    for k in stats:
        assert math.isclose(stats[k], want_stats[k], rel_tol=1e-4, abs_tol=1e-4), k
