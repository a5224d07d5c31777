"""Peer side of the trainer benchmark: one TRL training run in this process, numbers as JSON.

    python bench/_trl_runner.py --mode sft --student DIR --data ROWS.jsonl --out RESULT.json \\
        --lr 5e-5 --batch-size 8 --grad-accum 1 --max-len 256 --max-steps 50 --seed 0 \\
        --warmup-ratio 0.0 --scheduler constant
    python bench/_trl_runner.py --mode gkd --student DIR --teacher DIR ... --beta 0.5 \\
        --temperature 1.0

Run as a subprocess, one process per run, so ``peak_rss_mb`` / ``cuda_peak_mb`` are per run.

ROWS.jsonl: one object per line, ``messages`` (the prompt, may start with a system message)
and ``response`` (the teacher's answer).

* ``--mode sft``: :class:`trl.SFTTrainer` on a conversational prompt-completion dataset
  (``{"prompt": messages, "completion": [{"role": "assistant", "content": response}]}``) with
  ``completion_only_loss=True``: TRL tokenises the prompt (with the generation prompt) and
  prompt+completion separately, and the labels of the common prefix are -100.
* ``--mode gkd``: ``trl.experimental.gkd.GKDTrainer`` with ``lmbda=0.0`` (no on-policy
  generation: only the fixed teacher responses) and ``seq_kd=False``. GKD skips SFT's dataset
  preparation and uses ``DataCollatorForChatML`` on ``{"messages": prompt + [assistant]}``,
  which masks the prompt (tokenised with the generation prompt). Generation is guarded: a
  call raises, and ``generate_calls`` in the result must be 0.

Both: ``weight_decay=0``, ``adamw_torch``, no packing / padding-free, no eval, no saving,
``logging_steps=1``, no gradient checkpointing, bf16 only on CUDA (fp32 on CPU), student
(and teacher) loaded with ``AutoModelForCausalLM.from_pretrained(dtype=..., attn_implementation
="sdpa")``. ``--alpha`` is accepted for a common command line but TRL has no such knob.

RESULT.json: ``tokens`` (non-padding input tokens, summed from each training batch's
``attention_mask`` in ``compute_loss``), ``padded_tokens`` (batch elements incl. padding),
``loss_tokens`` (label positions that carry loss, after the causal shift), ``train_s``
(``trainer.train()`` only), ``wall_s`` (from the start of this script, imports and model
loading included), ``tokens_per_s`` (tokens / train_s), ``losses`` (per-step logged loss),
``final_loss`` (mean of the last 10% of losses, at least one), ``peak_rss_mb``,
``cuda_peak_mb`` (``torch.cuda.max_memory_allocated``, or null), ``steps``, versions and the
exact config.
"""

from __future__ import annotations

import time

T_START = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import warnings  # noqa: E402

