"""Every option of ``synth train``, defined once (the CLI is built from these fields, as
``synth generate``'s is from :class:`~synth.generate.config.GenerateConfig`)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from synth.options import MAX_TOKENS, one_or_many, option

__all__ = ["TrainConfig", "EvalConfig", "DEFAULT_LR_CUT", "DEFAULT_LR_FULL", "DEFAULT_LR_LORA",
           "MIN_STEPS"]

# The defaults were chosen on the dev splits of bench/focused_tasks.py (bench/defaults_sweep.py;
# figures in bench/README.md, "Training defaults"); the student kind chooses the rate.
#: Peak learning rate for a student cut from its teacher (``from-teacher:layers=N``): it
#: starts broken and must heal. Half depth, 150 steps: 89% at 2e-4, 93% at 5e-4, 92% at 1e-3
#: (5e-5 x 1 epoch: 43%; the teacher: 94%).
DEFAULT_LR_CUT = 5e-4
#: Peak learning rate for any other student (a pretrained model): already whole, it learns the
#: task at any of these rates (94-97%) but forgets its other skills at high ones: after 150
#: steps on one task, another (past tense, teacher 45%) fell to 0% at 5e-4, 3% at 1e-4 and
#: 14% at 5e-5.
DEFAULT_LR_FULL = 5e-5
#: With LoRA adapters (their usual rate: only low-rank updates move).
DEFAULT_LR_LORA = 2e-4
#: Without --epochs, enough epochs for at least this many optimiser steps: what heals a cut
#: student is steps, not passes (400 rows: 50 steps 65%, 150 steps 93%; 50 rows: 21 steps
#: 51%, 147 steps 81%).
MIN_STEPS = 150


class TrainConfig(BaseModel):
    """Everything ``synth train`` takes. Keyword-only, validated on construction."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    command: ClassVar[str] = "train"

    data: Path = option(..., "Rows to train on: a `synth curate` output directory, a `synth "
                      "generate` run directory, or a .parquet/.jsonl of trace rows.", short="-d")
    student: str = option(..., "A HF model directory, a .gguf file, an embedded name "
                        "(local:smollm2-135m-instruct), or from-teacher:layers=N (also "
                        "layers=0-7,22-29): a student cut from --teacher.", short="-s")
    out: Path = option(..., "Output directory: the trained model (HF format), train_log.jsonl, "
                     "loss.png, checkpoints/, README.md (model card).", short="-o")
    loss: Literal["sft", "kl", "sft+kl"] = option(
        "sft", "sft: cross-entropy on the teacher's text; kl: match the teacher's token "
        "distributions; sft+kl: alpha*CE + (1-alpha)*KL.")
    teacher: str | None = option(None, "In-process teacher (HF dir, .gguf, local:NAME): online "
                               "logits for KL, and the model a from-teacher student is cut "
                               "from. Without it, KL uses the rows' stored top-K logprobs.",
                               short="-t")
    kd: Literal["auto", "online", "offline"] = option(
        "auto", "Where KL targets come from: online (the --teacher's logits on each batch), "
        "offline (the rows' stored top-K logprobs); auto: online when --teacher is given.")
    kl: Literal["forward", "reverse", "jsd"] = option(
        "forward", "Divergence: forward KL(teacher||student), reverse KL(student||teacher), "
        "or generalised JSD with --beta.")
    beta: float = option(0.5, "JSD mixture weight: 0 = forward KL, 1 = reverse KL.", ge=0, le=1,
                       strict=True)
    alpha: float | None = option(None, "Weight of CE in sft+kl (default 0.5); sft means 1, kl "
                               "means 0.", ge=0, le=1, strict=True)
    temperature: float = option(1.0, "Loss temperature tau (the KL term is scaled by tau^2); not "
                              "the teacher's sampling temperature.", gt=0, strict=True)
    top_k_mass: Literal["tail", "renormalise"] = option(
        "tail", "Offline KL: the teacher's mass outside its stored top K as one extra bucket "
        "(tail), or renormalise over the top K and ignore the rest.")
    reasoning: Literal["keep", "drop"] = option(
        "keep", "keep: train on <think>\\nREASONING\\n</think>\\n\\nANSWER; drop: the answer "
        "alone.")
    lora_r: int | None = option(None, "Train LoRA adapters of this rank (peft) instead of every "
                              "weight; the saved model has them merged.", ge=1, strict=True)
    lora_alpha: float | None = option(None, "LoRA scale numerator (default 2 * rank).", gt=0,
                                    strict=True)
    epochs: float | None = option(None, "Passes over the data (fractions allowed). Default: as "
                                "many whole epochs as give at least 150 optimiser steps "
                                "(at least 1).", gt=0, strict=True)
    max_steps: int | None = option(None, "Stop after this many optimiser steps (overrides "
                                 "--epochs).", ge=1, strict=True)
    lr: float | None = option(None, "Peak learning rate. Default: 5e-4 for a student cut from "
                            "its teacher, 5e-5 for a pretrained one, 2e-4 with LoRA.", gt=0,
                            strict=True)
    scheduler: Literal["cosine", "linear", "constant"] = option(
        "cosine", "Learning-rate decay after warm-up.")
    warmup: float = option(0.03, "Warm-up as a share of the steps.", ge=0, lt=1, strict=True)
    weight_decay: float = option(0.0, "AdamW weight decay.", ge=0, strict=True)
    max_grad_norm: float | None = option(1.0, "Clip the gradient norm (none: no clipping).",
                                       gt=0, strict=True)
    batch_size: int = option(8, "Examples per micro-batch (packed rows with --packing).", ge=1,
                           strict=True)
    grad_accum: int = option(1, "Micro-batches per optimiser step: the update equals one batch "
                           "of batch-size * grad-accum.", ge=1, strict=True)
    max_len: int = option(1024, "Longest example in tokens; longer rows are skipped and "
                        "counted, never truncated.", ge=8, strict=True)
    packing: bool = option(False, "Pack examples into rows of --max-len (no attention or loss "
                         "across examples).")
    eval_split: float = option(0.0, "Hold out this share of the prompts; their loss (and KL) "
                             "is logged at each checkpoint and at the end.", ge=0, lt=1,
                             strict=True)
    seed: int = option(0, "Seed for shuffling and initialisation.", strict=True)
    shuffle: bool = option(True, "Shuffle the examples each epoch (off: file order, e.g. a "
                         "curriculum).", cli="--shuffle/--no-shuffle")
    save_every: int | None = option(None, "Checkpoint every N steps (default: ~10 per run).",
                                  ge=1, strict=True)
    keep_checkpoints: int = option(2, "Checkpoints kept on disk (oldest deleted).", ge=1,
                                 strict=True)
    resume: bool = option(False, "Continue from the latest checkpoint in --out, on the same "
                        "curve.")
    fsdp: bool = option(False, "Under torchrun with several processes: shard the student "
                      "(and an online teacher's layers) across them with PyTorch FSDP "
                      "(fully_shard) instead of a full copy on each (DDP), for a student "
                      "that does not fit one device. Same curve.")
    activation_checkpointing: bool = option(False, "Recompute each decoder layer's "
                                          "activations in the backward pass: less memory, "
                                          "about a third more compute, the same curve.")
    precision: Literal["auto", "fp32", "bf16"] = option(
        "auto", "auto: bf16 autocast on CUDA, fp32 on CPU (master weights stay fp32).")
    device: Literal["auto", "cpu", "cuda"] = option("auto", "Where to train.")
    memory_limit_gb: float | None = option(None, "Refuse to start when the estimated need "
                                         "exceeds this (default: the memory available).",
                                         gt=0, strict=True)
    chunk_size: int = option(1024, "At most this many positions per chunk of the output-head "
                           "loss (fewer for big vocabularies: ~2**23 logits a chunk).", ge=1,
                           strict=True, cli=False)
    log_every: int = option(1, "Write a train_log.jsonl line every N steps.", ge=1, strict=True)
    progress: bool | None = option(None, "Default: on when stderr is a terminal.",
                                 cli="--progress/--no-progress")
    # -- a provider's fine-tuning instead (synth.train.provider)
    backend: Literal["local", "openai"] = option(
        "local", "local: train here (torch). openai: a fine-tuning job on OpenAI for "
        "--student (e.g. gpt-4.1-nano-2025-04-14): upload, create, poll; the tuned model's "
        "id lands in train.json.")
    intent: Literal["research", "internal", "distributed", "competing"] | None = option(
        None, "--backend openai: what the tuned model is for; the rows' teachers' terms are "
        "checked for it before anything is uploaded.")
    accept_terms: tuple[str, ...] = option((), "--backend openai: accept a registry entry's "
                                         "deny or warn (or 'unknown') after reading them. "
                                         "Repeatable.")
    base_url: str | None = option(None, "--backend openai: the API base URL (default "
                                "$OPENAI_BASE_URL, else https://api.openai.com/v1).")
    api_key_env: str | None = option(None, "--backend openai: environment variable holding "
                                   "the API key (default OPENAI_API_KEY).")
    suffix: str | None = option(None, "--backend openai: up to 64 characters in the tuned "
                              "model's name.", max_length=64)
    lr_multiplier: float | None = option(None, "--backend openai: learning-rate multiplier "
                                       "(default: the provider's auto).", gt=0, strict=True)
    poll_interval: float = option(30.0, "--backend openai: seconds between polls of the job "
                                "(backing off x1.5 to 5 min while nothing changes).", gt=0,
                                strict=True)
    wait: bool = option(True, "--backend openai: poll the job to its end. --no-wait uploads, "
                        "creates the job, prints its status and exits; the same command "
                        "later attaches (run it from cron until it writes train.json).",
                        cli="--wait/--no-wait")

    _terms = field_validator("accept_terms", mode="before")(one_or_many)

    @model_validator(mode="after")
    def _check(self) -> "TrainConfig":
        if self.backend != "local":
            self._check_provider()
            return self
        given = sorted(_PROVIDER_ONLY & self._changed())
        if given:
            raise ValueError(f"{', '.join('--' + g.replace('_', '-') for g in given)}: only "
                             "with --backend openai")
        if self.alpha is not None and self.loss != "sft+kl":
            raise ValueError(f"--alpha only applies to --loss sft+kl (--loss {self.loss} "
                             f"means alpha {1 if self.loss == 'sft' else 0})")
        if self.student.strip().startswith("from-teacher:") and not self.teacher:
            raise ValueError("--student from-teacher:... needs --teacher (the model to cut)")
        if self.fsdp and self.lora_r:
            raise ValueError("--fsdp with --lora-r: LoRA trains adapters small enough to "
                             "copy to every device; leave out --fsdp (DDP)")
        if self.kd == "online" and not self.teacher:
            raise ValueError("--kd online needs --teacher")
        if self.uses_kl and self.kd_source == "offline" and self.top_k_mass == "tail" and \
                self.temperature != 1:
            raise ValueError("--temperature must be 1 with offline KL and --top-k-mass tail "
                             "(the teacher's mass outside its top K cannot be re-tempered); "
                             "use --top-k-mass renormalise")
        return self

    def _changed(self) -> set[str]:
        """Fields away from their defaults (the CLI passes every option, so "given" is
        "not the default")."""
        return {n for n, f in type(self).model_fields.items()
                if f.is_required() or getattr(self, n) != f.default}

    def _check_provider(self) -> None:
        if self.intent is None:
            raise ValueError(f"--backend {self.backend} needs --intent (research, internal, "
                             "distributed or competing): the rows' teachers' terms are "
                             "checked for it before anything is uploaded")
        if self.epochs is not None and self.epochs != int(self.epochs):
            raise ValueError(f"--epochs {self.epochs}: a provider job takes whole epochs")
        local = sorted(self._changed() - _PROVIDER_ONLY - _EITHER)
        if local:
            raise ValueError(f"--backend {self.backend}: "
                             f"{', '.join('--' + g.replace('_', '-') for g in local)} "
                             "train here, not on the provider (it takes --epochs, "
                             "--batch-size, --lr-multiplier, --eval-split, --seed, --suffix)")

    @property
    def uses_kl(self) -> bool:
        return self.loss != "sft"

    @property
    def ce_weight(self) -> float:
        """alpha: the CE share of the loss."""
        if self.loss == "sft":
            return 1.0
        if self.loss == "kl":
            return 0.0
        return 0.5 if self.alpha is None else self.alpha

    @property
    def kd_source(self) -> str | None:
        if not self.uses_kl:
            return None
        if self.kd != "auto":
            return self.kd
        return "online" if self.teacher else "offline"

    @property
    def peak_lr(self) -> float:
        """``--lr``, else the default for the student's kind: :data:`DEFAULT_LR_LORA` with
        LoRA, :data:`DEFAULT_LR_CUT` for a student cut from its teacher,
        :data:`DEFAULT_LR_FULL` for any other."""
        if self.lr is not None:
            return self.lr
        if self.lora_r:
            return DEFAULT_LR_LORA
        return DEFAULT_LR_CUT if self.is_cut else DEFAULT_LR_FULL

    @property
    def is_cut(self) -> bool:
        """The student is cut from the teacher (``from-teacher:layers=N``)."""
        return self.student.strip().startswith("from-teacher:")

    def epochs_for(self, steps_per_epoch: int) -> float:
        """``--epochs``, else the whole epochs that give at least :data:`MIN_STEPS` optimiser
        steps (at least one): 400 rows at batch 8 (50 steps an epoch) train 3 epochs, 1,200
        rows or more one."""
        if self.epochs is not None:
            return self.epochs
        return float(max(1, math.ceil(MIN_STEPS / max(1, steps_per_epoch))))


