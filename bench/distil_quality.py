"""Distillation quality: the embedded SmolLM2-135M-Instruct teacher into a half-depth student
cut from it, on a narrow task with checkable answers, scored by ``synth eval`` itself.

    python bench/distil_quality.py [--family noun_letter] [--layers 15] [--seed 0]

The task is a family of ``bench/focused_tasks.py`` (default: the first letter of a common
noun): its ``train`` split (400 prompts) is what the teacher answers for training, its
``test`` split (150 prompts, words never in train) is the held-out set. No setting of this
bench was chosen on the test split: the students train with ``synth train``'s defaults,
which were chosen on the ``dev`` split (``bench/defaults_sweep.py``, bench/README.md).

1. The teacher answers both splits (greedy, top-20 logprobs stored, through ``synth
   generate``: cached run directories under ``bench/results/quality/``).
2. Students cut to ``--layers`` of the teacher's 30 layers train on the teacher's training
   answers (all of them, right or wrong: imitation is what is measured), with the defaults
   and three losses: ``sft``, ``kl`` (online, the full teacher's logits) and ``kl`` offline
   (the stored top-20, no teacher forward pass).
3. ``synth eval`` compares each with the teacher on the test split: task accuracy over the
   same denominator (every test prompt; an empty or cut-off answer is wrong), the share of
   the teacher's accuracy kept, teacher top-1 agreement and per-token KL on the teacher's
   test answers, generation tokens/s and parameters. The untrained cut student is scored
   the same way, for scale.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
OUT = HERE / "results" / "quality"

import focused_tasks  # noqa: E402


def teacher_answers(name: str, items: list[dict], max_tokens: int) -> Path:
    import synth

    OUT.mkdir(parents=True, exist_ok=True)
    src = OUT / f"{name}.jsonl"
    src.write_text("".join(json.dumps({"id": it["id"], "prompt": it["prompt"],
                                       "reference": it["reference"]}) + "\n"
                           for it in items))
    run = OUT / f"teacher-{name}"
    synth.generate(input=src, teacher="local:smollm2-135m-instruct", out=run,
                   max_tokens=max_tokens, logprobs=20, progress=False)
    return run


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--family", default="noun_letter", choices=sorted(focused_tasks.FAMILIES))
    ap.add_argument("--layers", default="15")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--losses", default="sft,kl,kl-offline")
    a = ap.parse_args()
    t0 = time.perf_counter()
    import synth
    from synth.models import EMBEDDED_MODELS, load_model, model_cache_dir

    load_model("smollm2-135m-instruct")
    teacher = str(model_cache_dir(EMBEDDED_MODELS["smollm2-135m-instruct"].sha256))
    train_run = teacher_answers(f"{a.family}-train", focused_tasks.items(a.family, "train"),
                                a.max_tokens)
    test_run = teacher_answers(f"{a.family}-test", focused_tasks.items(a.family, "test"),
                               a.max_tokens)
    print(f"teacher answers ready ({time.perf_counter() - t0:.0f}s)", flush=True)

    def evaluate(student: str, name: str) -> dict:
        ev = synth.evaluate(student=student, teacher=teacher, data=test_run,
                            out=OUT / f"eval-{name}", max_new_tokens=a.max_tokens,
                            progress=False)
        print(f"{name}: accuracy {ev['task']['student']['accuracy']:.1%} vs teacher "
              f"{ev['task']['teacher']['accuracy']:.1%} (n = {ev['task']['n']}) "
              f"({time.perf_counter() - t0:.0f}s)", flush=True)
        return ev

    cut = OUT / f"cut-{a.layers}"
    if not (cut / "config.json").is_file():
        from synth.train.student import cut_student, load_pretrained

        s = cut_student(load_pretrained(teacher), a.layers)
        s.model.save_pretrained(cut)
        s.tokenizer.save_pretrained(cut)
    results = {"cut, untrained": evaluate(str(cut), "cut")}
    train_info = {}
    for name in a.losses.split(","):
        out = OUT / f"student-{name}"
        shutil.rmtree(out, ignore_errors=True)
        loss = name.split("-")[0]
        kw = dict(data=train_run, student=f"from-teacher:layers={a.layers}", teacher=teacher,
                  loss=loss, seed=a.seed, out=out, progress=False)
        if name.endswith("offline"):
            kw["kd"] = "offline"
        r = synth.train(**kw)
        train_info[name] = {k: r.summary[k] for k in ("steps", "epochs", "lr", "train_s",
                                                      "tokens_per_s")}
        print(f"{name}: {r.summary['steps']} steps, {r.summary['epochs']} epochs, lr "
              f"{r.summary['lr']}, {r.summary['train_s']:.0f}s", flush=True)
        results[name] = evaluate(str(out), name)
    wall = time.perf_counter() - t0
    first = next(iter(results.values()))
    tacc = first["task"]["teacher"]["accuracy"]
    print(f"\n{a.family}, test split, n = {first['task']['n']} prompts; teacher "
          f"{tacc:.1%} ({first['task']['teacher']['correct']} correct)")
    print(f"{'student':16} {'accuracy':>9} {'kept':>7} {'top-1 agr':>10} {'KL/token':>9} "
          f"{'gen tok/s':>10} {'train s':>8}")
    for k, ev in results.items():
        t, tk = ev["task"], ev["tokens"]
        agr = tk.get("top1_agreement")
        print(f"{k:16} {t['student']['accuracy']:>9.1%} {t['retained']:>7.1%} "
              f"{agr:>10.1%} {tk.get('kl') or 0:>9.3f} "
              f"{ev['speed']['student']['gen_tokens_per_s']:>10,.0f} "
              f"{train_info.get(k, {}).get('train_s', 0):>8.0f}")
    print(f"wall {wall / 60:.1f} min")
    (OUT / "quality.json").write_text(json.dumps(
        {"args": vars(a), "wall_s": wall, "train": train_info,
         "results": {k: {"task": {kk: v for kk, v in ev["task"].items() if kk != "examples"},
                         "tokens": ev["tokens"], "speed": ev["speed"]}
                     for k, ev in results.items()}}, indent=1, default=str))


if __name__ == "__main__":
    main()
