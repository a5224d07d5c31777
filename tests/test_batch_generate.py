"""``synth generate --batch`` against the loopback server's batch routes (OpenAI's Batch API
and Anthropic's Message Batches, tests/batch_routes.py): the same rows as a synchronous run,
at the batch price, each request paid for once whatever fails."""

import json
import sqlite3
import subprocess
import sys
import threading

import pyarrow.parquet as pq
import pytest

import synth
from synth.errors import BatchError, ConfigError, InputError
from tests.conftest import ROOT

LICENCE = dict(intent="research", accept_terms=("unknown", "anthropic-api"))
SAME = ["id", "prompt_id", "request_hash", "response", "reasoning", "finish_reason",
        "status", "model_version", "input_tokens", "output_tokens", "params"]
PROVIDERS = {
    "openai": dict(teacher="openai:gpt-test", base="/v1", store="batches"),
    "anthropic": dict(teacher="anthropic:claude-test", base="", store="message_batches"),
}


@pytest.fixture
def batch_prices(tmp_path):
    p = tmp_path / "batch-prices.yaml"
    p.write_text("models:\n"
                 "  - {provider: openai, match: gpt-test, input: 1.0, output: 2.0, batch: 0.5}\n"
                 "  - {provider: anthropic, match: claude-test, input: 3.0, output: 15.0, "
                 "batch: 0.5}\n")
    return p


def prompts(tmp_path, n, mark=lambda i: ""):
    p = tmp_path / f"in-{n}.jsonl"
    p.write_text("".join(json.dumps({"id": f"p{i}", "prompt": f"question number {i}{mark(i)}"})
                         + "\n" for i in range(n)))
    return p


def gen(server, provider, src, out, **kw):
    spec = PROVIDERS[provider]
    kw.setdefault("poll_interval", 0.01)
    return synth.generate(input=src, teacher=spec["teacher"], out=out,
                          base_url=server.url + spec["base"], progress=False, **LICENCE, **kw)


def store(server, provider):
    return getattr(server, PROVIDERS[provider]["store"])


def rows(result):
    return result.table().to_pylist()


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_batch_rows_equal_synchronous_rows_at_the_batch_price(tmp_path, server, provider,
                                                              batch_prices):
    src = prompts(tmp_path, 12)
    sync = gen(server, provider, src, tmp_path / "sync", price_file=batch_prices)
    server.reset()
    batch = gen(server, provider, src, tmp_path / "batch", batch=True,
                price_file=batch_prices, max_tokens=512)
    a, b = rows(sync), rows(batch)
    assert [{k: r[k] for k in SAME} for r in a] == [{k: r[k] for k in SAME} for r in b]
    assert all(r["batch_id"] is None for r in a)
    assert len({r["batch_id"] for r in b}) == 1 and b[0]["batch_id"]
    for x, y in zip(a, b):
        assert y["cost_usd"] == pytest.approx(x["cost_usd"] * 0.5)
    s = batch.summary
    assert s["cost_usd"] == pytest.approx(sync.summary["cost_usd"] * 0.5)
    assert s["cost_by_route"]["batch_rows"] == 12
    assert s["cost_by_route"]["batch_at_sync_price_usd"] == pytest.approx(
        sync.summary["cost_usd"])
    assert s["batch"]["batches"] == 1 and s["sent"] == 12
    st = store(server, provider)
    assert st.billed == 12 and st.created == 1
    # the rerun finds everything in the cache: nothing submitted, the same file
    again = gen(server, provider, src, tmp_path / "batch", batch=True,
                price_file=batch_prices)
    assert again.summary["sent"] == 0 and st.created == 1
    assert rows(again) == b


def test_answers_already_cached_synchronously_are_not_batched(tmp_path, server):
    gen(server, "openai", prompts(tmp_path, 5), tmp_path / "run")
    server.reset()
    res = gen(server, "openai", prompts(tmp_path, 9), tmp_path / "run", batch=True)
    assert res.summary["from_cache"] == 5 and res.summary["sent"] == 4
    assert server.batches.billed == 4
    got = rows(res)
    assert [r["batch_id"] is None for r in got] == [True] * 5 + [False] * 4


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_an_item_that_always_fails_becomes_an_error_row_after_its_retries(tmp_path, server,
                                                                         provider):
    src = prompts(tmp_path, 6, lambda i: " [[batch:error]]" if i == 2 else "")
    res = gen(server, provider, src, tmp_path / "out", batch=True, max_retries=2)
    got = {r["id"]: r for r in rows(res)}
    assert got["p2:0"]["status"] == "error"
    assert got["p2:0"]["error"].startswith("batch_item_error: ")
    assert "(after 3 batch attempts)" in got["p2:0"]["error"]
    assert sum(r["status"] == "ok" for r in got.values()) == 5
    st = store(server, provider)
    assert st.created == 3 and st.billed == 5  # the failing item went round three times
    assert res.summary["batch"]["item_failures"] == {"batch_item_error": 3}


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_an_expired_batch_resubmits_only_what_it_did_not_answer(tmp_path, server, provider):
    st = store(server, provider)
    st.expire_next, st.expire_after = True, 4
    res = gen(server, provider, prompts(tmp_path, 10), tmp_path / "out", batch=True)
    assert [r["status"] for r in rows(res)] == ["ok"] * 10
    assert st.billed == 10 and st.created == 2
    assert res.summary["batch"]["item_failures"] == {"batch_expired": 6}


