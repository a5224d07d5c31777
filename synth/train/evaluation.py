"""``synth eval``: what the student kept of its teacher, and what it buys in speed and size.

The rows (``--data``: a pipeline run directory means its held-out rows,
``split/heldout.parquet``; otherwise the same formats as ``synth train --data``) are read as
they are, failed and dropped rows included (:mod:`synth.rows`, ``purpose="eval"``):

* **held-out loss and perplexity** of the student (and of the teacher, for scale) on the
  teacher's answers (rows with ``status`` ok, an answer, and not dropped by their recipe),
  per target token;
* **per-token KL(teacher ‖ student)** at temperature 1 and **teacher top-1 agreement** (the
  share of target positions where both models' most likely next token is the same), when the
  two share a tokenizer;
* **task accuracy** on every held-out *source prompt* with a ``reference``
  (:func:`synth.rows.source_key`: a prompt's samples, its teachers' answers and its
  evolutions are one prompt, counted once), whether or not the teacher's stored answer to it
  survived its recipe or curation. Both models answer each such prompt once, greedily, with
  the same settings, and are scored over the **same denominator**, every one of those
  prompts: an empty answer, one cut off at ``max_new_tokens``, one whose ``<think>`` never
  closes, one with no final answer in it, is **wrong**. ``unverifiable`` is kept for a
  verifier that could not run on that prompt (a reference it cannot read, a time-out, a
  sandbox failure): it is counted and shown, and it is not correct. The checks are the
  curation verifiers: a one-letter reference by :mod:`synth.curate.verify_choice` (the
  answer must name that letter and no other), code against the reference's tests in the
  sandbox (:mod:`synth.curate.verify_code`), math through math-verify
  (:mod:`synth.curate.verify_math`), else a normalised exact match. ``accuracy`` is correct
  / n for both models, ``retained`` the student's accuracy over the teacher's, ``agreement``
  the share of the n prompts where both got the same verdict;
* **generation tokens/s** of both (greedy, batched, the same settings) and their **parameter
  counts**.

Results go to ``eval.json`` (atomically) and a table; ``answers.jsonl`` holds every scored
prompt with both models' full answers, how each ended and its verdict and reason.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synth.errors import ConfigError
from synth.io import claim_out_dir, make_out_dir, write_atomic
from synth.train.config import EvalConfig

__all__ = ["evaluate", "print_table", "check_answers", "Answer", "answer_prompts",
           "token_metrics", "task_units"]


def _same_vocab(student: Any, teacher: Any) -> str | None:
    """None when KL and top-1 agreement can be computed (the trainer's own vocabulary
    check passes), else why not."""
    from synth.train.student import check_shared_vocab

    try:
        check_shared_vocab(student, teacher)
    except ConfigError as e:
        return str(e)
    return None


def token_metrics(student: Any, teacher: Any, examples: list, *, batch_size: int,
                   pad_id: int, device: str, shared: bool, vocab: int | None,
                   chunk: int = 1024) -> dict[str, float]:
    import torch

    from synth.train.data import collate
    from synth.train.losses import cross_entropy, divergence, head_logits
    from synth.train.trainer import model_parts

    sd, sh, scap = model_parts(student)
    td, th, tcap = model_parts(teacher)
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
                sl = head_logits(hs[z], sh.weight, sh.bias, scap, vocab)
                tot["ce"] += float(cross_entropy(sl, b.labels[z]).sum())
                if ht is not None:
                    tl = head_logits(ht[z], th.weight, th.bias, tcap, vocab)
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


@dataclass(frozen=True)
class Answer:
    """One generated answer: ``text`` with any ``<think>`` reasoning split off, the ``raw``
    output, and why generation ended (``stop`` or ``length``)."""

    text: str | None
    raw: str | None = None
    finish_reason: str | None = "stop"
    confidence: float | None = None  # mean chosen-token logprob, when asked for
    input_tokens: int | None = None
    output_tokens: int | None = None


async def _answer_all(spec: str, prompts: list, *, max_new_tokens: int, device: str,
                      batch_size: int, confidence: bool = False
                      ) -> tuple[list[Answer], dict[str, float]]:
    from synth.records import Params, Request
    from synth.teachers.local import LocalTeacher
    from synth.teachers.reasoning import split_think
    from synth.train.cascade import mean_logprob

    # top_logprobs 0: the chosen tokens' logprobs only (the same greedy tokens)
    params = Params(temperature=0.0, max_tokens=max_new_tokens,
                    top_logprobs=0 if confidence else None)
    async with LocalTeacher(spec, device=device, max_batch_size=batch_size) as t:
        t0 = time.perf_counter()
        done = await asyncio.gather(*(t.complete(Request(p, 0, params)) for p in prompts))
        wall = time.perf_counter() - t0
    answers = [Answer(split_think(c.text or "")[0] or "", c.text, c.finish_reason,
                      mean_logprob(c.logprobs) if confidence else None, c.input_tokens,
                      c.output_tokens) for c in done]
    toks = sum(c.output_tokens or 0 for c in done)
    return answers, {"gen_tokens": toks, "gen_s": round(wall, 3),
                     "gen_tokens_per_s": round(toks / max(1e-9, wall), 1)}


def answer_prompts(spec: str, prompts: list, *, max_new_tokens: int, device: str = "cpu",
                   batch_size: int = 32, confidence: bool = False
                   ) -> tuple[list[Answer], dict[str, float]]:
    """Greedy answers of the model ``spec`` to ``prompts`` (:class:`synth.records.Prompt`),
    batched, and the generation speed; ``confidence``: each answer's mean token logprob."""
    return asyncio.run(_answer_all(spec, prompts, max_new_tokens=max_new_tokens,
                                   device=device, batch_size=batch_size,
                                   confidence=confidence))


