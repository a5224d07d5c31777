"""The trainer against TRL: same model, data, order and hyperparameters, in one run.

    python bench/train.py [--steps 20] [--batch-size 4] [--rows 160]

1. Data: the embedded SmolLM2-135M-Instruct teacher answers ``--rows`` instructions
   (greedy, top-20 logprobs stored for the offline run) through ``synth generate``; the run
   directory is cached under ``bench/results/train-data`` (a second bench run sends nothing).
   Rows are written once, shuffled, and both trainers read them in that order (TRL with
   ``train_sampling_strategy="sequential"``, synth with ``--no-shuffle``), so the two loss
   curves can be compared step by step.
2. SFT: ``trl.SFTTrainer`` vs ``synth.train(loss="sft")`` on the full 135M model.
3. KL, online: ``GKDTrainer`` (``lmbda=0``: no on-policy generation, JSD β = 0.5) vs
   ``synth.train(loss="kl", kl="jsd")``: the student is the teacher cut to half depth
   (``from-teacher:layers=15``, saved once as a directory both read), the teacher the full
   model.
4. KL, offline: synth from the stored top-20 logprobs (no teacher model in memory).
5. Memory: synth SFT vs synth KL at two packed sequence lengths (every row full), peak memory
   of each process (RSS on CPU, ``max_memory_allocated`` on CUDA).

Every run is its own process (``bench/_trl_runner.py``, ``bench/_synth_runner.py``), so peak
memory is per run. tokens/s counts real (non-padding) input tokens over the training loop;
the whole process's wall time is printed beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"

TOPICS = ["rain", "volcanoes", "the moon", "bread", "bicycles", "honey bees", "glaciers",
          "batteries", "coral reefs", "chess", "the internet", "vaccines", "rainbows",
          "tea", "bridges", "owls", "solar panels", "maps", "paper", "clocks"]
ASKS = ["Explain {t} to a ten-year-old in two sentences.",
        "Give three facts about {t}.",
        "Write a short poem about {t}.",
        "What is the most surprising thing about {t}?",
        "Describe {t} in one paragraph.",
        "List two pros and two cons of {t}.",
        "Write a haiku about {t}.",
        "Why do people care about {t}?"]


def make_data(rows: int, max_tokens: int) -> tuple[Path, Path]:
    """The teacher's answers (cached run directory) and ROWS.jsonl in bench order."""
    import synth

    RESULTS.mkdir(exist_ok=True)
    prompts = RESULTS / "train-prompts.jsonl"
    items = [a.format(t=t) for t in TOPICS for a in ASKS][:rows]
    prompts.write_text("".join(json.dumps({"id": f"q{i}", "prompt": p}) + "\n"
                               for i, p in enumerate(items)))
    run = RESULTS / "train-data"
    synth.generate(input=prompts, teacher="local:smollm2-135m-instruct", out=run,
                   max_tokens=max_tokens, logprobs=20, system="You are a helpful assistant.",
                   progress=False)
    import pyarrow.parquet as pq

    table = pq.read_table(run / "traces.parquet")
    rows_ = [r for r in table.to_pylist() if r["status"] == "ok" and r["response"]]
    random.Random(0).shuffle(rows_)
    shuffled = RESULTS / "train-rows.parquet"
    import pyarrow as pa

    pq.write_table(pa.Table.from_pylist(rows_, schema=table.schema), shuffled)
    jsonl = RESULTS / "train-rows.jsonl"
    jsonl.write_text("".join(json.dumps({"id": r["id"], "messages": r["messages"],
                                         "response": r["response"]}) + "\n" for r in rows_))
    return jsonl, shuffled


def model_dirs() -> tuple[Path, Path]:
    """The teacher's HF directory and the half-depth student cut from it, saved once."""
    from synth.models import EMBEDDED_MODELS, load_model, model_cache_dir

    load_model("smollm2-135m-instruct")  # converts once into the cache
    teacher = model_cache_dir(EMBEDDED_MODELS["smollm2-135m-instruct"].sha256)
    student = RESULTS / "smollm2-cut15"
    if not (student / "config.json").is_file():
        from synth.train.student import cut_student, load_pretrained

        s = cut_student(load_pretrained(str(teacher)), "15")
        s.model.save_pretrained(student)
        s.tokenizer.save_pretrained(student)
    return teacher, student


def run(runner: str, name: str, args: list[str]) -> dict:
    out = RESULTS / f"train-{name}.json"
    cmd = [sys.executable, str(HERE / f"_{runner}_runner.py"), *args, "--out", str(out)]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if p.returncode:
        sys.exit(f"{name} failed:\n{p.stdout}\n{p.stderr[-4000:]}")
    print("  " + p.stdout.strip().splitlines()[-1], flush=True)
    return json.loads(out.read_text())


