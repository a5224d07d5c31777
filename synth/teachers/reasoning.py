"""Normalise chain-of-thought into one ``reasoning`` column.

Teachers expose their reasoning three ways: Anthropic ``thinking`` blocks, a
``reasoning_content`` (or ``reasoning``) field on OpenAI-compatible servers (DeepSeek, vLLM),
and ``<think>…</think>`` inside the content (R1-style open models, served raw). Providers
parse the first two; :func:`split_think` handles the third for every provider.
"""

from __future__ import annotations

__all__ = ["split_think", "join_reasoning"]

_OPEN, _CLOSE = "<think>", "</think>"


def split_think(text: str | None) -> tuple[str | None, str | None]:
    """Split ``<think>`` reasoning out of content. Returns ``(answer, reasoning)``.

    - ``<think>R</think>A`` → ``(A, R)`` (leading whitespace before the tag allowed)
    - ``R</think>A`` → ``(A, R)``: chat templates that open ``<think>`` in the prompt
      (DeepSeek-R1, QwQ) make the model emit only the closing tag
    - ``<think>R`` with no close (output cut by ``max_tokens``) → ``("", R)``
    - anything else → ``(text, None)``
    """
    if not text:
        return text, None
    stripped = text.lstrip()
    if stripped.startswith(_OPEN):
        body = stripped[len(_OPEN):]
        end = body.find(_CLOSE)
        if end < 0:
            return "", body.strip() or None
        return body[end + len(_CLOSE):].lstrip(), body[:end].strip() or None
    end = text.find(_CLOSE)
    if end >= 0 and _OPEN not in text[:end]:
        return text[end + len(_CLOSE):].lstrip(), text[:end].strip() or None
    return text, None


def join_reasoning(*parts: str | None) -> str | None:
    """Join reasoning from several sources, skipping empty ones."""
    kept = [p for p in parts if p]
    return "\n\n".join(kept) if kept else None
