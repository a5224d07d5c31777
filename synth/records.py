"""The trace row: the one record shape that flows from teachers to curation to training.

A run turns each input :class:`Prompt` into ``samples`` :class:`Request` objects; a teacher
answers each with a :class:`Completion`; the runner joins the two into a trace row
(a plain ``dict`` whose columns are :data:`TRACE_SCHEMA`). Rows are dicts rather than objects
because every later stage adds columns, and because they go straight to Arrow.

Column reference (all present on every row; ``None`` where not applicable):

==================== =====================================================================
``id``               ``"{prompt_id}:{sample_index}"``, unique within a run
``prompt_id``        the input's ``id`` (or a content hash of its messages)
``sample_index``     0..samples-1
``messages``         the request as chat messages (system prompt included)
``response``         the final answer text, reasoning removed (``None`` on error)
``reasoning``        chain-of-thought trace: thinking blocks, ``reasoning_content`` or
                     ``<think>`` text; ``None`` when the teacher gave none
``logprobs``         top-K alternatives per generated token (see :data:`LOGPROBS_TYPE`)
``finish_reason``    normalised: ``stop``, ``length``, ``tool_calls``, ``content_filter``...
``status``           ``ok`` or ``error``
``error``            ``"reason: message"`` when ``status == "error"``
``provider``         ``openai``, ``anthropic`` or ``local``
``model``            the model asked for
``model_version``    the model the API says answered (``model`` field of the response)
``base_url``         scheme://host[:port] of the endpoint (never credentials)
``params``           sampling parameters that shaped the answer (part of the hash)
``request_hash``     sha256 of provider, base URL, model, params, messages, sample index
``input_tokens``     prompt tokens as billed (cache reads included)
``cached_input_tokens`` the part of ``input_tokens`` served from the provider's prompt cache
``output_tokens``    generated tokens (reasoning included)
``cost_usd``         from the price table; ``None`` for an unknown model
``latency_s``        wall time of the successful attempt
``created_at``       when the answer arrived (UTC)
``reference``        passes through from the input (JSON-encoded if not a string)
``metadata``         the input's ``metadata`` as a JSON object string

Provenance (see :mod:`synth.licences`), the same on every row of one run:

``intent``           what the user declared the data is for (``None`` if undeclared)
``licence_entries``  registry entries that governed the request (host, then model)
``terms_versions``   "terms (version)" of each of those entries
``licence_rule``     the most restrictive rule among them
``licence_decision`` ``allow`` | ``warn`` (``deny`` never produces rows)
``terms_accepted``   whether ``--accept-terms`` was needed for this row
``accepted_terms``   the entry ids the user accepted
``template_id``      the prompt template that made the request, when one did
``template_hash``    sha256 of that template's text
``batch_id``         the provider batch that answered (``--batch``): billed at the batch
                     price; ``None`` for a synchronous answer
``served_by``        the server that answered, when ``--base-url`` names several (a fleet:
                     ``base_url`` is then the first, which names the fleet); else ``None``
==================== =====================================================================
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import orjson

__all__ = [
    "Prompt",
    "Params",
    "Request",
    "Completion",
    "TRACE_SCHEMA",  # noqa: F822 - built on first use by __getattr__
    "LOGPROBS_TYPE",  # noqa: F822
    "request_hash",
    "messages_hash",
]


def _arrow_types() -> dict[str, Any]:
    """The Arrow types, built on first use: pyarrow costs ~60 ms to import, which commands
    that never touch a row (``synth --help``, ``synth licence check``) should not pay."""
    import pyarrow as pa

    MESSAGE_TYPE = pa.struct([("role", pa.string()), ("content", pa.string())])

    # Columnar logprobs: one list entry per generated token. ``top_*`` hold the K best
    # alternatives at that position (the chosen token may or may not be among them).
    # Token ids are null for APIs that do not return them. float32 keeps ~7 digits, far more
    # than the API's own rounding, at half the bytes.
    LOGPROBS_TYPE = pa.struct([
        ("tokens", pa.list_(pa.string())),
        ("token_ids", pa.list_(pa.int32())),
        ("logprobs", pa.list_(pa.float32())),
        ("top_tokens", pa.list_(pa.list_(pa.string()))),
        ("top_token_ids", pa.list_(pa.list_(pa.int32()))),
        ("top_logprobs", pa.list_(pa.list_(pa.float32()))),
    ])

    PARAMS_TYPE = pa.struct([
        ("temperature", pa.float64()),
        ("top_p", pa.float64()),
        ("max_tokens", pa.int64()),
        ("seed", pa.int64()),
        ("top_logprobs", pa.int64()),
        ("reasoning_effort", pa.string()),
        ("dtype", pa.string()),
    ])

    TRACE_SCHEMA = pa.schema([
        ("id", pa.string()),
        ("prompt_id", pa.string()),
        ("sample_index", pa.int32()),
        ("messages", pa.list_(MESSAGE_TYPE)),
        ("response", pa.string()),
        ("reasoning", pa.string()),
        ("logprobs", LOGPROBS_TYPE),
        ("finish_reason", pa.string()),
        ("status", pa.string()),
        ("error", pa.string()),
        ("provider", pa.string()),
        ("model", pa.string()),
        ("model_version", pa.string()),
        ("base_url", pa.string()),
        ("params", PARAMS_TYPE),
        ("request_hash", pa.string()),
        ("input_tokens", pa.int64()),
        ("cached_input_tokens", pa.int64()),
        ("output_tokens", pa.int64()),
        ("cost_usd", pa.float64()),
        ("latency_s", pa.float64()),
        ("created_at", pa.timestamp("us", tz="UTC")),
        ("reference", pa.string()),
        ("metadata", pa.string()),
        ("intent", pa.string()),
        ("licence_entries", pa.list_(pa.string())),
        ("terms_versions", pa.list_(pa.string())),
        ("licence_rule", pa.string()),
        ("licence_decision", pa.string()),
        ("terms_accepted", pa.bool_()),
        ("accepted_terms", pa.list_(pa.string())),
        ("template_id", pa.string()),
        ("template_hash", pa.string()),
        ("batch_id", pa.string()),
        ("served_by", pa.string()),
    ])
    return {"MESSAGE_TYPE": MESSAGE_TYPE, "LOGPROBS_TYPE": LOGPROBS_TYPE,
            "PARAMS_TYPE": PARAMS_TYPE, "TRACE_SCHEMA": TRACE_SCHEMA}


def __getattr__(name: str) -> Any:
    if name in ("MESSAGE_TYPE", "LOGPROBS_TYPE", "PARAMS_TYPE", "TRACE_SCHEMA"):
        globals().update(_arrow_types())
        return globals()[name]
    raise AttributeError(f"module 'synth.records' has no attribute {name!r}")


@dataclass(slots=True, frozen=True)
class Params:
    """Sampling parameters. Every field is part of the request hash."""

    temperature: float = 0.0
    top_p: float | None = None
    max_tokens: int = 512
    seed: int | None = None
    top_logprobs: int | None = None  # K for --logprobs K; None = no logprobs
    reasoning_effort: str | None = None  # low | medium | high; None = off
    dtype: str | None = None  # local teacher only: fp32 | bf16 changes the answers

    def as_dict(self) -> dict[str, Any]:
        return {
            "temperature": self.temperature, "top_p": self.top_p,
            "max_tokens": self.max_tokens, "seed": self.seed,
            "top_logprobs": self.top_logprobs, "reasoning_effort": self.reasoning_effort,
            "dtype": self.dtype,
        }


@dataclass(slots=True)
class Prompt:
    """One input line: chat messages plus what passes through to the row."""

    id: str
    messages: list[dict[str, str]]
    reference: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    line: int | None = None  # 1-based line in the input file, for error messages


@dataclass(slots=True)
class Request:
    """One call to a teacher: a prompt, a sample index and the parameters."""

    prompt: Prompt
    sample_index: int
    params: Params
    hash: str = ""
    est_input_tokens: int = 0

    @property
    def messages(self) -> list[dict[str, str]]:
        return self.prompt.messages


@dataclass(slots=True)
class Completion:
    """What a teacher returned, normalised across providers."""

    text: str | None
    reasoning: str | None = None
    finish_reason: str | None = None
    model_version: str | None = None
    input_tokens: int | None = None
    cached_input_tokens: int | None = None
    output_tokens: int | None = None
    logprobs: dict[str, list] | None = None
    latency_s: float | None = None
    served_by: str | None = None  # which of a fleet's servers answered (several --base-url)


def _canonical(obj: Any) -> bytes:
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)


def messages_hash(messages: list[dict[str, str]]) -> str:
    """Stable id for a prompt that has none: first 16 hex digits of sha256 of its messages."""
    return hashlib.sha256(_canonical(messages)).hexdigest()[:16]


def request_hash(*, provider: str, base_url: str | None, model: str, params: Params,
                 messages: list[dict[str, str]], sample_index: int) -> str:
    """Content address of a request. The API key is deliberately not an input."""
    key = {
        "v": 1, "provider": provider, "base_url": base_url or "", "model": model,
        "params": params.as_dict(), "messages": messages, "sample_index": sample_index,
    }
    return hashlib.sha256(_canonical(key)).hexdigest()