# Quiet before the heavy imports read them.
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_DISABLED", "true")
warnings.filterwarnings("ignore")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", choices=("sft", "gkd"), required=True)
    ap.add_argument("--student", required=True, help="HF model directory of the student")
    ap.add_argument("--teacher", help="HF model directory of the teacher (gkd)")
    ap.add_argument("--data", required=True, help="ROWS.jsonl: messages + response per line")
    ap.add_argument("--out", required=True, help="RESULT.json to write")
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--grad-accum", type=int, default=1)
    ap.add_argument("--max-len", type=int, default=256)
    ap.add_argument("--max-steps", type=int, required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--warmup-ratio", type=float, default=0.0)
    ap.add_argument("--scheduler", choices=("constant", "linear", "cosine"), default="constant")
    ap.add_argument("--beta", type=float, default=0.5, help="GKD generalised JSD beta")
    ap.add_argument("--temperature", type=float, default=1.0, help="GKD temperature")
    ap.add_argument("--alpha", type=float, default=None, help="accepted, unused (no TRL knob)")
    ap.add_argument("--max-grad-norm", type=float, default=1.0,
                    help="gradient clipping (transformers' default 1.0; 0 disables)")
    args = ap.parse_args(argv)
    if args.mode == "gkd" and not args.teacher:
        ap.error("--mode gkd needs --teacher")
    if not 0.0 <= args.warmup_ratio < 1.0:
        ap.error("--warmup-ratio must be in [0, 1)")
    return args


def read_rows(path: str) -> list[dict]:
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            row = json.loads(line)
            if not isinstance(row.get("messages"), list) or not isinstance(row.get("response"), str):
                raise SystemExit(f"{path}:{n}: a row needs 'messages' (list) and 'response' (str)")
            rows.append(row)
    if not rows:
        raise SystemExit(f"{path}: no rows")
    return rows


def to_examples(rows: list[dict], mode: str) -> list[dict]:
    """SFT: conversational prompt-completion. GKD: one ``messages`` conversation, which is what
    GKD's ``DataCollatorForChatML`` reads (its ``prompt`` key means a pre-rendered string)."""
    out = []
    for row in rows:
        prompt = [{"role": m["role"], "content": m["content"]} for m in row["messages"]]
        answer = [{"role": "assistant", "content": row["response"]}]
        if mode == "sft":
            out.append({"prompt": prompt, "completion": answer})
        else:
            out.append({"messages": prompt + answer})
    return out


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)

    import datasets
    import torch
    import transformers
    import trl
    from transformers import AutoModelForCausalLM, AutoTokenizer, PrinterCallback, TrainerCallback

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    datasets.logging.set_verbosity_error()
    datasets.disable_progress_bars()
    for name in ("trl", "accelerate", "transformers", "datasets", "torch"):
        logging.getLogger(name).setLevel(logging.ERROR)

    cuda = torch.cuda.is_available()
    dtype = torch.bfloat16 if cuda else torch.float32
    transformers.set_seed(args.seed)

    if args.mode == "sft":
        from trl import SFTConfig as Config
        from trl import SFTTrainer as Base
    else:
        try:
            from trl.experimental.gkd import GKDConfig as Config
            from trl.experimental.gkd import GKDTrainer as Base
        except ImportError:  # older TRL: top level
            from trl import GKDConfig as Config
            from trl import GKDTrainer as Base

    class Counting(Base):
        """Counts the training batches' tokens (as device tensors: no extra sync per step)."""

        bench = {"tokens": 0, "padded_tokens": 0, "loss_tokens": 0, "batches": 0}

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if model.training:
                ids = inputs["input_ids"]
                mask = inputs.get("attention_mask")
                b = self.bench
                b["tokens"] = b["tokens"] + (mask.sum() if mask is not None else ids.numel())
                b["padded_tokens"] += ids.numel()
                labels = inputs.get("labels")
                if labels is not None:
                    b["loss_tokens"] = b["loss_tokens"] + (labels[:, 1:] != -100).sum()
                b["batches"] += 1
            return super().compute_loss(model, inputs, return_outputs=return_outputs,
                                        num_items_in_batch=num_items_in_batch)

    class StepTimer(TrainerCallback):
        """Wall seconds per optimizer step (on CUDA only as exact as the per-step log sync)."""

        def __init__(self):
            self.times: list[float] = []
            self.last = 0.0

        def on_train_begin(self, *a, **k):
            self.last = time.perf_counter()

        def on_step_end(self, *a, **k):
            now = time.perf_counter()
            self.times.append(now - self.last)
            self.last = now

    timer = StepTimer()

    t_load = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(args.student)
    if tokenizer.pad_token is None:  # SFTTrainer would fall back to eos; GKD's collator needs one
        tokenizer.pad_token = tokenizer.eos_token
    load_kwargs = {"dtype": dtype, "attn_implementation": "sdpa"}
    student = AutoModelForCausalLM.from_pretrained(args.student, **load_kwargs)
    teacher = None
    if args.mode == "gkd":
        teacher = AutoModelForCausalLM.from_pretrained(args.teacher, **load_kwargs)
        teacher.eval()
    load_s = time.perf_counter() - t_load

    dataset = datasets.Dataset.from_list(to_examples(read_rows(args.data), args.mode))

    out_dir = tempfile.mkdtemp(prefix="trl_bench_")
    cfg_kwargs = dict(
        output_dir=out_dir,
        learning_rate=args.lr,
        per_device_train_batch_size=args.batch_size,
        gradient_accumulation_steps=args.grad_accum,
        max_length=args.max_len,
        max_steps=args.max_steps,
        seed=args.seed,
        data_seed=args.seed,
        warmup_steps=args.warmup_ratio,  # transformers 5: a float in [0, 1) is a ratio
        lr_scheduler_type=args.scheduler,
        weight_decay=0.0,
        optim="adamw_torch",
        max_grad_norm=args.max_grad_norm,
        packing=False,
        padding_free=False,
        assistant_only_loss=False,
        eval_strategy="no",
        save_strategy="no",
        report_to="none",
        logging_steps=1,
        logging_first_step=False,
        dataloader_num_workers=0,
        bf16=cuda,
        fp16=False,
        gradient_checkpointing=False,
        disable_tqdm=True,
        shuffle_dataset=False,
        train_sampling_strategy="sequential",  # file order, as synth's --no-shuffle
        use_liger_kernel=False,
        activation_offloading=False,
        torch_compile=False,
    )
    if args.mode == "sft":
        cfg_kwargs["completion_only_loss"] = True
    else:
        cfg_kwargs.update(lmbda=0.0, seq_kd=False, beta=args.beta,
                          temperature=args.temperature, max_new_tokens=1)
    config = Config(**cfg_kwargs)

    t_prep = time.perf_counter()
    if args.mode == "sft":
        trainer = Counting(model=student, args=config, train_dataset=dataset,
                           processing_class=tokenizer)
    else:
        trainer = Counting(model=student, teacher_model=teacher, args=config,
                           train_dataset=dataset, processing_class=tokenizer)
        generate_calls = [0]

        def no_generation(*a, **k):
            generate_calls[0] += 1
            raise RuntimeError("GKD tried to generate although lmbda=0 and seq_kd=False")

        # training_step calls self.generate_on_policy_outputs when random() <= lmbda or seq_kd
        trainer.generate_on_policy_outputs = no_generation
    trainer.add_callback(timer)
    trainer.remove_callback(PrinterCallback)  # one dict per step on stdout; the result has them
    prep_s = time.perf_counter() - t_prep

    if cuda:
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    trainer.train()
    if cuda:
        torch.cuda.synchronize()
    train_s = time.perf_counter() - t0

    logs = [e for e in trainer.state.log_history if "loss" in e and "train_runtime" not in e]
    losses = [float(e["loss"]) for e in logs]
    tail = losses[-max(1, len(losses) // 10):] if losses else []
    bench = {k: int(v) for k, v in Counting.bench.items()}
    extra_metrics = sorted({k for e in logs for k in e} - {"loss", "step", "epoch"})

    cuda_peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else None
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak_rss_mb = rss_kb / 1024 if sys.platform != "darwin" else rss_kb / 2**20

    result = {
        "runner": "trl",
        "mode": args.mode,
        "trainer": f"{Base.__module__}.{Base.__name__}",
        "tokens": bench["tokens"],
        "padded_tokens": bench["padded_tokens"],
        "loss_tokens": bench["loss_tokens"],
        "batches": bench["batches"],
        "train_s": train_s,
        "tokens_per_s": bench["tokens"] / train_s if train_s > 0 else None,
        "losses": losses,
        "final_loss": sum(tail) / len(tail) if tail else None,
        "grad_norms": [e.get("grad_norm") for e in logs],
        "learning_rates": [e.get("learning_rate") for e in logs],
        "step_s": timer.times,
        "logged_metrics": extra_metrics,
        "steps": trainer.state.global_step,
        "load_s": load_s,
        "prep_s": prep_s,
        "peak_rss_mb": peak_rss_mb,
        "cuda_peak_mb": cuda_peak,
        "device": str(trainer.args.device),
        "dtype": str(dtype).removeprefix("torch."),
        "rows": len(dataset),
        # SFT drops rows that truncation leaves with no loss token; GKD keeps all
        "rows_after_prep": len(trainer.train_dataset),
        "versions": {"trl": trl.__version__, "transformers": transformers.__version__,
                     "torch": torch.__version__, "datasets": datasets.__version__,
                     "python": sys.version.split()[0]},
        "args": vars(args),
        "config": json.loads(json.dumps(config.to_dict(), default=str)),
    }
    if args.mode == "gkd":
        result["generate_calls"] = generate_calls[0]
        if args.alpha is not None:
            result["alpha_ignored"] = args.alpha
    if losses and not all(math.isfinite(x) for x in losses):
        result["warning"] = "non-finite loss"
    result["wall_s"] = time.perf_counter() - T_START

    shutil.rmtree(out_dir, ignore_errors=True)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1)
    print(f"trl {args.mode}: {result['steps']} steps, {result['tokens']} tokens in "
          f"{train_s:.2f}s = {result['tokens_per_s']:.0f} tok/s, final loss "
          f"{result['final_loss']:.4f}, peak rss {peak_rss_mb:.0f} MB, wall {result['wall_s']:.1f}s")
    return result


if __name__ == "__main__":
    main()
