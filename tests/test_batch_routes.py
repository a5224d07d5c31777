"""The loopback server's OpenAI Batch API routes, checked with OpenAI's own client: if the
official SDK can upload, create, poll, download and cancel against them, synth's batch
client is tested against the shapes the real service sends. Anthropic's Message Batches
routes likewise, with the official ``anthropic`` SDK."""

import orjson
import pytest

from tests.batch_routes import MESSAGE_BATCH_MAX_BYTES, MESSAGE_BATCH_MAX_REQUESTS

openai = pytest.importorskip("openai")


def client(server):
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="k", max_retries=0)


def line(cid, text, model="gpt-test", **body):
    return {"custom_id": cid, "method": "POST", "url": "/v1/chat/completions",
            "body": {"model": model, "messages": [{"role": "user", "content": text}],
                     "max_tokens": 16, **body}}


def upload(c, lines, raw=None):
    data = raw if raw is not None else b"".join(orjson.dumps(x) + b"\n" for x in lines)
    return c.files.create(file=("in.jsonl", data), purpose="batch")


def run_to_end(c, batch_id, polls=10):
    seen = []
    for _ in range(polls):
        b = c.batches.retrieve(batch_id)
        seen.append(b.status)
        if b.status in ("completed", "failed", "expired", "cancelled"):
            return b, seen
    return b, seen


def test_a_batch_runs_through_its_life_and_answers_as_the_sync_route_does(server):
    c = client(server)
    f = upload(c, [line("a", "hello there"), line("b", "ok"), line("c", "x [[batch:error]]")])
    assert (f.purpose, f.filename) == ("batch", "in.jsonl")
    assert [x.id for x in c.files.list(purpose="batch")] == [f.id]
    b = c.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions",
                         completion_window="24h", metadata={"synth": "k1"})
    assert b.status == "validating" and b.metadata == {"synth": "k1"}
    b, seen = run_to_end(c, b.id)
    assert seen == ["in_progress", "finalizing", "completed"]
    assert (b.request_counts.total, b.request_counts.completed, b.request_counts.failed) == \
        (3, 2, 1)
    out = [orjson.loads(x) for x in c.files.content(b.output_file_id).content.splitlines()]
    assert [o["custom_id"] for o in out] == ["b", "a"]  # no order is promised
    sync = c.chat.completions.create(model="gpt-test", max_tokens=16,
                                     messages=[{"role": "user", "content": "hello there"}])
    body = next(o for o in out if o["custom_id"] == "a")["response"]["body"]
    assert body["choices"][0]["message"]["content"] == sync.choices[0].message.content
    assert [body["usage"][k] for k in ("prompt_tokens", "completion_tokens", "total_tokens")] \
        == [sync.usage.prompt_tokens, sync.usage.completion_tokens, sync.usage.total_tokens]
    err = [orjson.loads(x) for x in c.files.content(b.error_file_id).content.splitlines()]
    assert [(e["custom_id"], e["error"]["code"]) for e in err] == [("c", "server_error")]
    assert server.batches.billed == 2 and server.batches.created == 1
    assert [x.id for x in c.batches.list()] == [b.id]


def test_validation_fails_the_batch_naming_each_line(server):
    c = client(server)
    raw = (orjson.dumps(line("a", "x")) + b"\n{not json\n" + orjson.dumps(line("a", "y")) +
           b"\n" + orjson.dumps({**line("d", "z"), "url": "/v1/embeddings"}) + b"\n")
    f = upload(c, [], raw=raw)
    b = c.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions",
                         completion_window="24h")
    b, _ = run_to_end(c, b.id)
    assert b.status == "failed" and server.batches.billed == 0
    assert [(e.code, e.line) for e in b.errors.data] == [
        ("invalid_json_line", 2), ("duplicate_custom_id", 3), ("mismatched_url", 4)]


