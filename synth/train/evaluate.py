"""``synth eval``: what the student kept of its teacher, and what it buys in speed and size.

On held-out rows (same formats as ``synth train --data``), the teacher's answers are the
targets:

* **held-out loss and perplexity** of the student (and of the teacher, for scale) on those
  answers, per target token;
* **per-token KL(teacher ‖ student)** at temperature 1 and **teacher top-1 agreement** (the
  share of target positions where both models' most likely next token is the same), when the
  two share a tokenizer;
* **task accuracy** where rows carry a ``reference``: both models answer the prompts
  greedily and the curation verifiers check the answers: code against the reference's tests
  in the sandbox (:mod:`synth.curate.verify_code`), math through math-verify
  (:mod:`synth.curate.verify_math`), else a normalised exact match. Answers that could not be
  checked are counted as ``unverifiable`` and left out of the accuracy, never counted as
  right. ``retained`` is the student's accuracy as a share of the teacher's;
* **generation tokens/s** of both (greedy, batched, the same settings) and their **parameter
  counts**.

Results go to ``eval.json`` (atomically) and a table.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from pathlib import Path
from typing import Any

from synth.errors import ConfigError
from synth.io import check_out_dir, make_out_dir, write_atomic
from synth.train.config import EvalConfig

__all__ = ["evaluate", "print_table", "check_answers"]


def _same_vocab(student: Any, teacher: Any) -> str | None:
    """None when KL and top-1 agreement can be computed (the trainer's own vocabulary
    check passes), else why not."""
    from synth.train.student import check_shared_vocab

    try:
        check_shared_vocab(student, teacher)
    except ConfigError as e:
        return str(e)
    return None


def _token_metrics(student: Any, teacher: Any, examples: list, *, batch_size: int,
                   pad_id: int, device: str, shared: bool, vocab: int | None,
                   chunk: int = 1024) -> dict[str, float]:
    import torch

    from synth.train.data import collate
    from synth.train.losses import _logits, cross_entropy, divergence
    from synth.train.recipe import _parts

    sd, sh, scap = _parts(student)
    td, th, tcap = _parts(teacher)
    tot = {"ce": 0.0, "teacher_ce": 0.0, "kl": 0.0, "top1": 0.0, "n": 0}
    with torch.no_grad():
        for s in range(0, len(examples), batch_size):
            rows = [[i] for i in range(s, min(len(examples), s + batch_size))]
            b = collate(examples, rows, pad_id=pad_id, packed=False).to(device)
            kw = dict(input_ids=b.input_ids, attention_mask=b.attention_mask,
                      position_ids=b.position_ids, use_cache=False)
            hs = sd(**kw).last_hidden_state
            hs = hs.reshape(-1, hs.shape[-1]).index_select(0, b.select)
            ht = None
            if shared:
                ht = td(**kw).last_hidden_state
                ht = ht.reshape(-1, ht.shape[-1]).index_select(0, b.select)
            for a in range(0, hs.shape[0], chunk):
                z = slice(a, a + chunk)
                sl = _logits(hs[z], sh.weight, sh.bias, scap, vocab)
                tot["ce"] += float(cross_entropy(sl, b.labels[z]).sum())
                if ht is not None:
                    tl = _logits(ht[z], th.weight, th.bias, tcap, vocab)
                    tot["teacher_ce"] += float(cross_entropy(tl, b.labels[z]).sum())
                    tot["kl"] += float(divergence(sl, tl).sum())
                    tot["top1"] += float((sl.argmax(-1) == tl.argmax(-1)).sum())
            tot["n"] += int(b.labels.numel())
    n = max(1, tot["n"])
    out = {"target_tokens": tot["n"], "student_loss": tot["ce"] / n,
           "student_ppl": math.exp(min(50.0, tot["ce"] / n))}
    if shared:
        out.update(teacher_loss=tot["teacher_ce"] / n,
                   teacher_ppl=math.exp(min(50.0, tot["teacher_ce"] / n)),
                   kl=tot["kl"] / n, top1_agreement=tot["top1"] / n)
    return out


async def _answer_all(spec: str, prompts: list, *, max_new_tokens: int, device: str,
                      batch_size: int) -> tuple[list[str], dict[str, float]]:
    from synth.records import Params, Request
    from synth.teachers.local import LocalTeacher
    from synth.teachers.reasoning import split_think

    params = Params(temperature=0.0, max_tokens=max_new_tokens)
    async with LocalTeacher(spec, device=device, max_batch_size=batch_size) as t:
        t0 = time.perf_counter()
        done = await asyncio.gather(*(t.complete(Request(p, 0, params)) for p in prompts))
        wall = time.perf_counter() - t0
    texts = [split_think(c.text or "")[0] or "" for c in done]
    toks = sum(c.output_tokens or 0 for c in done)
    return texts, {"gen_tokens": toks, "gen_s": round(wall, 3),
                   "gen_tokens_per_s": round(toks / max(1e-9, wall), 1)}


def _task_of(reference: Any, task: str) -> str:
    if task != "auto":
        return task
    from synth.curate.verify_code import BadReference, parse_reference

    try:
        if parse_reference(reference) is not None:
            return "code"
    except BadReference:
        pass
    return "math"


def check_answers(answers: list[str], references: list[Any], task: str = "auto"
                  ) -> list[tuple[str, str]]:
    """``(outcome, reason)`` per answer: ``correct`` | ``wrong`` | ``unverifiable``, by the
    curation verifiers (module docstring). Where math-verify extracts nothing, an exact
    (normalised) match still counts as correct, and against a reference without digits (a
    word, a name) a different answer is wrong."""
    from synth.curate.steps import normalize_text

    out: list[tuple[str, str] | None] = [None] * len(answers)
    kinds = [_task_of(r, task) for r in references]
    math_items = [i for i, k in enumerate(kinds) if k == "math"]
    if math_items:
        from synth.deps import missing

        if missing((("math_verify", "math-verify"),)):
            for i in math_items:
                kinds[i] = "exact"
        else:
            from synth.curate.verify_math import verify_many

            res = verify_many([(answers[i], str(references[i])) for i in math_items])
            for i, (o, why) in zip(math_items, res):
                if o != "unverifiable":
                    out[i] = (o, why)
                    continue
                # math-verify found nothing to compare: a reference without math (a word,
                # a name) is judged by exact match; a numeric one stays unverifiable
                a, r = normalize_text(answers[i]), normalize_text(str(references[i]))
                if a and a == r:
                    out[i] = ("correct", "exact match")
                elif not any(ch.isdigit() for ch in r):
                    out[i] = ("wrong", "differs from the reference") if a else \
                        ("unverifiable", "empty answer")
                else:
                    out[i] = (o, why)
    for i, k in enumerate(kinds):
        if out[i] is not None:
            continue
        if k == "code":
            from synth.curate.verify_code import check_solution

            v = check_solution(answers[i], references[i])
            out[i] = (v.outcome, v.reason)
        elif k == "exact":
            a, r = normalize_text(answers[i]), normalize_text(str(references[i]))
            out[i] = ("correct", "exact match") if a and a == r else \
                ("wrong", "differs from the reference") if a else ("unverifiable", "empty answer")
        else:
            out[i] = ("unverifiable", "task none")
    return out  # type: ignore[return-value]


def _accuracy(outcomes: list[tuple[str, str]]) -> dict[str, Any]:
    c = sum(o == "correct" for o, _ in outcomes)
    w = sum(o == "wrong" for o, _ in outcomes)
    u = sum(o == "unverifiable" for o, _ in outcomes)
    return {"correct": c, "wrong": w, "unverifiable": u,
            "accuracy": c / (c + w) if c + w else None}


def evaluate(config: EvalConfig | None = None, /, **kwargs: Any) -> dict[str, Any]:
    """See the module docstring; returns what ``eval.json`` holds."""
    from synth.generate.config import make_config

    cfg = make_config(config, kwargs, cls=EvalConfig)
    student_dir = Path(cfg.student.removeprefix("local:"))
    out = cfg.out or (student_dir if student_dir.is_dir() else Path("."))
    check_out_dir(out)
    from synth.train import data as D
    from synth.train.recipe import pick_device
    from synth.train.student import load_pretrained, param_count, shared_vocab_size

    rows = D.load_rows(cfg.data)
    if cfg.limit:
        rows.rows = rows.rows[:cfg.limit]
    device = pick_device(cfg.device)
    student = load_pretrained(cfg.student)
    teacher = load_pretrained(cfg.teacher)
    D.ensure_chat_template(student.tokenizer)
    D.ensure_chat_template(teacher.tokenizer)
    examples, dropped = D.build_examples(rows, student.tokenizer, reasoning=cfg.reasoning,
                                         max_len=cfg.max_len)
    why_not = _same_vocab(student, teacher)
    student.model.to(device).eval()
    teacher.model.to(device).eval()
    pad = student.tokenizer.pad_token_id
    result: dict[str, Any] = {
        "student": cfg.student, "teacher": cfg.teacher, "data": str(rows.path),
        "rows": len(rows.rows), "examples": len(examples), "dropped": dropped,
        "params": {"student": param_count(student.model), "teacher": param_count(teacher.model)},
    }
    result["params"]["ratio"] = round(result["params"]["student"] /
                                      max(1, result["params"]["teacher"]), 4)
    result["tokens"] = _token_metrics(
        student.model, teacher.model, examples, batch_size=cfg.batch_size,
        pad_id=pad if pad is not None else 0, device=device, shared=why_not is None,
        vocab=shared_vocab_size(student.model, teacher.model))
    if why_not:
        result["tokens"]["kl"] = None
        result["tokens"]["note"] = f"KL and top-1 agreement not computed: {why_not}"
    # generation: free the training-style copies first, LocalTeacher loads its own
    student_spec = str(student_dir) if student_dir.is_dir() else cfg.student.removeprefix(
        "local:")
    teacher_spec = cfg.teacher.removeprefix("local:")
    del student, teacher
    from synth.records import Prompt

    with_ref = [r for r in rows.rows if r.get("reference") not in (None, "")]
    prompts = [Prompt(id=str(r.get("id", i)), messages=r["messages"])
               for i, r in enumerate(with_ref)] or \
        [Prompt(id=str(r.get("id", i)), messages=r["messages"])
         for i, r in enumerate(rows.rows[:64])]
    s_text, s_speed = asyncio.run(_answer_all(student_spec, prompts,
                                              max_new_tokens=cfg.max_new_tokens,
                                              device=device, batch_size=cfg.batch_size * 4))
    t_text, t_speed = asyncio.run(_answer_all(teacher_spec, prompts,
                                              max_new_tokens=cfg.max_new_tokens,
                                              device=device, batch_size=cfg.batch_size * 4))
    result["speed"] = {"student": s_speed, "teacher": t_speed,
                       "speedup": round(s_speed["gen_tokens_per_s"] /
                                        max(1e-9, t_speed["gen_tokens_per_s"]), 3)}
    if with_ref and cfg.task != "none":
        refs = [r["reference"] for r in with_ref]
        s_out = check_answers(s_text, refs, cfg.task)
        t_out = check_answers(t_text, refs, cfg.task)
        sa, ta = _accuracy(s_out), _accuracy(t_out)
        retained = None
        if sa["accuracy"] is not None and ta["accuracy"]:
            retained = sa["accuracy"] / ta["accuracy"]
        result["task"] = {"rows": len(with_ref), "student": sa, "teacher": ta,
                          "retained": retained,
                          "agreement": sum(a == b for (a, _), (b, _) in zip(s_out, t_out)
                                           if a != "unverifiable") / len(with_ref)}
    else:
        result["task"] = None
    make_out_dir(out)
    write_atomic(out / "eval.json", json.dumps(result, indent=1, default=str))
    result["path"] = str(out / "eval.json")
    return result


def print_table(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    def f(x: Any, pct: bool = False) -> str:
        if x is None:
            return "n/a"
        if pct:
            return f"{x:.1%}"
        if isinstance(x, float):
            return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.4f}"
        return f"{x:,}"

    tk, sp, ps = result["tokens"], result["speed"], result["params"]
    t = Table(title=f"student {result['student']} vs teacher {result['teacher']}")
    for c in ("metric", "student", "teacher"):
        t.add_column(c)
    t.add_row("held-out loss / token", f(tk["student_loss"]), f(tk.get("teacher_loss")))
    t.add_row("perplexity", f(tk["student_ppl"]), f(tk.get("teacher_ppl")))
    t.add_row("KL(teacher‖student) / token", f(tk.get("kl")), "")
    t.add_row("top-1 agreement", f(tk.get("top1_agreement"), True), "")
    task = result.get("task")
    if task:
        t.add_row("task accuracy", f(task["student"]["accuracy"], True),
                  f(task["teacher"]["accuracy"], True))
        t.add_row("unverifiable answers", f(task["student"]["unverifiable"]),
                  f(task["teacher"]["unverifiable"]))
        t.add_row("teacher quality retained", f(task["retained"], True), "")
    t.add_row("generation tokens/s", f(sp["student"]["gen_tokens_per_s"]),
              f(sp["teacher"]["gen_tokens_per_s"]))
    t.add_row("parameters", f(ps["student"]), f(ps["teacher"]))
    Console(stderr=False).print(t)
    print(f"→ {result['path']}")
