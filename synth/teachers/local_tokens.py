"""A local model's prompt tokens, counted with its own tokenizer and chat template without
loading its weights: the local provider's ``token_counter`` trait (``synth estimate``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from synth import models as lm

if TYPE_CHECKING:
    from synth.teachers.base import TokenCount

__all__ = ["prompt_token_counter"]


def _tokenizer(model: str) -> tuple[Any, str | None]:
    """The tokenizer when it is cheap to get (a model folder, or a GGUF whose converted
    copy is in synth's cache); else ``(None, why)``."""
    try:
        folder, gguf = lm.resolve_model(model)
        if gguf is None:
            where = folder
        else:
            sha, cache = lm.converted_copy(model, folder, gguf)
            if not lm.cache_is_valid(cache, sha):
                return None, "the GGUF's tokenizer is not converted yet"
            where = str(cache)
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(where)
    except Exception as exc:  # a counter, never a reason to fail the estimate
        return None, f"tokenizer unavailable ({type(exc).__name__}: {exc})"
    if not getattr(tok, "chat_template", None):
        return None, "the tokenizer has no chat template"
    return tok, None


def prompt_token_counter(model: str) -> tuple[TokenCount | None, str | None]:
    """``(count(messages) -> tokens, None)``, counting as
    :class:`~synth.teachers.local.LocalTeacher` encodes a prompt, or ``(None, why)`` when
    the tokenizer cannot be had without loading weights."""
    tok, why = _tokenizer(model)
    if tok is None:
        return None, why

    def count(messages: list[dict[str, str]]) -> int:
        text = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return len(tok(text, add_special_tokens=False)["input_ids"])

    return count, None
