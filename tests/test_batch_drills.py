"""Crash and fault drills for ``synth generate --batch``: the process is SIGKILLed at each
point between its calls to the batch routes (after the upload, after the create, mid-poll,
mid-download) and run again; control calls meet 429s, 5xx and a create that succeeded but
answered 500. Every prompt must be answered exactly once: the server bills as many items as
there are prompts, and no request sits in two batches unless the first failed it."""

import json
import os
import re
import signal
import subprocess
import sys

import orjson
import pyarrow.parquet as pq
import pytest

import synth
from tests.conftest import ROOT

N = 16
POLL = re.compile(r".*/batches/[^/]+")  # GET of one batch
PROVIDERS = {
    "openai": (["-t", "openai:gpt-test", "--base-url", "{url}/v1"], "batches"),
    "anthropic": (["-t", "anthropic:claude-test", "--base-url", "{url}",
                   "--accept-terms", "anthropic-api"], "message_batches"),
}
#: (method, route) → whether this call is the one to die after
POINTS = {
    "after-upload": lambda m, r, n: m == "POST" and r == "/v1/files",
    "after-create": lambda m, r, n: m == "POST" and r in ("/v1/batches",
                                                          "/v1/messages/batches"),
    "mid-poll": lambda m, r, n: m == "GET" and POLL.fullmatch(r) is not None and n >= 2,
    "mid-download": lambda m, r, n: m == "GET" and (r.endswith("/content")
                                                    or r.endswith("/results")),
}
ARGS = {"openai": lambda s: dict(teacher="openai:gpt-test", base_url=s.url + "/v1"),
        "anthropic": lambda s: dict(teacher="anthropic:claude-test", base_url=s.url)}
DRILLS = [(p, k) for p in PROVIDERS for k in POINTS
          if not (p == "anthropic" and k == "after-upload")]  # Message Batches upload nothing


def write_prompts(tmp_path):
    src = tmp_path / "in.jsonl"
    # two items fail once inside their batch: the drill also covers a resubmission
    src.write_text("".join(json.dumps({"id": f"p{i}", "prompt": f"drill question {i}" + (
        " [[batch:error*1]]" if i in (3, 11) else "")}) + "\n" for i in range(N)))
    return src


def command(provider, server, src, out):
    args, _ = PROVIDERS[provider]
    return [sys.executable, "-m", "synth", "generate", str(src), "-o", str(out), "--batch",
            "--poll-interval", "0.01", "--intent", "research", "--accept-terms", "unknown",
            "--no-progress", *[a.format(url=server.url) for a in args]]


def batch_inputs(server, provider):
    """custom_ids of every batch the server created, per batch."""
    store = getattr(server, PROVIDERS[provider][1])
    if provider == "openai":
        out = []
        for b in store.batches.values():
            data = store.content[b["input_file_id"]]
            out.append([orjson.loads(x)["custom_id"] for x in data.splitlines() if x.strip()])
        return out
    return [[it["custom_id"] for it in items] for items in store.items.values()]


@pytest.mark.parametrize("provider,point", DRILLS)
def test_sigkill_at_each_point_then_rerun_answers_every_prompt_once(tmp_path, server,
                                                                    provider, point):
    src, out = write_prompts(tmp_path), tmp_path / "out"
    proc = {}
    calls = {"n": 0}

    def hook(method, route):
        if "p" not in proc:
            return
        if method == "GET" and "batches/" in route:
            calls["n"] += 1
        if POINTS[point](method, route, calls["n"]):
            p = proc.pop("p")
            os.kill(p.pid, signal.SIGKILL)  # before this call's answer leaves the server
            p.wait(30)

    server.batch_hook = hook
    p = subprocess.Popen(command(provider, server, src, out), cwd=ROOT,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    proc["p"] = p
    p.wait(120)
    assert p.returncode == -signal.SIGKILL, f"not killed at {point}: {p.stderr.read()!r}"
    server.batch_hook = None
    again = subprocess.run(command(provider, server, src, out), cwd=ROOT, capture_output=True,
                           text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    rows = pq.read_table(out / "traces.parquet").to_pylist()
    assert [r["status"] for r in rows] == ["ok"] * N
    store = getattr(server, PROVIDERS[provider][1])
    assert store.billed == N  # every prompt paid for once
    inputs = batch_inputs(server, provider)
    seen = [h for batch in inputs for h in batch]
    by_hash = {r["request_hash"]: r for r in rows}
    assert set(seen) == set(by_hash)
    retried = {r["request_hash"] for r in rows if "[[batch:error*1]]" in
               r["messages"][-1]["content"]}
    for h in by_hash:  # in one batch, or two when the first failed it
        assert seen.count(h) == (2 if h in retried else 1)
    if provider == "openai":
        assert len(store.files) - sum(f["purpose"] == "batch_output" for f in
                                      store.files.values()) == len(inputs)  # no re-upload


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_faults_on_every_control_call_are_retried(tmp_path, server, provider):
    """429 and 503s on the upload and the create, a dropped connection and a 502 while
    polling, a 503 on the download: the run rides them out and pays once."""
    is_create = lambda m, r: m == "POST" and r.endswith("batches")  # noqa: E731
    is_poll = lambda m, r: m == "GET" and POLL.fullmatch(r) is not None  # noqa: E731
    # after the call the predicate matches, the next request meets the fault
    plan = [(lambda m, r: m == "POST" and r == "/v1/files", "503", 2),
            (is_create, "drop", 1), (is_poll, "502", 1), (is_poll, "503", 1)]

    def hook(method, route):
        if plan and plan[0][0](method, route):
            _, kind, n = plan.pop(0)
            server.fail_next(kind, n, retry_after=0)

    if provider == "anthropic":
        plan.pop(0)
    server.batch_hook = hook
    server.fail_next("429" if provider == "openai" else "503", 2, retry_after=0)
    res = synth.generate(input=write_prompts(tmp_path), out=tmp_path / "out", batch=True,
                         poll_interval=0.01, retry_initial_delay=0.01, progress=False,
                         intent="research", accept_terms=("unknown", "anthropic-api"),
                         **ARGS[provider](server))
    assert [r["status"] for r in res.table().to_pylist()] == ["ok"] * N
    assert plan == []
    store = getattr(server, PROVIDERS[provider][1])
    assert store.billed == N and store.created == 2  # the first batch, and the retry batch
    # (a dropped connection on a GET may be retried inside aiohttp itself, unseen)
    assert sum(res.summary["retries"].values()) >= 4, res.summary["retries"]


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_a_create_that_succeeded_but_answered_500_is_not_sent_twice(tmp_path, server,
                                                                    provider):
    once = {"done": False}

    def hook(method, route):
        if method == "POST" and route.endswith("batches") and not once["done"]:
            once["done"] = True
            raise RuntimeError("the gateway fell over after the provider made the batch")

    server.batch_hook = hook
    res = synth.generate(input=write_prompts(tmp_path), out=tmp_path / "out", batch=True,
                         poll_interval=0.01, retry_initial_delay=0.01, progress=False,
                         intent="research", accept_terms=("unknown", "anthropic-api"),
                         **ARGS[provider](server))
    assert [r["status"] for r in res.table().to_pylist()] == ["ok"] * N
    store = getattr(server, PROVIDERS[provider][1])
    assert store.created == 2 and store.billed == N  # the batch, then its two retried items
    assert [len(b) for b in batch_inputs(server, provider)] in ([N, 2], [2, N])
