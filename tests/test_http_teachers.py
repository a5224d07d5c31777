"""API teachers end to end: synth.generate → real sockets → the loopback provider server."""

import json
import time

import pytest

import synth
from tests.conftest import logprobs_bytes

# The loopback server stands in for the providers: accept the terms the licence check
# finds for its model names (claude-* carries Anthropic's API terms even on loopback; the
# other names are unknown).
FAST = dict(progress=False, retry_initial_delay=0.01, max_retries=3, intent="research",
            accept_terms=("unknown", "anthropic-api"))


def run(server, tmp_path, lines, *, teacher="openai:gpt-test", name="run", **kw):
    src = tmp_path / f"{name}.jsonl"
    src.write_text("".join(json.dumps(x) + "\n" for x in lines))
    base = f"{server.url}/v1" if teacher.startswith("openai") else server.url
    opts = {**FAST, **kw}
    res = synth.generate(input=src, teacher=teacher, out=tmp_path / name, base_url=base, **opts)
    return res, res.table().to_pylist()


def test_openai_rows_carry_everything(server, tmp_path, price_file):
    res, rows = run(server, tmp_path, [{"id": "a", "prompt": "what is two plus two",
                                        "reference": "4", "metadata": {"src": "t"}},
                                       {"id": "b", "prompt": "hello there"}],
                    price_file=price_file, system="Be brief.", max_tokens=50, seed=7)
    a = rows[0]
    assert [r["id"] for r in rows] == ["a:0", "b:0"]
    assert a["status"] == "ok" and a["error"] is None
    assert a["response"] == "Echo: what is two plus two"
    assert a["messages"][0] == {"role": "system", "content": "Be brief."}
    assert a["model"] == "gpt-test" and a["model_version"].startswith("gpt-test-")
    assert a["provider"] == "openai" and a["base_url"] == f"{server.url}/v1"
    assert a["finish_reason"] == "stop"
    assert a["params"]["temperature"] == 0.0 and a["params"]["max_tokens"] == 50
    assert a["params"]["seed"] == 7
    assert a["reference"] == "4" and json.loads(a["metadata"]) == {"src": "t"}
    assert a["input_tokens"] > 0 and a["output_tokens"] == 6
    expected = (a["input_tokens"] * 1.0 + a["output_tokens"] * 2.0) / 1e6
    assert a["cost_usd"] == pytest.approx(expected)
    assert len(a["request_hash"]) == 64 and a["latency_s"] > 0
    body = server.requests[0]["body"]
    assert body["model"] == "gpt-test" and body["max_tokens"] == 50 and body["seed"] == 7
    summary = json.loads((tmp_path / "run" / "run.json").read_text())
    assert summary["status"] == {"ok": 2, "error": 0} and summary["sent"] == 2
    assert summary["cost_usd"] == pytest.approx(sum(r["cost_usd"] for r in rows))
    assert summary["tokens"]["output"] == sum(r["output_tokens"] for r in rows)


def test_anthropic_wire_format(server, tmp_path, price_file, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    res, rows = run(server, tmp_path, [{"id": "q", "prompt": "hi claude", "system": "S"}],
                    teacher="anthropic:claude-test", price_file=price_file, max_tokens=20)
    req = server.requests[0]
    assert req["path"] == "/v1/messages"
    assert req["headers"]["x-api-key"] == "sk-ant-test"
    assert req["headers"]["anthropic-version"] == "2023-06-01"
    assert req["body"]["system"] == "S" and req["body"]["messages"] == [
        {"role": "user", "content": "hi claude"}]
    r = rows[0]
    assert r["response"] == "Echo: hi claude" and r["finish_reason"] == "stop"
    assert r["reasoning"] is None and r["cost_usd"] > 0


def test_anthropic_thinking_blocks(server, tmp_path):
    _, rows = run(server, tmp_path, [{"id": "q", "prompt": "solve it"}],
                  teacher="anthropic:claude-test", reasoning=True, max_tokens=100)
    body = server.requests[0]["body"]
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 4096}
    assert body["max_tokens"] == 100 + 4096 and "temperature" not in body
    assert rows[0]["reasoning"] == "Thinking about: solve it"
    assert rows[0]["response"] == "Echo: solve it"
    assert rows[0]["params"]["reasoning_effort"] == "medium"


def test_anthropic_thinking_rejects_other_temperatures(server, tmp_path):
    with pytest.raises(synth.ConfigError, match="--temperature"):
        run(server, tmp_path, [{"prompt": "x"}], teacher="anthropic:claude-test",
            reasoning=True, temperature=0.2)
    assert server.n_requests == 0