def _task_of(reference: Any, task: str) -> str:
    if task != "auto":
        return task
    from synth.curate.verify_choice import is_letter_reference
    from synth.curate.verify_code import BadReference, parse_reference

    if is_letter_reference(reference):
        return "choice"
    try:
        if parse_reference(reference) is not None:
            return "code"
    except BadReference:
        pass
    return "math"


def _unfinished(a: Answer, max_new_tokens: int | None) -> str | None:
    """Why an answer is no answer (wrong before any verifier looks at it), or None."""
    raw = a.raw if a.raw is not None else a.text
    if raw and "<think>" in raw and "</think>" not in raw:
        return "reasoning never closed (no </think>)"
    if a.finish_reason == "length":
        cap = f" ({max_new_tokens} tokens)" if max_new_tokens else ""
        return f"cut off at max_new_tokens{cap}"
    if not (a.text or "").strip():
        return "empty answer"
    return None


#: verify_math reasons that are about the answer (wrong), not about the verifier
_MATH_ANSWER_SIDE = ("no answer extracted", "answer parse error", "answer not parseable")
#: verify_math reasons that say the reference is no math (an exact match decides instead)
_MATH_NOT_MATH = ("reference not parseable", "empty reference")


def check_answers(answers: list[Answer | str], references: list[Any], task: str = "auto", *,
                  max_new_tokens: int | None = None) -> list[tuple[str, str]]:
    """``(outcome, reason)`` per answer: ``correct`` | ``wrong`` | ``unverifiable``, over the
    rules of the module docstring. An answer may be a plain string (a finished answer)."""
    from synth.curate.steps import normalize_text

    answers = [a if isinstance(a, Answer) else Answer(a, a) for a in answers]
    out: list[tuple[str, str] | None] = [None] * len(answers)
    kinds = [_task_of(r, task) for r in references]
    for i, a in enumerate(answers):
        why = _unfinished(a, max_new_tokens)
        if why is not None:
            out[i] = ("wrong", why)

    def exact(i: int, fallback: tuple[str, str]) -> tuple[str, str]:
        x, r = normalize_text(answers[i].text or ""), normalize_text(str(references[i]))
        return ("correct", "exact match") if x and x == r else fallback

    todo = [i for i in range(len(answers)) if out[i] is None]
    math_items = [i for i in todo if kinds[i] == "math"]
    if math_items:
        from synth.deps import missing

        if missing((("math_verify", "math-verify"),)):
            for i in math_items:
                kinds[i] = "exact"
        else:
            from synth.curate.verify_math import verify_many

            res = verify_many([(answers[i].text or "", str(references[i])) for i in math_items])
            for i, (o, why) in zip(math_items, res):
                if o != "unverifiable":
                    out[i] = (o, why)
                elif why.startswith(_MATH_ANSWER_SIDE):
                    word = not any(ch.isdigit() for ch in str(references[i]))
                    out[i] = exact(i, ("wrong", "differs from the reference" if word
                                       else f"no final answer ({why})"))
                elif why.startswith(_MATH_NOT_MATH):
                    # a reference that is no math (a word, a name): an exact match decides
                    out[i] = exact(i, ("wrong", "differs from the reference"))
                else:
                    out[i] = (o, why)  # the verifier could not run: time-out, crash
    for i in todo:
        if out[i] is not None:
            continue
        k = kinds[i]
        if k == "choice":
            from synth.curate.verify_choice import check_choice, is_letter_reference

            out[i] = check_choice(answers[i].text or "", references[i]) \
                if is_letter_reference(references[i]) else \
                ("unverifiable", f"not a one-letter reference: {str(references[i])[:40]!r}")
        elif k == "code":
            from synth.curate.verify_code import check_solution

            v = check_solution(answers[i].text or "", references[i])
            out[i] = ("wrong", v.reason) if v.outcome == "unverifiable" and \
                v.reason.startswith("no code found") else (v.outcome, v.reason)
        elif k == "exact":
            out[i] = exact(i, ("wrong", "differs from the reference"))
        else:
            out[i] = ("unverifiable", f"task {k}")
    return out  # type: ignore[return-value]


