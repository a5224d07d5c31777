"""The loopback server's OpenAI Batch API routes, checked with OpenAI's own client: if the
official SDK can upload, create, poll, download and cancel against them, synth's batch
client is tested against the shapes the real service sends."""

import orjson
import pytest

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
