"""OpenAI chat-completions wire format, and every server that speaks it (vLLM, DeepSeek,
llama.cpp, Ollama, Together, ...). Field names follow the official ``openai`` SDK."""

from __future__ import annotations

from typing import Any

import orjson

from synth.errors import RetryableError
from synth.records import Completion, Request
from synth.teachers.base import ProviderTraits

__all__ = ["OpenAIWire", "DEFAULT_BASE_URL", "TRAITS", "decode_logprobs"]

DEFAULT_BASE_URL = "https://api.openai.com/v1"

#: The chat API returns at most 20 alternatives per token (``top_logprobs``) and takes
#: ``reasoning_effort`` for reasoning models; OpenAI has a Batch API (a compatible server's
#: batch price, if any, is the price table's to know).
TRAITS = ProviderTraits(default_base_url=DEFAULT_BASE_URL, max_logprobs=20,
                        reasoning="effort", label="an OpenAI-compatible API", batch_api=True)


def _malformed(why: str) -> RetryableError:
    return RetryableError(f"malformed response: {why}", reason="malformed")


def decode_logprobs(content: list[dict[str, Any]]) -> dict[str, list]:
    """``choices[0].logprobs.content`` → the columnar :data:`~synth.records.LOGPROBS_TYPE`.

    The chat API returns no token ids, so the id columns are null.
    """
    tokens, lps, top_tokens, top_lps = [], [], [], []
    for item in content:
        tokens.append(item["token"])
        lps.append(item["logprob"])
        alts = item.get("top_logprobs") or []
        top_tokens.append([a["token"] for a in alts])
        top_lps.append([a["logprob"] for a in alts])
    return {"tokens": tokens, "token_ids": None, "logprobs": lps,
            "top_tokens": top_tokens, "top_token_ids": None, "top_logprobs": top_lps}


class OpenAIWire:
    provider = "openai"

    def __init__(self, *, official: bool = False):
        # api.openai.com rejects ``max_tokens`` for reasoning models and wants
        # ``max_completion_tokens``; most compatible servers only know ``max_tokens``.
        self._max_key = "max_completion_tokens" if official else "max_tokens"

    def endpoint(self, base_url: str) -> str:
        return f"{base_url}/chat/completions"

    def headers(self, api_key: str | None) -> dict[str, str]:
        h = {"Content-Type": "application/json", "Accept": "application/json"}
        if api_key:
            h["Authorization"] = f"Bearer {api_key}"
        return h

    def encode(self, request: Request, model: str) -> bytes:
        p = request.params
        body: dict[str, Any] = {"model": model, "messages": request.messages,
                                "temperature": p.temperature, self._max_key: p.max_tokens}
        if p.top_p is not None:
            body["top_p"] = p.top_p
        if p.seed is not None:
            body["seed"] = p.seed
        if p.top_logprobs:
            body["logprobs"] = True
            body["top_logprobs"] = p.top_logprobs
        if p.reasoning_effort:
            body["reasoning_effort"] = p.reasoning_effort
        return orjson.dumps(body)

    def decode(self, body: bytes) -> Completion:
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise _malformed("body is not JSON") from None
        return self.decode_data(data)

    def decode_data(self, data: Any) -> Completion:
        """A parsed chat-completion object (a batch result line's ``response.body``)."""
        try:
            choice = data["choices"][0]
            message = choice["message"]
        except (KeyError, IndexError, TypeError):
            raise _malformed("no choices[0].message") from None
        text = message.get("content")
        if text is None and message.get("refusal"):
            text = message["refusal"]
        # DeepSeek and vLLM call it reasoning_content; newer vLLM and OpenRouter, reasoning.
        reasoning = message.get("reasoning_content") or message.get("reasoning")
        if not isinstance(reasoning, str):
            reasoning = None
        usage = data.get("usage") or {}
        cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens")
        logprobs = None
        lp = choice.get("logprobs")
        if lp and lp.get("content"):
            try:
                logprobs = decode_logprobs(lp["content"])
            except (KeyError, TypeError):
                raise _malformed("logprobs.content") from None
        return Completion(
            text=text if text is not None else "",
            reasoning=reasoning,
            finish_reason=choice.get("finish_reason"),
            model_version=data.get("model"),
            input_tokens=usage.get("prompt_tokens"),
            cached_input_tokens=cached,
            output_tokens=usage.get("completion_tokens"),
            logprobs=logprobs,
        )

    def error_message(self, body: bytes) -> str:
        try:
            err = orjson.loads(body).get("error")
            if isinstance(err, dict):
                return str(err.get("message") or err.get("type") or "")[:300]
            if isinstance(err, str):
                return err[:300]
        except (orjson.JSONDecodeError, AttributeError):
            pass
        return body[:200].decode("utf-8", "replace").strip()