def _accuracy(outcomes: list[tuple[str, str]]) -> dict[str, Any]:
    n = len(outcomes)
    c = sum(o == "correct" for o, _ in outcomes)
    w = sum(o == "wrong" for o, _ in outcomes)
    u = sum(o == "unverifiable" for o, _ in outcomes)

    def reasons(kind: str) -> dict[str, int]:
        return dict(Counter(r.split(" (", 1)[0].split(":", 1)[0] for o, r in outcomes
                            if o == kind).most_common(8))

    return {"n": n, "correct": c, "wrong": w, "unverifiable": u,
            "accuracy": c / n if n else None,
            "wrong_reasons": reasons("wrong"), "unverifiable_reasons": reasons("unverifiable")}


@dataclass(frozen=True)
class TaskUnit:
    """One held-out source prompt with a reference: what both models answer once."""

    key: str
    messages: list[dict[str, str]]
    reference: Any
    rows: int            # rows of it in the data (samples, teachers, evolutions)


def task_units(rows: list[dict[str, Any]], *, path: str | Path) -> list[TaskUnit]:
    """One unit per source prompt with a non-empty ``reference``, in the order the prompts
    first appear; every row counts toward its unit, whatever its status, recipe verdict or
    curation. The unit's prompt and reference are the source prompt's own row's (its
    ``prompt_id`` is the key) when there is one, else the first row's with a reference: an
    evolution that carries a reference of its own never replaces its root's, whatever the
    row order."""
    from synth import rows as R

    units: dict[str, dict[str, Any]] = {}
    counts: Counter = Counter()
    for r in rows:
        key = R.source_key(r)
        counts[key] += 1
        ref = r.get("reference")
        if ref is None or (isinstance(ref, str) and not ref.strip()):
            continue
        root = r.get("prompt_id") is not None and str(r["prompt_id"]) == key
        if key in units and (units[key]["root"] or not root):
            continue
        units[key] = {"messages": R.conversation(r, path=path).prompt, "reference": ref,
                      "root": root}
    return [TaskUnit(k, u["messages"], u["reference"], counts[k]) for k, u in units.items()]


