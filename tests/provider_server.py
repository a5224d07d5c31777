"""A loopback fake of the OpenAI and Anthropic HTTP APIs, for tests.

``ProviderServer`` runs an ``aiohttp.web`` application on its own event loop in a
background thread, bound to 127.0.0.1 on a free port, so that code in the main
thread (or in a subprocess) talks to it over real sockets.  It speaks

* ``POST /v1/chat/completions`` -- OpenAI chat-completions wire format
  (``openai.AsyncOpenAI(base_url=server.url + "/v1", api_key=...)``), and
* ``POST /v1/messages``         -- Anthropic messages wire format
  (``anthropic.AsyncAnthropic(base_url=server.url, api_key=...)``), and
* OpenAI's Batch API -- ``/v1/files`` and ``/v1/batches``, answered by the same rules
  (``server.batches``, see ``tests/batch_routes.py``), and
* OpenAI's fine-tuning jobs -- ``/v1/fine_tuning/jobs`` (create, list, retrieve, cancel,
  events) on those files (``server.fine_tuning``, see ``tests/finetune_routes.py``), and
* Anthropic's Message Batches API -- ``/v1/messages/batches`` (create, list, retrieve, cancel,
  delete, and ``results_url`` = ``{server.url}/v1/messages/batches/{id}/results``), each item
  checked and answered as ``/v1/messages`` would (``server.message_batches``, same file).

Successful answers are deterministic functions of the request (only ``id`` and
``created`` vary):

* content is ``"Echo: " + last_user_text`` (the text parts of the last
  ``role == "user"`` message, joined with ``"\\n"``), cut to ``max_tokens``
  "tokens" (a token is a whitespace-delimited word together with the whitespace
  before it), in which case the finish reason is ``"length"`` / ``"max_tokens"``;
  otherwise ``"stop"`` / ``"end_turn"``.  ``stop`` / ``stop_sequences`` cut the
  content at the first occurrence (Anthropic then reports ``"stop_sequence"``).
* ``[[reply:TEXT]]`` in the last user message replaces the echo: content is exactly
  ``TEXT`` (everything up to the first ``]]``, newlines included, so ``TEXT`` cannot hold
  ``]]``).  JSON is written as it is, e.g. ``[[reply:{"score": 4, "reason": "ok"}]]``.
  ``max_tokens``, stops and the reasoning variants below apply to it as to the echo.
* ``server.responder = fn``: ``fn(last_user_text, request_body)`` returning a string
  replaces both (``None`` falls back to them); recipes' tests script multi-round
  conversations this way. Cleared by ``reset()``.
* prompt tokens = words of every message (and of an Anthropic ``system``) + 3 per
  message; completion tokens = words of the output (see ``count_words``).
* served ``model`` = requested model + ``"-2026-01-01"`` (unless it already ends in
  a date), see ``served_model``.
* OpenAI, model name contains ``"reasoner"``: ``message.reasoning_content =
  "Thinking about: " + text`` (its words are counted in ``reasoning_tokens`` and in
  ``completion_tokens``).  Model name contains ``"think"``: content starts with
  ``"<think>Thinking about: TEXT</think>\\n\\n"`` before ``"Echo: TEXT"``.
* Anthropic, ``thinking={"type": "enabled", "budget_tokens": N}`` (1024 <= N <
  max_tokens, as the real API demands): a ``thinking`` block (with ``signature``)
  precedes the text block; with ``[[redacted]]`` in the prompt a
  ``redacted_thinking`` block follows it.
* OpenAI ``logprobs=True`` (+ ``top_logprobs=K``, K <= 20): one logprob entry per
  output token, deterministic values, chosen token first and highest.

Faults (``fail_next(kind, n, **opts)`` or a ``[[fault:KIND]]`` / ``[[fault:KIND*N]]``
marker in the last user message, optionally followed by ``key=value`` options as
in ``[[fault:429*2 retry_after=0.2]]``; ``[[delay:SECONDS]]`` adds latency) are
listed in ``FAULT_KINDS``.

Run standalone: ``python -m tests.provider_server --port 0 --rpm 600`` prints the
URL on stdout and serves until SIGTERM / SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import datetime as _dt
import hashlib
import math
import re
import secrets
import signal
import sys
import threading
import time
from typing import Any

import orjson
from aiohttp import web

from tests.batch_routes import (
    MESSAGE_BATCH_MAX_BYTES,
    MESSAGE_BATCHES_PATH,
    AnthropicBatches,
    BatchError,
    OpenAIBatches,
)
from tests.finetune_routes import OpenAIFineTuning

__all__ = [
    "ProviderServer",
    "FAULT_KINDS",
    "STATUS_FAULTS",
    "MODEL_VERSION_SUFFIX",
    "served_model",
    "split_tokens",
    "count_words",
]

OPENAI_PATH = "/v1/chat/completions"
ANTHROPIC_PATH = "/v1/messages"

MODEL_VERSION_SUFFIX = "-2026-01-01"
SYSTEM_FINGERPRINT = "fp_5ynth0fake"

STATUS_FAULTS = frozenset({"400", "401", "404", "408", "409", "422", "429", "500", "502", "503", "529"})
FAULT_KINDS = STATUS_FAULTS | {"timeout", "drop", "truncated", "malformed", "bad_shape"}

# Generous fixed numbers advertised when a limit is not configured.
_UNLIMITED_LIMIT = 1_000_000
_UNLIMITED_REMAINING = 999_999

_OPENAI_ERRORS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Invalid request."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    403: ("invalid_request_error", "unsupported_country_region_territory", "Forbidden."),
    404: ("invalid_request_error", "model_not_found", "The model does not exist or you do not have access to it."),
    405: ("invalid_request_error", None, "Method not allowed."),
    408: ("timeout", None, "Request timed out."),
    409: ("invalid_request_error", "conflict", "Conflict."),
    422: ("invalid_request_error", None, "Unprocessable entity."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests."),
    500: ("server_error", None, "The server had an error while processing your request."),
    502: ("server_error", "bad_gateway", "Bad gateway."),
    503: ("server_error", "service_unavailable", "The server is overloaded or not ready yet."),
    529: ("server_error", "overloaded", "Overloaded."),
}

_ANTHROPIC_ERRORS: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "Invalid request."),
    401: ("authentication_error", "invalid x-api-key"),
    403: ("permission_error", "Your API key does not have permission to use the specified resource."),
    404: ("not_found_error", "The requested resource could not be found."),
    405: ("invalid_request_error", "Method not allowed."),
    408: ("timeout_error", "Request timed out."),
    409: ("invalid_request_error", "Conflict."),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    422: ("invalid_request_error", "Unprocessable entity."),
    429: ("rate_limit_error", "Number of requests has exceeded your rate limit."),
    500: ("api_error", "Internal server error."),
    502: ("api_error", "Bad gateway."),
    503: ("api_error", "Service unavailable."),
    529: ("overloaded_error", "Overloaded"),
}

_FAULT_RE = re.compile(r"\[\[fault:([A-Za-z0-9_]+)(?:\*(\d+))?((?:\s+[A-Za-z_]+=[^\s\]]+)*)\s*\]\]")
_DELAY_RE = re.compile(r"\[\[delay:([0-9]*\.?[0-9]+)\]\]")
_REPLY_RE = re.compile(r"\[\[reply:(.*?)\]\]", re.S)
_TOKEN_RE = re.compile(r"\s*\S+\s*$|\s*\S+")
_DATE_SUFFIX_RE = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{8})$")


# --------------------------------------------------------------------------- helpers


def served_model(model: str) -> str:
    """The ``model`` the server reports for a requested model name."""
    if _DATE_SUFFIX_RE.search(model):
        return model
    return model + MODEL_VERSION_SUFFIX


def split_tokens(text: str) -> list[str]:
    """Fake tokenisation: each word with the whitespace before it (trailing
    whitespace sticks to the last token), so ``"".join(split_tokens(t)) == t``
    for any text that contains a non-space character."""
    return _TOKEN_RE.findall(text)


def count_words(text: str) -> int:
    return len(text.split())


def _text_of(content: Any) -> str:
    """Text of an OpenAI/Anthropic message ``content`` (str or list of parts)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, dict):
                if isinstance(part.get("text"), str):
                    parts.append(part["text"])
                elif isinstance(part.get("content"), (str, list)):  # tool_result blocks
                    parts.append(_text_of(part["content"]))
        return "\n".join(parts)
    return ""