#: options only a provider backend reads
_PROVIDER_ONLY = frozenset({"backend", "intent", "accept_terms", "base_url", "api_key_env",
                            "suffix", "lr_multiplier", "poll_interval", "wait"})
#: options both backends read (a provider job: n_epochs, batch_size, a validation file)
_EITHER = frozenset({"data", "student", "out", "epochs", "batch_size", "eval_split", "seed",
                     "progress", "resume"})


class EvalConfig(BaseModel):
    """Everything ``synth eval`` takes."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    command: ClassVar[str] = "eval"

    student: str = option(..., "The trained student: a directory `synth train` wrote (or any "
                        "model spec).", short="-s")
    teacher: str = option(..., "The teacher to compare with (HF dir, .gguf, local:NAME).",
                        short="-t")
    data: Path = option(..., "Held-out rows: a `synth run` directory (its held-out split), or "
                      "the formats of train --data. Failed and dropped rows count: every "
                      "source prompt with a reference is scored.", short="-d")
    out: Path | None = option(None, "Write eval.json and answers.jsonl here: a new or empty "
                            "directory, or an earlier eval's (default: the trained student's "
                            "directory, beside its files; needed when --student is not one).",
                            short="-o")
    max_len: int = option(1024, "Longest example in tokens.", ge=8, strict=True)
    batch_size: int = option(8, "Examples per forward pass.", ge=1, strict=True)
    reasoning: Literal["keep", "drop"] = option("keep", "As for train.")
    task: Literal["auto", "choice", "math", "code", "exact", "none"] = option(
        "auto", "How to check generated answers against the rows' reference: choice (the "
        "answer names one letter, the reference), math (math-verify), code (tests in the "
        "sandbox), exact (normalised match), none; auto: choice for a one-letter reference, "
        "code when it holds tests, else math when it parses as math, else exact.")
    max_new_tokens: int = option(256, "Generation length for task accuracy.", ge=1,
                               le=MAX_TOKENS, strict=True)
    limit: int | None = option(None, "Evaluate only the first N held-out source prompts.",
                             ge=1, strict=True)
    device: Literal["auto", "cpu", "cuda"] = option("auto", "Where to run.")
    cascade: bool = option(False, "Also report routing: the student answers, and the teacher "
                         "when the student's mean token logprob is below a threshold; the "
                         "threshold is chosen on half the prompts, reported on the other.")
    cascade_target: float = option(0.95, "--cascade: the share of the teacher's accuracy the "
                                 "chosen threshold must keep.", gt=0, le=1, strict=True)
    cascade_price: str | None = option(None, "--cascade: price the teacher's tokens as this "
                                     "PROVIDER:MODEL (e.g. openai:gpt-4.1, the API model a "
                                     "local teacher stands for; default: the teacher's own "
                                     "price entry).")
    student_usd_per_hour: float | None = option(None, "--cascade: what the student's machine "
                                              "costs per hour (default: its seconds per "
                                              "request are reported instead).", ge=0,
                                              allow_inf_nan=False, strict=True)
    price_file: Path | None = option(None, "--cascade: YAML prices extending the built-in "
                                   "table, to price the teacher's tokens.")
    compare: tuple[str, ...] = option((), "Other versions of the student to score on the "
                                      "same prompts (quantised .gguf files from `synth "
                                      "export --format gguf`, another directory): one table "
                                      "of size on disk, tokens/s, accuracy and agreement "
                                      "(repeat the option for each).")
    progress: bool | None = option(None, "Default: on when stderr is a terminal.",
                                 cli="--progress/--no-progress")

    _compare = field_validator("compare", mode="before")(one_or_many)