def _answered(r: dict[str, Any]) -> bool:
    """A row whose teacher answer the token metrics use: answered, and kept by its recipe."""
    return (r.get("status") or "ok") == "ok" and r.get("drop_reason") is None and \
        (r.get("response") is not None or (isinstance(r.get("messages"), list) and
                                           r["messages"] and isinstance(r["messages"][-1], dict)
                                           and r["messages"][-1].get("role") == "assistant"))


def evaluate(config: EvalConfig | None = None, /, **kwargs: Any) -> dict[str, Any]:
    """See the module docstring; returns what ``eval.json`` holds."""
    from synth.options import make_config

    cfg = make_config(config, kwargs, cls=EvalConfig)
    student_dir = Path(cfg.student.removeprefix("local:"))
    if cfg.out is None and not student_dir.is_dir():
        raise ConfigError(f"--out: needed when --student {cfg.student} is not a folder (by "
                          "default eval.json goes beside a trained student)")
    out = cfg.out or student_dir
    # new, empty, an earlier eval's, or beside a trained student (never over its files)
    from synth.train.variants import check_compare

    compare = check_compare(cfg.compare)
    claim_out_dir(out, "synth eval", default=None if cfg.out else "the student's folder")
    from synth import rows as R
    from synth.records import Prompt
    from synth.train import data as D
    from synth.train.student import load_pretrained, param_count, shared_vocab_size
    from synth.train.trainer import pick_device

    got = R.read_rows(cfg.data, purpose="eval")
    path = got.path
    rows = got.rows
    if cfg.limit:  # the first N source prompts, every row of each
        first = set(list(dict.fromkeys(R.source_key(r) for r in rows))[:cfg.limit])
        rows = [r for r in rows if R.source_key(r) in first]
    units = task_units(rows, path=path) if cfg.task != "none" else []
    answered = [r for r in rows if _answered(r)]
    if not answered and not units:
        raise ConfigError(f"--data {cfg.data}: no row with a teacher answer and no prompt "
                          "with a reference: nothing to compare the models on")
    device = pick_device(cfg.device)
    student = load_pretrained(cfg.student)
    teacher = load_pretrained(cfg.teacher)
    D.ensure_chat_template(student.tokenizer)
    D.ensure_chat_template(teacher.tokenizer)
    examples, dropped = D.build_examples(D.TrainRows(answered, path, got.where.kind),
                                         student.tokenizer,
                                         reasoning=cfg.reasoning, max_len=cfg.max_len) \
        if answered else ([], {})
    why_not = _same_vocab(student, teacher)
    student.model.to(device).eval()
    teacher.model.to(device).eval()
    pad = student.tokenizer.pad_token_id
    result: dict[str, Any] = {
        "student": cfg.student, "teacher": cfg.teacher, "data": str(path),
        "rows": len(rows), "answered_rows": len(answered), "examples": len(examples),
        "dropped": dropped,
        "params": {"student": param_count(student.model), "teacher": param_count(teacher.model)},
    }
    result["params"]["ratio"] = round(result["params"]["student"] /
                                      max(1, result["params"]["teacher"]), 4)
    if examples:
        result["tokens"] = token_metrics(
            student.model, teacher.model, examples, batch_size=cfg.batch_size,
            pad_id=pad if pad is not None else 0, device=device, shared=why_not is None,
            vocab=shared_vocab_size(student.model, teacher.model))
        if why_not:
            result["tokens"]["kl"] = None
            result["tokens"]["note"] = f"KL and top-1 agreement not computed: {why_not}"
    else:
        result["tokens"] = {"target_tokens": 0, "student_loss": None, "student_ppl": None,
                            "note": "no row holds a teacher answer to score"}
    # generation: free the training-style copies first, LocalTeacher loads its own
    student_spec = str(student_dir) if student_dir.is_dir() else cfg.student.removeprefix(
        "local:")
    teacher_spec = cfg.teacher.removeprefix("local:")
    del student, teacher
    if units:
        prompts = [Prompt(id=u.key, messages=u.messages) for u in units]
    else:  # no reference: the answers still measure generation speed
        seen: dict[str, Prompt] = {}
        for r in answered:
            seen.setdefault(R.source_key(r), Prompt(id=R.source_key(r),
                                                    messages=R.conversation(r, path=path).prompt))
        prompts = list(seen.values())[:64]
    gen = dict(max_new_tokens=cfg.max_new_tokens, device=device, batch_size=cfg.batch_size * 4)
    if cfg.cascade and not units:
        raise ConfigError("--cascade: no held-out prompt has a reference, so the routed "
                          "answers cannot be scored")
    if compare and not units:
        raise ConfigError("--compare: no held-out prompt has a reference, so the versions "
                          "cannot be scored")
    s_ans, s_speed = answer_prompts(student_spec, prompts, confidence=cfg.cascade, **gen)
    t_ans, t_speed = answer_prompts(teacher_spec, prompts, **gen)
    result["speed"] = {"student": s_speed, "teacher": t_speed,
                       "speedup": round(s_speed["gen_tokens_per_s"] /
                                        max(1e-9, t_speed["gen_tokens_per_s"]), 3)}
    if units:
        refs = [u.reference for u in units]
        s_out = check_answers(s_ans, refs, cfg.task, max_new_tokens=cfg.max_new_tokens)
        t_out = check_answers(t_ans, refs, cfg.task, max_new_tokens=cfg.max_new_tokens)
        sa, ta = _accuracy(s_out), _accuracy(t_out)
        n = len(units)
        result["task"] = {
            "rows": n, "n": n,
            "denominator": "every held-out source prompt with a reference, counted once",
            "source_rows": sum(u.rows for u in units),
            "student": sa, "teacher": ta,
            "retained": sa["accuracy"] / ta["accuracy"] if ta["accuracy"] else None,
            "agreement": sum(a == b for (a, _), (b, _) in zip(s_out, t_out)) / n,
            "both_correct": sum(a == b == "correct" for (a, _), (b, _) in zip(s_out, t_out)),
            "only_student": sum(a == "correct" != b for (a, _), (b, _) in zip(s_out, t_out)),
            "only_teacher": sum(b == "correct" != a for (a, _), (b, _) in zip(s_out, t_out)),
            "examples": [{"prompt": u.key, "reference": str(u.reference)[:200],
                          "student": (sa_.text or "")[:300], "student_verdict": so[0],
                          "student_reason": so[1], "teacher": (ta_.text or "")[:300],
                          "teacher_verdict": to[0], "teacher_reason": to[1]}
                         for u, sa_, ta_, so, to in list(zip(units, s_ans, t_ans, s_out,
                                                              t_out))[:20]],
        }
        if cfg.cascade:
            result["cascade"] = _cascade(cfg, units, s_ans, t_ans, s_out, t_out, s_speed)
        if compare:
            result["variants"] = _variants(cfg, compare, Path(student_spec), prompts, refs, gen,
                                           s_ans, s_out, s_speed, t_out, ta["accuracy"])
    else:
        result["task"] = None
    make_out_dir(out)
    if units:
        # every prompt's two answers and verdicts, so any figure above can be audited
        lines = (json.dumps({"prompt": u.key, "reference": u.reference,
                             "messages": u.messages,
                             "student": {"answer": sa_.raw, "finish_reason": sa_.finish_reason,
                                         "verdict": so[0], "reason": so[1],
                                         "confidence": sa_.confidence},
                             "teacher": {"answer": ta_.raw, "finish_reason": ta_.finish_reason,
                                         "verdict": to[0], "reason": to[1]}},
                            ensure_ascii=False, default=str)
                 for u, sa_, ta_, so, to in zip(units, s_ans, t_ans, s_out, t_out))
        write_atomic(out / "answers.jsonl", "".join(line + "\n" for line in lines))
        result["task"]["answers"] = str(out / "answers.jsonl")
    if result.get("variants"):  # size against accuracy, beside eval.json
        from synth.train.plot import variants_plot

        write_atomic(out / "variants.png", variants_plot(
            result["variants"]["rows"], result["task"]["teacher"]["accuracy"]))
        result["variants"]["plot"] = str(out / "variants.png")
    if result.get("cascade"):  # the curve as a picture, beside eval.json
        from synth.train.plot import cascade_plot

        write_atomic(out / "cascade.png", cascade_plot(result["cascade"]))
        result["cascade"]["plot"] = str(out / "cascade.png")
    write_atomic(out / "eval.json", json.dumps(result, indent=1, default=str))
    result["path"] = str(out / "eval.json")
    return result