def test_expiry_cancel_stuck_truncated_and_faults(server):
    c = client(server)
    lines = [line(str(i), f"q{i}") for i in range(5)]
    server.batches.expire_next, server.batches.expire_after = True, 2
    f = upload(c, lines)
    b, _ = run_to_end(c, c.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions",
                                          completion_window="24h").id)
    assert b.status == "expired" and b.request_counts.completed == 2 and b.expired_at
    # cancelled while in progress: cancelling, then cancelled, nothing answered
    b = c.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions",
                         completion_window="24h")
    c.batches.retrieve(b.id)
    assert c.batches.cancel(b.id).status == "cancelling"
    b, _ = run_to_end(c, b.id)
    assert b.status == "cancelled" and b.output_file_id is None
    with pytest.raises(openai.ConflictError):
        c.batches.cancel(b.id)
    # stuck finalizing until released; then the output's last line is cut
    server.batches.stuck = server.batches.truncate_output = True
    b = c.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions",
                         completion_window="24h")
    b, seen = run_to_end(c, b.id, polls=6)
    assert seen[-3:] == ["finalizing"] * 3
    server.batches.stuck = False
    b, _ = run_to_end(c, b.id)
    data = c.files.content(b.output_file_id).content
    *whole, last = data.split(b"\n")
    assert len(whole) == 4 and all(orjson.loads(x) for x in whole)
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(last)
    # the server's per-request faults reach these routes too
    server.fail_next("429", retry_after=0)
    with pytest.raises(openai.RateLimitError):
        c.batches.retrieve(b.id)
    server.fail_next("500")
    with pytest.raises(openai.InternalServerError):
        upload(c, lines)
    with pytest.raises(openai.NotFoundError):
        c.batches.retrieve("batch_nope")
    with pytest.raises(openai.BadRequestError):
        c.batches.create(input_file_id=f.id, endpoint="/v1/embeddings",
                         completion_window="24h")


# ------------------------------------------------------- Anthropic's Message Batches API


def ant_client(server, **kw):
    anthropic = pytest.importorskip("anthropic")
    return anthropic.Anthropic(base_url=server.url, api_key=kw.pop("api_key", "k"), max_retries=0,
                               **kw)


def item(cid, text, model="claude-test", **params):
    return {"custom_id": cid, "params": {"model": model, "max_tokens": 16,
                                         "messages": [{"role": "user", "content": text}],
                                         **params}}


def ant_to_end(c, batch_id, polls=6):
    seen = []
    for _ in range(polls):
        b = c.messages.batches.retrieve(batch_id)
        seen.append(b.processing_status)
        if b.processing_status == "ended":
            break
    return b, seen


def counts(b):
    rc = b.request_counts
    return {k: v for k, v in rc.model_dump().items() if v}


def raw_request(url, method="GET", body=None, headers=None):
    """(status, bytes) of one request outside the SDK."""
    import urllib.error
    import urllib.request

    req = urllib.request.Request(url, method=method, headers=headers or {},
                                 data=None if body is None else orjson.dumps(body))
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_a_message_batch_runs_through_its_life_and_answers_as_the_sync_route_does(server):
    c = ant_client(server)
    b = c.messages.batches.create(requests=[item("a", "hello there"), item("b", "ok"),
                                            item("c", "x [[batch:error]]"),
                                            item("d", "y [[batch:overloaded]]")])
    assert b.id.startswith("msgbatch_") and b.type == "message_batch"
    assert (b.processing_status, counts(b), b.results_url, b.ended_at) == \
        ("in_progress", {"processing": 4}, None, None)
    assert (b.expires_at - b.created_at).total_seconds() == 86_400
    assert server.requests[-1]["path"] == "/v1/messages/batches"
    assert server.requests[-1]["headers"]["anthropic-version"]
    b, seen = ant_to_end(c, b.id)
    assert seen == ["in_progress", "ended"] and b.ended_at >= b.created_at
    assert counts(b) == {"succeeded": 2, "errored": 2}
    assert b.results_url == f"{server.url}/v1/messages/batches/{b.id}/results"
    out = list(c.messages.batches.results(b.id))
    assert [r.custom_id for r in out] == ["d", "c", "b", "a"]  # no order is promised
    sync = c.messages.create(model="claude-test", max_tokens=16,
                             messages=[{"role": "user", "content": "hello there"}])
    got = next(r for r in out if r.custom_id == "a").result
    assert got.type == "succeeded"
    assert got.message.model_dump(exclude={"id"}) == sync.model_dump(exclude={"id"})
    errs = {r.custom_id: r.result for r in out if r.result.type == "errored"}
    assert {k: (e.error.type, e.error.error.type) for k, e in errs.items()} == \
        {"c": ("error", "api_error"), "d": ("error", "overloaded_error")}
    assert server.message_batches.billed == 2 and server.message_batches.created == 1
    assert [x.id for x in c.messages.batches.list()] == [b.id]
    assert c.messages.batches.retrieve(b.id).processing_status == "ended"  # ended stays ended
    assert c.messages.batches.delete(b.id).type == "message_batch_deleted"
    anthropic = pytest.importorskip("anthropic")
    with pytest.raises(anthropic.NotFoundError) as ei:
        c.messages.batches.retrieve(b.id)
    assert ei.value.body["error"]["type"] == "not_found_error"
    assert server.message_batches.billed == 2  # reads after the end answer nothing again


