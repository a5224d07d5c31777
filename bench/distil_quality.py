"""Distillation quality: the embedded SmolLM2-135M-Instruct teacher into a half-depth
student cut from it, on a narrow task with checkable answers (``bench/quality_task.py``: the
first letter of a word; held-out words are never trained on).

    python bench/distil_quality.py [--train 400] [--heldout 150] [--epochs 4] [--lr 2e-4]

1. The teacher answers the training prompts and the held-out prompts (greedy, through
   ``synth generate``: cached run directories under ``bench/results/quality/``).
2. The student: ``from-teacher:layers=15`` (15 of 30 layers, evenly spaced, first and last
   kept), saved once, evaluated before any training.
3. Two students trained from it for the same steps on the teacher's training answers (all of
   them, right or wrong: imitation is what is measured): SFT (``--loss sft``) and KL
   (``--loss sft+kl``: 0.5 CE + 0.5 forward KL to the teacher's logits, online;
   ``--kl-loss kl`` for pure KL).
4. Held-out, for the teacher, the cut student and both trained students: task accuracy by
   ``quality_task.check`` on greedy answers, the share of the teacher's accuracy each keeps,
   teacher top-1 agreement and per-token KL on the teacher's held-out answers
   (``synth.train.evaluate``), generation tokens/s and parameter counts.

Goal: trained students keep >= 90% of the teacher's accuracy, and KL is ahead of SFT on top-1
agreement at equal steps; all of it under 15 minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
OUT = HERE / "results" / "quality"

import quality_task  # noqa: E402


def write_prompts(path: Path, items: list[dict]) -> Path:
    path.write_text("".join(json.dumps({"id": it["id"], "prompt": it["prompt"],
                                        "reference": it["reference"]}) + "\n"
                            for it in items))
    return path


def teacher_answers(name: str, items: list[dict], max_tokens: int) -> Path:
    import synth

    run = OUT / f"teacher-{name}"
    synth.generate(input=write_prompts(OUT / f"{name}.jsonl", items),
                   teacher="local:smollm2-135m-instruct", out=run, max_tokens=max_tokens,
                   progress=False)
    return run


def held_metrics(model_dir: str, teacher_dir: str, held_run: Path, items: list[dict],
                 max_tokens: int) -> dict:
    """Accuracy on held-out prompts, generation speed, and (for students) agreement with the
    teacher on its held-out answers."""
    from synth.records import Prompt
    from synth.train import data as D
    from synth.train.evaluate import _answer_all, _token_metrics
    from synth.train.student import load_pretrained, param_count

    prompts = [Prompt(id=it["id"], messages=[{"role": "user", "content": it["prompt"]}])
               for it in items]
    texts, speed = asyncio.run(_answer_all(model_dir, prompts, max_new_tokens=max_tokens,
                                           device="cpu", batch_size=64))
    correct = sum(quality_task.check(t, it["reference"]) for t, it in zip(texts, items))
    out = {"accuracy": correct / len(items), "correct": correct, **speed}
    student = load_pretrained(model_dir)
    out["params"] = param_count(student.model)
    if model_dir != teacher_dir:
        teacher = load_pretrained(teacher_dir)
        rows = D.load_rows(held_run)
        ex, _ = D.build_examples(rows, student.tokenizer)
        out.update(_token_metrics(student.model.eval(), teacher.model.eval(), ex,
                                  batch_size=32, pad_id=student.tokenizer.pad_token_id,
                                  device="cpu", shared=True, vocab=None))
    out["sample"] = texts[:3]
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--train", type=int, default=400)
    ap.add_argument("--heldout", type=int, default=150)
    ap.add_argument("--layers", default="15")
    ap.add_argument("--epochs", type=float, default=4.0)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--max-tokens", type=int, default=24)
    ap.add_argument("--kl-loss", default="sft+kl", choices=("kl", "sft+kl"))
    a = ap.parse_args()
    t0 = time.perf_counter()
    OUT.mkdir(parents=True, exist_ok=True)
    import synth
    from synth.teachers.local import EMBEDDED_MODELS, load_model, model_cache_dir

    load_model("smollm2-135m-instruct")
    teacher_dir = str(model_cache_dir(EMBEDDED_MODELS["smollm2-135m-instruct"].sha256))
    train_items = quality_task.make_items(a.train, seed=0, split="train")
    held_items = quality_task.make_items(a.heldout, seed=0, split="heldout")
    train_run = teacher_answers("train", train_items, a.max_tokens)
    held_run = teacher_answers("heldout", held_items, a.max_tokens)
    t_gen = time.perf_counter() - t0
    print(f"teacher answers: {a.train} train + {a.heldout} held-out in {t_gen:.0f}s",
          flush=True)

    cut = OUT / f"cut-{a.layers}"
    if not (cut / "config.json").is_file():
        from synth.train.student import cut_student, load_pretrained

        s = cut_student(load_pretrained(teacher_dir), a.layers)
        s.model.save_pretrained(cut)
        s.tokenizer.save_pretrained(cut)
    results = {"teacher": held_metrics(teacher_dir, teacher_dir, held_run, held_items,
                                       a.max_tokens),
               "cut": held_metrics(str(cut), teacher_dir, held_run, held_items,
                                   a.max_tokens)}
    print(f"teacher {results['teacher']['accuracy']:.1%}, cut student "
          f"{results['cut']['accuracy']:.1%} ({time.perf_counter() - t0:.0f}s)", flush=True)
    common = dict(data=train_run, student=str(cut), epochs=a.epochs, lr=a.lr,
                  batch_size=a.batch_size, seed=0, progress=False, save_every=10**6)
    train_s = {}
    for name, loss in (("sft", "sft"), ("kl", a.kl_loss)):
        out = OUT / f"student-{name}"
        shutil.rmtree(out, ignore_errors=True)
        kw = dict(common, loss=loss, out=out)
        if loss != "sft":
            kw["teacher"] = teacher_dir
        r = synth.train(**kw)
        train_s[name] = r.summary["train_s"]
        results[name] = held_metrics(str(out), teacher_dir, held_run, held_items,
                                     a.max_tokens)
        results[name]["steps"] = r.summary["steps"]
        results[name]["train_tokens_per_s"] = r.summary["tokens_per_s"]
        print(f"{name}: {r.summary['steps']} steps in {r.summary['train_s']:.0f}s, held-out "
              f"accuracy {results[name]['accuracy']:.1%} "
              f"({time.perf_counter() - t0:.0f}s)", flush=True)
    ta = results["teacher"]["accuracy"]
    wall = time.perf_counter() - t0
    print()
    print(f"{'model':8} {'params':>12} {'accuracy':>9} {'kept':>6} {'top-1 agr':>10} "
          f"{'KL/token':>9} {'gen tok/s':>10}")
    for k, r in results.items():
        kept = r["accuracy"] / ta if ta else float("nan")
        agr = f"{r['top1_agreement']:.1%}" if "top1_agreement" in r else "-"
        kl = f"{r['kl']:.4f}" if "kl" in r else "-"
        print(f"{k:8} {r['params']:>12,} {r['accuracy']:>9.1%} {kept:>6.1%} {agr:>10} "
              f"{kl:>9} {r['gen_tokens_per_s']:>10,.0f}")
    sft, kl = results["sft"], results["kl"]
    print(f"\nkept: SFT {sft['accuracy'] / ta:.1%}, KL {kl['accuracy'] / ta:.1%} (goal >= 90%); "
          f"top-1 agreement KL {kl['top1_agreement']:.1%} vs SFT {sft['top1_agreement']:.1%} "
          f"at {kl['steps']} steps each (goal: KL ahead); wall {wall / 60:.1f} min "
          "(goal < 15)")
    results["wall_s"] = wall
    results["args"] = vars(a)
    (OUT / "quality.json").write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