def _cascade(cfg: EvalConfig, units: list, s_ans: list, t_ans: list, s_out: list,
             t_out: list, s_speed: dict) -> dict[str, Any]:
    """eval.json's ``cascade``: the curve and the threshold on the dev half, what it does on
    the test half (:mod:`synth.train.cascade`)."""
    from synth.train import cascade as C

    spec = cfg.cascade_price or cfg.teacher
    price = C.teacher_price(spec, cfg.price_file)
    t_usd = None
    if price is not None:
        costs = [price.cost(a.input_tokens, a.output_tokens) for a in t_ans]
        known = [c for c in costs if c is not None]
        t_usd = sum(known) / len(known) if known else None
    s_sec = s_speed["gen_s"] / max(1, len(s_ans))
    s_usd = None if cfg.student_usd_per_hour is None else s_sec * cfg.student_usd_per_hour / 3600
    sides = C.split_dev_test([u.key for u in units])
    part: dict[str, tuple[list, list, list]] = {"dev": ([], [], []), "test": ([], [], [])}
    for side, a, so, to in zip(sides, s_ans, s_out, t_out):
        c, s_ok, t_ok = part[side]
        c.append(a.confidence)
        s_ok.append(so[0] == "correct")
        t_ok.append(to[0] == "correct")
    dev = C.sweep(*part["dev"], teacher_usd=t_usd, student_usd=s_usd,
                  target=cfg.cascade_target)
    chosen = dev["chosen"]
    test = C.route(*part["test"], chosen["threshold"], teacher_usd=t_usd,
                   student_usd=s_usd) if chosen else None
    return {"signal": "mean token logprob of the student's greedy answer",
            # what chose the threshold: `synth estimate` uses the share only for these
            "settings": {"target": cfg.cascade_target, "price": cfg.cascade_price,
                         "student_usd_per_hour": cfg.student_usd_per_hour},
            "priced_as": spec if price is not None else None,
            "teacher_usd_per_request": t_usd, "student_s_per_request": round(s_sec, 4),
            "student_usd_per_request": s_usd, "dev": dev, "test": test}


