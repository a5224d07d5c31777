"""The trainer: setup → train → save, for SFT and KL distillation alike.

One loss covers every method (:mod:`synth.train.losses`): ``alpha · CE + (1 − alpha) · τ² · D``
where ``D`` is the divergence to the teacher, computed from an in-process teacher's logits on
the same batch (online) or from the top-K logprobs stored on the rows (offline). ``--loss sft``
is ``alpha = 1`` (no teacher involved), ``--loss kl`` is ``alpha = 0``.

Read top to bottom:

1. **setup**: check the output directory and the data, load the teacher (if any) and the
   student (or cut the student from the teacher), check their vocabularies, tokenise, split
   off held-out prompts, check memory, wrap LoRA, build the optimiser and schedule, restore a
   checkpoint with ``--resume``;
2. **train**: for each optimiser step, its ``grad_accum`` micro-batches; each micro-batch
   loss is a sum over target tokens divided by the token count of the *whole* step, so the
   update equals one batch of ``batch_size · grad_accum`` (a per-micro-batch mean weighs
   short micro-batches too much);
3. **save**: the model (LoRA merged) in Hugging Face format with its tokenizer and chat
   template, ``train_log.jsonl``, ``loss.png``, ``train.json``, and the model card.

The student's output head is never applied to the whole batch: only the positions that
predict an assistant token go through it, in chunks (bounded memory, and no work on prompt
positions).
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synth.errors import ConfigError, OutputError
from synth.io import check_not_input, claim_out_dir, make_out_dir, write_atomic
from synth.train.card import provenance
from synth.train.config import TrainConfig
from synth.train.memory import check_memory, estimate_memory

__all__ = ["train", "TrainResult", "check_teacher_spec"]

log = logging.getLogger(__name__)

#: Settings that do not change the training curve: a resumed run may change them.
_FREE_SETTINGS = {"resume", "progress", "save_every", "keep_checkpoints", "log_every",
                  "memory_limit_gb", "out", "data", "device", "fsdp",
                  "activation_checkpointing"}


@dataclass
class TrainResult:
    out: Path
    summary: dict[str, Any]
    main: bool = True  # rank 0 (the one process that wrote the outputs)


# =========================================================================== setup helpers

def pick_device(name: str) -> str:
    """``--device auto|cpu|cuda`` → the device to use (``auto``: CUDA when present)."""
    import torch

    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is available here")
    return "cuda" if name == "cuda" or (name == "auto" and torch.cuda.is_available()) \
        else "cpu"


def _autocast(device: str, cfg: TrainConfig):
    import torch

    bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and device == "cuda")
    if not bf16:
        return nullcontext, "fp32"
    return (lambda: torch.autocast(device_type=device, dtype=torch.bfloat16)), "bf16"


def check_teacher_spec(spec: str) -> None:
    """Turn away a training teacher that cannot run in-process: a URL, or a ``PROVIDER:MODEL``
    whose provider's traits say it is an API (``in_process`` false). Anything else is a
    model for :func:`~synth.train.student.load_pretrained` to find."""
    from synth.errors import TeacherSpecError
    from synth.teachers import provider_traits

    head = spec.split(":", 1)[0]
    try:
        api = not provider_traits(head).in_process
    except TeacherSpecError:  # no provider of that name: a path or a model name
        api = False
    if api or "://" in spec:
        raise ConfigError(f"--teacher {spec}: a training teacher runs in-process (a HF "
                          "directory, a .gguf or local:NAME). For an API teacher, store its "
                          "top-K logprobs with `synth generate --logprobs K` and train with "
                          "offline KL (no --teacher), or use --loss sft")


def _out_state(out: Path, resume: bool) -> Path | None:
    """Check what ``out`` holds; return the checkpoint to resume from (or None)."""
    ckpts = _checkpoints(out)
    if resume:
        if not ckpts:
            raise ConfigError(f"--resume: {out} holds no checkpoint to resume from (run "
                              "without --resume to start)")
        return ckpts[-1]
    left = [p for p in out.iterdir() if p.name != ".lock"] if out.exists() else []
    if left and not ckpts and all(p.name == "train_log.jsonl" or
                                  (p.name == "checkpoints" and p.is_dir()) for p in left):
        return None  # killed before its first checkpoint: nothing to resume, start again
    if left:
        if ckpts:
            raise ConfigError(f"--out {out}: holds checkpoints of an earlier run; add "
                              "--resume to continue it, or choose another directory")
        raise ConfigError(f"--out {out}: is not empty; choose a new directory (a trained "
                          "model is never overwritten)")
    return None


def _checkpoints(out: Path) -> list[Path]:
    root = out / "checkpoints"
    if not root.is_dir():
        return []
    done = [p for p in root.iterdir() if p.name.startswith("step-") and
            (p / "state.json").is_file()]
    return sorted(done, key=lambda p: int(p.name.split("-")[1]))


def _fingerprint(cfg: TrainConfig, examples: list,
                 processes: int = 1) -> tuple[str, dict[str, Any]]:
    import hashlib

    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in cfg.model_dump().items()
                if k not in _FREE_SETTINGS}
    settings["batch_size"] = cfg.batch_size * processes  # global: any world size resumes
    h = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for ex in examples:
        h.update(ex.ids.tobytes())
        h.update(ex.start.to_bytes(4, "little"))
    return h.hexdigest(), settings


def _lr_lambda(cfg: TrainConfig, total: int):
    warm = int(round(cfg.warmup * total))

    def f(step: int) -> float:
        if step < warm:
            return (step + 1) / (warm + 1)
        if cfg.scheduler == "constant":
            return 1.0
        progress = (step - warm) / max(1, total - warm)
        if cfg.scheduler == "linear":
            return max(0.0, 1.0 - progress)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return f


def _wrap_lora(model: Any, cfg: TrainConfig) -> Any:
    from peft import LoraConfig, get_peft_model  # required by train() before any model loads

    lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha or 2 * cfg.lora_r,
                      lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM")
    return get_peft_model(model, lora)


def model_parts(model: Any) -> tuple[Any, Any, float | None]:
    """The decoder (final hidden states), the output head and its logit soft-cap."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    text = base.config.get_text_config() if hasattr(base.config, "get_text_config") \
        else base.config
    return base.get_decoder(), base.get_output_embeddings(), \
        getattr(text, "final_logit_softcapping", None)


