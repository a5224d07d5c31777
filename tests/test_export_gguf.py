"""``synth export STUDENT --format gguf``: a tiny random Llama student (byte-level BPE
tokenizer, the one tests/tiny_models.py's GGUF carries) written at each quant loads back in
transformers (``gguf_file=``) with its weights, logits, tokenizer and chat template; the
file has llama.cpp's layout and metadata; a trained student exports and runs through
synth's own GGUF loader; what cannot be exported is refused before anything is written."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
gguf = pytest.importorskip("gguf")

import synth  # noqa: E402
from synth.dataset.export import export_run  # noqa: E402
from synth.errors import ConfigError, InputError  # noqa: E402
from synth.train.gguf_export import export_gguf, permute_qk, pre_tokenizer_name  # noqa: E402
from tests.tiny_models import build_tiny_gguf, build_tiny_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TEXTS = ["the cat sat on the mat", "hello 333 world!", "<|im_start|>user hi<|im_end|>",
         "  two  spaces\nand a newline"]
IDS = [[263, 5, 40, 100, 200, 7, 30, 264, 90, 12]]
#: (quant, largest weight error relative to the tensor's largest value, logits: largest
#: difference relative to the largest logit). Q8_0 keeps 8 bits a 32-value block (error
#: <= half a step of max/127), Q4_0 4 bits (max/15): the bounds leave room above that, and
#: the logits drift with them.
TOLERANCE = {"f16": (1e-3, 0.01), "q8_0": (1e-2, 0.08), "q4_0": (0.15, 0.8)}


def build_student(path: Path, *, tied: bool = False, seed: int = 0) -> Path:
    """A 2-layer Llama (GQA: 4 query heads, 2 KV heads) from a config, with the byte-level
    BPE tokenizer and chat template of tests/tiny_models.py's tiny GGUF."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    src = build_tiny_gguf(path.parent / f"{path.name}-tok" / "bpe.gguf")
    tok = AutoTokenizer.from_pretrained(str(src.parent), gguf_file=src.name)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128,
                      num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                      max_position_embeddings=256, rms_norm_eps=1e-5, rope_theta=50000.0,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                      tie_word_embeddings=tied, initializer_range=0.2)
    torch.manual_seed(seed)
    LlamaForCausalLM(cfg).eval().save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def student(tmp_path_factory):
    return build_student(tmp_path_factory.mktemp("gguf") / "student")


@pytest.fixture(scope="module")
def exported(student, tmp_path_factory):
    out = tmp_path_factory.mktemp("gguf-out")
    return {q: export_gguf(student, out / f"s-{q}.gguf", quant=q) for q in TOLERANCE}