def test_message_batch_create_validation_and_async_params_check(server):
    anthropic = pytest.importorskip("anthropic")
    c = ant_client(server)
    bad = {
        "empty": [],
        "custom_id pattern": [item("no spaces", "x")],
        "custom_id length": [item("x" * 65, "x")],
        "duplicate": [item("a", "x"), item("a", "y")],
        "no params": [{"custom_id": "a"}],
    }
    for why, reqs in bad.items():
        with pytest.raises(anthropic.BadRequestError) as ei:
            c.messages.batches.create(requests=reqs)
        assert ei.value.body["error"]["type"] == "invalid_request_error", why
    server.message_batches.max_requests = 2
    with pytest.raises(anthropic.BadRequestError):
        c.messages.batches.create(requests=[item(str(i), "x") for i in range(3)])
    server.message_batches.max_bytes = 500
    with pytest.raises(anthropic.APIStatusError) as ei:
        c.messages.batches.create(requests=[item("a", "x" * 600)])
    assert ei.value.status_code == 413 and ei.value.body["error"]["type"] == "request_too_large"
    server.message_batches.max_requests = MESSAGE_BATCH_MAX_REQUESTS
    server.message_batches.max_bytes = MESSAGE_BATCH_MAX_BYTES
    url = f"{server.url}/v1/messages/batches"
    status, body = raw_request(url, "POST", {"requests": [item("a", "x")]}, {"x-api-key": "k"})
    assert status == 400 and b"anthropic-version" in body  # the sync route's header rule
    status, body = raw_request(url, "POST", {}, {"x-api-key": "k", "anthropic-version": "1"})
    assert status == 400 and orjson.loads(body)["error"]["type"] == "invalid_request_error"
    assert server.message_batches.created == 0
    # params are checked as /v1/messages checks a body, but only once the batch runs
    b = c.messages.batches.create(requests=[
        item("ok", "fine"),
        {"custom_id": "no-max", "params": {"model": "claude-test",
                                           "messages": [{"role": "user", "content": "x"}]}},
        item("think", "x", thinking={"type": "enabled", "budget_tokens": 10}),
        {"custom_id": "no-model", "params": {"max_tokens": 5, "messages": []}}])
    b, _ = ant_to_end(c, b.id)
    assert counts(b) == {"succeeded": 1, "errored": 3}
    res = {r.custom_id: r.result for r in c.messages.batches.results(b.id)}
    assert {k for k, r in res.items() if r.type == "errored" and
            r.error.error.type == "invalid_request_error"} == {"no-max", "think", "no-model"}
    assert res["no-max"].error.error.message == "max_tokens: Field required"
    assert server.message_batches.billed == 1


def test_message_batches_list_newest_first_in_pages(server):
    c = ant_client(server)
    ids = [c.messages.batches.create(requests=[item("a", str(i))]).id for i in range(5)]
    newest = ids[::-1]
    page = c.messages.batches.list(limit=2)
    assert [x.id for x in page.data] == newest[:2] and page.has_more
    assert (page.first_id, page.last_id) == (newest[0], newest[1])
    assert [x.id for x in c.messages.batches.list(limit=2)] == newest  # pages via after_id
    page = c.messages.batches.list(limit=2, after_id=newest[3])
    assert [x.id for x in page.data] == newest[4:] and not page.has_more
    page = c.messages.batches.list(limit=2, before_id=newest[3])
    assert [x.id for x in page.data] == newest[1:3] and page.has_more