def _variants(cfg: EvalConfig, compare: list[Path], student: Path, prompts: list,
              refs: list, gen: dict[str, Any], s_ans: list, s_out: list, s_speed: dict,
              t_out: list, t_acc: float | None) -> dict[str, Any]:
    """eval.json's ``variants``: the student as trained, then each ``--compare`` version,
    answering the same prompts (:mod:`synth.train.variants`)."""
    from synth.train.variants import variant_row

    common = dict(teacher_outcomes=t_out, teacher_accuracy=t_acc, student_answers=s_ans)
    rows = [variant_row("student", student if student.exists() else None, s_ans,
                        s_out, s_speed, **common)]
    for path in compare:  # as the student was asked (with logprobs under --cascade)
        ans, speed = answer_prompts(str(path), prompts, confidence=cfg.cascade, **gen)
        out = check_answers(ans, refs, cfg.task, max_new_tokens=cfg.max_new_tokens)
        rows.append(variant_row(path.name, path, ans, out, speed, **common))
    return {"rows": rows, "tokens_per_s": "through transformers on this machine: a GGUF is "
            "dequantised on load, so it runs at the student's own speed here"}


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
    t.add_row("held-out loss / token", f(tk.get("student_loss")), f(tk.get("teacher_loss")))
    t.add_row("perplexity", f(tk.get("student_ppl")), f(tk.get("teacher_ppl")))
    t.add_row("KL(teacher‖student) / token", f(tk.get("kl")), "")
    t.add_row("top-1 agreement", f(tk.get("top1_agreement"), True), "")
    task = result.get("task")
    if task:
        s, te = task["student"], task["teacher"]
        t.add_row(f"task accuracy (n = {task['n']} prompts)", f(s["accuracy"], True),
                  f(te["accuracy"], True))
        t.add_row("correct / wrong / unverifiable",
                  f"{s['correct']} / {s['wrong']} / {s['unverifiable']}",
                  f"{te['correct']} / {te['wrong']} / {te['unverifiable']}")
        t.add_row("teacher quality retained", f(task["retained"], True), "")
        t.add_row("same verdict as the teacher", f(task["agreement"], True), "")
    t.add_row("generation tokens/s", f"{sp['student']['gen_tokens_per_s']:,.1f}",
              f"{sp['teacher']['gen_tokens_per_s']:,.1f}")
    t.add_row("parameters", f(ps["student"]), f(ps["teacher"]))
    Console(stderr=False).print(t)
    if result.get("variants"):
        _print_variants(result["variants"]["rows"], f)
    cas = result.get("cascade")
    if cas:
        _print_cascade(cas, f)
    print(f"→ {result['path']}")