def load_hf(path: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kw = {"gguf_file": path.name} if path.suffix == ".gguf" else {}
    where = str(path.parent if kw else path)
    model = AutoModelForCausalLM.from_pretrained(where, dtype=torch.float32, **kw).eval()
    return model, AutoTokenizer.from_pretrained(where, **kw)


def logits(model):
    with torch.no_grad():
        return model(torch.tensor(IDS)).logits


@pytest.mark.parametrize("quant", list(TOLERANCE))
def test_each_quant_loads_back_in_transformers(student, exported, quant):
    ref, ref_tok = load_hf(student)
    model, tok = load_hf(exported[quant].out)
    w_tol, logit_tol = TOLERANCE[quant]
    want, got = ref.state_dict(), model.state_dict()
    assert set(want) == set(got)
    for name, w in want.items():
        err = (got[name] - w).abs().max().item() / w.abs().max().item()
        assert err <= w_tol, (name, err)
    a, b = logits(ref), logits(model)
    assert (a - b).abs().max().item() <= logit_tol * a.abs().max().item()
    if quant != "q4_0":  # 4 bits on a random model may swap near-ties
        assert (a.argmax(-1) == b.argmax(-1)).all()
    for text in TEXTS:  # the tokenizer round-trips
        assert tok(text)["input_ids"] == ref_tok(text)["input_ids"], text
        assert tok.decode(tok(text)["input_ids"]) == text
    assert tok.chat_template == ref_tok.chat_template and tok.chat_template
    assert (tok.bos_token, tok.eos_token) == (ref_tok.bos_token, ref_tok.eos_token)


def test_f16_is_tight(student, exported):
    a, b = logits(load_hf(student)[0]), logits(load_hf(exported["f16"].out)[0])
    assert torch.allclose(a, b, atol=2e-2, rtol=0)


def test_the_file_has_llama_cpp_layout_and_metadata(student, exported):
    from safetensors.torch import load_file

    r = gguf.GGUFReader(str(exported["f16"].out))
    f = {k: v.contents() for k, v in r.fields.items()}
    cfg = json.loads((student / "config.json").read_text())
    assert f["general.architecture"] == "llama"
    assert f["llama.block_count"] == 2 and f["llama.context_length"] == 256
    assert f["llama.attention.head_count"] == 4 and f["llama.attention.head_count_kv"] == 2
    assert f["llama.rope.freq_base"] == 50000.0 and f["llama.rope.dimension_count"] == 16
    assert f["llama.attention.layer_norm_rms_epsilon"] == pytest.approx(1e-5)
    assert f["llama.vocab_size"] == cfg["vocab_size"] == len(f["tokenizer.ggml.tokens"])
    assert f["tokenizer.ggml.model"] == "gpt2" and f["tokenizer.ggml.pre"] == "gpt-2"
    assert len(f["tokenizer.ggml.merges"]) == 7
    types = f["tokenizer.ggml.token_type"]
    tokens = f["tokenizer.ggml.tokens"]
    for special in ("<|im_start|>", "<|im_end|>"):
        assert types[tokens.index(special)] == gguf.TokenType.CONTROL
    assert f["tokenizer.ggml.bos_token_id"] == tokens.index("<|im_start|>")
    assert f["tokenizer.ggml.eos_token_id"] == tokens.index("<|im_end|>")
    assert f["tokenizer.chat_template"].startswith("{% for m in messages %}")
    assert f["general.file_type"] == gguf.LlamaFileType.MOSTLY_F16
    # Q and K are stored in llama.cpp's rotary order (interleaved), V as is
    hf = load_file(str(student / "model.safetensors"))
    t = {x.name: x for x in r.tensors}
    q = t["blk.0.attn_q.weight"].data.astype("float32")
    k = t["blk.0.attn_k.weight"].data.astype("float32")
    v = t["blk.0.attn_v.weight"].data.astype("float32")
    np_q = hf["model.layers.0.self_attn.q_proj.weight"].numpy()
    np_k = hf["model.layers.0.self_attn.k_proj.weight"].numpy()
    assert abs(q - permute_qk(np_q, 4)).max() < 1e-3 and abs(q - np_q).max() > 0.1
    assert abs(k - permute_qk(np_k, 2)).max() < 1e-3
    assert abs(v - hf["model.layers.0.self_attn.v_proj.weight"].numpy()).max() < 1e-3
    assert "output.weight" in t  # untied head


def test_tensor_types_per_quant(exported):
    assert exported["f16"].summary["tensor_types"] == {"F32": 5, "F16": 16}
    assert exported["q8_0"].summary["tensor_types"] == {"F32": 5, "Q8_0": 16}
    # q4_0: the output head stays Q8_0 (llama.cpp's own Q4_0 keeps it above 4 bits too)
    assert exported["q4_0"].summary["tensor_types"] == {"F32": 5, "Q4_0": 15, "Q8_0": 1}
    r = gguf.GGUFReader(str(exported["q4_0"].out))
    head = [x for x in r.tensors if x.name == "output.weight"][0]
    assert head.tensor_type == gguf.GGMLQuantizationType.Q8_0
    sizes = {q: exported[q].out.stat().st_size for q in exported}
    assert sizes["f16"] > sizes["q8_0"] > sizes["q4_0"]


def test_a_tied_student_has_no_output_tensor_and_loads_tied(tmp_path):
    s = build_student(tmp_path / "tied", tied=True, seed=1)
    res = export_gguf(s, tmp_path / "tied.gguf", quant="f16")
    names = {x.name for x in gguf.GGUFReader(str(res.out)).tensors}
    assert "output.weight" not in names and "token_embd.weight" in names
    model, _ = load_hf(res.out)
    assert model.config.tie_word_embeddings
    assert torch.allclose(logits(load_hf(s)[0]), logits(model), atol=2e-2, rtol=0)


def test_a_trained_student_runs_through_synths_gguf_loader(tmp_path, student, monkeypatch):
    """What `synth generate --teacher local:FILE.gguf` and `synth eval --student FILE.gguf`
    load: synth.models.load_model, after `synth train` wrote the student."""
    from synth.models import load_model

    monkeypatch.setenv("SYNTH_CACHE_DIR", str(tmp_path / "cache"))
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps({
        "id": f"r{i}", "prompt_id": f"p{i}", "status": "ok", "response": "the cat .",
        "messages": [{"role": "user", "content": "repeat the cat"}]}) + "\n"
        for i in range(4)))
    out = tmp_path / "trained"
    synth.train(data=data, student=str(student), out=out, max_steps=2, batch_size=2,
                progress=False)
    res = export_run(out, format="gguf", out=tmp_path / "trained.gguf", quant="f16")
    ref, tok = load_model(str(out))
    model, gtok = load_model(str(res.out))
    assert torch.allclose(logits(ref), logits(model), atol=2e-2, rtol=0)
    prompt = gtok.apply_chat_template([{"role": "user", "content": "repeat the cat"}],
                                      add_generation_prompt=True, tokenize=False)
    assert prompt == tok.apply_chat_template([{"role": "user", "content": "repeat the cat"}],
                                             add_generation_prompt=True, tokenize=False)
    ids = gtok(prompt, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        a = ref.generate(ids, max_new_tokens=6, do_sample=False)
        b = model.generate(ids, max_new_tokens=6, do_sample=False)
    assert a.tolist() == b.tolist()


# ------------------------------------------------------------------------ refusals

def test_a_bad_quant_is_a_config_error(student, tmp_path):
    with pytest.raises(ConfigError, match="--quant q5: must be one of f16, q8_0, q4_0"):
        export_run(student, format="gguf", out=tmp_path / "x.gguf", quant="q5")
    with pytest.raises(ConfigError, match="--quant f16: only with --format gguf"):
        export_run(student, format="chat-jsonl", out=tmp_path / "x", quant="f16")
    with pytest.raises(ConfigError, match="--split: applies to row exports"):
        export_run(student, format="gguf", out=tmp_path / "x.gguf", split=0.9)
    with pytest.raises(ConfigError, match="--out .*the .gguf file"):
        export_run(student, format="gguf", out=tmp_path / "x.bin")
    assert not list(tmp_path.iterdir())


def test_q4_k_m_without_llama_quantize_says_why(student, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ConfigError, match="llama-quantize on PATH.*cannot write K-quants"):
        export_gguf(student, tmp_path / "x.gguf", quant="q4_k_m")
    assert not list(tmp_path.iterdir())


@pytest.mark.skipif(shutil.which("llama-quantize") is None,
                    reason="llama.cpp's llama-quantize is not on PATH")
def test_q4_k_m_with_llama_quantize(student, tmp_path):
    res = export_gguf(student, tmp_path / "k.gguf", quant="q4_k_m")
    types = res.summary["tensor_types"]
    assert types.get("Q4_K") or types.get("Q5_0"), types  # 64-wide rows fall back
    model, tok = load_hf(res.out)
    a, b = logits(load_hf(student)[0]), logits(model)
    assert (a - b).abs().max().item() <= 0.8 * a.abs().max().item()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_another_architecture_is_refused_by_name(tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    d = tmp_path / "gpt2"
    GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=64)).save_pretrained(d)
    with pytest.raises(InputError, match=r"config.json: field 'architectures': architecture "
                       r"GPT2LMHeadModel \(model_type 'gpt2'\) cannot be exported"):
        export_gguf(d, tmp_path / "g.gguf")
    assert not (tmp_path / "g.gguf").exists()


