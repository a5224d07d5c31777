"""The small protocol every teacher implements, whatever its provider.

A teacher answers one :class:`~synth.records.Request` at a time with a
:class:`~synth.records.Completion` and raises :class:`~synth.errors.TeacherError` subclasses
when it cannot. Everything else — fan-out, the cache, the cost cap, rows — is the runner's.
API teachers enforce their own limits and retries (policy lives in the client); the local
teacher batches concurrent calls into one ``generate``.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from synth.records import Completion, Request

__all__ = ["Teacher", "estimate_tokens"]


@runtime_checkable
class Teacher(Protocol):
    provider: str  # "openai" | "anthropic" | "local" | a plugin's name
    model: str
    base_url: str | None  # scheme://host[:port]/path without credentials; None for local

    async def start(self) -> None:
        """Open connections / load weights. Raise a UserError if that cannot work."""

    async def complete(self, request: Request) -> Completion:
        """Answer one request, retrying what is worth retrying."""

    async def aclose(self) -> None:
        """Release sockets, threads, GPU memory."""


def estimate_tokens(messages: list[dict[str, str]]) -> int:
    """Cheap upper-ish estimate of prompt tokens (≈4 characters a token, plus framing).

    Used before sending, for TPM buckets and the cost cap; corrected with the real usage
    the API reports. A real tokenizer per provider is not worth the dependency here.
    """
    chars = 0
    for m in messages:
        chars += len(m.get("content") or "") + 8
    return chars // 4 + 4
