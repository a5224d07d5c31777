"""`synth train` under torchrun on the CPU (gloo, 2 processes): 2 processes at batch b train
the run 1 process trains at batch 2b (the same steps, per-step losses within float
tolerance, the same weights and the same files), with DDP and with FSDP (``fully_shard``),
and a checkpoint written at one world size resumes at the other on the same curve.
Activation checkpointing changes no loss.

The data leave one row in each epoch's last global micro-batch, so one rank trains a
stand-in row of weight 0 there (the rows do not divide evenly among ranks)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
if not (torch.distributed.is_available() and torch.distributed.is_gloo_available()):
    pytest.skip("torch.distributed with gloo is not available", allow_module_level=True)

import synth  # noqa: E402
from tests.test_train import log_lines, rows_file, weights  # noqa: E402
from tests.tiny_models import build_tiny_model  # noqa: E402

ROOT = Path(synth.__file__).resolve().parent.parent
#: 8 steps of a global batch of 4 over 21 examples: steps 1-5 full, step 6 one row (the
#: end of epoch 1), steps 7-8 in epoch 2; checkpoints after steps 3 and 6.
COMMON = dict(max_steps=8, lr=3e-3, save_every=3, keep_checkpoints=5, eval_split=0.1,
              progress=False)
REL = 1e-5


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    student = build_tiny_model(root / "student", seed=0)
    teacher = build_tiny_model(root / "teacher", seed=1)
    data = rows_file(root / "rows.jsonl", n=24)
    return root, data, student, teacher


def torchrun(out: Path, args: list[str], nproc: int = 2) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
           "--standalone", "-m", "synth", "train", "--out", str(out), "--no-progress",
           *args]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-6000:]
    return r


def cli_args(data, student, *, batch_size, teacher=None, loss="sft", extra=()):
    args = ["--data", str(data), "--student", str(student), "--batch-size", str(batch_size),
            "--max-steps", "8", "--lr", "3e-3", "--save-every", "3", "--keep-checkpoints",
            "5", "--eval-split", "0.1", "--loss", loss]
    return args + (["--teacher", str(teacher)] if teacher else []) + list(extra)


def assert_same_run(a: Path, b: Path, *, steps=range(1, 9)) -> float:
    """Same steps, per-step losses (and held-out losses) within REL, allclose weights, the
    same files; returns the largest relative loss difference."""
    la = {(x.get("split"), x["step"]): x for x in log_lines(a)}
    lb = {(x.get("split"), x["step"]): x for x in log_lines(b)}
    assert [k for k in lb if k[0] is None] == [(None, s) for s in steps], list(lb)
    worst = 0.0
    for k, y in lb.items():
        x = la[k]
        for f in ("loss", "ce", "kl", "eval_loss", "grad_norm"):
            if f in x:
                assert y[f] == pytest.approx(x[f], rel=REL), (k, f, x[f], y[f])
                if f in ("loss", "eval_loss"):
                    worst = max(worst, abs(y[f] - x[f]) / abs(x[f]))
        if k[0] is None:
            assert (y["tokens"], y["target_tokens"]) == (x["tokens"], x["target_tokens"])
            assert y["lr"] == pytest.approx(x["lr"])
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for name in wa:
        assert wa[name].dtype == wb[name].dtype and wa[name].shape == wb[name].shape
        assert torch.allclose(wa[name], wb[name], atol=1e-5), name
    assert sorted(p.name for p in a.iterdir()) == sorted(p.name for p in b.iterdir())
    assert json.loads((a / "config.json").read_text()) == \
        json.loads((b / "config.json").read_text())
    return worst


def cut_at(run: Path, dest: Path, step: int) -> Path:
    """What a run that died right after its step-``step`` checkpoint left behind."""
    shutil.copytree(run, dest)
    for p in dest.iterdir():
        if p.name not in ("checkpoints", "train_log.jsonl"):
            p.unlink()
    for c in (dest / "checkpoints").iterdir():
        if int(c.name.split("-")[1]) > step:
            shutil.rmtree(c)
    return dest


@pytest.fixture(scope="module")
def sft_one(setup):
    root, data, student, _ = setup
    synth.train(data=data, student=str(student), out=root / "sft-1x4", batch_size=4, **COMMON)
    return root / "sft-1x4"


def test_ddp_two_processes_at_batch_2_are_one_process_at_batch_4(setup, sft_one, tmp_path):
    root, data, student, _ = setup
    out = tmp_path / "ddp-2x2"
    torchrun(out, cli_args(data, student, batch_size=2))
    worst = assert_same_run(sft_one, out)
    print(f"DDP 2x2 vs 1x4: largest relative loss difference {worst:.2e}")
    info = json.loads((out / "train.json").read_text())
    assert (info["processes"], info["parallel"], info["batch_size"]) == (2, "ddp", 2)
    assert json.loads((sft_one / "train.json").read_text())["processes"] == 1
    # the checkpoint is one process's format (same keys, plain tensors, numbered optimiser
    # state) and resumes on one process at the same global batch, on the same curve
    ck = out / "checkpoints" / "step-0000003"
    one = sft_one / "checkpoints" / "step-0000003"
    assert torch.load(ck / "model.pt").keys() == torch.load(one / "model.pt").keys()
    cut = cut_at(out, tmp_path / "cut", 3)
    synth.train(data=data, student=str(student), out=cut, batch_size=4, resume=True,
                **COMMON)
    assert_same_run(sft_one, cut)
    # another global batch is another curve: refused, naming it
    with pytest.raises(synth.errors.ConfigError, match="batch_size"):
        synth.train(data=data, student=str(student), out=cut_at(out, tmp_path / "c2", 3),
                    batch_size=2, resume=True, **COMMON)


def test_fsdp_resumes_a_one_process_checkpoint_and_back(setup, tmp_path):
    """Online KL (the teacher's layers sharded too) with FSDP and activation checkpointing:
    a one-process checkpoint continues on 2 processes, whose checkpoint continues on one,
    each on the uninterrupted one-process curve."""
    root, data, student, teacher = setup
    kw = dict(data=data, student=str(student), teacher=str(teacher), loss="sft+kl", **COMMON)
    whole = tmp_path / "kl-1x4"
    synth.train(out=whole, batch_size=4, **kw)
    cut = cut_at(whole, tmp_path / "fsdp", 3)
    torchrun(cut, cli_args(data, student, batch_size=2, teacher=teacher, loss="sft+kl",
                           extra=["--fsdp", "--activation-checkpointing", "--resume"]))
    worst = assert_same_run(whole, cut)
    print(f"FSDP 2x2 resumed from 1x4 at step 3: largest relative loss difference "
          f"{worst:.2e}")
    assert json.loads((cut / "train.json").read_text())["parallel"] == "fsdp"
    back = cut_at(cut, tmp_path / "back", 6)
    synth.train(out=back, batch_size=4, resume=True, **kw)
    assert_same_run(whole, back)


def test_activation_checkpointing_gives_the_same_losses(setup, sft_one, tmp_path):
    from transformers import AutoModelForCausalLM

    from synth.train.distributed import enable_activation_checkpointing

    root, data, student, _ = setup
    for on, runs in ((False, 1), (True, 2)):  # the backward pass recomputes the layer
        m = AutoModelForCausalLM.from_pretrained(student).train()
        if on:
            enable_activation_checkpointing(m)
        n = []
        m.model.layers[0].mlp.register_forward_pre_hook(lambda *a: n.append(1))
        m.get_decoder()(input_ids=torch.tensor([[3, 4, 5, 6]]),
                        use_cache=False).last_hidden_state.sum().backward()
        assert len(n) == runs
    out = tmp_path / "ac"
    synth.train(data=data, student=str(student), out=out, batch_size=4,
                activation_checkpointing=True, **COMMON)
    assert_same_run(sft_one, out)


def test_fsdp_refuses_lora():
    from synth.train.config import TrainConfig

    with pytest.raises(ValueError, match="--fsdp with --lora-r"):
        TrainConfig(data="x", student="s", out="o", fsdp=True, lora_r=8)


def test_shard_rows_covers_the_batch_in_order():
    from synth.train.distributed import World, shard_rows

    for n in range(0, 9):
        rows = list(range(n))
        for size in (1, 2, 3):
            parts = [shard_rows(rows, World(rank=r, size=size)) for r in range(size)]
            assert sum(parts, []) == rows
            assert max(map(len, parts)) - min(map(len, parts)) <= 1