def _last_user_text(messages: list[Any]) -> str:
    for msg in reversed(messages):
        if isinstance(msg, dict) and msg.get("role") == "user":
            return _text_of(msg.get("content"))
    return ""


def _answer_text(text: str) -> str:
    """The answer before cuts: a ``[[reply:...]]`` marker's text, else the echo."""
    m = _REPLY_RE.search(text)
    return m.group(1) if m else f"Echo: {text}"


def _prompt_tokens(messages: list[Any], system: Any = None) -> int:
    n = 0
    for msg in messages:
        if isinstance(msg, dict):
            n += count_words(_text_of(msg.get("content"))) + 3
    if system is not None:
        n += count_words(_text_of(system))
    return n


def _truncate(text: str, max_tokens: int | None) -> tuple[str, bool]:
    if max_tokens is None:
        return text, False
    toks = split_tokens(text)
    if len(toks) <= max_tokens:
        return text, False
    return "".join(toks[:max_tokens]).rstrip(), True


def _apply_stops(text: str, stops: Any) -> tuple[str, str | None]:
    if isinstance(stops, str):
        stops = [stops]
    if not isinstance(stops, list):
        return text, None
    best: tuple[int, str] | None = None
    for s in stops:
        if isinstance(s, str) and s:
            i = text.find(s)
            if i >= 0 and (best is None or i < best[0]):
                best = (i, s)
    if best is None:
        return text, None
    return text[: best[0]], best[1]