def test_message_batch_expiry_cancel_stuck_and_truncated_results(server):
    anthropic = pytest.importorskip("anthropic")
    c = ant_client(server)
    reqs = [item(str(i), f"q{i}") for i in range(5)]
    mb = server.message_batches
    # expires after answering only two: the rest are expired results
    mb.expire_next, mb.expire_after = True, 2
    b, _ = ant_to_end(c, c.messages.batches.create(requests=reqs).id)
    assert counts(b) == {"succeeded": 2, "expired": 3} and not mb.expire_next
    res = {r.custom_id: r.result.type for r in c.messages.batches.results(b.id)}
    assert res == {"0": "succeeded", "1": "succeeded", "2": "expired", "3": "expired",
                   "4": "expired"}
    # canceled after one read: the half answered by then stays, the rest is canceled
    b = c.messages.batches.create(requests=reqs[:4])
    c.messages.batches.retrieve(b.id)
    with pytest.raises(anthropic.BadRequestError):  # only an ended batch may be deleted
        c.messages.batches.delete(b.id)
    b = c.messages.batches.cancel(b.id)
    assert b.processing_status == "canceling" and b.cancel_initiated_at is not None
    assert c.messages.batches.cancel(b.id).processing_status == "canceling"
    b = c.messages.batches.retrieve(b.id)
    assert b.processing_status == "ended" and counts(b) == {"succeeded": 2, "canceled": 2}
    res = {r.custom_id: r.result.type for r in c.messages.batches.results(b.id)}
    assert res == {"0": "succeeded", "1": "succeeded", "2": "canceled", "3": "canceled"}
    with pytest.raises(anthropic.BadRequestError):
        c.messages.batches.cancel(b.id)
    assert mb.billed == 4
    # stuck in progress while set; results before the end are refused
    mb.stuck = True
    b = c.messages.batches.create(requests=reqs)
    b, seen = ant_to_end(c, b.id, polls=4)
    assert seen == ["in_progress"] * 4 and counts(b) == {"processing": 5}
    with pytest.raises(anthropic.AnthropicError):  # the SDK sees no results_url
        c.messages.batches.results(b.id)
    status, body = raw_request(f"{server.url}/v1/messages/batches/{b.id}/results",
                               headers={"x-api-key": "k", "anthropic-version": "2023-06-01"})
    assert status == 404 and orjson.loads(body)["error"]["type"] == "not_found_error"
    mb.stuck = False
    b, seen = ant_to_end(c, b.id)
    assert seen == ["in_progress", "ended"]
    # the next results body loses the end of its last line; the one after is whole
    mb.truncate_output = True
    lines, broken = [], None
    try:
        for r in c.messages.batches.results(b.id):
            lines.append(r.custom_id)
    except ValueError as e:  # json.JSONDecodeError
        broken = e
    assert broken is not None and lines == ["4", "3", "2", "1"]
    assert [r.custom_id for r in c.messages.batches.results(b.id)] == ["4", "3", "2", "1", "0"]


def test_message_batch_routes_get_the_servers_faults_auth_and_rate_limits(server):
    anthropic = pytest.importorskip("anthropic")
    from tests.provider_server import ProviderServer

    c = ant_client(server)
    server.fail_next("429", retry_after=0)
    with pytest.raises(anthropic.RateLimitError) as ei:
        c.messages.batches.create(requests=[item("a", "x")])
    assert ei.value.body["error"]["type"] == "rate_limit_error"
    assert server.message_batches.created == 0
    server.fail_next("503")
    with pytest.raises(anthropic.APIStatusError) as ei:
        c.messages.batches.create(requests=[item("a", "x")])
    assert ei.value.status_code == 503 and server.message_batches.created == 0
    b = c.messages.batches.create(requests=[item("a", "x"), item("b", "y")])
    server.fail_next("429", retry_after=0)
    with pytest.raises(anthropic.RateLimitError):
        c.messages.batches.retrieve(b.id)
    server.fail_next("503")
    with pytest.raises(anthropic.APIStatusError) as ei:
        c.messages.batches.retrieve(b.id)
    assert ei.value.status_code == 503
    assert ei.value.body["error"]["type"] == "api_error"
    b, seen = ant_to_end(c, b.id)  # the refused reads did not move it on
    assert seen == ["in_progress", "ended"]
    server.fail_next("503")
    with pytest.raises(anthropic.APIStatusError):
        c.messages.batches.results(b.id)  # its retrieve is refused first
    assert len(list(c.messages.batches.results(b.id))) == 2
    with ProviderServer(require_key="right", rpm=6) as srv:
        with pytest.raises(anthropic.AuthenticationError):
            ant_client(srv, api_key="wrong").messages.batches.list()
        good = ant_client(srv, api_key="right")
        b = good.messages.batches.create(requests=[item("a", "x")])
        with pytest.raises(anthropic.RateLimitError) as ei:  # 6 rpm: one request in 10 s
            good.messages.batches.retrieve(b.id)
        assert int(ei.value.response.headers["retry-after"]) >= 1
        assert srv.count_429 == 1 and srv.message_batches.created == 1
