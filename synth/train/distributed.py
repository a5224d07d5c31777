"""Data-parallel training under ``torchrun`` (or ``accelerate launch``): the plumbing the
trainer needs when ``WORLD_SIZE`` > 1. synth starts no process of its own: the launcher
starts one per device and sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and
``MASTER_PORT``; :func:`setup_world` reads them and joins the process group (NCCL on CUDA,
gloo on the CPU).

How the work is split, so that N processes at ``--batch-size b`` train exactly the run that
one process trains at ``--batch-size N·b`` (the same steps, batches and curve):

- the step plan is built for the *global* micro-batch of ``N·b`` rows, and each rank takes a
  contiguous slice of each micro-batch (:func:`shard_rows`);
- every rank knows the whole plan, so each counts the target tokens of the *global* step
  itself; a rank's summed loss is divided by that count and multiplied by N, because DDP
  (and FSDP) average gradients over ranks: the update is the sum over every token of the
  global step over its count, as on one process;
- a rank whose slice of a short last micro-batch is empty runs one row with weight 0 (every
  rank must take part in the gradient reduction);
- the logged loss, CE, KL, top-1 and token counts are summed over ranks (:func:`all_sum`);
- rank 0 alone writes logs, checkpoints and the model; checkpoints hold the full state dict
  and the step, which does not depend on the number of processes, so a run resumes at
  another world size (at the same global batch).

``--fsdp`` shards the student with PyTorch's ``fully_shard`` (each decoder layer, then the
whole) and, for online KL, the teacher's decoder layers; ``--activation-checkpointing``
recomputes each decoder layer's activations in the backward pass.
"""

from __future__ import annotations

import logging
import os
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Callable

__all__ = ["World", "setup_world", "finish", "shard_rows", "step_targets", "all_sum", "barrier",
           "LossModule", "wrap_student", "shard_teacher", "sync_context", "full_model_state",
           "full_optimizer_state", "load_optimizer_state", "accumulate_shard", "train_step",
           "enable_activation_checkpointing"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class World:
    """This process's place among the launcher's processes (one process: rank 0 of 1)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    fsdp: bool = False

    @property
    def main(self) -> bool:
        """Rank 0: the one process that writes."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.size > 1

    @property
    def kind(self) -> str | None:
        """``ddp``, ``fsdp``, or None on one process."""
        return ("fsdp" if self.fsdp else "ddp") if self.active else None


def setup_world(device: str, *, fsdp: bool = False) -> World:
    """Read the launcher's environment and join its process group; one :class:`World` of
    size 1 when ``WORLD_SIZE`` is unset or 1 (then nothing is initialised)."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        if fsdp:
            log.warning("--fsdp: one process holds the whole student; nothing to shard")
        return World()
    import torch
    import torch.distributed as dist

    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", str(rank)))
    if device == "cuda":
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device == "cuda" else "gloo")
        _OWNED.append(True)
    return World(rank=dist.get_rank(), size=dist.get_world_size(), local_rank=local,
                 fsdp=fsdp)


#: Whether :func:`setup_world` started the process group (then :func:`finish` ends it).
_OWNED: list[bool] = []


def finish(world: World) -> None:
    """Wait for every rank (rank 0 writes the outputs), then leave the process group if
    :func:`setup_world` joined it (a caller's own group is left alone)."""
    if not world.active:
        return
    import torch.distributed as dist

    dist.barrier()
    if _OWNED:
        _OWNED.clear()
        dist.destroy_process_group()


def shard_rows(rows: list, world: World) -> list:
    """This rank's contiguous slice of one global micro-batch's rows (the first ranks take
    one more when the rows do not divide evenly; a rank may get none)."""
    if not world.active:
        return rows
    per, extra = divmod(len(rows), world.size)
    start = world.rank * per + min(world.rank, extra)
    return rows[start:start + per + (1 if world.rank < extra else 0)]


def step_targets(examples: list, micro: list) -> int:
    """Target tokens of a whole (global) step: what one process would count from its
    collated micro-batches, computed from the plan, so every rank knows it."""
    return sum(examples[i].targets for rows in micro for row in rows for i in row)


def all_sum(values: list[float], world: World) -> list[float]:
    """``values`` summed over ranks (float64; unchanged on one process)."""
    if not world.active:
        return values
    import torch
    import torch.distributed as dist

    dev = "cuda" if dist.get_backend() == "nccl" else "cpu"
    t = torch.tensor(values, dtype=torch.float64, device=dev)
    dist.all_reduce(t)
    return t.tolist()


def barrier(world: World) -> None:
    if world.active:
        import torch.distributed as dist

        dist.barrier()


def _module_base() -> type:
    import torch

    return torch.nn.Module


class LossModule(_module_base()):  # type: ignore[misc]
    """The student's summed micro-batch loss as a module's ``forward``, so that DDP and FSDP
    see the forward they hook into (the trainer calls the decoder and the chunked head
    itself, never the model's own ``forward``). The teacher is held outside the module's
    parameters: it is neither averaged by DDP nor sharded with the student."""

    def __init__(self, student: Any, loss: Callable[..., Any]):
        super().__init__()
        self.student = student
        self._loss = loss  # (student, batch) -> (loss_sum, stats)

    def forward(self, batch: Any) -> Any:
        return self._loss(self.student, batch)


def wrap_student(module: LossModule, world: World, device: str, decoder: Any) -> Any:
    """DDP around ``module`` (the default), or ``fully_shard`` on each of the student's
    ``decoder`` layers and then on the whole with ``--fsdp``; ``module`` itself on one
    process."""
    if not world.active:
        return module
    if world.fsdp:
        from torch.distributed.fsdp import fully_shard

        for layer in getattr(decoder, "layers", []):
            fully_shard(layer)
        return fully_shard(module)
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(module, device_ids=[world.local_rank]
                                   if device == "cuda" else None)


def shard_teacher(decoder: Any | None, world: World) -> None:
    """With ``--fsdp``, shard the online teacher's ``decoder`` layers too (gathered one layer
    at a time for its forward, resharded after): each device holds 1/N of its layers."""
    if world.active and world.fsdp and decoder is not None:
        from torch.distributed.fsdp import fully_shard

        for layer in getattr(decoder, "layers", []):
            fully_shard(layer, reshard_after_forward=True)


def sync_context(wrapped: Any, world: World, last: bool) -> Any:
    """Skip the gradient reduction on all but a step's last micro-batch."""
    if not world.active or last:
        if world.fsdp and world.active:
            wrapped.set_requires_gradient_sync(True)
        return nullcontext()
    if world.fsdp:
        wrapped.set_requires_gradient_sync(False)
        return nullcontext()
    return wrapped.no_sync()


def full_model_state(model: Any, world: World, state: Callable[[Any], dict]) -> dict | None:
    """The full (unsharded) state dict on rank 0, ``state(model)`` computed as on one
    process; None on other ranks. Collective under FSDP: every rank must call it."""
    if world.active and world.fsdp:
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            get_model_state_dict,
        )

        full = get_model_state_dict(model, options=StateDictOptions(
            full_state_dict=True, cpu_offload=True))
        return full if world.main else None
    return state(model) if world.main else None


def _trainable_names(model: Any) -> list[str]:
    return [n for n, p in model.named_parameters() if p.requires_grad]


def full_optimizer_state(model: Any, optimizer: Any, world: World) -> dict | None:
    """The optimiser state as one process's ``optimizer.state_dict()`` has it (parameters
    numbered in order), so a checkpoint loads at any world size; None off rank 0.
    Collective under FSDP."""
    if not (world.active and world.fsdp):
        return optimizer.state_dict() if world.main else None
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        get_optimizer_state_dict,
    )

    full = get_optimizer_state_dict(model, optimizer, options=StateDictOptions(
        full_state_dict=True, cpu_offload=True))
    if not world.main:
        return None
    index = {n: i for i, n in enumerate(_trainable_names(model))}
    return {"state": {index[k]: v for k, v in full["state"].items()},
            "param_groups": [{**g, "params": [index[p] for p in g["params"]]}
                             for g in full["param_groups"]]}