def _digest(*parts: Any) -> bytes:
    return hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()


def _logprob_entry(token: str, index: int, k: int) -> dict:
    d = _digest(token, index)
    chosen = -round(0.0005 + d[0] / 600.0, 6)  # in (-0.43, -0.0005]
    top = []
    if k > 0:
        top.append({"token": token, "logprob": chosen, "bytes": list(token.encode())})
        lead = token[: len(token) - len(token.lstrip())]
        lp = chosen
        for j in range(1, k):
            lp = round(lp - (0.5 + d[j % len(d)] / 128.0), 6)
            alt = f"{lead}alt{j}"
            top.append({"token": alt, "logprob": lp, "bytes": list(alt.encode())})
    return {"token": token, "logprob": chosen, "bytes": list(token.encode()), "top_logprobs": top}


def _format_duration(seconds: float) -> str:
    """OpenAI-style reset duration: ``"120ms"``, ``"1s"``, ``"1.5s"``, ``"6m0s"``."""
    ms = max(0, math.ceil(seconds * 1000 - 1e-6))
    if ms < 1000:
        return f"{ms}ms"
    secs = ms / 1000
    h, rem = divmod(secs, 3600)
    m, s = divmod(rem, 60)
    s_txt = f"{s:.3f}".rstrip("0").rstrip(".") + "s"
    if h >= 1:
        return f"{int(h)}h{int(m)}m{s_txt}"
    if m >= 1:
        return f"{int(m)}m{s_txt}"
    return s_txt


def _rfc3339_in(seconds: float) -> str:
    t = _dt.datetime.now(_dt.timezone.utc) + _dt.timedelta(seconds=max(0.0, seconds))
    return t.replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _parse_opts(raw: str) -> dict[str, Any]:
    opts: dict[str, Any] = {}
    for item in raw.split():
        key, _, value = item.partition("=")
        try:
            opts[key] = float(value)
        except ValueError:
            opts[key] = value
    return opts


def _provider_of(path: str) -> str:
    route = path.rstrip("/")
    return "anthropic" if route.endswith("/messages") or route.startswith("/v1/messages/") else "openai"


def _is_message_batch_route(route: str) -> bool:
    return route == MESSAGE_BATCHES_PATH or route.startswith(MESSAGE_BATCHES_PATH + "/")


# --------------------------------------------------------------------------- rate limiting


class _Bucket:
    """Token bucket: refills at ``per_minute / 60`` per second, holds at most one
    second's worth (at least 1).  A request is admitted when the bucket holds its
    cost (or is full, for a cost above capacity); the level may go negative."""

    def __init__(self, per_minute: int) -> None:
        self.limit = int(per_minute)
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate)
        self.level = self.capacity
        self.t = time.monotonic()

    def refill(self, now: float) -> None:
        self.level = min(self.capacity, self.level + (now - self.t) * self.rate)
        self.t = now

    def wait_for(self, cost: float) -> float:
        need = min(cost, self.capacity)
        if self.level + 1e-9 >= need:
            return 0.0
        return (need - self.level) / self.rate

    def reset_in(self) -> float:
        return max(0.0, (self.capacity - self.level) / self.rate)

    def remaining(self) -> int:
        return max(0, int(math.floor(self.level + 1e-9)))


class _Limiter:
    def __init__(self, rpm: int | None, tpm: int | None) -> None:
        self.rpm, self.tpm = rpm, tpm
        self.reset()

    def reset(self) -> None:
        self.req = _Bucket(self.rpm) if self.rpm else None
        self.tok = _Bucket(self.tpm) if self.tpm else None

    def admit(self, cost: int | None) -> tuple[float, str | None]:
        """(0, None) and consume, or (seconds to wait, "requests" | "tokens"). A ``None``
        cost (a batch route's request) is checked against the request bucket alone."""
        now = time.monotonic()
        wait, which = 0.0, None
        for name, b, c in (("requests", self.req, 1), ("tokens", self.tok, cost)):
            if b is None or c is None:
                continue
            b.refill(now)
            w = b.wait_for(c)
            if w > wait:
                wait, which = w, name
        if which is not None:
            return wait, which
        if self.req is not None:
            self.req.level -= 1
        if self.tok is not None and cost is not None:
            self.tok.level -= cost
        return 0.0, None

    def snapshot(self) -> dict[str, tuple[int, int, float]]:
        """name -> (limit, remaining, seconds until full)."""
        now = time.monotonic()
        out = {}
        for name, b in (("requests", self.req), ("tokens", self.tok)):
            if b is None:
                out[name] = (_UNLIMITED_LIMIT, _UNLIMITED_REMAINING, 0.0)
            else:
                b.refill(now)
                out[name] = (b.limit, b.remaining(), b.reset_in())
        return out


class _Fault(Exception):
    def __init__(self, kind: str, opts: dict[str, Any] | None = None) -> None:
        super().__init__(kind)
        self.kind = kind
        self.opts = opts or {}