def _print_variants(rows: list[dict[str, Any]], f: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"the student's versions on the same {rows[0]['n']} prompts "
                    "(tokens/s through transformers: a GGUF is dequantised on load)")
    for c in ("version", "format", "MiB", "tok/s", "accuracy", "of teacher",
              "verdict = teacher", "text = student"):
        t.add_column(c)
    for r in rows:
        mib = "n/a" if r["bytes"] is None else f"{r['bytes'] / 2**20:,.1f}"
        t.add_row(r["name"], r["format"] or "n/a", mib, f"{r['tokens_per_s']:,.1f}",
                  f(r["accuracy"], True), f(r["retained"], True), f(r["agreement"], True),
                  f(r["same_as_student"], True))
    Console(stderr=False).print(t)


def _print_cascade(cas: dict[str, Any], f: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    dev, test = cas["dev"], cas["test"]
    t = Table(title=f"cascade on the dev half (n = {dev['n']}): {cas['signal']}")
    for c in ("threshold", "teacher sees", "accuracy", "of teacher", "cost / 1k requests"):
        t.add_column(c)
    from synth.train.cascade import curve_sample

    for p in curve_sample(dev["points"]):
        mark = " ←" if dev["chosen"] is p else ""
        cost = "n/a" if p["cost_per_1k_usd"] is None else f"${p['cost_per_1k_usd']:.4f}"
        thr = p["threshold"] if isinstance(p["threshold"], str) else f"{p['threshold']:.3f}"
        t.add_row(thr + mark, f(p["teacher_share"], True), f(p["accuracy"], True),
                  f(p["retained"], True), cost)
    Console(stderr=False).print(t)
    if test is None:
        print("too few prompts to split into a dev and a test half" if not dev["n"] else
              f"no threshold keeps {dev['target']:.0%} of the teacher's accuracy on the dev "
              "half short of sending the teacher everything")
        return
    cost = "" if test["cost_per_1k_usd"] is None else (
        f"; ${test['cost_per_1k_usd']:.4f} per 1k requests against "
        f"${test['teacher_only_per_1k_usd']:.4f} teacher-only ({f(test['saving'], True)} saved)")
    print(f"chosen threshold {test['threshold']} on the test half (n = {test['n']}): "
          f"accuracy {f(test['accuracy'], True)} ({f(test['retained'], True)} of the "
          f"teacher's {f(test['teacher_accuracy'], True)}; student alone "
          f"{f(test['student_accuracy'], True)}), the teacher sees "
          f"{f(test['teacher_share'], True)}{cost}")
