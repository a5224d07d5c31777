"""A trained student → one GGUF file that llama.cpp runs and transformers loads
(``synth export STUDENT --format gguf --quant Q --out FILE.gguf``).

Why here (``synth.train``) and not beside the row exports in ``synth.dataset``: the input
is a model directory (what ``synth train`` writes, or any Hugging Face Llama directory),
and the output is a model; :func:`synth.dataset.export.export_run` only routes
``--format gguf`` to :func:`export_gguf`.

Writer: the ``gguf`` package (llama.cpp's own Python library, ``gguf-py``), not a format
written by hand. Its ``GGUFWriter`` lays out the file, its ``TensorNameMap`` names the
tensors, its ``SpecialVocab`` reads merges, special tokens and the chat template, and its
``gguf.quants`` quantises. llama.cpp's ``convert_hf_to_gguf.py`` is not on PyPI (it ships
only in llama.cpp's source tree), so what it does for ``LlamaForCausalLM`` is done here with
the same library calls: Q and K rows permuted into llama.cpp's rotary layout, the same
metadata keys, the tokenizer's tokens with their types, ``[PADn]`` for unused ids.

Quantisation (``--quant``), the types each tensor gets:

``f16``     2-D weights F16; norms F32 (llama.cpp keeps every 1-D tensor F32).
``q8_0``    2-D weights Q8_0; norms F32.
``q4_0``    2-D weights Q4_0, except the output head (the token embeddings when they are
            tied to it) at Q8_0; norms F32. llama.cpp's own Q4_0 gives that head Q6_K, or
            Q8_0 when its rows are not a multiple of 256 wide (SmolLM2: 576), so for
            SmolLM2-sized students this is llama.cpp's mix; gguf 0.19 cannot write Q6_K.
``q4_k_m``  llama.cpp's Q4_K_M mix (Q4_K, with attn_v / ffn_down in some layers and the head
            at Q6_K; tensors not 256-wide fall back to Q5_0 / Q8_0). gguf 0.19 can read but
            not write the K-quants (``gguf.quants.quantize`` raises NotImplementedError for
            Q2_K-Q6_K), so this writes an F32 GGUF and runs llama.cpp's ``llama-quantize``
            on it; without that program on PATH it is a ConfigError saying so.

A tensor whose rows do not split into the quant's blocks (32 values) is written F16, as
llama.cpp falls back. Only Llama-architecture students (``LlamaForCausalLM``: SmolLM2 and
students cut from it) with a byte-level BPE ``tokenizer.json`` are exported; anything else
is refused before a byte is written, naming what was found. The file is written beside
``--out`` under a temporary name and renamed at the end: an error leaves nothing.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synth.errors import ConfigError, InputError, OutputError
from synth.io import atomic_path

__all__ = ["QUANTS", "DEFAULT_QUANT", "GGUFResult", "export_gguf", "check_exportable",
           "read_gguf", "pre_tokenizer_name",
           "PROVENANCE_KEY"]

log = logging.getLogger(__name__)

QUANTS = ("f16", "q8_0", "q4_0", "q4_k_m")
DEFAULT_QUANT = "q8_0"
#: llama.cpp's quantiser, for the K-quants gguf 0.19 cannot write.
LLAMA_QUANTIZE = "llama-quantize"
_ARCHS = ("LlamaForCausalLM",)
#: llama.cpp's converter names a BPE pre-tokenizer by the sha256 of the ids of this text
#: (convert_hf_to_gguf.py, get_vocab_base_pre); SmolLM's hash is the one we need: its
#: tokenizer.json, once through transformers' GGUF loader, no longer shows the digit split,
#: yet it tokenizes as ``smollm`` (and ``smollm`` keeps llama.cpp from "cleaning" spaces on
#: decode, as SmolLM's tokenizer does not).
_CHKTXT = '\n \n\n \n\n\n \t \t\t \t\n  \n   \n    \n     \n🚀 (normal) 😶\u200d🌫️ (multiple emojis concatenated) ✅ 🦙🦙 3 33 333 3333 33333 333333 3333333 33333333 3.3 3..3 3...3 កាន់តែពិសេសអាច😁 ?我想在apple工作1314151天～ ------======= нещо на Български \'\'\'\'\'\'```````""""......!!!!!!?????? I\'ve been \'told he\'s there, \'RE you sure? \'M not sure I\'ll make it, \'D you like some tea? We\'Ve a\'lL'
_SMOLLM_CHKHSH = "855059429035d75a914d1eda9f10a876752e281a054a7a3d421ef0533e5b6249"


