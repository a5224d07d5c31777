"""Build a tiny, randomly initialised Llama-style chat model for tests, without any download.

The tokenizer is a word-level ``tokenizers`` model over a fixed word list, with ChatML-like
special tokens and a small Jinja chat template. The model is a 2-layer ``LlamaForCausalLM``
with hidden size 64. Everything is seeded, so the same call builds the same weights.

``build_tiny_model(path)`` saves both to ``path`` (an HF model directory with
``config.json``) and returns it; ``LocalTeacher(str(path))`` can load it in well under a second.
``build_tiny_gguf(path)`` writes a similar model as an F32 GGUF file (byte-level BPE
tokenizer, same chat template) to exercise the GGUF conversion and cache.
"""

from __future__ import annotations

from pathlib import Path

WORDS = (
    "the a an and or but if then else when where why how what who which this that these "
    "those is are was were be been being have has had do does did can could will would "
    "shall should may might must i you he she it we they me him her us them my your his "
    "its our their one two three four five six seven eight nine ten zero hundred thousand "
    "add subtract multiply divide sum number numbers list word words sentence story poem "
    "write explain describe summarise translate answer question questions short long "
    "simple quick brown fox dog cat bird fish tree river mountain city house car road "
    "water fire earth air sun moon star sky day night time year week hour minute second "
    "red green blue yellow black white big small old new good bad happy sad fast slow "
    "hot cold up down left right in out on off over under before after again always never "
    "python code function class loop value string integer float true false error test "
    "data model train learn teach student teacher book read file line table row column "
    "please tell give make find show use call run stop start go come see look think "
    "know want need like love help try ask work play eat drink sleep walk talk sing "
    "user assistant system about with for from to of by as at all some any more most"
).split()

SPECIAL = ["[UNK]", "<|im_start|>", "<|im_end|>"]

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|> {{ m['role'] }} {{ m['content'] }} <|im_end|> "
    "{% endfor %}{% if add_generation_prompt %}<|im_start|> assistant {% endif %}"
)


def build_tokenizer(*, chat_template: str | None = CHAT_TEMPLATE):
    """A word-level fast tokenizer: eos ``<|im_end|>``, no pad token (the teacher adds one)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIAL)}
    for w in dict.fromkeys(WORDS):
        vocab.setdefault(w, len(vocab))
    for p in ".,?!:;'\"()-+*/=0123456789":
        vocab.setdefault(p, len(vocab))
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core, unk_token="[UNK]", bos_token="<|im_start|>",
        eos_token="<|im_end|>", additional_special_tokens=["<|im_start|>", "<|im_end|>"],
    )
    if chat_template is not None:
        tok.chat_template = chat_template
    return tok


def build_tiny_model(path: str | Path, *, seed: int = 0, eos_boost: float = 1.6,
                     chat_template: str | None = CHAT_TEMPLATE) -> Path:
    """Save a tiny random Llama + tokenizer under ``path`` and return the path.

    ``eos_boost`` scales the EOS row of the output head so that greedy decoding ends with
    EOS after a few tokens for some prompts and runs to the length limit for others.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    path = Path(path)
    tok = build_tokenizer(chat_template=chat_template)
    config = LlamaConfig(
        vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=None,
        tie_word_embeddings=False, initializer_range=0.2,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        model.lm_head.weight[tok.eos_token_id] *= eos_boost
    model.eval()
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


def _byte_symbols() -> list[str]:
    """The printable stand-in character for each byte value, as byte-level BPE vocabularies
    spell them (printable Latin-1 bytes map to themselves, the rest to U+0100 onwards)."""
    keep = [b for b in range(256)
            if ord("!") <= b <= ord("~") or 0xA1 <= b <= 0xAC or 0xAE <= b <= 0xFF]
    symbols: dict[int, str] = {b: chr(b) for b in keep}
    extra = 0
    for b in range(256):
        if b not in symbols:
            symbols[b] = chr(256 + extra)
            extra += 1
    return [symbols[b] for b in range(256)]


def build_tiny_gguf(path: str | Path, *, seed: int = 0, hidden: int = 32, layers: int = 2,
                    heads: int = 4, kv_heads: int = 2, ffn: int = 64, context: int = 256) -> Path:
    """Write a tiny random Llama as an unquantised (F32) GGUF file with a byte-level BPE
    tokenizer and the same chat template; transformers can load it with ``gguf_file=``."""
    import gguf
    import numpy as np

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    merges = ["t h", "e r", "th e", "i n", "a n", "o n", "r e"]
    tokens = _byte_symbols() + [m.replace(" ", "") for m in merges] + ["<|im_start|>",
                                                                      "<|im_end|>"]
    vocab = len(tokens)
    head_dim = hidden // heads

    def rand(*shape):
        return (rng.standard_normal(shape) * 0.2).astype(np.float32)

    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("tiny-random-llama")
    w.add_context_length(context)
    w.add_embedding_length(hidden)
    w.add_block_count(layers)
    w.add_feed_forward_length(ffn)
    w.add_head_count(heads)
    w.add_head_count_kv(kv_heads)
    w.add_rope_dimension_count(head_dim)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(vocab)
    w.add_file_type(0)  # all F32
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_types([1] * (vocab - 2) + [3, 3])
    w.add_token_merges(merges)
    w.add_bos_token_id(vocab - 2)
    w.add_eos_token_id(vocab - 1)
    w.add_chat_template(CHAT_TEMPLATE)
    w.add_tensor("token_embd.weight", rand(vocab, hidden))
    w.add_tensor("output_norm.weight", np.ones(hidden, np.float32))
    w.add_tensor("output.weight", rand(vocab, hidden))
    for i in range(layers):
        w.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(hidden, np.float32))
        w.add_tensor(f"blk.{i}.attn_q.weight", rand(heads * head_dim, hidden))
        w.add_tensor(f"blk.{i}.attn_k.weight", rand(kv_heads * head_dim, hidden))
        w.add_tensor(f"blk.{i}.attn_v.weight", rand(kv_heads * head_dim, hidden))
        w.add_tensor(f"blk.{i}.attn_output.weight", rand(hidden, heads * head_dim))
        w.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(hidden, np.float32))
        w.add_tensor(f"blk.{i}.ffn_gate.weight", rand(ffn, hidden))
        w.add_tensor(f"blk.{i}.ffn_up.weight", rand(ffn, hidden))
        w.add_tensor(f"blk.{i}.ffn_down.weight", rand(hidden, ffn))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path