class _Reject(Exception):
    """Validation failure -> error response."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code


# --------------------------------------------------------------------------- server


class ProviderServer:
    """Fake OpenAI + Anthropic API on ``http://127.0.0.1:PORT`` (see module doc)."""

    def __init__(
        self,
        *,
        rpm: int | None = None,
        tpm: int | None = None,
        latency_s: float = 0.0,
        require_key: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.rpm = rpm
        self.tpm = tpm
        self.latency_s = float(latency_s)
        self.require_key = require_key
        self.host = host
        self.port = port
        self.url = ""
        self.requests: list[dict] = []
        # A test's own answers: ``responder(last_user_text, request_body) -> str | None``
        # (None falls back to the marker / echo rules). Cleared by reset().
        self.responder: Any = None
        # ``batch_hook(method, route)``: runs after a batch route did its work, before the
        # answer leaves (crash drills kill the client here). Cleared by reset().
        self.batch_hook: Any = None
        self.count_429 = 0
        self._n = 0
        self._lock = threading.Lock()
        self._faults: collections.deque[tuple[str, dict]] = collections.deque()
        self._marker_counts: dict[str, int] = {}
        self._limiter = _Limiter(rpm, tpm)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._startup_error: BaseException | None = None
        # OpenAI's Batch API (/v1/files, /v1/batches): tests/batch_routes.py
        self.batches = OpenAIBatches(self._openai_success)
        # OpenAI's fine-tuning jobs on those files: tests/finetune_routes.py
        self.fine_tuning = OpenAIFineTuning(self.batches)
        # Anthropic's Message Batches API (/v1/messages/batches): tests/batch_routes.py
        self.message_batches = AnthropicBatches(self._anthropic_success, _message_params_error,
                                              lambda: self.url)

    # ---------------------------------------------------------------- control

    @property
    def n_requests(self) -> int:
        with self._lock:
            return self._n

    def fail_next(self, kind: str, n: int = 1, **opts: Any) -> None:
        """The next ``n`` requests (whatever they contain) get fault ``kind``."""
        kind = str(kind)
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {sorted(FAULT_KINDS)}")
        with self._lock:
            for _ in range(n):
                self._faults.append((kind, dict(opts)))

    def reset(self) -> None:
        """Forget requests, queued faults, marker counters and limiter state."""
        with self._lock:
            self.requests.clear()
            self._n = 0
            self._faults.clear()
            self._marker_counts.clear()
            self._limiter.reset()
            self.count_429 = 0
            self.responder = None
            self.batch_hook = None
            self.batches.reset()
            self.fine_tuning.reset()
            self.message_batches.reset()

    def start(self) -> "ProviderServer":
        if self._thread is not None:
            return self
        ready = threading.Event()
        self._startup_error = None
        self._thread = threading.Thread(target=self._run, args=(ready,), name="ProviderServer", daemon=True)
        self._thread.start()
        if not ready.wait(15):
            raise RuntimeError("ProviderServer did not start within 15 s")
        if self._startup_error is not None:
            self._thread.join(5)
            self._thread = None
            raise RuntimeError("ProviderServer failed to start") from self._startup_error
        return self

    def stop(self) -> None:
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        if not loop.is_closed():
            try:
                fut = asyncio.run_coroutine_threadsafe(self._astop(), loop)
                fut.result(timeout=10)
            except Exception:
                pass
            try:
                loop.call_soon_threadsafe(loop.stop)
            except RuntimeError:
                pass
        thread.join(10)
        self._thread = None
        self._loop = None

    def __enter__(self) -> "ProviderServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"ProviderServer(url={self.url!r}, rpm={self.rpm}, tpm={self.tpm})"

    # ---------------------------------------------------------------- thread

    def _run(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._astart())
        except BaseException as exc:  # noqa: BLE001 - reported to start()
            self._startup_error = exc
            ready.set()
            loop.close()
            return
        ready.set()
        try:
            loop.run_forever()
        finally:
            try:
                loop.run_until_complete(self._astop())
                pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
                for t in pending:
                    t.cancel()
                if pending:
                    loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()

    async def _astart(self) -> None:
        # Big enough for a message batch at its documented limit (past it: a 413 in Anthropic's shape).
        app = web.Application(client_max_size=max(64 * 1024 * 1024, MESSAGE_BATCH_MAX_BYTES + (1 << 20)))
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=0.2)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, reuse_address=True)
        await site.start()
        self._runner = runner
        port = runner.addresses[0][1]
        self.url = f"http://{self.host}:{port}"

    async def _astop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    # ---------------------------------------------------------------- responses

    def _common_headers(self, provider: str) -> dict[str, str]:
        rid = "req_" + secrets.token_hex(12)
        headers = {"request-id": rid, "x-request-id": rid}
        with self._lock:
            snap = self._limiter.snapshot()
        if provider == "openai":
            headers["openai-version"] = "2020-10-01"
            headers["openai-processing-ms"] = "1"
            for name, (limit, remaining, reset) in snap.items():
                headers[f"x-ratelimit-limit-{name}"] = str(limit)
                headers[f"x-ratelimit-remaining-{name}"] = str(remaining)
                headers[f"x-ratelimit-reset-{name}"] = _format_duration(reset)
        else:
            for name, (limit, remaining, reset) in snap.items():
                headers[f"anthropic-ratelimit-{name}-limit"] = str(limit)
                headers[f"anthropic-ratelimit-{name}-remaining"] = str(remaining)
                headers[f"anthropic-ratelimit-{name}-reset"] = _rfc3339_in(reset)
        return headers

    def _json(self, provider: str, status: int, obj: Any, extra: dict[str, str] | None = None) -> web.Response:
        headers = self._common_headers(provider)
        if extra:
            headers.update(extra)
        if provider == "anthropic" and isinstance(obj, dict) and obj.get("type") == "error":
            obj.setdefault("request_id", headers["request-id"])
        return web.Response(status=status, body=orjson.dumps(obj), content_type="application/json", headers=headers)

    def _error(
        self,
        provider: str,
        status: int,
        message: str | None = None,
        *,
        type_: str | None = None,
        code: str | None = None,
        param: str | None = None,
        extra: dict[str, str] | None = None,
    ) -> web.Response:
        if provider == "openai":
            d_type, d_code, d_msg = _OPENAI_ERRORS.get(
                status, ("server_error" if status >= 500 else "invalid_request_error", None, "Error.")
            )
            body = {
                "error": {
                    "message": message or d_msg,
                    "type": type_ or d_type,
                    "param": param,
                    "code": code if code is not None else d_code,
                }
            }
        else:
            a_type, a_msg = _ANTHROPIC_ERRORS.get(
                status, ("api_error" if status >= 500 else "invalid_request_error", "Error.")
            )
            body = {"type": "error", "error": {"type": type_ or a_type, "message": message or a_msg}}
        return self._json(provider, status, body, extra)

    async def _fault_response(
        self, request: web.Request, provider: str, kind: str, opts: dict[str, Any], body: Any
    ) -> web.StreamResponse | None:
        """Response for a fault; None for "timeout" (the caller answers after it)."""
        if kind in STATUS_FAULTS:
            status = int(kind)
            extra: dict[str, str] = {}
            if "retry_after" in opts:
                extra["retry-after"] = _num(opts["retry_after"])
            if "retry_after_ms" in opts:
                extra["retry-after-ms"] = _num(opts["retry_after_ms"])
            if "should_retry" in opts:
                extra["x-should-retry"] = "true" if opts["should_retry"] in (True, 1, 1.0, "true") else "false"
            return self._error(
                provider,
                status,
                opts.get("message"),
                type_=opts.get("type"),
                code=opts.get("code"),
                extra=extra,
            )
        if kind == "timeout":
            await asyncio.sleep(float(opts.get("seconds", 30)))
            return None
        if kind == "drop":
            transport = request.transport
            if transport is not None:
                transport.abort()
            return web.Response(status=500)  # never reaches the client
        if kind == "truncated":
            payload = orjson.dumps(self._success_or_placeholder(provider, body))
            part = payload[: max(1, len(payload) // 2)]
            head = (
                "HTTP/1.1 200 OK\r\n"
                "Content-Type: application/json\r\n"
                f"Content-Length: {len(payload) + 100}\r\n"
                "Connection: close\r\n"
                "\r\n"
            ).encode("latin-1")
            transport = request.transport
            if transport is not None:
                transport.write(head + part)
                transport.close()
            return web.Response(status=500)  # never reaches the client
        if kind == "malformed":
            text = opts.get("body", '{"id": "chatcmpl-broken", "choices": [{"index": 0, "message": ')
            return web.Response(
                status=200,
                body=str(text).encode(),
                headers=self._common_headers(provider),
                content_type=str(opts.get("content_type", "application/json")),
            )
        if kind == "bad_shape":
            if provider == "openai":
                obj = {
                    "id": "chatcmpl-" + secrets.token_hex(12),
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": served_model(str(_get(body, "model", "unknown"))),
                    "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
                }
            else:
                obj = {
                    "id": "msg_01" + secrets.token_hex(11),
                    "type": "message",
                    "role": "assistant",
                    "model": served_model(str(_get(body, "model", "unknown"))),
                    "stop_reason": "end_turn",
                    "usage": {"input_tokens": 0, "output_tokens": 0},
                }
            return self._json(provider, 200, obj)
        raise AssertionError(kind)

    def _success_or_placeholder(self, provider: str, body: Any) -> dict:
        try:
            if provider == "openai":
                return self._openai_success(body)
            return self._anthropic_success(body)
        except Exception:  # invalid request: any JSON will do for a truncated body
            return {"id": "x", "object": "chat.completion", "choices": [], "padding": "x" * 64}

    # ---------------------------------------------------------------- dispatch

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        provider = _provider_of(path)
        raw = await request.read()
        body: Any = None
        bad_json = False
        if raw:
            try:
                body = orjson.loads(raw)
            except orjson.JSONDecodeError:
                bad_json = True
        record = {
            "path": path,
            "headers": {k.lower(): v for k, v in request.headers.items()},
            "body": body,
            "t": time.monotonic(),
        }
        with self._lock:
            self.requests.append(record)
            self._n += 1
            queued = self._faults.popleft() if self._faults else None

        if queued is not None:
            resp = await self._fault_response(request, provider, queued[0], queued[1], body)
            if resp is not None:
                return resp

        try:
            return await self._process(request, provider, path, body, bad_json)
        except _Reject as rej:
            return self._error(provider, rej.status, rej.message, param=rej.param, code=rej.code)

    async def _process(
        self, request: web.Request, provider: str, path: str, body: Any, bad_json: bool
    ) -> web.StreamResponse:
        route = path.rstrip("/")
        if route.startswith(("/v1/files", "/v1/batches", "/v1/fine_tuning/jobs")):
            return await self._batch_route(request, route)
        if _is_message_batch_route(route):
            return await self._message_batch_route(request, route)
        if route not in (OPENAI_PATH, ANTHROPIC_PATH):
            raise _Reject(404, f"Unknown request URL: {request.method} {path}.", code="unknown_url")
        if request.method != "POST":
            raise _Reject(405, f"Method {request.method} not allowed for {path}.")

        # --- authentication / headers
        if provider == "openai":
            auth = request.headers.get("Authorization", "")
            key = auth[7:].strip() if auth.lower().startswith("bearer ") else None
            if self.require_key is not None and key != self.require_key:
                if key is None:
                    raise _Reject(401, "You didn't provide an API key.", code="missing_api_key")
                # Echo the key, as careless gateways do: clients must scrub it from errors.
                raise _Reject(401, f"Incorrect API key provided: {key}.", code="invalid_api_key")
        else:
            self._check_anthropic_auth(request)

        # --- body validation
        if bad_json:
            raise _Reject(400, "We could not parse the JSON body of your request.")
        messages, cost = _validate_body(provider, body)

        # --- markers (parsed now, applied after admission)
        text = _last_user_text(messages)
        m = _FAULT_RE.search(text)
        if m and m.group(1) not in FAULT_KINDS:
            raise _Reject(400, f"unknown fault marker kind {m.group(1)!r}")
        delay = sum(float(x) for x in _DELAY_RE.findall(text))

        # --- rate limiting
        limited = self._rate_limited(provider, cost, body["model"])
        if limited is not None:
            return limited

        # --- marker faults: "*N" counts requests admitted with this exact prompt text
        marker: tuple[str, dict] | None = None
        if m:
            limit = int(m.group(2)) if m.group(2) else None
            with self._lock:
                seen = self._marker_counts.get(text, 0) + 1
                self._marker_counts[text] = seen
            if limit is None or seen <= limit:
                marker = (m.group(1), _parse_opts(m.group(3) or ""))

        # --- latency, then marker fault or success
        total_delay = self.latency_s + delay
        if total_delay > 0:
            await asyncio.sleep(total_delay)
        if marker is not None:
            resp = await self._fault_response(request, provider, marker[0], marker[1], body)
            if resp is not None:
                return resp
        if provider == "openai":
            return self._json(provider, 200, self._openai_success(body))
        return self._json(provider, 200, self._anthropic_success(body))

    # ---------------------------------------------------------------- success bodies

    def _reply(self, text: str, body: dict) -> str:
        """The answer before cuts: ``responder(text, body)`` when a test set one and it
        returned a string, else a ``[[reply:...]]`` marker's text, else the echo."""
        fn = self.responder
        if fn is not None:
            out = fn(text, body)
            if out is not None:
                return out
        return _answer_text(text)

    async def _batch_route(self, request: web.Request, route: str) -> web.StreamResponse:
        """OpenAI's files and batches routes (tests/batch_routes.py), behind the same key
        check, faults and rate limits as every request."""
        auth = request.headers.get("Authorization", "")
        key = auth[7:].strip() if auth.lower().startswith("bearer ") else None
        if self.require_key is not None and key != self.require_key:
            raise _Reject(401, "You didn't provide an API key." if key is None else
                          "Incorrect API key provided.", code="invalid_api_key")
        raw = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        if route.startswith("/v1/fine_tuning/jobs"):  # tests/finetune_routes.py
            return self._batch_answer("openai", request, route, "application/octet-stream",
                                      lambda: self.fine_tuning.handle(
                                          request.method, route, dict(request.query), raw))
        return self._batch_answer("openai", request, route, "application/octet-stream",
                                  lambda: self.batches.handle(request.method, route,
                                                              dict(request.query), headers, raw))

    def _batch_answer(self, provider: str, request: web.Request, route: str, file_type: str,
                      handle: Any) -> web.Response:
        """A batch store's answer to one request: ``handle()`` under the lock (the store is
        shared with the test's thread), then ``batch_hook``, then the JSON object or the
        file's bytes (as ``file_type``)."""
        with self._lock:
            try:
                status, obj = handle()
            except BatchError as e:
                raise _Reject(e.status, e.message, param=e.param, code=e.code) from None
        if self.batch_hook is not None:
            self.batch_hook(request.method, route)
        if isinstance(obj, bytes):
            return web.Response(status=status, body=obj, content_type=file_type,
                                headers=self._common_headers(provider))
        return self._json(provider, status, obj)

    def _rate_limited(self, provider: str, cost: int | None, model: str | None) -> web.Response | None:
        """A 429 when the limiter refuses the request (``cost`` None: the request bucket
        alone, for batch routes), else None (and the request is counted)."""
        with self._lock:
            wait, which = self._limiter.admit(cost)
            if which is not None:
                self.count_429 += 1
        if which is None:
            return None
        ms = max(1, math.ceil(wait * 1000))
        extra = {"retry-after": str(max(1, math.ceil(wait))), "retry-after-ms": str(ms)}
        limit_val = self.rpm if which == "requests" else self.tpm
        if provider == "openai":
            msg = (f"Rate limit reached for {model} on {which} per min (RPM): Limit {limit_val}. "
                   f"Please try again in {ms}ms.") if which == "requests" else \
                  (f"Rate limit reached for {model} on tokens per min (TPM): Limit {limit_val}, "
                   f"Requested {cost}. Please try again in {ms}ms.")
            return self._error(provider, 429, msg, type_=which, code="rate_limit_exceeded", extra=extra)
        msg = (f"This request would exceed the rate limit for your organization of {limit_val} "
               f"{'requests' if which == 'requests' else 'tokens'} per minute.")
        return self._error(provider, 429, msg, extra=extra)

    def _check_anthropic_auth(self, request: web.Request) -> None:
        # The classic header is x-api-key; anthropic SDK 2.x sends the api key as a Bearer token.
        auth = request.headers.get("Authorization", "")
        key = request.headers.get("x-api-key") or (auth[7:].strip() if auth.lower().startswith("bearer ") else None)
        if self.require_key is not None and key != self.require_key:
            raise _Reject(401, "invalid x-api-key" if key else "x-api-key header is required")
        if not request.headers.get("anthropic-version"):
            raise _Reject(400, "anthropic-version: header is required")

    async def _message_batch_route(self, request: web.Request, route: str) -> web.StreamResponse:
        """Anthropic's Message Batches routes (tests/batch_routes.py), behind the synchronous
        route's auth and ``anthropic-version`` checks, faults and request-rate limit."""
        self._check_anthropic_auth(request)
        limited = self._rate_limited("anthropic", None, None)
        if limited is not None:
            return limited
        raw = await request.read()
        return self._batch_answer("anthropic", request, route, "application/binary",
                                  lambda: self.message_batches.handle(
                                      request.method, route, dict(request.query), raw))

    def _openai_success(self, body: dict) -> dict:
        model = body["model"]
        messages = body["messages"]
        text = _last_user_text(messages)
        max_tokens = _openai_max_tokens(body)
        lower = model.lower()
        content = self._reply(text, body)
        if "think" in lower:
            content = f"<think>Thinking about: {text}</think>\n\n" + content
        content, stopped = _apply_stops(content, body.get("stop"))
        content, cut = _truncate(content, max_tokens)
        finish = "length" if cut else "stop"
        message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None, "annotations": []}
        reasoning_tokens = 0
        if "reasoner" in lower:
            reasoning = f"Thinking about: {text}"
            message["reasoning_content"] = reasoning
            reasoning_tokens = count_words(reasoning)
        elif "think" in lower:
            reasoning_tokens = count_words(content[: content.find("</think>")]) if "</think>" in content else 0
        logprobs = None
        if body.get("logprobs"):
            k = int(body.get("top_logprobs") or 0)
            logprobs = {
                "content": [_logprob_entry(tok, i, k) for i, tok in enumerate(split_tokens(content))],
                "refusal": None,
            }
        n = body.get("n") or 1
        n = n if isinstance(n, int) and n > 0 else 1
        choices = [
            {"index": i, "message": dict(message), "logprobs": logprobs, "finish_reason": finish} for i in range(n)
        ]
        prompt_tokens = _prompt_tokens(messages)
        completion_tokens = (count_words(content) + (reasoning_tokens if "reasoner" in lower else 0)) * n
        return {
            "id": "chatcmpl-" + secrets.token_hex(12),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": served_model(model),
            "choices": choices,
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
                "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                "completion_tokens_details": {
                    "reasoning_tokens": reasoning_tokens * n,
                    "audio_tokens": 0,
                    "accepted_prediction_tokens": 0,
                    "rejected_prediction_tokens": 0,
                },
            },
            "service_tier": "default",
            "system_fingerprint": SYSTEM_FINGERPRINT,
        }

    def _anthropic_success(self, body: dict) -> dict:
        model = body["model"]
        messages = body["messages"]
        text = _last_user_text(messages)
        content_text, stop_seq = _apply_stops(self._reply(text, body), body.get("stop_sequences"))
        content_text, cut = _truncate(content_text, body["max_tokens"])
        stop_reason = "max_tokens" if cut else ("stop_sequence" if stop_seq is not None else "end_turn")
        blocks: list[dict] = []
        output_tokens = 0
        thinking = body.get("thinking")
        if isinstance(thinking, dict) and thinking.get("type") == "enabled":
            thought = f"Thinking about: {text}"
            blocks.append({
                "type": "thinking",
                "thinking": thought,
                "signature": "sig" + hashlib.sha256(thought.encode()).hexdigest()[:48],
            })
            output_tokens += count_words(thought)
            if "[[redacted]]" in text:
                blocks.append({
                    "type": "redacted_thinking",
                    "data": "redacted" + hashlib.sha256(("r" + thought).encode()).hexdigest()[:48],
                })
        blocks.append({"type": "text", "text": content_text, "citations": None})
        output_tokens += count_words(content_text)
        return {
            "id": "msg_01" + secrets.token_hex(11),
            "type": "message",
            "role": "assistant",
            "model": served_model(model),
            "content": blocks,
            "stop_reason": stop_reason,
            "stop_sequence": stop_seq if not cut else None,
            "usage": {
                "input_tokens": _prompt_tokens(messages, body.get("system")),
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
                "output_tokens": output_tokens,
                "service_tier": "standard",
            },
        }