@dataclass
class GGUFResult:
    """What :func:`export_gguf` wrote (``paths``/``rows``/``skipped`` mirror
    :class:`~synth.dataset.export.ExportResult`, so ``synth export`` reports either)."""

    out: Path
    summary: dict[str, Any]
    paths: list[Path] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)

    @property
    def warnings(self) -> list[str]:
        return list(self.summary.get("warnings", []))


# ------------------------------------------------------------------------ checks

def _student_dir(source: Path) -> Path:
    """The model directory: ``source`` itself, or a ``synth run`` directory's student/."""
    for d in (source, source / "student"):
        if (d / "config.json").is_file():
            return d
    raise InputError("not a model directory (no config.json here or in student/): give "
                     "the directory `synth train` wrote", path=str(source))


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise InputError(f"cannot read: {e}", path=str(path)) from None
    if not isinstance(data, dict):
        raise InputError("not a JSON object", path=str(path))
    return data


def _check_config(cfg: dict[str, Any], path: Path) -> None:
    archs = cfg.get("architectures") or []
    if cfg.get("model_type") != "llama" or not set(archs) & set(_ARCHS):
        raise InputError(
            f"architecture {', '.join(archs) or '?'} (model_type {cfg.get('model_type')!r}) "
            "cannot be exported to GGUF by synth: only Llama-architecture students "
            "(LlamaForCausalLM: SmolLM2 and students cut from it) are supported",
            path=str(path), field="architectures")
    for key in ("attention_bias", "mlp_bias"):
        if cfg.get(key):
            raise InputError(f"{key} is true: llama.cpp's llama graph has no such biases",
                             path=str(path), field=key)
    rope = cfg.get("rope_parameters") or cfg.get("rope_scaling") or {}
    kind = rope.get("rope_type") or rope.get("type") or "default"
    if kind not in ("default", "linear"):
        raise InputError(f"rope type {kind!r} is not supported by the GGUF export (default "
                         "and linear are)", path=str(path), field="rope_parameters")
    for key in ("hidden_size", "num_attention_heads", "num_hidden_layers",
                "intermediate_size", "vocab_size"):
        if not isinstance(cfg.get(key), int) or cfg[key] < 1:
            raise InputError("missing or not a positive integer", path=str(path), field=key)


def pre_tokenizer_name(pre: Any) -> str | None:
    """llama.cpp's ``tokenizer.ggml.pre`` for a ``tokenizer.json`` pre-tokenizer, or None.

    Read from the pre-tokenizer's structure rather than from llama.cpp's table of
    token-id hashes (which lives only in its converter): GPT-2's byte-level split is
    ``gpt-2``; individual digits first, then that split, is ``smollm`` (SmolLM's). Both use
    GPT-2's regex in llama.cpp (src/llama-vocab.cpp), ``smollm`` after a digit split."""
    def byte_level(p: Any) -> bool:
        return isinstance(p, dict) and p.get("type") == "ByteLevel" and \
            p.get("use_regex", True) and not p.get("add_prefix_space", False)

    if byte_level(pre):
        return "gpt-2"
    if isinstance(pre, dict) and pre.get("type") == "Sequence":
        parts = pre.get("pretokenizers") or []
        if len(parts) == 2 and parts[0].get("type") == "Digits" and \
                parts[0].get("individual_digits") and byte_level(parts[1]):
            return "smollm"
    return None


def _tokenizer_spec(model_dir: Path) -> tuple[dict[str, Any], str]:
    path = model_dir / "tokenizer.json"
    if not path.is_file():
        why = " (a SentencePiece tokenizer.model is not supported)" if \
            (model_dir / "tokenizer.model").is_file() else ""
        raise InputError(f"no tokenizer.json: the GGUF export needs a byte-level BPE "
                         f"tokenizer{why}", path=str(model_dir))
    spec = _read_json(path)
    model = spec.get("model") or {}
    if model.get("type") != "BPE":
        raise InputError(f"tokenizer model {model.get('type')!r}: the GGUF export writes "
                         "byte-level BPE tokenizers only (llama.cpp's 'gpt2' vocab)",
                         path=str(path), field="model.type")
    pre = pre_tokenizer_name(spec.get("pre_tokenizer"))
    if pre is None:
        found = json.dumps(spec.get("pre_tokenizer"))[:200]
        raise InputError(f"pre-tokenizer {found} has no llama.cpp equivalent synth knows "
                         "(byte-level GPT-2 split, optionally after single digits)",
                         path=str(path), field="pre_tokenizer")
    return spec, pre