@pytest.mark.parametrize("model, where", [("deep-reasoner", "reasoning_content"),
                                          ("qwq-think", "<think> tags")])
def test_openai_compatible_reasoning(server, tmp_path, model, where):
    _, rows = run(server, tmp_path, [{"id": "q", "prompt": "why"}], teacher=f"openai:{model}")
    assert rows[0]["reasoning"] == "Thinking about: why", where
    assert rows[0]["response"] == "Echo: why"


def test_logprobs_top_k(server, tmp_path):
    _, rows = run(server, tmp_path, [{"id": "q", "prompt": "one two three"}], logprobs=5)
    body = server.requests[0]["body"]
    assert body["logprobs"] is True and body["top_logprobs"] == 5
    lp = rows[0]["logprobs"]
    n = rows[0]["output_tokens"]
    assert len(lp["tokens"]) == len(lp["logprobs"]) == len(lp["top_tokens"]) == n
    assert "".join(lp["tokens"]) == rows[0]["response"]
    assert all(len(t) == 5 for t in lp["top_logprobs"])
    assert all(t == sorted(t, reverse=True) for t in lp["top_logprobs"])
    assert lp["token_ids"] is None  # the chat API returns no ids


def test_logprobs_storage_is_compact(server, tmp_path):
    words = " ".join(f"word{i % 37}" for i in range(300))
    _, rows = run(server, tmp_path, [{"id": f"q{i}", "prompt": f"{i} {words}"}
                                     for i in range(20)], logprobs=20, max_tokens=400)
    n_tokens = sum(r["output_tokens"] for r in rows)
    lp_bytes = logprobs_bytes(tmp_path / "run" / "traces.parquet")
    assert n_tokens > 5000
    assert lp_bytes / n_tokens <= 300, f"{lp_bytes / n_tokens:.0f} bytes/token at K=20"


def test_samples_get_their_own_requests(server, tmp_path):
    _, rows = run(server, tmp_path, [{"id": "q", "prompt": "vary"}], samples=3)
    assert [r["id"] for r in rows] == ["q:0", "q:1", "q:2"]
    assert len({r["request_hash"] for r in rows}) == 3
    assert server.n_requests == 3
    assert {r["params"]["temperature"] for r in rows} == {1.0}  # several samples: not greedy


def test_identical_requests_are_sent_once(server, tmp_path):
    _, rows = run(server, tmp_path, [{"id": "a", "prompt": "same"}, {"id": "b", "prompt": "same"}])
    assert server.n_requests == 1
    assert rows[0]["response"] == rows[1]["response"] and rows[1]["prompt_id"] == "b"


def test_rerun_sends_nothing_and_writes_the_same_rows(server, tmp_path):
    lines = [{"id": i, "prompt": f"question {i}"} for i in range(10)]
    _, first = run(server, tmp_path, lines)
    assert server.n_requests == 10
    res, second = run(server, tmp_path, lines)
    assert server.n_requests == 10
    assert res.summary["from_cache"] == 10 and res.summary["sent"] == 0
    assert first == second  # cached rows keep their latency and created_at too


@pytest.mark.parametrize("fault", ["500", "502", "503", "529", "408", "409", "429", "drop",
                                   "truncated", "malformed", "bad_shape", "timeout"])
def test_transient_faults_are_retried(server, tmp_path, fault):
    _, rows = run(server, tmp_path, [{"id": "f", "prompt": f"try [[fault:{fault}*2]]"}],
                  timeout=1.0)
    assert rows[0]["status"] == "ok", rows[0]["error"]
    assert server.n_requests == 3


@pytest.mark.parametrize("fault", ["400", "401", "404", "422"])
def test_client_errors_fail_fast_into_error_rows(server, tmp_path, fault):
    _, rows = run(server, tmp_path, [{"id": "bad", "prompt": f"x [[fault:{fault}]]"},
                                     {"id": "good", "prompt": "fine"}])
    bad, good = rows
    assert bad["status"] == "error" and bad["response"] is None
    assert bad["error"].startswith(f"http_{fault}: HTTP {fault}")
    assert good["status"] == "ok"
    assert server.n_requests == 2  # the bad one was sent exactly once


def test_persistent_failure_becomes_an_error_row_after_bounded_attempts(server, tmp_path):
    res, rows = run(server, tmp_path, [{"id": "x", "prompt": "[[fault:503]]"}], max_retries=2)
    assert rows[0]["status"] == "error" and "after 3 attempts" in rows[0]["error"]
    assert server.n_requests == 3
    assert res.summary["failures"] == {"http_503": 1}
    assert res.summary["retries"] == {"http_503": 2}


