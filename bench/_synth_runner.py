"""synth side of the trainer benchmark: one ``synth.train`` run in this process, numbers as
JSON in the same shape as ``bench/_trl_runner.py`` writes.

    python bench/_synth_runner.py --mode sft|kl|offline --student DIR [--teacher DIR] \\
        --data ROWS --out RESULT.json --lr 5e-5 --batch-size 8 --max-len 256 --max-steps 50

``--mode kl`` is online KD (generalised JSD with ``--beta``, pure KD: ``--loss kl``), the
setting TRL's GKDTrainer runs with ``lmbda=0``; ``--mode offline`` reads the rows' stored
top-K logprobs (ROWS must be a run directory or parquet with a ``logprobs`` column).

Measured as the user runs it: ``train_s`` is the training loop (``synth.train``'s own clock:
batches, forward, backward, optimiser, the log), ``wall_s`` the whole process: imports,
model load, tokenising, training, the final checkpoint, the saved model, loss.png and model
card (TRL's run saves nothing). Intermediate checkpoints are off (``save_every`` = steps), as
TRL's run has ``save_strategy="no"``.
"""

from __future__ import annotations

import time

T_START = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402


class _StepMemory(threading.Thread):
    """Peak RSS while the training loop runs (CPU): sampled every 2 ms from the moment
    ``train_log.jsonl`` exists (opened right before the first step) until the final
    outputs are staged. ``ru_maxrss`` alone would report model loading, where safetensors'
    mapped pages and the copied tensors are both resident for a moment."""

    def __init__(self, out: str):
        super().__init__(daemon=True)
        self.out, self.peak, self.stop = out, 0, threading.Event()

    def run(self) -> None:
        page = os.sysconf("SC_PAGE_SIZE")
        log = os.path.join(self.out, "train_log.jsonl")
        while not self.stop.is_set():
            if os.path.exists(log):
                if any(n.startswith(".staging-") for n in os.listdir(self.out)):
                    return
                with open("/proc/self/statm") as f:
                    self.peak = max(self.peak, int(f.read().split()[1]) * page)
            time.sleep(0.002)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=("sft", "kl", "offline"), required=True)
    ap.add_argument("--student", required=True)
    ap.add_argument("--teacher")
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--grad-accum", type=int, default=1)
    ap.add_argument("--max-len", type=int, default=256)
    ap.add_argument("--max-steps", type=int, required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--warmup-ratio", type=float, default=0.0)
    ap.add_argument("--scheduler", choices=("constant", "linear", "cosine"), default="constant")
    ap.add_argument("--beta", type=float, default=0.5)
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--max-grad-norm", type=float, default=1.0)
    ap.add_argument("--packing", action="store_true")
    ap.add_argument("--keep", help="keep the output directory here (default: deleted)")
    args = ap.parse_args(argv)

    import torch

    import synth

    out = args.keep or os.path.join(tempfile.mkdtemp(prefix="synth_bench_"), "student")
    kw = dict(data=args.data, student=args.student, out=out, lr=args.lr,
              batch_size=args.batch_size, grad_accum=args.grad_accum, max_len=args.max_len,
              max_steps=args.max_steps, seed=args.seed, warmup=args.warmup_ratio,
              scheduler=args.scheduler, weight_decay=0.0, packing=args.packing,
              max_grad_norm=args.max_grad_norm or None, save_every=args.max_steps,
              shuffle=False, progress=False)  # file order: the bench shuffles the rows once
    if args.mode == "sft":
        kw.update(loss="sft")
    elif args.mode == "kl":
        kw.update(loss="kl", teacher=args.teacher, kl="jsd", beta=args.beta,
                  temperature=args.temperature)
    else:
        kw.update(loss="kl", kd="offline", kl="jsd", beta=args.beta, top_k_mass="tail")
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    watch = _StepMemory(out)
    watch.start()
    try:
        res = synth.train(**kw)
    finally:
        watch.stop.set()
        watch.join()
    s = res.summary
    logs = [json.loads(x) for x in open(os.path.join(out, "train_log.jsonl"))
            if '"split"' not in x]
    losses = [x["loss"] for x in logs]
    tail = losses[-max(1, len(losses) // 10):]
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = {
        "runner": "synth", "mode": args.mode, "tokens": s["tokens"],
        "loss_tokens": sum(x["target_tokens"] for x in logs), "train_s": s["train_s"],
        "tokens_per_s": s["tokens"] / s["train_s"], "losses": losses,
        "kl": [x.get("kl") for x in logs],
        "final_loss": sum(tail) / len(tail), "steps": s["steps"],
        "peak_rss_mb": rss_kb / 1024 if sys.platform != "darwin" else rss_kb / 2**20,
        "train_peak_rss_mb": watch.peak / 2**20 if watch.peak else None,
        "cuda_peak_mb": torch.cuda.max_memory_allocated() / 2**20
        if torch.cuda.is_available() else None,
        "device": s["device"], "precision": s["precision"], "rows": s["data"]["rows"],
        "versions": {"synth": synth.__version__, "torch": torch.__version__},
        "args": vars(args),
    }
    result["wall_s"] = time.perf_counter() - T_START
    if not args.keep:
        shutil.rmtree(os.path.dirname(out), ignore_errors=True)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1)
    print(f"synth {args.mode}: {result['steps']} steps, {result['tokens']} tokens in "
          f"{result['train_s']:.2f}s = {result['tokens_per_s']:.0f} tok/s, final loss "
          f"{result['final_loss']:.4f}, peak rss {result['peak_rss_mb']:.0f} MB, "
          f"wall {result['wall_s']:.1f}s")
    return result


if __name__ == "__main__":
    main()