def check_exportable(spec: str) -> None:
    """Before a run trains a student to export (a pipeline's ``quantise``): the model the
    student comes from (``spec``: an HF directory, a ``.gguf``, an embedded name) has what
    the export needs: the Llama architecture and a byte-level BPE tokenizer. A GGUF is
    checked through its converted copy when synth has made one (the config and tokenizer a
    cut student is saved from; reading them takes milliseconds where parsing the GGUF takes
    seconds), else by its metadata (``general.architecture``, ``tokenizer.ggml.model``:
    ``gpt2`` is llama.cpp's byte-level BPE); a spec that names no local model is not
    checked here."""
    from synth.models import cache_is_valid, converted_copy, resolve_model

    spec = spec.removeprefix("local:")
    try:
        folder, name = resolve_model(spec)
    except Exception:  # a hub name, not on this machine: the export checks the student
        return
    if name is not None:  # its converted copy, once made, holds the files a cut starts from
        sha, cache = converted_copy(spec, folder, name)
        if cache_is_valid(cache, sha):
            folder, name = str(cache), None
    if name is None:
        _check_config(_read_json(Path(folder) / "config.json"), Path(folder) / "config.json")
        _tokenizer_spec(Path(folder))
        return
    path = Path(folder) / name
    fields = read_gguf(path).fields

    def text(key: str) -> str | None:
        f = fields.get(key)
        return None if f is None else bytes(f.parts[f.data[0]]).decode("utf-8", "replace")

    arch, vocab = text("general.architecture"), text("tokenizer.ggml.model")
    if arch != "llama":
        raise InputError(f"architecture {arch!r}: only Llama-architecture students are "
                         "exported to GGUF by synth", path=str(path),
                         field="general.architecture")
    if vocab != "gpt2":
        raise InputError(f"tokenizer {vocab!r}: the GGUF export writes byte-level BPE "
                         "tokenizers only (llama.cpp's 'gpt2' vocab)", path=str(path),
                         field="tokenizer.ggml.model")


def check_out_file(out: Path, model_dir: Path) -> None:
    """``out`` must be a new ``.gguf`` path or an existing GGUF (replaced), outside the
    student directory (a student is never changed by an export)."""
    if out.suffix.lower() != ".gguf":
        raise ConfigError(f"--out {out}: with --format gguf, --out is the .gguf file to write")
    if out.is_dir():
        raise ConfigError(f"--out {out}: is a directory; give the .gguf file to write")
    if out.exists():
        with open(out, "rb") as f:
            if f.read(4) != b"GGUF":
                raise ConfigError(f"--out {out}: exists and is not a GGUF file; not "
                                  "overwriting it")
    if out.resolve().parent.is_relative_to(model_dir.resolve()):
        raise ConfigError(f"--out {out}: is inside the student directory {model_dir}; write "
                          "the GGUF elsewhere (a student directory is never changed)")
    parent = out.resolve().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"--out {out}: {parent} is not a writable directory")


# ------------------------------------------------------------------------ tensors

def _weights(model_dir: Path) -> dict[str, Any]:
    """name → float32 numpy array, from model.safetensors (or its shards)."""
    from safetensors import safe_open

    index = model_dir / "model.safetensors.index.json"
    if index.is_file():
        files = sorted(set(_read_json(index).get("weight_map", {}).values()))
    elif (model_dir / "model.safetensors").is_file():
        files = ["model.safetensors"]
    else:
        raise InputError("no model.safetensors: the GGUF export reads safetensors weights "
                         "(what `synth train` saves)", path=str(model_dir))
    out: dict[str, Any] = {}
    for name in files:
        try:
            with safe_open(str(model_dir / name), framework="pt") as f:
                for key in f.keys():
                    out[key] = f.get_tensor(key).float().numpy()
        except Exception as e:  # noqa: BLE001 - safetensors raises its own error types
            raise InputError(f"cannot read the weights: {e}", path=str(model_dir / name)) \
                from None
    return out