def test_a_results_download_cut_short_is_downloaded_again_not_paid_again(tmp_path, server):
    st = server.message_batches
    st.truncate_output = True  # the next results body loses the end of its last line
    res = gen(server, "anthropic", prompts(tmp_path, 8), tmp_path / "out", batch=True)
    assert [r["status"] for r in rows(res)] == ["ok"] * 8
    assert res.summary["batch"]["item_failures"] == {}
    assert st.created == 1 and st.billed == 8
    downloads = [r for r in server.requests if r["path"].endswith("/results")]
    assert len(downloads) == 2


def test_a_results_file_truncated_at_the_provider_loses_only_its_last_item(tmp_path, server):
    st = server.batches
    st.truncate_output = True  # the stored output file itself lost its end
    res = gen(server, "openai", prompts(tmp_path, 8), tmp_path / "out", batch=True)
    assert [r["status"] for r in rows(res)] == ["ok"] * 8
    assert res.summary["batch"]["item_failures"] == {"batch_missing": 1}
    assert st.created == 2  # the lost item was asked again: the provider's loss, counted
    downloads = [r for r in server.requests if r["path"].endswith("/content")]
    assert len(downloads) >= 3  # three tries at the damaged file before giving up on it


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_a_stuck_batch_is_polled_until_it_ends(tmp_path, server, provider):
    st = store(server, provider)
    st.stuck = True  # OpenAI: stays finalizing; Anthropic: stays in_progress
    timer = threading.Timer(0.5, lambda: setattr(st, "stuck", False))
    timer.start()
    try:
        res = gen(server, provider, prompts(tmp_path, 3), tmp_path / "out", batch=True,
                  poll_interval=0.02)
    finally:
        timer.cancel()
    assert [r["status"] for r in rows(res)] == ["ok"] * 3
    polls = [r for r in server.requests if r["path"].rsplit("/", 1)[-1].startswith(
        ("batch_", "msgbatch_"))]
    assert st.created == 1 and len(polls) >= 5  # it kept asking, with backoff


@pytest.mark.parametrize("provider,teacher,extra", [
    ("openai", "openai:gpt-test-reasoner", dict(logprobs=3)),
    ("anthropic", "anthropic:claude-test", dict(reasoning=True)),
])
def test_reasoning_and_logprobs_come_through_a_batch(tmp_path, server, provider, teacher,
                                                     extra):
    src = prompts(tmp_path, 3)
    kw = dict(input=src, teacher=teacher, base_url=server.url + PROVIDERS[provider]["base"],
              progress=False, **LICENCE, **extra)
    sync = rows(synth.generate(out=tmp_path / "sync", **kw))
    batch = rows(synth.generate(out=tmp_path / "batch", batch=True, poll_interval=0.01, **kw))
    assert all(r["reasoning"] for r in batch)
    for a, b in zip(sync, batch):
        assert (a["reasoning"], a["logprobs"], a["response"]) == \
            (b["reasoning"], b["logprobs"], b["response"])
    if "logprobs" in extra:
        assert all(len(r["logprobs"]["top_tokens"][0]) == 3 for r in batch)


def test_max_cost_is_checked_at_the_batch_price_before_submitting(tmp_path, server,
                                                                  batch_prices):
    # each request: ~7 prompt tokens + max_tokens 100 of output at $2/M, half price in a batch
    src = prompts(tmp_path, 10)
    one = (8 * 1.0 + 100 * 2.0) / 1e6 * 0.5
    res = gen(server, "openai", src, tmp_path / "out", batch=True, price_file=batch_prices,
              max_tokens=100, max_cost=one * 6.5)
    got = rows(res)
    ok = [r for r in got if r["status"] == "ok"]
    assert 0 < len(ok) < 10 and server.batches.billed == len(ok)
    assert all(r["error"].startswith("max_cost: not sent") for r in got if r["status"] != "ok")
    assert res.summary["stopped_by_max_cost"] is True
    assert res.summary["cost_usd"] <= one * 6.5