def test_a_word_level_tokenizer_is_refused(tmp_path):
    m = build_tiny_model(tmp_path / "wl")
    with pytest.raises(InputError, match="tokenizer model 'WordLevel'.*byte-level BPE"):
        export_gguf(m, tmp_path / "w.gguf")
    assert not (tmp_path / "w.gguf").exists()


def test_pre_tokenizer_names():
    bl = {"type": "ByteLevel", "add_prefix_space": False, "use_regex": True}
    assert pre_tokenizer_name(bl) == "gpt-2"
    assert pre_tokenizer_name({"type": "Sequence", "pretokenizers": [
        {"type": "Digits", "individual_digits": True}, bl]}) == "smollm"
    assert pre_tokenizer_name({"type": "Whitespace"}) is None
    assert pre_tokenizer_name({**bl, "use_regex": False}) is None  # Llama 3's Split first


def test_nothing_half_written_on_error(student, tmp_path, monkeypatch):
    out = tmp_path / "x.gguf"
    out.write_bytes(b"GGUF old")  # an earlier export: replaced only by a whole new file

    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(gguf.quants, "quantize", boom)
    with pytest.raises(synth.errors.OutputError, match="No space left"):
        export_gguf(student, out, quant="q8_0")
    assert out.read_bytes() == b"GGUF old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.gguf"]