def permute_qk(w: Any, n_head: int) -> Any:
    """HF's rotary layout (halves) → llama.cpp's (interleaved pairs) for a Q or K weight,
    as llama.cpp's converter does (``LlamaModel.permute``); transformers' GGUF loader undoes
    it (``_reverse_permute_weights``)."""
    return (w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
            .swapaxes(1, 2).reshape(w.shape))


def _tensor_type(name: str, w: Any, quant: str, tied: bool) -> Any:
    """The GGML type of one tensor at ``quant`` (see the module docstring)."""
    from gguf import GGMLQuantizationType as T

    if w.ndim < 2:
        return T.F32
    if quant in ("f16", "q4_k_m"):  # q4_k_m: llama-quantize gets an unquantised file
        return T.F16 if quant == "f16" else T.F32
    want = T.Q8_0 if quant == "q8_0" else T.Q4_0
    head = name == "output.weight" or (tied and name == "token_embd.weight")
    if head:
        want = T.Q8_0  # llama.cpp: Q6_K, or Q8_0 when not 256-wide; no Q6_K writer here
    return want if w.shape[-1] % 32 == 0 else T.F16


def _tensors(weights: dict[str, Any], cfg: dict[str, Any], path: Path) -> list[tuple[str, Any]]:
    import gguf

    n_layers = cfg["num_hidden_layers"]
    n_head = cfg["num_attention_heads"]
    n_kv = cfg.get("num_key_value_heads") or n_head
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, n_layers)
    tied = cfg.get("tie_word_embeddings", False)
    out = []
    for hf, w in weights.items():
        if hf.endswith("rotary_emb.inv_freq"):
            continue  # recomputed from rope metadata
        if hf == "lm_head.weight" and tied:
            continue  # llama.cpp reads the tied head from token_embd
        name = names.get_name(hf, try_suffixes=(".weight", ".bias"))
        if name is None:
            raise InputError(f"tensor {hf!r} has no llama GGUF name (is this a plain "
                             "LlamaForCausalLM?)", path=str(path))
        if hf.endswith("q_proj.weight"):
            w = permute_qk(w, n_head)
        elif hf.endswith("k_proj.weight"):
            w = permute_qk(w, n_kv)
        out.append((name, w))
    have = {n for n, _ in out}
    if not tied and "output.weight" not in have:
        raise InputError("no lm_head.weight and tie_word_embeddings is false", path=str(path))
    if "token_embd.weight" not in have:
        raise InputError("no embed_tokens weight", path=str(path))
    return out


# ------------------------------------------------------------------------ vocabulary

def _vocab(model_dir: Path, cfg: dict[str, Any],
           pre: str) -> tuple[list[str], list[int], Any, bool, str]:
    """(tokens, token types, special vocab, add_bos, pre-tokenizer), as llama.cpp's
    converter makes them for a byte-level BPE tokenizer (``get_vocab_base``)."""
    import gguf
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(str(model_dir))
    except Exception as e:  # noqa: BLE001 - transformers raises many kinds
        raise InputError(f"cannot load the tokenizer: {e}", path=str(model_dir)) from None
    n = cfg["vocab_size"]
    vocab = tok.get_vocab()
    if max(vocab.values()) >= n:
        raise InputError(f"the tokenizer has ids up to {max(vocab.values())}, past the "
                         f"model's vocab_size {n}", path=str(model_dir / "config.json"),
                         field="vocab_size")
    by_id = {i: t for t, i in vocab.items()}
    added = tok.added_tokens_decoder
    tokens, types = [], []
    for i in range(n):
        if i not in by_id:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
        elif i in added:
            tokens.append(by_id[i])
            types.append(gguf.TokenType.CONTROL if added[i].special
                         else gguf.TokenType.USER_DEFINED)
        else:
            tokens.append(by_id[i])
            types.append(gguf.TokenType.NORMAL)
    special = gguf.SpecialVocab(model_dir, load_merges=True, n_vocab=n)
    if not special.merges:
        raise InputError("the tokenizer has no BPE merges", path=str(model_dir / "tokenizer.json"))
    if hashlib.sha256(str(tok.encode(_CHKTXT)).encode()).hexdigest() == _SMOLLM_CHKHSH:
        pre = "smollm"
    # what the student was trained with: does encoding put a BOS first?
    ids = tok("a")["input_ids"]
    add_bos = bool(ids) and tok.bos_token_id is not None and ids[0] == tok.bos_token_id
    return tokens, [int(t) for t in types], special, add_bos, pre


