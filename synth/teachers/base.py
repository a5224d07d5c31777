"""The small protocol every teacher implements, whatever its provider.

A teacher answers one :class:`~synth.records.Request` at a time with a
:class:`~synth.records.Completion` and raises :class:`~synth.errors.TeacherError` subclasses
when it cannot. Everything else — fan-out, the cache, the cost cap, rows — is the runner's.
API teachers enforce their own limits and retries (policy lives in the client); the local
teacher batches concurrent calls into one ``generate``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

if TYPE_CHECKING:
    from synth.records import Completion, Request

__all__ = ["Teacher", "ProviderTraits", "TokenCount", "TokenCounter", "estimate_tokens"]

#: Counts the prompt tokens of one chat (a list of ``{"role", "content"}`` messages).
TokenCount = Callable[[list[dict[str, str]]], int]
#: Given a model name: ``(count, None)``, or ``(None, why not)`` when the model's own
#: tokenizer cannot be had cheaply now.
TokenCounter = Callable[[str], tuple[TokenCount | None, str | None]]


@dataclass(frozen=True, kw_only=True)
class ProviderTraits:
    """What differs between providers before any request is made, declared by each
    provider's own module (``TRAITS``) and passed to :func:`~synth.teachers.register_provider`;
    the runner, the judge, the CLI, the estimate, the licence check and the trainer read
    these instead of branching on provider names.
    A plugin that declares nothing is treated as an API provider with no known limits."""

    #: Where requests go when ``--base-url`` is not given; None for in-process teachers.
    default_base_url: str | None = None
    #: Its terms depend on what the data is for, so ``--intent`` is required. False only for
    #: in-process models, which are checked as ``research`` when no intent is declared.
    needs_intent: bool = True
    #: Most top-K alternatives per token the API returns: 0 = no logprobs at all,
    #: None = no known limit.
    max_logprobs: int | None = None
    #: How ``--reasoning`` is asked for: ``effort`` (a reasoning_effort field), ``thinking``
    #: (a thinking budget), or None (no switch; ``<think>`` output is still captured).
    reasoning: Literal["effort", "thinking"] | None = None
    #: The only sampling temperature the API accepts while reasoning (Anthropic: 1).
    reasoning_temperature: float | None = None
    #: ``--dtype`` changes the answers (in-process weights), so it is a request parameter.
    has_dtype: bool = False
    #: How the provider is called in error messages.
    label: str = ""
    #: Packages it needs beyond synth's own, as (import name, pip name), and the command
    #: that installs them: checked before a run (or a recipe) starts, not at the first call.
    requires: tuple[tuple[str, str], ...] = ()
    install: str | None = None
    #: The model runs in this process from its own weights: no endpoint, so no service's
    #: terms apply (neither a host's nor, through a proxy, the model's provider's API
    #: terms), only the model's licence; and ``synth train`` (or a pipeline's train stage)
    #: may use it as its online teacher. False: an API, which training turns away.
    in_process: bool = False
    #: It has a batch API, which ``synth estimate`` prices from the price table's
    #: ``batch``. False: there is none to price, and the estimate says so.
    batch_api: bool = True
    #: Counts a model's prompt tokens as the provider will, before any request (``synth
    #: estimate``). None: :func:`estimate_tokens`, calibrated on the dry run's usage.
    token_counter: TokenCounter | None = None


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