def peak(r: dict) -> float:
    return r["cuda_peak_mb"] if r.get("cuda_peak_mb") else r["peak_rss_mb"]


def step_peak(r: dict) -> float:
    """Peak memory while training (CUDA: allocated; CPU: RSS sampled during the steps)."""
    return r["cuda_peak_mb"] if r.get("cuda_peak_mb") else r["train_peak_rss_mb"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--rows", type=int, default=160)
    ap.add_argument("--max-tokens", type=int, default=64, help="teacher answer length")
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--mem-lengths", default="256,1024")
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--only-memory", action="store_true")
    a = ap.parse_args()
    rows, parquet = make_data(a.rows, a.max_tokens)
    teacher, student = model_dirs()
    common = ["--lr", str(a.lr), "--batch-size", str(a.batch_size), "--max-len", "512",
              "--max-steps", str(a.steps), "--seed", "0", "--scheduler", "constant"]
    print(f"{a.rows} rows, {a.steps} steps of batch {a.batch_size}, lr {a.lr}")
    res = {}
    if a.only_memory:
        a.skip_memory = False
    else:
        res.update(compare(a, rows, parquet, teacher, student, common))
    kd = ["--student", str(student), "--teacher", str(teacher), "--beta", "0.5"]
    if not a.skip_memory:
        for n in map(int, a.mem_lengths.split(",")):
            mem = ["--lr", str(a.lr), "--batch-size", "2", "--max-len", str(n), "--max-steps",
                   "3", "--packing", "--data", str(rows)]
            res[f"mem_sft_{n}"] = run("synth", f"mem-sft-{n}", ["--mode", "sft", "--student",
                                                               str(student), *mem])
            res[f"mem_kl_{n}"] = run("synth", f"mem-kl-{n}", ["--mode", "kl", *kd, *mem])
    report(a, res)


def compare(a, rows, parquet, teacher, student, common) -> dict:
    res = {}
    res["trl_sft"] = run("trl", "trl-sft", ["--mode", "sft", "--student", str(teacher),
                                            "--data", str(rows), *common])
    res["synth_sft"] = run("synth", "synth-sft", ["--mode", "sft", "--student", str(teacher),
                                                  "--data", str(rows), *common])
    kd = ["--student", str(student), "--teacher", str(teacher), "--beta", "0.5"]
    res["trl_gkd"] = run("trl", "trl-gkd", ["--mode", "gkd", *kd, "--data", str(rows),
                                            *common])
    res["synth_kl"] = run("synth", "synth-kl", ["--mode", "kl", *kd, "--data", str(rows),
                                                *common])
    res["synth_offline"] = run("synth", "synth-offline", [
        "--mode", "offline", "--student", str(student), "--data", str(parquet), *common])
    return res


def report(a, res: dict) -> None:
    def ratio(s, t):
        return s["tokens_per_s"] / t["tokens_per_s"]

    def dloss(s, t):
        return (s["final_loss"] - t["final_loss"]) / t["final_loss"]

    print()
    print(f"{'':18} {'tok/s':>8} {'final loss':>11} {'peak MB':>9} {'wall s':>7}")
    for k, r in res.items():
        if not k.startswith("mem"):
            print(f"{k:18} {r['tokens_per_s']:>8.0f} {r['final_loss']:>11.4f} "
                  f"{peak(r):>9.0f} {r['wall_s']:>7.1f}")
    for s, t in (("synth_sft", "trl_sft"), ("synth_kl", "trl_gkd")):
        if s not in res:
            continue
        S, T = res[s], res[t]
        print(f"{s} / {t}: tokens/s {ratio(S, T):.2f}x (goal >= 1.3), final loss "
              f"{dloss(S, T):+.2%} (goal within 2%), peak memory {peak(S):.0f} vs "
              f"{peak(T):.0f} MB ({peak(S) / peak(T):.2f}x, goal <= 1), loss tokens "
              f"{S['loss_tokens']} vs {T['loss_tokens']}")
    if not a.skip_memory:
        for n in map(int, a.mem_lengths.split(",")):
            s, k = res[f"mem_sft_{n}"], res[f"mem_kl_{n}"]
            print(f"memory at length {n}: during the steps SFT {step_peak(s):.0f} MB, KL "
                  f"{step_peak(k):.0f} MB ({step_peak(k) / step_peak(s):.2f}x, goal <= 1.5); "
                  f"whole process (model loading included) {peak(s):.0f} vs {peak(k):.0f} "
                  f"MB ({peak(k) / peak(s):.2f}x)")
    name = "train-memory.json" if a.only_memory else "train.json"
    (RESULTS / name).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