def test_an_existing_file_that_is_not_gguf_is_not_overwritten(student, tmp_path):
    out = tmp_path / "notes.gguf"
    out.write_text("my notes")
    with pytest.raises(ConfigError, match="exists and is not a GGUF file"):
        export_gguf(student, out)
    assert out.read_text() == "my notes"


def test_cli(student, tmp_path):
    def run(*args):
        return subprocess.run([sys.executable, "-m", "synth", "export", str(student),
                               "--format", "gguf", *args], cwd=ROOT, capture_output=True,
                              text=True)

    r = run("--quant", "q8_0", "--out", str(tmp_path / "s.gguf"))
    assert r.returncode == 0, r.stderr
    assert "exported GGUF q8_0" in r.stderr and (tmp_path / "s.gguf").is_file()
    r = run("--quant", "q3", "--out", str(tmp_path / "t.gguf"))
    assert r.returncode == 2 and "--quant" in r.stderr and not (tmp_path / "t.gguf").exists()


def test_a_trained_student_carries_its_licence_to_the_check(tmp_path, student):
    """A student synth trained (its directory, or the GGUF exported from it) is checked by
    its training rows' teachers and the weights it started from: no --accept-terms unknown
    for your own student, and the teachers' terms still bind (OpenAI's rows: no competing
    model). A directory synth did not train stays unknown."""
    from synth.licences import check, load_registry

    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps({
        "id": f"r{i}", "prompt_id": f"p{i}", "status": "ok", "response": "the cat .",
        "messages": [{"role": "user", "content": "repeat the cat"}],
        "provider": "openai", "model": "gpt-4o-mini",
        "base_url": "https://api.openai.com/v1"}) + "\n" for i in range(4)))
    out = tmp_path / "trained"
    synth.train(data=data, student=str(student), out=out, max_steps=1, batch_size=2,
                progress=False)
    prov = json.loads((out / "train.json").read_text())["provenance"]
    assert prov == {"teachers": [["openai", "gpt-4o-mini", "https://api.openai.com/v1"]],
                    "rows_without": 0, "base_model": str(student)}
    gguf_file = export_run(out, format="gguf", out=tmp_path / "s.gguf", quant="q8_0").out
    reg = load_registry()
    for model in (str(out), f"local:{out}", str(gguf_file)):
        d = check(reg, provider="local", model=model, base_url=None, intent="internal",
                  accept=("unknown",))  # the base: a tiny random model nobody licensed
        assert "openai-api" in d.entries, model
        assert any("is a student synth trained" in r for r in d.reasons)
        denied = check(reg, provider="local", model=model, base_url=None,
                       intent="competing", accept=("unknown",))
        assert denied.decision == "deny"
    plain = check(reg, provider="local", model=str(student), base_url=None,
                  intent="internal")
    assert plain.needs_acceptance  # not a synth student: its terms are unknown