# ------------------------------------------------------------------------ writing

def _file_type(quant: str) -> int:
    from gguf import LlamaFileType as F

    return {"f16": F.MOSTLY_F16, "q8_0": F.MOSTLY_Q8_0, "q4_0": F.MOSTLY_Q4_0,
            "q4_k_m": F.ALL_F32}[quant]


def _card_licence(model_dir: Path) -> str | None:
    """The ``license`` of the student's model card header (synth train writes one)."""
    try:
        text = (model_dir / "README.md").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    if not text.startswith("---\n") or "\n---\n" not in text[4:]:
        return None
    import yaml

    try:
        meta = yaml.safe_load(text[4:].split("\n---\n", 1)[0])
    except yaml.YAMLError:
        return None
    lic = meta.get("license") if isinstance(meta, dict) else None
    return lic if isinstance(lic, str) else None


#: the GGUF key holding a synth student's provenance (train.json's, as JSON)
PROVENANCE_KEY = "synth.provenance"


def _provenance(model_dir: Path) -> str | None:
    import json

    try:
        prov = json.loads((model_dir / "train.json").read_text()).get("provenance")
    except (OSError, ValueError, AttributeError):
        return None
    return json.dumps(prov) if isinstance(prov, dict) else None


def _write(path: Path, model_dir: Path, cfg: dict[str, Any], quant: str,
           tensors: list[tuple[str, Any]], vocab: tuple, pre: str) -> dict[str, int]:
    import gguf

    tokens, types, special, add_bos, _ = vocab
    hidden, n_head = cfg["hidden_size"], cfg["num_attention_heads"]
    head_dim = cfg.get("head_dim") or hidden // n_head
    rope = cfg.get("rope_parameters") or cfg.get("rope_scaling") or {}
    theta = rope.get("rope_theta", cfg.get("rope_theta", 10000.0))
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_type(gguf.GGUFType.MODEL)
    w.add_name(model_dir.resolve().name)
    if (lic := _card_licence(model_dir)) is not None:
        w.add_license(lic)
    if (prov := _provenance(model_dir)) is not None:  # the licence check reads it back
        w.add_string(PROVENANCE_KEY, prov)
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_context_length(cfg.get("max_position_embeddings") or 2048)
    w.add_embedding_length(hidden)
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(n_head)
    w.add_head_count_kv(cfg.get("num_key_value_heads") or n_head)
    w.add_rope_freq_base(float(theta))
    if (rope.get("rope_type") or rope.get("type")) == "linear":
        w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        w.add_rope_scaling_factor(float(rope["factor"]))
    w.add_layer_norm_rms_eps(float(cfg.get("rms_norm_eps", 1e-6)))
    w.add_key_length(head_dim)  # as llama.cpp's converter: always, though implied here
    w.add_value_length(head_dim)
    w.add_file_type(_file_type(quant))
    w.add_vocab_size(cfg["vocab_size"])
    w.add_rope_dimension_count(head_dim)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(pre)
    w.add_token_list(tokens)
    w.add_token_types(types)
    special.add_to_gguf(w, quiet=True)
    w.add_add_bos_token(add_bos)  # after SpecialVocab: the tokenizer's behaviour decides
    tied = bool(cfg.get("tie_word_embeddings", False))
    counts: dict[str, int] = {}
    for name, data in tensors:
        qtype = _tensor_type(name, data, quant, tied)
        if qtype == gguf.GGMLQuantizationType.F32:
            w.add_tensor(name, data.astype("float32"))
        elif qtype == gguf.GGMLQuantizationType.F16:
            w.add_tensor(name, data.astype("float16"))
        else:
            w.add_tensor(name, gguf.quants.quantize(data, qtype), raw_dtype=qtype)
        counts[qtype.name] = counts.get(qtype.name, 0) + 1
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)  # llama.cpp's converter always does
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return counts