def test_no_wait_submits_and_exits_then_status_and_the_rerun_collect(tmp_path, server):
    src = prompts(tmp_path, 4)
    out = tmp_path / "out"
    first = gen(server, "openai", src, out, batch=True, wait=False)
    assert first.summary["pending"] is True and first.summary["sent"] == 4
    assert not (out / "traces.parquet").exists()
    from synth.generate.batch import batch_status

    st = batch_status(out)
    assert [b["state"] for b in st["batches"]] == ["submitted"]
    assert st["batches"][0]["status"] in ("in_progress", "finalizing")
    cli = subprocess.run([sys.executable, "-m", "synth", "batch", "status", str(out), "--json"],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout)["batches"][0]["batch_id"] == st["batches"][0]["batch_id"]
    # a synchronous run meanwhile does not send what an open batch holds
    before = server.n_requests
    sync = gen(server, "openai", src, out)
    assert [r["error"].split(":")[0] for r in rows(sync)] == ["batch_pending"] * 4
    assert sync.summary["sent"] == 0 and server.n_requests == before
    # --no-wait again: one pass collects what ended, then writes the rows
    while batch_status(out)["batches"][0]["status"] != "completed":
        pass
    res = gen(server, "openai", src, out, batch=True, wait=False)
    assert res.summary.get("pending") is None
    assert res.summary["sent"] == 0 and [r["status"] for r in rows(res)] == ["ok"] * 4
    assert server.batches.created == 1 and server.batches.billed == 4


