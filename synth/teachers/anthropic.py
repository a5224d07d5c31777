"""Anthropic messages wire format (``POST /v1/messages``), as the official SDK speaks it."""

from __future__ import annotations

from typing import Any

import orjson

from synth.errors import RetryableError
from synth.records import Completion, Request
from synth.teachers.base import ProviderTraits

__all__ = ["AnthropicWire", "DEFAULT_BASE_URL", "TRAITS", "API_VERSION", "THINKING_BUDGET"]

DEFAULT_BASE_URL = "https://api.anthropic.com"

#: The messages API returns no logprobs; extended thinking accepts temperature 1 only;
#: Message Batches is its batch API.
TRAITS = ProviderTraits(default_base_url=DEFAULT_BASE_URL, max_logprobs=0,
                        reasoning="thinking", reasoning_temperature=1.0,
                        label="the Anthropic API", batch_api=True)
API_VERSION = "2023-06-01"

#: Extended-thinking budget per ``--reasoning-effort``. ``max_tokens`` sent to the API is
#: the user's ``--max-tokens`` (the answer) plus this budget (the thinking).
THINKING_BUDGET = {"low": 1024, "medium": 4096, "high": 16384}

_STOP = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length",
         "tool_use": "tool_calls", "refusal": "content_filter"}


class AnthropicWire:
    provider = "anthropic"

    def endpoint(self, base_url: str) -> str:
        return f"{base_url}/v1/messages"

    def headers(self, api_key: str | None) -> dict[str, str]:
        h = {"Content-Type": "application/json", "Accept": "application/json",
             "anthropic-version": API_VERSION}
        if api_key:
            # The official SDK (2.x) sends the key as a Bearer token; older gateways and
            # proxies only read x-api-key. Both carry the same key, so send both.
            h["Authorization"] = f"Bearer {api_key}"
            h["x-api-key"] = api_key
        return h

    def encode(self, request: Request, model: str) -> bytes:
        p = request.params
        system = [m["content"] for m in request.messages if m["role"] == "system"]
        turns = [m for m in request.messages if m["role"] != "system"]
        body: dict[str, Any] = {"model": model, "messages": turns, "max_tokens": p.max_tokens}
        if system:
            body["system"] = "\n\n".join(system)
        if p.reasoning_effort:
            budget = THINKING_BUDGET[p.reasoning_effort]
            body["thinking"] = {"type": "enabled", "budget_tokens": budget}
            body["max_tokens"] = p.max_tokens + budget
            # The API accepts no temperature other than 1 with thinking; config enforces it.
        else:
            body["temperature"] = p.temperature
        if p.top_p is not None:
            body["top_p"] = p.top_p
        return orjson.dumps(body)

    def decode(self, body: bytes) -> Completion:
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            data = None
        return self.decode_data(data)

    def decode_data(self, data: Any) -> Completion:
        """A parsed message object (a batch result's ``result.message``)."""
        try:
            blocks = data["content"]
            if not isinstance(blocks, list):
                raise TypeError
        except (KeyError, TypeError):
            raise RetryableError("malformed response: no content blocks",
                                 reason="malformed") from None
        text, thinking = [], []
        for b in blocks:
            kind = b.get("type")
            if kind == "text":
                text.append(b.get("text", ""))
            elif kind == "thinking":
                thinking.append(b.get("thinking", ""))
            # redacted_thinking carries only encrypted data: nothing a student can learn from
        usage = data.get("usage") or {}
        read = usage.get("cache_read_input_tokens") or 0
        written = usage.get("cache_creation_input_tokens") or 0
        inp = usage.get("input_tokens")
        stop = data.get("stop_reason")
        return Completion(
            text="".join(text),
            reasoning="\n\n".join(t for t in thinking if t) or None,
            finish_reason=_STOP.get(stop, stop),
            model_version=data.get("model"),
            # Anthropic's input_tokens excludes cache reads and writes; we report the total.
            input_tokens=None if inp is None else inp + read + written,
            cached_input_tokens=read if inp is not None else None,
            output_tokens=usage.get("output_tokens"),
        )

    def error_message(self, body: bytes) -> str:
        try:
            err = orjson.loads(body).get("error")
            if isinstance(err, dict):
                kind, msg = err.get("type") or "", err.get("message") or ""
                return f"{kind}: {msg}"[:300] if kind else str(msg)[:300]
        except (orjson.JSONDecodeError, AttributeError):
            pass
        return body[:200].decode("utf-8", "replace").strip()