# ============================================================================ one batch

def head_chunk(vocab: int, limit: int) -> int:
    """Positions per output-head chunk: about 2**23 logits (32 MB in fp32) per buffer, and
    a chunk holds ~6 such buffers (student and teacher logits, both log-softmaxes, the
    teacher's probabilities, the gradient), so ~200 MB whatever the vocabulary; at most
    ``limit``. Divergences without a closed-form gradient use a quarter of this
    (:func:`synth.train.losses.chunked_head_loss`)."""
    return max(16, min(limit, (1 << 23) // max(1, vocab)))


def batch_loss(student: Any, batch: Any, spec: Any, *, teacher: Any | None = None,
               vocab: int | None = None, chunk: int = 1024) -> tuple[Any, dict[str, float]]:
    """Summed loss of one micro-batch (divide by the step's target tokens) and its stats."""
    import torch

    from synth.train.losses import chunked_head_loss

    decoder, head, softcap = model_parts(student)
    chunk = head_chunk(head.weight.shape[0], chunk)
    hidden = decoder(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                     position_ids=batch.position_ids, use_cache=False).last_hidden_state
    hidden = hidden.reshape(-1, hidden.shape[-1]).index_select(0, batch.select)
    kw: dict[str, Any] = {}
    if spec.alpha < 1 and spec.teacher == "online":
        t_decoder, t_head, t_softcap = model_parts(teacher)
        with torch.no_grad():
            t_hidden = t_decoder(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                                 position_ids=batch.position_ids,
                                 use_cache=False).last_hidden_state
            t_hidden = t_hidden.reshape(-1, t_hidden.shape[-1]).index_select(0, batch.select)
        kw = dict(teacher_hidden=t_hidden, teacher_weight=t_head.weight,
                  teacher_bias=t_head.bias, teacher_softcap=t_softcap)
    elif spec.alpha < 1:
        kw = dict(top_ids=batch.top_ids, top_logprobs=batch.top_logprobs)
    return chunked_head_loss(hidden, head.weight, batch.labels, spec=spec, bias=head.bias,
                             softcap=softcap, vocab=vocab, chunk=chunk, **kw)


def accumulate(model: Any, batches: list, spec: Any, *, teacher: Any | None,
               vocab: int | None, chunk: int, device: str,
               autocast: Any = nullcontext) -> tuple[dict[str, float], int, int]:
    """Forward and backward over one optimiser step's micro-batches. Each micro-batch's
    summed loss is divided by the target-token count of the *whole* step, so the gradients
    add up to those of one batch holding every micro-batch (DistillKit divides by each
    micro-batch's own count, which weighs a short micro-batch's tokens more). Returns the
    summed stats, that token count and the real tokens processed."""
    n_targets = sum(int(b.labels.numel()) for b in batches)
    agg = {"loss": 0.0, "ce": 0.0, "kl": 0.0, "top1": 0.0}
    tokens = 0
    for b in batches:
        b = b.to(device)
        with autocast():
            loss_sum, st = batch_loss(model, b, spec, teacher=teacher, vocab=vocab,
                                      chunk=chunk)
        (loss_sum / max(1, n_targets)).backward()
        agg["loss"] += float(loss_sum.detach())
        for k in ("ce", "kl", "top1"):
            agg[k] += st[k]
        tokens += b.tokens
    return agg, n_targets, tokens


def evaluate_loss(student: Any, examples: list, spec: Any, *, teacher: Any | None,
                  vocab: int | None, batch_size: int, pad_id: int, device: str,
                  autocast: Any, chunk: int = 1024,
                  forward: Any = None) -> dict[str, float]:
    """Mean per-token loss, CE, divergence and top-1 agreement over held-out examples.
    ``forward(batch)``: the loss through a distributed wrapper (every rank runs it all)."""
    import torch

    from synth.train.data import collate

    totals = {"loss": 0.0, "ce": 0.0, "kl": 0.0, "top1": 0.0, "tokens": 0.0}
    was_training = student.training
    student.eval()
    with torch.no_grad():
        for s in range(0, len(examples), batch_size):
            rows = [[i] for i in range(s, min(len(examples), s + batch_size))]
            batch = collate(examples, rows, pad_id=pad_id, packed=False).to(device)
            with autocast():
                loss, st = forward(batch) if forward is not None else batch_loss(
                    student, batch, spec, teacher=teacher, vocab=vocab, chunk=chunk)
            totals["loss"] += float(loss)
            for k in ("ce", "kl", "top1", "tokens"):
                totals[k] += st[k]
    student.train(was_training)
    n = max(1.0, totals["tokens"])
    out = {"eval_loss": totals["loss"] / n, "eval_tokens": int(totals["tokens"])}
    if spec.alpha > 0:
        out["eval_ce"] = totals["ce"] / n
        out["eval_ppl"] = math.exp(min(50.0, totals["ce"] / n))
    if spec.alpha < 1:
        out["eval_kl"] = totals["kl"] / n
        out["eval_top1"] = totals["top1"] / n
    return out


# ========================================================================== checkpoints

def _trainable_state(model: Any, lora: bool) -> dict[str, Any]:
    if lora:
        from peft import get_peft_model_state_dict

        return get_peft_model_state_dict(model)
    return model.state_dict()


def _save_checkpoint(out: Path, step: int, *, weights: dict, optimizer: dict,
                     scheduler: Any, state: dict[str, Any], keep: int) -> Path:
    """``checkpoints/step-N``: written under a temp name, then renamed; ``state.json`` is
    written last, so a folder without it (a crash mid-write) is never resumed from."""
    import torch

    root = out / "checkpoints"
    final = root / f"step-{step:07d}"
    tmp = root / f".step-{step:07d}.tmp"
    try:
        root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        torch.save(weights, tmp / "model.pt")
        torch.save({"optimizer": optimizer, "scheduler": scheduler.state_dict(),
                    "rng": torch.get_rng_state(),
                    "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available()
                    else None}, tmp / "optimizer.pt")
        (tmp / "state.json").write_text(json.dumps(state, indent=1))
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise OutputError(f"cannot write a checkpoint: {e.strerror or e}",
                          path=str(final)) from None
    for old in _checkpoints(out)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _load_weights(path: Path, *, model: Any, lora: bool) -> None:
    """A checkpoint's weights into the (not yet wrapped or sharded) model."""
    import torch

    weights = torch.load(path / "model.pt", map_location="cpu", weights_only=True)
    if lora:
        from peft import set_peft_model_state_dict

        set_peft_model_state_dict(model, weights)
    else:
        model.load_state_dict(weights)


def _load_checkpoint(path: Path, *, model: Any, optimizer: Any, scheduler: Any,
                     world: Any) -> dict[str, Any]:
    """The optimiser, schedule and RNG state (the weights are in: :func:`_load_weights`)."""
    import torch

    from synth.train.distributed import load_optimizer_state

    state = json.loads((path / "state.json").read_text())
    opt = torch.load(path / "optimizer.pt", map_location="cpu", weights_only=False)
    load_optimizer_state(model, optimizer, opt["optimizer"], world)
    scheduler.load_state_dict(opt["scheduler"])
    torch.set_rng_state(opt["rng"])
    if opt.get("cuda_rng") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(opt["cuda_rng"])
    return state


def _restore_log(out: Path, step: int) -> None:
    """Keep the log lines up to the checkpoint's step: the resumed run writes the rest."""
    path = out / "train_log.jsonl"
    if not path.is_file():
        return
    keep = [ln for ln in path.read_text().splitlines()
            if ln.strip() and json.loads(ln).get("step", 0) <= step]
    write_atomic(path, "".join(ln + "\n" for ln in keep))


# ================================================================================ train

def train(config: TrainConfig | None = None, /, **kwargs: Any) -> TrainResult:
    """Train a student; see the module docstring. Keywords are :class:`TrainConfig` fields
    (``synth.train(data=..., student=..., out=..., loss="kl", teacher=...)``)."""
    from synth.options import make_config

    cfg = make_config(config, kwargs, cls=TrainConfig)
    check_not_input(Path(cfg.out), [cfg.data], why="the trained model would be written "
                    "beside the rows it is trained on")
    if cfg.backend != "local":  # a provider's fine-tuning job (synth.train.provider)
        from synth.train.provider import tune

        return tune(cfg)
    out = claim_out_dir(cfg.out, "synth train")  # never inside another output
    resume_from = _out_state(out, cfg.resume)

    from synth.deps import require

    require((("torch", "torch"), ("transformers", "transformers"),
             ("accelerate", "accelerate")), what="synth train", extra="train",
            install="pip install torch==2.13.0 && pip install 'synth[local,train]'")
    if cfg.lora_r:
        require((("peft", "peft"),), what="--lora-r", extra="train")
    import torch

    from synth.train import data as D
    from synth.train import distributed as P
    from synth.train.losses import HeadLoss
    from synth.train.student import (
        check_shared_vocab,
        cut_student,
        is_cut_spec,
        load_pretrained,
        param_count,
        shared_vocab_size,
    )

    t_start = time.perf_counter()
    offline = cfg.kd_source == "offline"

    # -- setup: data -----------------------------------------------------------------------
    rows = D.load_rows(cfg.data, need_logprobs=offline)
    device = pick_device(cfg.device)
    autocast, precision = _autocast(device, cfg)
    world = P.setup_world(device, fsdp=cfg.fsdp)  # under torchrun: this process's rank

    # -- setup: models ---------------------------------------------------------------------
    teacher = None
    if cfg.teacher:
        check_teacher_spec(cfg.teacher)
        # loaded in the precision it will run in: a large teacher read in fp32 and cast
        # afterwards needs twice its size in host memory first
        teacher = load_pretrained(cfg.teacher, dtype="bf16" if precision == "bf16" else "fp32")
    if is_cut_spec(cfg.student):
        student = cut_student(teacher, cfg.student.split("layers=", 1)[1])
        student.model.float()  # fp32 master weights, whatever the teacher was loaded in
    else:
        student = load_pretrained(cfg.student)
    had_template = D.ensure_chat_template(student.tokenizer)
    if cfg.kd_source == "online":
        check_shared_vocab(student, teacher)
    vocab = shared_vocab_size(student.model, teacher.model if cfg.kd_source == "online"
                              else None)
    stored = D.check_stored_ids(rows.rows, student.tokenizer, path=str(rows.path)) \
        if offline else None
    examples, dropped = D.build_examples(rows, student.tokenizer, reasoning=cfg.reasoning,
                                         max_len=cfg.max_len, offline=offline)
    train_ex, held = D.split_examples(examples, cfg.eval_split)
    if not train_ex:
        raise ConfigError(f"--eval-split {cfg.eval_split}: no example is left to train on")
    if cfg.eval_split and not held:
        n = len({e.group for e in examples})
        raise ConfigError(f"--eval-split {cfg.eval_split}: holds out none of these {n} "
                          "source prompts; raise it, or train without --eval-split")
    spec = HeadLoss(alpha=cfg.ce_weight, kind=cfg.kl, beta=cfg.beta,
                    temperature=cfg.temperature, tail=cfg.top_k_mass == "tail",
                    teacher=cfg.kd_source)
    pad_id = student.tokenizer.pad_token_id
    if pad_id is None:
        pad_id = student.tokenizer.eos_token_id or 0

    torch.manual_seed(cfg.seed)
    model = student.model
    lora = bool(cfg.lora_r)
    if lora:
        model = _wrap_lora(model, cfg)
    if cfg.activation_checkpointing:
        P.enable_activation_checkpointing(model)
    model.train()
    # the teacher whose logits the loss reads (None for SFT and offline KL, even when a
    # --teacher was given only to cut the student from)
    t_model = teacher.model.eval().requires_grad_(False) if cfg.kd_source == "online" \
        else None
    micro_tokens = cfg.batch_size * (cfg.max_len if cfg.packing else
                                     max(len(e) for e in train_ex))
    # under --fsdp each process holds 1/N of the student (and of an online teacher)
    need = estimate_memory(model, t_model, lora=lora, tokens=micro_tokens,
                           chunk=cfg.chunk_size, device=device,
                           shards=world.size if world.fsdp else 1,
                           checkpointing=cfg.activation_checkpointing)
    check_memory(need, device, limit_gb=cfg.memory_limit_gb)
    model.to(device)
    if t_model is not None:
        t_model.to(device, dtype=torch.bfloat16 if precision == "bf16" else None)

    # -- setup: plan, optimiser, schedule ----------------------------------------------------
    # the plan is the global batch's; each rank trains its slice of every micro-batch
    plan = D.StepPlan(train_ex, batch_size=cfg.batch_size * world.size, packing=cfg.packing,
                      max_len=cfg.max_len, seed=cfg.seed, shuffle=cfg.shuffle,
                      grad_accum=cfg.grad_accum)
    epochs = cfg.epochs_for(plan.steps_in(0))
    total = plan.total(epochs, cfg.max_steps)
    save_every = cfg.save_every or max(1, math.ceil(total / 10))
    fingerprint, settings = _fingerprint(cfg, examples, world.size)
    if world.main:
        make_out_dir(out)
    if resume_from is not None:
        saved = json.loads((resume_from / "state.json").read_text())
        if saved.get("fingerprint") != fingerprint:
            old = saved.get("settings", {})
            changed = [k for k in sorted(set(old) | set(settings)) if old.get(k) !=
                       settings.get(k)]
            what = ", ".join(changed) if changed else "the data (its rows or tokenisation)"
            raise ConfigError(f"--resume: {resume_from} was trained with other settings "
                              f"({what} changed; batch_size is the global one, per process "
                              "times processes); resuming would not continue the same "
                              "curve. Use the original settings or a new --out")
        _load_weights(resume_from, model=model, lora=lora)
    # DDP or FSDP around the loss (its forward is the one they hook); plain on one process
    P.shard_teacher(model_parts(t_model)[0] if t_model is not None else None, world)
    wrapped = P.wrap_student(P.LossModule(model, lambda m, b: batch_loss(
        m, b, spec, teacher=t_model, vocab=vocab, chunk=cfg.chunk_size)), world, device,
        model_parts(model)[0])
    params = [p for p in model.parameters() if p.requires_grad]
    # fused AdamW: one kernel over every parameter (CPU and CUDA), not a loop per tensor
    optimizer = torch.optim.AdamW(params, lr=cfg.peak_lr, weight_decay=cfg.weight_decay,
                                  fused=True)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(cfg, total))
    step = 0
    if resume_from is not None:
        step = _load_checkpoint(resume_from, model=model, optimizer=optimizer,
                                scheduler=scheduler, world=world)["step"]
        log.info("resuming from %s (step %d of %d)", resume_from, step, total)
    # the log up to the checkpoint; from scratch, none (a run killed before its first
    # checkpoint left one)
    if world.main:
        _restore_log(out, step)
    P.barrier(world)

    # -- train -------------------------------------------------------------------------------
    from synth.progress import TrainProgress

    bar = TrainProgress(enabled=cfg.progress if world.main else False)
    log_f = open(out / "train_log.jsonl" if world.main else os.devnull, "a")  # rank 0 writes
    tokens_seen = 0
    t_train = time.perf_counter()
    window_tokens, window_t = 0, time.perf_counter()
    last: dict[str, Any] = {}
    evals: list[dict[str, Any]] = []

    def checkpoint(s: int, sync: bool = True) -> None:
        weights = P.full_model_state(model, world, lambda m: _trainable_state(m, lora))
        if (opt := P.full_optimizer_state(model, optimizer, world)) is not None:  # rank 0
            _save_checkpoint(out, s, weights=weights, optimizer=opt,
                             scheduler=scheduler, keep=cfg.keep_checkpoints,
                             state={"step": s, "total": total, "fingerprint": fingerprint,
                                    "settings": settings})
        if sync:
            P.barrier(world)

    def run_eval(s: int) -> None:
        if held:
            e = {"step": s, "split": "eval", **evaluate_loss(
                model, held, spec, teacher=t_model, vocab=vocab, batch_size=cfg.batch_size,
                pad_id=pad_id, device=device, autocast=autocast, chunk=cfg.chunk_size,
                forward=getattr(wrapped, "module", wrapped) if world.active else None)}
            evals.append(e)
            log_f.write(json.dumps(e) + "\n")
            log_f.flush()

    bar.start(total, step)
    try:
        while step < total:
            micro = plan.at(step)
            if world.active:  # this rank's slice of each micro-batch
                agg, n_targets, step_tokens = P.train_step(
                    wrapped, train_ex, micro, world=world, device=device, autocast=autocast,
                    collate=lambda r: D.collate(train_ex, r, pad_id=pad_id, packed=cfg.packing))
            else:
                batches = [D.collate(train_ex, rows_, pad_id=pad_id, packed=cfg.packing)
                           for rows_ in micro]
                agg, n_targets, step_tokens = accumulate(
                    model, batches, spec, teacher=t_model, vocab=vocab, chunk=cfg.chunk_size,
                    device=device, autocast=autocast)
            grad_norm = None
            if cfg.max_grad_norm:
                norm = torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
                grad_norm = float(getattr(norm, "full_tensor", lambda: norm)())  # FSDP: DTensor
            lr = scheduler.get_last_lr()[0]
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            tokens_seen += step_tokens
            window_tokens += step_tokens
            n = max(1, n_targets)
            last = {"step": step, "epoch": round(plan.epochs_done(step), 4),
                    "loss": agg["loss"] / n}
            if spec.alpha > 0:
                last["ce"] = agg["ce"] / n
            if spec.alpha < 1:
                last["kl"] = agg["kl"] / n
                last["top1"] = agg["top1"] / n
            now = time.perf_counter()
            last.update(lr=lr, grad_norm=grad_norm, tokens=step_tokens,
                        target_tokens=n_targets,
                        tokens_per_s=window_tokens / max(1e-9, now - window_t),
                        elapsed_s=round(now - t_train, 3))
            if step % cfg.log_every == 0 or step == total:
                log_f.write(json.dumps(last) + "\n")
                log_f.flush()
                window_tokens, window_t = 0, now
            bar.advance(loss=last["loss"], kl=last.get("kl"), tokens_per_s=last["tokens_per_s"])
            if step % save_every == 0 and step < total:
                run_eval(step)
                checkpoint(step)
    except KeyboardInterrupt:
        bar.stop()
        # the finished steps are not lost: --resume continues from here (not under FSDP,
        if step and not world.fsdp:  # whose state is spread over ranks that may be gone)
            checkpoint(step, sync=False)
        log_f.close()
        raise
    bar.stop()
    train_s = time.perf_counter() - t_train
    run_eval(step)
    log_f.close()
    # no checkpoint of the last step: a finished run cannot be resumed (its settings, steps
    # included, are its fingerprint), and the optimiser state is twice the model's size

    # -- save --------------------------------------------------------------------------------
    final = model.merge_and_unload() if lora else model
    full = P.full_model_state(model, world, lambda m: None) if world.fsdp else None
    summary = {
        "student": cfg.student, "teacher": cfg.teacher, "made": student.note,
        "kept_layers": student.kept_layers, "loss": cfg.loss, "alpha": spec.alpha,
        "kd": cfg.kd_source, "kl": cfg.kl if cfg.uses_kl else None,
        "beta": cfg.beta if cfg.uses_kl and cfg.kl == "jsd" else None,
        "temperature": cfg.temperature if cfg.uses_kl else None,
        "top_k_mass": cfg.top_k_mass if offline else None,
        "lora_r": cfg.lora_r, "lr": cfg.peak_lr, "lr_given": cfg.lr is not None,
        "epochs_planned": None if cfg.max_steps else epochs,
        "epochs_given": cfg.epochs is not None, "scheduler": cfg.scheduler,
        "batch_size": cfg.batch_size, "grad_accum": cfg.grad_accum, "max_len": cfg.max_len,
        "packing": cfg.packing, "reasoning": cfg.reasoning, "seed": cfg.seed,
        "device": device, "precision": precision, "steps": step,
        "processes": world.size, "parallel": world.kind,
        "epochs": round(plan.epochs_done(step), 4),
        "data": {"path": str(rows.path), "source": rows.source, "rows": len(rows.rows),
                 "skipped_rows": rows.skipped, "examples": len(examples),
                 "dropped_examples": dropped, "train_examples": len(train_ex),
                 "heldout_examples": len(held),
                 "stored_top_k": stored,
                 "target_tokens": int(sum(e.targets for e in train_ex))},
        "chat_template": "the student's own" if had_template else
                         "ChatML fallback (the tokenizer had none; saved with the model)",
        "params": param_count(final), "vocab_columns": vocab,
        "final": {k: v for k, v in last.items() if k in ("loss", "ce", "kl", "top1")},
        "eval": evals[-1] if evals else None,
        "tokens": tokens_seen, "train_s": round(train_s, 3),
        "tokens_per_s": round(tokens_seen / max(1e-9, train_s), 1),
        "wall_s": None,
        # what the licence check reads when this student is served, evaluated or a teacher
        "provenance": provenance(rows.rows, cfg.teacher if cfg.is_cut else cfg.student),
    }
    if world.main:
        _write_outputs(out, final, student, rows, summary, t_start, state_dict=full)
    P.finish(world)  # every rank waits for rank 0's outputs
    return TrainResult(out, summary, world.main)


def _write_outputs(out: Path, model: Any, student: Any, rows: Any, summary: dict[str, Any],
                   t_start: float, state_dict: dict | None = None) -> None:
    """The HF model directory, loss.png, train.json and README.md, staged then moved in."""
    from synth.io import commit_staged, staging_dir
    from synth.train.card import render_model_card
    from synth.train.plot import loss_plot

    with staging_dir(out) as stage:
        try:
            model.save_pretrained(stage, safe_serialization=True,
                                  **({"state_dict": state_dict} if state_dict else {}))
            student.tokenizer.save_pretrained(stage)
        except OSError as e:
            raise OutputError(f"cannot save the model: {e.strerror or e}", path=str(out)) \
                from None
        history = [json.loads(ln) for ln in (out / "train_log.jsonl").read_text().splitlines()
                   if ln.strip()]
        png = loss_plot(history)
        if png:
            write_atomic(stage / "loss.png", png)
        summary["wall_s"] = round(time.perf_counter() - t_start, 3)
        write_atomic(stage / "README.md", render_model_card(summary=summary, rows=rows,
                                                            out=out))
        write_atomic(stage / "train.json", json.dumps(summary, indent=1, default=str))
        commit_staged(stage, out)