def _llama_quantize(src: Path, dst: Path) -> dict[str, int]:
    exe = shutil.which(LLAMA_QUANTIZE)
    r = subprocess.run([exe or LLAMA_QUANTIZE, str(src), str(dst), "Q4_K_M"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        tail = " ".join((r.stderr or r.stdout).split())[-400:]
        raise OutputError(f"{LLAMA_QUANTIZE} failed (exit {r.returncode}): {tail}",
                          path=str(dst))
    return tensor_types(dst)


def read_gguf(path: str | Path) -> Any:
    """The gguf package's reader of ``path``, parsed once per version of the file in a
    process (its size and mtime): parsing reads every metadata value, SmolLM2's 49k-token
    vocabulary included (~2 s here), and eval's checks, its table and the export's checks
    read the same files. An unreadable file raises each time (failures are not kept)."""
    p = Path(path).resolve()
    st = p.stat()
    return _reader(str(p), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _reader(path: str, size: int, mtime_ns: int) -> Any:
    import gguf

    return gguf.GGUFReader(path)


def tensor_types(path: Path) -> dict[str, int]:
    """How many tensors of each GGML type a GGUF file holds."""
    counts: dict[str, int] = {}
    for t in read_gguf(path).tensors:
        counts[t.tensor_type.name] = counts.get(t.tensor_type.name, 0) + 1
    return counts


def export_gguf(source: str | Path, out: str | Path, *, quant: str | None = None) -> GGUFResult:
    """Write the student at ``source`` to the GGUF file ``out`` at ``quant`` (default
    ``q8_0``); see the module docstring. Options are checked first (ConfigError), then the
    student (InputError); nothing is written unless all pass."""
    from synth.deps import require
    from synth.version import __version__

    quant = DEFAULT_QUANT if quant is None else quant
    if quant not in QUANTS:
        raise ConfigError(f"--quant {quant}: must be one of {', '.join(QUANTS)}")
    if quant == "q4_k_m" and shutil.which(LLAMA_QUANTIZE) is None:
        raise ConfigError(
            f"--quant q4_k_m needs llama.cpp's {LLAMA_QUANTIZE} on PATH: the gguf package "
            "(0.19) cannot write K-quants (gguf.quants.quantize has no Q4_K/Q6_K). Build "
            "llama.cpp and put its bin/ on PATH, or use --quant q4_0 (numpy, written by "
            "the gguf package) or q8_0")
    require([("gguf", "gguf"), ("safetensors", "safetensors"),
             ("transformers", "transformers")], what="`synth export --format gguf`",
            extra="local")
    out = Path(out)
    model_dir = _student_dir(Path(source))
    check_out_file(out, model_dir)
    cfg_path = model_dir / "config.json"
    cfg = _read_json(cfg_path)
    _check_config(cfg, cfg_path)
    _, pre = _tokenizer_spec(model_dir)
    vocab = _vocab(model_dir, cfg, pre)
    pre = vocab[4]
    tensors = _tensors(_weights(model_dir), cfg, model_dir)

    out.parent.mkdir(parents=True, exist_ok=True)
    raw = out.with_name(f".{out.name}.{os.getpid()}.f32.tmp")  # q4_k_m's F32 input
    try:
        with atomic_path(out) as tmp:
            if quant == "q4_k_m":
                _write(raw, model_dir, cfg, quant, tensors, vocab, pre)
                counts = _llama_quantize(raw, tmp)
            else:
                counts = _write(tmp, model_dir, cfg, quant, tensors, vocab, pre)
    finally:
        with contextlib.suppress(OSError):
            raw.unlink(missing_ok=True)
    warnings = []
    if vocab[2].chat_template is None:
        warnings.append("the student has no chat template: llama.cpp's chat endpoints will "
                        "fall back to their own default")
    summary = {"synth_version": __version__, "format": "gguf", "quant": quant,
               "source": str(source), "model_dir": str(model_dir), "out": str(out),
               "bytes": out.stat().st_size, "tensor_types": counts,
               "tokenizer_pre": pre, "chat_template": vocab[2].chat_template is not None,
               "writer": f"gguf {_gguf_version()}" + (
                   f" + {LLAMA_QUANTIZE}" if quant == "q4_k_m" else ""),
               "warnings": warnings}
    for w in warnings:
        log.warning("synth export: %s", w)
    return GGUFResult(out=out, summary=summary, paths=[out])


def _gguf_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("gguf")
    except PackageNotFoundError:
        return "?"
