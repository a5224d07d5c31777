"""Tests for tests/provider_server.py, driven through the official SDKs and raw aiohttp."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import anthropic
import openai
import pytest

from tests.provider_server import (
    FAULT_KINDS,
    ProviderServer,
    served_model,
    split_tokens,
)

REPO = Path(__file__).resolve().parents[1]
KEY = "sk-test"
ANTHROPIC_HEADERS = {"x-api-key": KEY, "anthropic-version": "2023-06-01"}
OPENAI_HEADERS = {"Authorization": f"Bearer {KEY}"}


# --------------------------------------------------------------------------- fixtures / helpers


@pytest.fixture(scope="module")
def server():
    with ProviderServer() as srv:
        yield srv


@pytest.fixture(autouse=True)
def _fresh(request):
    if "server" in request.fixturenames:
        request.getfixturevalue("server").reset()
    yield


def oai(srv: ProviderServer, **kw) -> openai.AsyncOpenAI:
    kw.setdefault("max_retries", 0)
    kw.setdefault("timeout", 10.0)
    return openai.AsyncOpenAI(base_url=srv.url + "/v1", api_key=kw.pop("api_key", KEY), **kw)


def ant(srv: ProviderServer, **kw) -> anthropic.AsyncAnthropic:
    kw.setdefault("max_retries", 0)
    kw.setdefault("timeout", 10.0)
    return anthropic.AsyncAnthropic(base_url=srv.url, api_key=kw.pop("api_key", KEY), **kw)


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


async def post(url: str, path: str, body, headers: dict | None = None, session: aiohttp.ClientSession | None = None):
    """POST JSON; returns (status, headers, parsed JSON or text)."""
    own = session is None
    session = session or aiohttp.ClientSession()
    try:
        async with session.post(url + path, json=body, headers=headers or {}) as r:
            raw = await r.read()
            try:
                data = await r.json(content_type=None)
            except ValueError:
                data = raw.decode(errors="replace")
            return r.status, r.headers, data
    finally:
        if own:
            await session.close()


def oai_body(text: str = "hello world", **kw) -> dict:
    return {"model": "gpt-x", "messages": user(text), **kw}


def ant_body(text: str = "hello world", **kw) -> dict:
    return {"model": "claude-x", "max_tokens": 100, "messages": user(text), **kw}


# --------------------------------------------------------------------------- success shapes


async def test_openai_success_shape(server):
    client = oai(server)
    raw = await client.chat.completions.with_raw_response.create(
        model="gpt-x",
        messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello there world"}],
    )
    r = raw.parse()
    assert r.object == "chat.completion"
    assert r.model == "gpt-x-2026-01-01" == served_model("gpt-x")
    assert r.id.startswith("chatcmpl-") and isinstance(r.created, int)
    assert r.system_fingerprint.startswith("fp_")
    ch = r.choices[0]
    assert ch.message.role == "assistant"
    assert ch.message.content == "Echo: hello there world"
    assert ch.finish_reason == "stop" and ch.logprobs is None
    # prompt = words(2 + 3) + 3 * 2 messages; completion = words of content
    assert (r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.total_tokens) == (11, 4, 15)
    assert r.usage.prompt_tokens_details.cached_tokens == 0
    assert r.usage.completion_tokens_details.reasoning_tokens == 0
    h = raw.headers
    assert h["x-ratelimit-limit-requests"] == "1000000" and h["x-ratelimit-remaining-requests"] == "999999"
    assert h["x-ratelimit-limit-tokens"] == "1000000" and h["x-ratelimit-remaining-tokens"] == "999999"
    assert h["x-ratelimit-reset-requests"] == h["x-ratelimit-reset-tokens"] == "0ms"
    assert h["x-request-id"].startswith("req_") and h["request-id"] == h["x-request-id"]
    await client.close()


async def test_openai_max_tokens_and_stop(server):
    client = oai(server)
    r = await client.chat.completions.create(model="gpt-x", messages=user("one two three four five"), max_tokens=3)
    assert r.choices[0].message.content == "Echo: one two"
    assert r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 3
    r = await client.chat.completions.create(
        model="gpt-x", messages=user("one two three"), max_completion_tokens=50, stop=[" three"]
    )
    assert r.choices[0].message.content == "Echo: one two" and r.choices[0].finish_reason == "stop"
    await client.close()


async def test_openai_logprobs(server):
    client = oai(server)
    r = await client.chat.completions.create(
        model="gpt-x", messages=user("alpha beta gamma"), logprobs=True, top_logprobs=4
    )
    ch = r.choices[0]
    entries = ch.logprobs.content
    assert [e.token for e in entries] == ["Echo:", " alpha", " beta", " gamma"]
    assert "".join(e.token for e in entries) == ch.message.content
    assert len(entries) == r.usage.completion_tokens
    for e in entries:
        assert e.bytes == list(e.token.encode())
        assert e.logprob < 0 and len(e.top_logprobs) == 4
        assert e.top_logprobs[0].token == e.token and e.top_logprobs[0].logprob == e.logprob
        lps = [t.logprob for t in e.top_logprobs]
        assert lps == sorted(lps, reverse=True) and len(set(lps)) == 4
        assert all(t.bytes == list(t.token.encode()) for t in e.top_logprobs)
    # logprobs without top_logprobs: entries with empty alternatives
    r = await client.chat.completions.create(model="gpt-x", messages=user("x"), logprobs=True)
    assert [e.top_logprobs for e in r.choices[0].logprobs.content] == [[], []]
    with pytest.raises(openai.BadRequestError) as ei:
        await client.chat.completions.create(model="gpt-x", messages=user("x"), logprobs=True, top_logprobs=21)
    assert ei.value.status_code == 400 and ei.value.body["param"] == "top_logprobs"
    await client.close()


async def test_openai_reasoning_models(server):
    client = oai(server)
    r = await client.chat.completions.create(model="deepseek-reasoner", messages=user("why sky blue"))
    msg = r.choices[0].message
    assert msg.content == "Echo: why sky blue"
    assert msg.reasoning_content == "Thinking about: why sky blue"  # extra field, kept by the SDK
    assert r.usage.completion_tokens_details.reasoning_tokens == 5
    assert r.usage.completion_tokens == 4 + 5
    r = await client.chat.completions.create(model="qwen-think", messages=user("why"))
    assert r.choices[0].message.content == "<think>Thinking about: why</think>\n\nEcho: why"
    await client.close()


async def test_anthropic_success_shape(server):
    client = ant(server)
    raw = await client.messages.with_raw_response.create(
        model="claude-x", max_tokens=100, system="be brief", messages=user("hello there world")
    )
    m = await raw.parse()
    assert m.type == "message" and m.role == "assistant" and m.id.startswith("msg_")
    assert m.model == "claude-x-2026-01-01"
    assert len(m.content) == 1 and isinstance(m.content[0], anthropic.types.TextBlock)
    assert m.content[0].text == "Echo: hello there world"
    assert m.stop_reason == "end_turn" and m.stop_sequence is None
    assert (m.usage.input_tokens, m.usage.output_tokens) == (3 + 3 + 2, 4)
    assert m.usage.cache_read_input_tokens == 0 and m.usage.cache_creation_input_tokens == 0
    h = raw.headers
    assert h["anthropic-ratelimit-requests-limit"] == "1000000"
    assert h["anthropic-ratelimit-requests-remaining"] == "999999"
    assert h["anthropic-ratelimit-tokens-limit"] == "1000000"
    assert h["anthropic-ratelimit-requests-reset"].endswith("Z") and "T" in h["anthropic-ratelimit-tokens-reset"]
    assert h["request-id"].startswith("req_")

    m = await client.messages.create(model="claude-x", max_tokens=3, messages=user("a b c d e"))
    assert m.content[0].text == "Echo: a b" and m.stop_reason == "max_tokens" and m.usage.output_tokens == 3
    m = await client.messages.create(model="claude-x", max_tokens=30, messages=user("a b STOP c"),
                                     stop_sequences=["STOP"])
    assert m.content[0].text == "Echo: a b " and m.stop_reason == "stop_sequence" and m.stop_sequence == "STOP"
    await client.close()


async def test_anthropic_thinking_blocks(server):
    client = ant(server)
    m = await client.messages.create(
        model="claude-x", max_tokens=2048, thinking={"type": "enabled", "budget_tokens": 1024},
        messages=user("think hard"),
    )
    assert [b.type for b in m.content] == ["thinking", "text"]
    assert isinstance(m.content[0], anthropic.types.ThinkingBlock)
    assert m.content[0].thinking == "Thinking about: think hard" and m.content[0].signature.startswith("sig")
    assert m.usage.output_tokens == 4 + 3
    m = await client.messages.create(
        model="claude-x", max_tokens=2048, thinking={"type": "enabled", "budget_tokens": 1024},
        messages=user("secret [[redacted]]"),
    )
    assert [b.type for b in m.content] == ["thinking", "redacted_thinking", "text"]
    assert isinstance(m.content[1], anthropic.types.RedactedThinkingBlock) and m.content[1].data
    with pytest.raises(anthropic.BadRequestError):  # budget must be < max_tokens, as the real API demands
        await client.messages.create(model="claude-x", max_tokens=1024,
                                     thinking={"type": "enabled", "budget_tokens": 1024}, messages=user("x"))
    await client.close()


async def test_determinism(server):
    bodies = [
        ("/v1/chat/completions", OPENAI_HEADERS,
         oai_body("same words here", model="x-reasoner", logprobs=True, top_logprobs=3), ("id", "created")),
        ("/v1/messages", ANTHROPIC_HEADERS,
         ant_body("same words here", max_tokens=2000, thinking={"type": "enabled", "budget_tokens": 1024}), ("id",)),
    ]
    for path, headers, body, volatile in bodies:
        (s1, _, d1), (s2, _, d2) = [await post(server.url, path, body, headers) for _ in range(2)]
        assert s1 == s2 == 200
        assert d1["id"] != d2["id"]
        for k in volatile:
            d1.pop(k), d2.pop(k)
        assert d1 == d2


# --------------------------------------------------------------------------- validation / auth


@pytest.mark.parametrize(
    "path,headers,body,expect_type",
    [
        ("/v1/chat/completions", OPENAI_HEADERS, {"messages": user("x")}, "invalid_request_error"),
        ("/v1/chat/completions", OPENAI_HEADERS, {"model": "gpt-x"}, "invalid_request_error"),
        ("/v1/chat/completions", OPENAI_HEADERS, "not an object", "invalid_request_error"),
        ("/v1/messages", ANTHROPIC_HEADERS, {"model": "c", "messages": user("x")}, "invalid_request_error"),
        ("/v1/messages", ANTHROPIC_HEADERS, {"max_tokens": 5, "messages": user("x")}, "invalid_request_error"),
        ("/v1/messages", ANTHROPIC_HEADERS, {"model": "c", "max_tokens": 5}, "invalid_request_error"),
        ("/v1/messages", {"x-api-key": KEY}, {"model": "c", "max_tokens": 5, "messages": user("x")},
         "invalid_request_error"),
    ],
    ids=["oai-no-model", "oai-no-messages", "oai-not-object", "ant-no-max-tokens", "ant-no-model",
         "ant-no-messages", "ant-no-version"],
)
async def test_validation_400(server, path, headers, body, expect_type):
    status, h, data = await post(server.url, path, body, headers)
    assert status == 400
    if path.endswith("completions"):
        assert set(data["error"]) == {"message", "type", "param", "code"}
        assert data["error"]["type"] == expect_type
        assert "x-ratelimit-limit-requests" in h
    else:
        assert data["type"] == "error" and data["error"]["type"] == expect_type and data["error"]["message"]


async def test_unknown_path_404(server):
    status, _, data = await post(server.url, "/v1/nope", {"model": "m"}, OPENAI_HEADERS)
    assert status == 404 and data["error"]["code"] == "unknown_url"


async def test_require_key():
    with ProviderServer(require_key="right") as srv:
        with pytest.raises(openai.AuthenticationError) as ei:
            await oai(srv, api_key="wrong").chat.completions.create(model="m", messages=user("x"))
        assert ei.value.status_code == 401 and ei.value.body["code"] == "invalid_api_key"
        with pytest.raises(anthropic.AuthenticationError) as ei:
            await ant(srv, api_key="wrong").messages.create(model="m", max_tokens=5, messages=user("x"))
        assert ei.value.body["error"]["type"] == "authentication_error"
        r = await oai(srv, api_key="right").chat.completions.create(model="m", messages=user("x"))
        assert r.choices[0].message.content == "Echo: x"
        m = await ant(srv, api_key="right").messages.create(model="m", max_tokens=5, messages=user("x"))
        assert m.content[0].text == "Echo: x"
        # anthropic SDK 2.x sends its api_key as "Authorization: Bearer"; x-api-key is accepted too
        assert srv.requests[-1]["headers"]["authorization"] == "Bearer right"
        s, _, _ = await post(srv.url, "/v1/messages", ant_body(), {"x-api-key": "right", "anthropic-version": "1"})
        assert s == 200
        s, _, d = await post(srv.url, "/v1/messages", ant_body(), {"anthropic-version": "1"})
        assert s == 401 and d["error"]["type"] == "authentication_error"
        assert srv.requests[0]["headers"]["authorization"] == "Bearer wrong"
        assert srv.n_requests == 6


# --------------------------------------------------------------------------- faults

OPENAI_STATUS_CLASS = {
    "400": openai.BadRequestError, "401": openai.AuthenticationError, "404": openai.NotFoundError,
    "408": openai.APIStatusError, "409": openai.ConflictError, "422": openai.UnprocessableEntityError,
    "429": openai.RateLimitError, "500": openai.InternalServerError, "502": openai.InternalServerError,
    "503": openai.InternalServerError, "529": openai.InternalServerError,
}
ANTHROPIC_STATUS_CLASS = {
    "400": anthropic.BadRequestError, "401": anthropic.AuthenticationError, "404": anthropic.NotFoundError,
    "408": anthropic.RequestTimeoutError, "409": anthropic.ConflictError,
    "422": anthropic.UnprocessableEntityError, "429": anthropic.RateLimitError,
    "500": anthropic.InternalServerError, "502": anthropic.InternalServerError,
    "503": anthropic.ServiceUnavailableError, "529": anthropic.OverloadedError,
}
ANTHROPIC_ERROR_TYPE = {"429": "rate_limit_error", "529": "overloaded_error", "400": "invalid_request_error",
                        "401": "authentication_error", "404": "not_found_error", "500": "api_error"}


@pytest.mark.parametrize("kind", sorted(OPENAI_STATUS_CLASS))
async def test_status_faults_openai(server, kind):
    client = oai(server)
    server.fail_next(kind)
    with pytest.raises(OPENAI_STATUS_CLASS[kind]) as ei:
        await client.chat.completions.create(model="m", messages=user("x"))
    assert ei.value.status_code == int(kind)
    err = ei.value.response.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["message"]
    # the fault was used up: the next request succeeds
    r = await client.chat.completions.create(model="m", messages=user("x"))
    assert r.choices[0].message.content == "Echo: x"
    assert server.n_requests == 2 and server.count_429 == 0
    await client.close()


@pytest.mark.parametrize("kind", sorted(ANTHROPIC_STATUS_CLASS))
async def test_status_faults_anthropic(server, kind):
    client = ant(server)
    server.fail_next(kind)
    with pytest.raises(ANTHROPIC_STATUS_CLASS[kind]) as ei:
        await client.messages.create(model="m", max_tokens=5, messages=user("x"))
    assert type(ei.value) is ANTHROPIC_STATUS_CLASS[kind]
    assert ei.value.status_code == int(kind)
    body = ei.value.response.json()
    assert body["type"] == "error" and body["error"]["message"]
    if kind in ANTHROPIC_ERROR_TYPE:
        assert body["error"]["type"] == ANTHROPIC_ERROR_TYPE[kind]
    m = await client.messages.create(model="m", max_tokens=5, messages=user("x"))
    assert m.content[0].text == "Echo: x"
    await client.close()


async def test_429_retry_after_headers(server):
    server.fail_next("429", retry_after=2)
    server.fail_next("429", retry_after_ms=150)
    server.fail_next("429", code="insufficient_quota", type="insufficient_quota")
    s, h, d = await post(server.url, "/v1/chat/completions", oai_body(), OPENAI_HEADERS)
    assert s == 429 and h["retry-after"] == "2" and "retry-after-ms" not in h
    assert d["error"]["code"] == "rate_limit_exceeded"
    s, h, _ = await post(server.url, "/v1/messages", ant_body(), ANTHROPIC_HEADERS)
    assert s == 429 and h["retry-after-ms"] == "150" and "retry-after" not in h
    s, h, d = await post(server.url, "/v1/chat/completions", oai_body(), OPENAI_HEADERS)
    assert s == 429 and d["error"]["code"] == "insufficient_quota"
    assert server.count_429 == 0  # only limiter 429s are counted


async def test_fail_next_n_and_sdk_retry(server):
    server.fail_next("503", n=2, retry_after_ms=10)
    client = oai(server, max_retries=2)
    r = await client.chat.completions.create(model="m", messages=user("retry me"))
    assert r.choices[0].message.content == "Echo: retry me"
    assert server.n_requests == 3
    with pytest.raises(ValueError):
        server.fail_next("418")
    await client.close()


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
@pytest.mark.parametrize("kind", ["drop", "truncated"])
async def test_connection_faults(server, provider, kind):
    server.fail_next(kind)
    if provider == "openai":
        client = oai(server)
        call = lambda: client.chat.completions.create(model="m", messages=user("x"))  # noqa: E731
        exc = openai.APIConnectionError
    else:
        client = ant(server)
        call = lambda: client.messages.create(model="m", max_tokens=5, messages=user("x"))  # noqa: E731
        exc = anthropic.APIConnectionError
    with pytest.raises(exc):
        await call()
    r = await call()  # server still healthy afterwards
    assert r is not None
    await client.close()


async def test_drop_and_truncated_raw(server):
    server.fail_next("drop")
    with pytest.raises(aiohttp.ClientError):
        await post(server.url, "/v1/chat/completions", oai_body(), OPENAI_HEADERS)
    server.fail_next("truncated")
    with pytest.raises(aiohttp.ClientPayloadError):
        await post(server.url, "/v1/chat/completions", oai_body(), OPENAI_HEADERS)


async def test_malformed_and_bad_shape(server):
    oc, ac = oai(server), ant(server)
    server.fail_next("malformed", n=2)
    with pytest.raises(ValueError):  # JSONDecodeError escapes both SDKs
        await oc.chat.completions.create(model="m", messages=user("x"))
    with pytest.raises(ValueError):
        await ac.messages.create(model="m", max_tokens=5, messages=user("x"))

    server.fail_next("bad_shape")
    s, h, d = await post(server.url, "/v1/chat/completions", oai_body(), OPENAI_HEADERS)
    assert s == 200 and h["content-type"].startswith("application/json") and "choices" not in d
    server.fail_next("bad_shape", n=2)
    r = await oc.chat.completions.create(model="m", messages=user("x"))
    assert not r.choices  # the SDK does not validate; the shape is simply missing
    m = await ac.messages.create(model="m", max_tokens=5, messages=user("x"))
    assert not m.content
    await oc.close()
    await ac.close()


async def test_timeout_fault(server):
    client = oai(server, timeout=0.3)
    server.fail_next("timeout", seconds=2)
    with pytest.raises(openai.APITimeoutError):
        await client.chat.completions.create(model="m", messages=user("x"))
    server.fail_next("timeout", seconds=0.2)
    t0 = time.monotonic()
    r = await oai(server).chat.completions.create(model="m", messages=user("slow"))
    assert time.monotonic() - t0 >= 0.2 and r.choices[0].message.content == "Echo: slow"
    await client.close()


# --------------------------------------------------------------------------- markers


async def test_marker_always_and_star_n(server):
    client = oai(server)
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            await client.chat.completions.create(model="m", messages=user("boom [[fault:500]]"))
    for _ in range(2):
        with pytest.raises(openai.RateLimitError) as ei:
            await client.chat.completions.create(model="m", messages=user("q [[fault:429*2 retry_after=0.05]]"))
        assert ei.value.response.headers["retry-after"] == "0.05"
    r = await client.chat.completions.create(model="m", messages=user("q [[fault:429*2 retry_after=0.05]]"))
    assert r.choices[0].finish_reason == "stop"
    assert server.count_429 == 0
    a = ant(server)
    with pytest.raises(anthropic.OverloadedError):
        await a.messages.create(model="m", max_tokens=9, messages=user("[[fault:529*1]] z"))
    m = await a.messages.create(model="m", max_tokens=9, messages=user("[[fault:529*1]] z"))
    assert m.content[0].text == "Echo: [[fault:529*1]] z"
    # markers in earlier turns do not count: only the last user message
    r = await client.chat.completions.create(model="m", messages=[
        {"role": "user", "content": "[[fault:500]]"}, {"role": "assistant", "content": "ok"},
        {"role": "user", "content": [{"type": "text", "text": "fine"}]}])
    assert r.choices[0].message.content == "Echo: fine"
    await client.close()
    await a.close()


async def test_reply_marker(server):
    client = oai(server)
    r = await client.chat.completions.create(
        model="m", messages=user('grade [[reply:ok {"score": 4, "reason": "a b"}]] tail'))
    assert r.choices[0].message.content == 'ok {"score": 4, "reason": "a b"}'
    assert r.usage.completion_tokens == 6 and r.choices[0].finish_reason == "stop"
    r = await client.chat.completions.create(
        model="m", messages=user("x [[reply:line one\nline two]]"), max_tokens=2)
    assert r.choices[0].message.content == "line one" and r.choices[0].finish_reason == "length"
    # only the last user message counts, as for the other markers
    r = await client.chat.completions.create(model="m", messages=[
        {"role": "user", "content": "[[reply:no]]"}, {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "yes"}])
    assert r.choices[0].message.content == "Echo: yes"
    a = ant(server)
    m = await a.messages.create(model="m", max_tokens=20, messages=user("[[reply:[1, 2] fine]]"))
    assert m.content[0].text == "[1, 2] fine" and m.usage.output_tokens == 3
    await client.close()
    await a.close()


async def test_marker_star_n_under_concurrency(server):
    async with aiohttp.ClientSession() as session:
        same = [post(server.url, "/v1/chat/completions", oai_body("shared [[fault:502*3]]"), OPENAI_HEADERS, session)
                for _ in range(10)]
        distinct = [post(server.url, "/v1/messages", ant_body(f"p{i} [[fault:500*1]]"), ANTHROPIC_HEADERS, session)
                    for i in range(6)]
        results = await asyncio.gather(*same, *distinct)
        statuses = [s for s, _, _ in results]
        assert sorted(statuses[:10]) == [200] * 7 + [502] * 3
        assert statuses[10:] == [500] * 6
        again = await asyncio.gather(*[
            post(server.url, "/v1/messages", ant_body(f"p{i} [[fault:500*1]]"), ANTHROPIC_HEADERS, session)
            for i in range(6)])
        assert [s for s, _, _ in again] == [200] * 6
    assert server.n_requests == 22


async def test_delay_marker_and_latency(server):
    t0 = time.monotonic()
    s, _, _ = await post(server.url, "/v1/chat/completions", oai_body("[[delay:0.25]] hi"), OPENAI_HEADERS)
    assert s == 200 and time.monotonic() - t0 >= 0.25
    with ProviderServer(latency_s=0.2) as srv:
        t0 = time.monotonic()
        s, _, _ = await post(srv.url, "/v1/messages", ant_body(), ANTHROPIC_HEADERS)
        assert s == 200 and time.monotonic() - t0 >= 0.2


# --------------------------------------------------------------------------- rate limiting


async def test_rate_limiter_burst_429s():
    with ProviderServer(rpm=60) as srv:  # 1 request/s, burst capacity 1
        async with aiohttp.ClientSession() as session:
            results = await asyncio.gather(*[
                post(srv.url, "/v1/chat/completions", oai_body(f"r{i}"), OPENAI_HEADERS, session) for i in range(5)
            ])
        statuses = sorted(s for s, _, _ in results)
        assert statuses == [200, 429, 429, 429, 429]
        assert srv.count_429 == 4 and srv.n_requests == 5
        for s, h, d in results:
            assert h["x-ratelimit-limit-requests"] == "60"
            if s == 429:
                assert d["error"]["type"] == "requests" and d["error"]["code"] == "rate_limit_exceeded"
                assert h["retry-after"] == "1" and 0 < int(h["retry-after-ms"]) <= 1000
                assert h["x-ratelimit-remaining-requests"] == "0"
        # the SDK sees RateLimitError; Anthropic responses carry anthropic-ratelimit-* headers
        with pytest.raises(anthropic.RateLimitError) as ei:
            await ant(srv).messages.create(model="m", max_tokens=5, messages=user("x"))
        assert ei.value.response.headers["anthropic-ratelimit-requests-limit"] == "60"
        assert ei.value.body["error"]["type"] == "rate_limit_error"
        assert srv.count_429 == 5
        srv.reset()
        assert srv.count_429 == 0 and srv.n_requests == 0 and srv.requests == []
        s, h, _ = await post(srv.url, "/v1/chat/completions", oai_body(), OPENAI_HEADERS)
        assert s == 200 and h["x-ratelimit-remaining-requests"] == "0"


async def test_rate_limiter_paced_under_limit_never_429s():
    with ProviderServer(rpm=600) as srv:  # 10/s, burst 10
        async with aiohttp.ClientSession() as session:
            burst = await asyncio.gather(*[
                post(srv.url, "/v1/chat/completions", oai_body(f"b{i}"), OPENAI_HEADERS, session) for i in range(10)
            ])
            assert [s for s, _, _ in burst] == [200] * 10  # one second's worth is allowed at once
            t0 = time.monotonic()
            for i in range(10):  # then 8/s, below the 10/s refill: never limited
                await asyncio.sleep(max(0.0, t0 + (i + 1) * 0.125 - time.monotonic()))
                s, h, _ = await post(srv.url, "/v1/messages", ant_body(f"p{i}"), ANTHROPIC_HEADERS, session)
                assert s == 200, (i, h.get("retry-after-ms"))
        assert srv.count_429 == 0 and srv.n_requests == 20


async def test_token_limiter():
    with ProviderServer(tpm=6000) as srv:  # 100 tokens/s, burst 100
        body = oai_body("a b c", max_tokens=60)  # cost = (3 + 3) prompt + 60 = 66
        s, h, _ = await post(srv.url, "/v1/chat/completions", body, OPENAI_HEADERS)
        assert s == 200 and h["x-ratelimit-limit-tokens"] == "6000" and h["x-ratelimit-remaining-tokens"] == "34"
        assert h["x-ratelimit-limit-requests"] == "1000000"
        s, h, d = await post(srv.url, "/v1/chat/completions", body, OPENAI_HEADERS)
        assert s == 429 and d["error"]["type"] == "tokens" and srv.count_429 == 1
        assert 150 <= int(h["retry-after-ms"]) <= 320  # (66 - 34) tokens at 100/s, minus elapsed
        s, h, d = await post(srv.url, "/v1/messages", ant_body("a", max_tokens=10), ANTHROPIC_HEADERS)
        assert s == 200 and h["anthropic-ratelimit-tokens-limit"] == "6000"


# --------------------------------------------------------------------------- bookkeeping / lifecycle


async def test_request_records(server):
    server.fail_next("500")
    await post(server.url, "/v1/chat/completions", oai_body("first"), {**OPENAI_HEADERS, "X-Custom": "Yes"})
    await post(server.url, "/v1/messages", ant_body("second"), ANTHROPIC_HEADERS)
    assert server.n_requests == 2
    r0, r1 = server.requests
    assert r0["path"] == "/v1/chat/completions" and r0["body"]["messages"][0]["content"] == "first"
    assert r0["headers"]["x-custom"] == "Yes" and r0["headers"]["authorization"] == f"Bearer {KEY}"
    assert r1["path"] == "/v1/messages" and r1["headers"]["anthropic-version"] == "2023-06-01"
    assert r0["t"] <= r1["t"] <= time.monotonic()


def test_stop_does_not_wait_for_hung_handlers():
    srv = ProviderServer().start()
    srv.fail_next("timeout", seconds=30)

    async def hang():
        async with aiohttp.ClientSession() as session:
            with pytest.raises(aiohttp.ClientError):
                await post(srv.url, "/v1/chat/completions", oai_body(), OPENAI_HEADERS, session)

    import threading

    t = threading.Thread(target=lambda: asyncio.run(hang()))
    t.start()
    while srv.n_requests == 0:
        time.sleep(0.01)
    t0 = time.monotonic()
    srv.stop()
    assert time.monotonic() - t0 < 3
    t.join(5)
    assert not t.is_alive()
    srv.stop()  # idempotent


def test_helpers():
    assert split_tokens("Echo: a  b ") == ["Echo:", " a", "  b "]
    assert served_model("claude-x-20250514") == "claude-x-20250514"
    assert {"429", "529", "drop", "truncated", "malformed", "bad_shape", "timeout"} <= FAULT_KINDS


async def test_cli_subprocess():
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.provider_server", "--port", "0", "--rpm", "600"],
        cwd=REPO, stdout=subprocess.PIPE, text=True,
    )
    try:
        url = (await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 15)).strip()
        assert url.startswith("http://127.0.0.1:")
        s, h, d = await post(url, "/v1/chat/completions", oai_body("from cli"), OPENAI_HEADERS)
        assert s == 200 and d["choices"][0]["message"]["content"] == "Echo: from cli"
        assert h["x-ratelimit-limit-requests"] == "600"
    finally:
        proc.terminate()
        assert proc.wait(10) == 0