def test_retry_after_is_honoured(server, tmp_path):
    server.fail_next("429", retry_after=0.4)
    t0 = time.monotonic()
    _, rows = run(server, tmp_path, [{"id": "x", "prompt": "patience"}])
    assert rows[0]["status"] == "ok"
    gap = server.requests[1]["t"] - server.requests[0]["t"]
    assert gap >= 0.38 and time.monotonic() - t0 >= 0.38


def test_rpm_limit_is_respected(tmp_path):
    from tests.provider_server import ProviderServer

    with ProviderServer(rpm=1200) as s:  # 20/s, 1 s burst
        res, rows = run(s, tmp_path, [{"id": i, "prompt": f"p{i}"} for i in range(40)],
                        rpm=1200, concurrency=16)
        assert s.count_429 == 0
        assert all(r["status"] == "ok" for r in rows)
        span = s.requests[-1]["t"] - s.requests[0]["t"]
        assert span >= 39 / 20 * 0.95  # paced, not burst


def test_server_rate_limits_are_survived_without_a_client_limit(tmp_path):
    from tests.provider_server import ProviderServer

    with ProviderServer(rpm=600) as s:  # client sets no --rpm: 429s + retry-after + headers
        res, rows = run(s, tmp_path, [{"id": i, "prompt": f"p{i}"} for i in range(25)],
                        concurrency=25, max_retries=10)
        assert all(r["status"] == "ok" for r in rows), res.summary
        assert s.count_429 > 0


def test_max_cost_stops_before_the_cap(server, tmp_path, price_file):
    lines = [{"id": i, "prompt": f"question number {i}"} for i in range(50)]
    # worst case per request ≈ (est. input ~10 tok * $1 + max 100 tok * $2) / 1M ≈ $0.00021
    res, rows = run(server, tmp_path, lines, price_file=price_file, max_tokens=100,
                    max_cost=0.0004, concurrency=1)
    ok = [r for r in rows if r["status"] == "ok"]
    stopped = [r for r in rows if r["status"] == "error"]
    assert 0 < len(ok) < 50 and len(ok) == server.n_requests
    assert all(r["error"].startswith("max_cost: not sent") for r in stopped)
    assert res.summary["cost_usd"] <= 0.0004 and res.summary["stopped_by_max_cost"]
    # raising the cap resumes: cached answers are not paid again
    res2, rows2 = run(server, tmp_path, lines, price_file=price_file, max_tokens=100,
                      max_cost=1.0)
    assert res2.summary["from_cache"] == len(ok)
    assert server.n_requests == 50 and all(r["status"] == "ok" for r in rows2)


def test_max_cost_needs_a_price(server, tmp_path):
    with pytest.raises(synth.ConfigError, match="--max-cost"):
        run(server, tmp_path, [{"prompt": "x"}], teacher="openai:unpriced", max_cost=1.0)
    assert server.n_requests == 0


def test_api_key_never_reaches_disk_or_logs(server, tmp_path, monkeypatch, caplog, capfd):
    canary = "sk-canary-7f3a9c1e55d2b4a8"
    monkeypatch.setenv("OPENAI_API_KEY", canary)
    server.require_key = "another-key"  # the server rejects it and echoes it in the error
    try:
        _, rows = run(server, tmp_path, [{"id": "a", "prompt": "x"}], name="rejected")
    finally:
        server.require_key = None
    assert rows[0]["status"] == "error" and "401" in rows[0]["error"]
    assert server.requests[0]["headers"]["authorization"] == f"Bearer {canary}"
    run(server, tmp_path, [{"id": "b", "prompt": "y"}], name="accepted", logprobs=2)
    leaked = [p for p in tmp_path.rglob("*") if p.is_file() and canary.encode() in p.read_bytes()]
    assert leaked == []
    out, err = capfd.readouterr()
    assert canary not in out + err + caplog.text


def test_rejected_key_stops_sending(server, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong")
    server.require_key = "sk-right"
    try:
        res, rows = run(server, tmp_path, [{"id": i, "prompt": f"p{i}"} for i in range(20)],
                        concurrency=1)
    finally:
        server.require_key = None
    assert server.n_requests == 1
    assert all(r["status"] == "error" and "http_401" in r["error"] for r in rows)
    assert res.summary["failures"] == {"http_401": 20}