def test_cancel_then_rerun_resubmits_the_cancelled_items(tmp_path, server):
    src = prompts(tmp_path, 5)
    out = tmp_path / "out"
    gen(server, "openai", src, out, batch=True, wait=False)
    cli = subprocess.run([sys.executable, "-m", "synth", "batch", "cancel", str(out),
                          "--json"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout)["batches"][0]["status"] == "cancelling"
    res = gen(server, "openai", src, out, batch=True)
    assert [r["status"] for r in rows(res)] == ["ok"] * 5
    assert res.summary["batch"]["item_failures"] == {"batch_cancelled": 5}
    assert server.batches.created == 2 and server.batches.billed == 5


def test_a_batch_refused_in_validation_is_one_clear_error(tmp_path, server):
    server.batches.refuse_next = [{"code": "invalid_request", "line": 2,
                                   "message": "The request body is not valid."}]
    with pytest.raises(BatchError) as e:
        gen(server, "openai", prompts(tmp_path, 3), tmp_path / "out", batch=True)
    msg = str(e.value)
    assert "refused batch" in msg and "line 2 (prompt p1): invalid_request" in msg
    assert e.value.exit_code == 10
    assert not (tmp_path / "out" / "traces.parquet").exists()


def test_the_key_never_reaches_the_batch_file_the_ledger_or_an_error(tmp_path, server,
                                                                    monkeypatch):
    secret = "sk-batch-SECRET-0123456789"
    server.require_key = secret
    try:
        monkeypatch.setenv("OPENAI_API_KEY", secret)
        res = gen(server, "openai", prompts(tmp_path, 3), tmp_path / "out", batch=True)
        assert [r["status"] for r in rows(res)] == ["ok"] * 3
        for blob in server.batches.content.values():
            assert secret.encode() not in blob
        assert secret.encode() not in (tmp_path / "out" / "cache.sqlite").read_bytes()
        for b in server.batches.batches.values():
            assert secret not in json.dumps(b)
        monkeypatch.setenv("OPENAI_API_KEY", secret + "-wrong")
        with pytest.raises(BatchError) as e:
            gen(server, "openai", prompts(tmp_path, 4), tmp_path / "out2", batch=True)
        assert secret not in str(e.value) and "401" in str(e.value)
    finally:
        server.require_key = None


def test_a_teacher_with_no_batch_api_is_refused_before_any_output(tmp_path):
    with pytest.raises(ConfigError, match="--batch: local:.* has no batch API"):
        synth.generate(input=prompts(tmp_path, 2), teacher="local:smollm2-135m-instruct",
                       out=tmp_path / "out", batch=True, progress=False)
    assert not (tmp_path / "out").exists()
    with pytest.raises(ConfigError, match="--no-wait: only with --batch"):
        synth.generate(input=prompts(tmp_path, 2), teacher="openai:gpt-test",
                       out=tmp_path / "out", wait=False)


def test_the_ledger_records_every_batch_with_its_request_hashes(tmp_path, server):
    res = gen(server, "openai", prompts(tmp_path, 3), tmp_path / "out", batch=True)
    with sqlite3.connect(tmp_path / "out" / "cache.sqlite") as db:
        (key, state, bid, fid, n), = db.execute(
            "SELECT key, state, batch_id, file_id, n FROM batches").fetchall()
        hashes = [h for (h,) in db.execute(
            "SELECT hash FROM batch_items WHERE key = ? ORDER BY pos", (key,))]
    assert (state, n) == ("collected", 3) and bid in server.batches.batches
    assert hashes == [r["request_hash"] for r in rows(res)]
    assert server.batches.files[fid]["filename"] == f"synth-{key}.jsonl"
    assert server.batches.batches[bid]["metadata"] == {"synth_batch": key}
    t = pq.read_table(tmp_path / "out" / "traces.parquet")
    assert set(t.column("batch_id").to_pylist()) == {bid}


def test_a_pipeline_stage_with_batch_true_runs_batched_and_the_report_shows_the_saving(
        tmp_path, server, batch_prices):
    from synth.pipeline import load_pipeline
    from tests.test_pipeline import pipeline_file, run

    stages = """\
  - name: answers
    recipe: responses
    input: prompts.jsonl
    batch: true
    poll_interval: 0.01
"""
    p = pipeline_file(tmp_path, server, stages=stages, price=batch_prices)
    res = run(p, tmp_path / "run")
    assert server.batches.created == 1 and server.batches.billed == 6
    stage = json.loads((tmp_path / "run" / "generate" / "answers" / "stage.json").read_text())
    t = stage["teachers"]["openai:gpt-test"]
    assert t["batch_rows"] == 6 and t["sync_usd"] == 0
    assert t["batch_usd"] == pytest.approx(t["batch_at_sync_price_usd"] * 0.5)
    html = (tmp_path / "run" / "report.html").read_text()
    assert "batch-table" in html and "rows from batches" in html
    assert res is not None
    bad = p.read_text().replace("    batch: true\n", "    batch: true\n    wait: false\n")
    p.write_text(bad)
    with pytest.raises((ConfigError, InputError), match=r"generate\[0\]\.wait.*waits for"):
        load_pipeline(p)


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_requests_are_split_within_the_providers_limits(tmp_path, server, provider,
                                                        monkeypatch):
    from synth.teachers import anthropic_batch, openai_batch
    from synth.teachers.batches import BatchLimits

    wire = {"openai": openai_batch.OpenAIBatchWire,
            "anthropic": anthropic_batch.AnthropicBatchWire}[provider]
    monkeypatch.setattr(wire, "limits", BatchLimits(max_requests=4, max_bytes=10**6))
    res = gen(server, provider, prompts(tmp_path, 10), tmp_path / "a", batch=True)
    assert [r["status"] for r in rows(res)] == ["ok"] * 10
    st = store(server, provider)
    assert st.created == 3 and st.billed == 10  # 4 + 4 + 2
    # by bytes: an item is 200-250 bytes here; room for two beside the 1 KiB envelope
    server.reset()
    monkeypatch.setattr(wire, "limits", BatchLimits(max_requests=1000, max_bytes=1024 + 500))
    res = gen(server, provider, prompts(tmp_path, 10), tmp_path / "b", batch=True)
    assert [r["status"] for r in rows(res)] == ["ok"] * 10
    assert st.created == 5 and st.billed == 10
    monkeypatch.setattr(wire, "limits", BatchLimits(max_requests=1000, max_bytes=1100))
    with pytest.raises(BatchError, match="over the 1,100-byte batch limit"):
        gen(server, provider, prompts(tmp_path, 3), tmp_path / "c", batch=True)


def test_the_progress_table_shows_each_batch_and_the_cost(tmp_path, server, batch_prices):
    src = prompts(tmp_path, 3)
    p = subprocess.run([sys.executable, "-m", "synth", "generate", str(src), "-o",
                        str(tmp_path / "out"), "-t", "openai:gpt-test", "--base-url",
                        f"{server.url}/v1", "--batch", "--poll-interval", "0.01",
                        "--progress", "--intent", "research", "--accept-terms", "unknown",
                        "--price-file", str(batch_prices)],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    (bid,) = server.batches.batches
    assert bid in p.stderr and "completed" in p.stderr and "cost so far $0.000" in p.stderr
    assert "3 rows (3 ok, 0 error)" in p.stderr


def test_without_a_terminal_each_batch_change_is_one_plain_line(tmp_path, server):
    p = subprocess.run([sys.executable, "-m", "synth", "generate", str(prompts(tmp_path, 3)),
                        "-o", str(tmp_path / "out"), "-t", "openai:gpt-test", "--base-url",
                        f"{server.url}/v1", "--batch", "--poll-interval", "0.01",
                        "--intent", "research", "--accept-terms", "unknown"],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    (bid,) = server.batches.batches
    lines = [x for x in p.stderr.splitlines() if x.startswith(f"synth: batch {bid}: ")]
    assert [x.split(": ")[2].split(" ")[0] for x in lines] == [
        "validating", "in_progress", "finalizing", "completed"]