def load_optimizer_state(model: Any, optimizer: Any, saved: dict, world: World) -> None:
    """Load what :func:`full_optimizer_state` saved (or a one-process checkpoint)."""
    if not (world.active and world.fsdp):
        optimizer.load_state_dict(saved)
        return
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        set_optimizer_state_dict,
    )

    names = _trainable_names(model)
    full = {"state": {names[k]: v for k, v in saved["state"].items()},
            "param_groups": [{**g, "params": [names[i] for i in g["params"]]}
                             for g in saved["param_groups"]]}
    set_optimizer_state_dict(model, optimizer, full, options=StateDictOptions(
        full_state_dict=True))


def accumulate_shard(wrapped: Any, batches: list, weights: list[float], *, n_targets: int,
                     world: World, device: str, autocast: Any = nullcontext
                     ) -> tuple[dict[str, float], int, int]:
    """This rank's share of one optimiser step (the distributed twin of
    :func:`synth.train.trainer.accumulate`): each micro-batch's summed loss over the
    *global* step's target count, times the world size (the reduction averages over ranks);
    a micro-batch of weight 0 (an empty slice, given a stand-in row) adds no gradient. The
    stats and token counts come back summed over ranks."""
    agg = {"loss": 0.0, "ce": 0.0, "kl": 0.0, "top1": 0.0}
    tokens = 0
    for j, (b, w) in enumerate(zip(batches, weights)):
        b = b.to(device)
        with sync_context(wrapped, world, last=j == len(batches) - 1):
            with autocast():
                loss_sum, st = wrapped(b)
            (loss_sum * (w * world.size / max(1, n_targets))).backward()
        if w:
            agg["loss"] += float(loss_sum.detach())
            for k in ("ce", "kl", "top1"):
                agg[k] += st[k]
            tokens += b.tokens
    keys = list(agg)
    sums = all_sum([agg[k] for k in keys] + [float(tokens)], world)
    return dict(zip(keys, sums[:-1])), n_targets, int(sums[-1])


def train_step(wrapped: Any, examples: list, micro: list, *, collate: Callable[[list], Any],
               world: World, device: str, autocast: Any = nullcontext
               ) -> tuple[dict[str, float], int, int]:
    """One optimiser step's forward and backward on this rank: its slice of each global
    micro-batch (an empty slice: a stand-in row of weight 0), :func:`accumulate_shard`."""
    mine = [shard_rows(rows, world) for rows in micro]
    batches = [collate(m or rows[:1]) for m, rows in zip(mine, micro)]
    return accumulate_shard(wrapped, batches, [1.0 if m else 0.0 for m in mine],
                            n_targets=step_targets(examples, micro), world=world,
                            device=device, autocast=autocast)


def enable_activation_checkpointing(model: Any) -> None:
    """Recompute each decoder layer's activations in the backward pass (transformers'
    non-reentrant gradient checkpointing): less memory, about a third more compute, the same
    gradients."""
    kw = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):  # transformers 5's name
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kw)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kw)
