"""Will training fit? The bytes one process needs on its device, checked before training
starts, so a run that cannot fit stops with the sizes instead of an out-of-memory kill
hours in."""

from __future__ import annotations

import os
from typing import Any

from synth.errors import InsufficientMemoryError

__all__ = ["available_memory", "estimate_memory", "check_memory"]


def available_memory(device: str) -> int:
    """Bytes free for training: CUDA's free memory, or ``MemAvailable`` on Linux."""
    if device == "cuda":
        import torch

        return int(torch.cuda.mem_get_info()[0])
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def _unique(params: Any) -> list[Any]:
    seen: dict[int, Any] = {}
    for p in params:
        seen.setdefault(id(p), p)
    return list(seen.values())


def _layer_bytes(model: Any) -> int:
    """The largest decoder layer's weights: what FSDP gathers whole for one forward."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    decoder = base.get_decoder() if hasattr(base, "get_decoder") else None
    layers = list(getattr(decoder, "layers", []))
    return max((sum(p.numel() * p.element_size() for p in _unique(layer.parameters()))
                for layer in layers), default=0)


def estimate_memory(student: Any, teacher: Any | None, *, lora: bool, tokens: int,
                    chunk: int, device: str = "cpu", shards: int = 1,
                    checkpointing: bool = False) -> dict[str, int]:
    """Bytes one process needs on ``device``: gradients and AdamW's two moments for the
    trained parameters (fp32), activations for one micro-batch (a rough 40 bytes per token
    per hidden unit per layer, what a decoder layer's saved tensors come to; with
    ``checkpointing`` only each layer's input is kept, 4 bytes, plus one layer recomputed),
    and the chunked head's logits. On the CPU the weights are already loaded, so the memory
    available already excludes them; on a GPU they have yet to move there, so the student's
    and the teacher's weights are counted at the size they will have.

    ``shards``: the processes FSDP shards over (1 without ``--fsdp``): each holds 1/N of
    the weights, gradients and optimizer state (the teacher's layers too), plus the
    largest layer gathered whole while it runs."""
    from synth.train.student import param_count

    n = max(1, shards)
    trainable = sum(p.numel() for p in student.parameters() if p.requires_grad)
    cfg = student.config.get_text_config() if hasattr(student.config, "get_text_config") \
        else student.config
    hidden = int(getattr(cfg, "hidden_size", 1024))
    layers = int(getattr(cfg, "num_hidden_layers", 12))
    vocab = int(student.get_output_embeddings().weight.shape[0])
    per_layer = 4 if checkpointing else 40
    need = {
        "gradients+optimizer": -(-trainable * 12 // n),
        "activations": tokens * hidden * (layers * per_layer + (40 if checkpointing else 0)),
        "head chunk": min(chunk, tokens) * vocab * 4 * 6,
        "teacher activations": 0 if teacher is None else tokens * hidden * 8,
        "student weights": param_count(student) * 4 if lora else 0,
    }
    if device != "cpu":
        need["student weights"] = -(-sum(p.numel() * p.element_size()
                                         for p in _unique(student.parameters())) // n)
        if teacher is not None:
            need["teacher weights"] = -(-sum(p.numel() * p.element_size()
                                             for p in _unique(teacher.parameters())) // n)
    if n > 1:  # one layer of each sharded model gathered whole for its forward
        need["gathered layer"] = _layer_bytes(student) + (
            _layer_bytes(teacher) if teacher is not None else 0)
    need["total"] = sum(need.values())
    return need


def check_memory(need: dict[str, int], device: str, *, limit_gb: float | None = None) -> None:
    """An InsufficientMemoryError naming each part when ``need`` exceeds what is free
    (or ``limit_gb``)."""
    have = int(limit_gb * 2**30) if limit_gb else available_memory(device)
    if need["total"] <= have:
        return
    gb = 2**30
    parts = ", ".join(f"{k} {v / gb:.2f} GiB" for k, v in need.items() if k != "total" and v)
    limit = "--memory-limit-gb" if limit_gb else f"free {device} memory"
    raise InsufficientMemoryError(
        f"training this student needs about {need['total'] / gb:.2f} GiB ({parts}) and "
        f"{limit} is {have / gb:.2f} GiB: use a smaller student (from-teacher:layers=N), "
        "--lora-r 16, --fsdp over several devices, --activation-checkpointing, a smaller "
        "--batch-size with more --grad-accum, or a shorter --max-len")