def _get(body: Any, key: str, default: Any) -> Any:
    return body.get(key, default) if isinstance(body, dict) else default


def _num(x: Any) -> str:
    if isinstance(x, float) and x.is_integer():
        return str(int(x))
    return str(x)


def _openai_max_tokens(body: dict) -> int | None:
    for key in ("max_completion_tokens", "max_tokens"):
        v = body.get(key)
        if v is not None:
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise _Reject(400, f"Invalid '{key}': expected an integer >= 1.", param=key)
            return v
    return None


def _validate_body(provider: str, body: Any) -> tuple[list[Any], int]:
    """``(messages, token cost)`` of a chat-completions / messages request body, or the
    ``_Reject`` (400) the route answers for it. Anthropic's message batches run each item's
    ``params`` through it too (a refused item is an ``errored`` result)."""
    if not isinstance(body, dict):
        raise _Reject(400, "We could not parse the JSON body of your request.")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise _Reject(400, "you must provide a model parameter", param="model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _Reject(400, "messages: field required" if messages is None else "messages: must be a non-empty list",
                      param="messages")
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict) or not isinstance(msg.get("role"), str):
            raise _Reject(400, f"messages.{i}.role: field required", param=f"messages[{i}].role")
    if body.get("stream"):
        raise _Reject(400, "stream=true is not supported by this test server", param="stream")
    if provider == "openai":
        max_tokens = _openai_max_tokens(body)
        if body.get("top_logprobs") is not None:
            k = body["top_logprobs"]
            if not isinstance(k, int) or isinstance(k, bool) or k < 0 or k > 20:
                raise _Reject(400, f"Invalid 'top_logprobs': integer above maximum value. Expected a value "
                                   f"<= 20, but got {k} instead.", param="top_logprobs",
                              code="integer_above_max_value")
            if not body.get("logprobs"):
                raise _Reject(400, "Invalid value for 'logprobs': must be true when 'top_logprobs' is set.",
                              param="logprobs")
        return messages, _prompt_tokens(messages) + (max_tokens or 0)
    max_tokens = body.get("max_tokens")
    if max_tokens is None:
        raise _Reject(400, "max_tokens: Field required")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise _Reject(400, "max_tokens: must be an integer >= 1")
    thinking = body.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") == "enabled":
        budget = thinking.get("budget_tokens")
        if not isinstance(budget, int) or budget < 1024:
            raise _Reject(400, "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024")
        if budget >= max_tokens:
            raise _Reject(400, "`max_tokens` must be greater than `thinking.budget_tokens`.")
    return messages, _prompt_tokens(messages, body.get("system")) + max_tokens


def _message_params_error(params: Any) -> str | None:
    """The message of the 400 that ``POST /v1/messages`` would answer ``params`` with, or
    None when it would accept them (a message batch item's asynchronous validation)."""
    try:
        _validate_body("anthropic", params)
    except _Reject as rej:
        return rej.message
    return None


# --------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.provider_server", description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="0 = a free port")
    ap.add_argument("--rpm", type=int, default=None)
    ap.add_argument("--tpm", type=int, default=None)
    ap.add_argument("--latency", type=float, default=0.0, help="seconds added to every request")
    ap.add_argument("--require-key", default=None)
    args = ap.parse_args(argv)

    stop = threading.Event()

    def _on_signal(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    server = ProviderServer(rpm=args.rpm, tpm=args.tpm, latency_s=args.latency, require_key=args.require_key,
                            host=args.host, port=args.port).start()
    print(server.url, flush=True)
    try:
        while not stop.wait(0.2):
            pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
