"""Edge cases of ``synth generate --batch`` found by an adversarial review: odd
provider answers, crash recovery that guesses, other teachers' batches in the same directory,
``--no-wait``, synchronous runs beside open batches, ``synth batch cancel``/``status``, the
``--max-cost`` reservation and cut downloads. Each test pays every prompt once: the server
bills as many items as prompts, and no request sits in two batches unless the first failed it."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import orjson
import pytest

import synth
from synth.errors import BatchError, ConfigError
from synth.generate.batch import batch_cancel, batch_status
from tests.conftest import ROOT

LICENCE = dict(intent="research", accept_terms=("unknown", "anthropic-api"))
TEACHERS = {"openai": ("openai:gpt-test", "/v1", "batches"),
            "anthropic": ("anthropic:claude-test", "", "message_batches")}
CREATE = {"openai": "/v1/batches", "anthropic": "/v1/messages/batches"}


def prompts(tmp_path, n, tag="question", mark=lambda i: ""):
    p = tmp_path / f"{tag}-{n}.jsonl"
    p.write_text("".join(json.dumps({"id": f"p{i}", "prompt": f"{tag} number {i}{mark(i)}"})
                         + "\n" for i in range(n)))
    return p


def gen(server, provider, src, out, model=None, **kw):
    teacher, base, _ = TEACHERS[provider]
    kw.setdefault("poll_interval", 0.01)
    kw.setdefault("retry_initial_delay", 0.01)
    return synth.generate(input=src, out=out, teacher=f"{teacher}{model or ''}",
                          base_url=server.url + base, progress=False, **LICENCE, **kw)


def store(server, provider):
    return getattr(server, TEACHERS[provider][2])


def rows(result):
    return result.table().to_pylist()


def ledger(out):
    with sqlite3.connect(out / "cache.sqlite") as db:
        return [dict(zip(("provider", "state", "batch_id", "detail", "status"), r)) for r in
                db.execute("SELECT provider, state, batch_id, detail, status FROM batches "
                           "ORDER BY created_at")]


def batch_inputs(server, provider):
    """Each batch the server holds → the custom_ids (request hashes) it was sent."""
    st = store(server, provider)
    if provider == "openai":
        return {bid: [orjson.loads(x)["custom_id"] for x in
                      st.content[b["input_file_id"]].splitlines() if x.strip()]
                for bid, b in st.batches.items()}
    return {bid: [it["custom_id"] for it in items] for bid, items in st.items.items()}


def in_two_batches(server, provider):
    seen: dict[str, int] = {}
    for hashes in batch_inputs(server, provider).values():
        for h in hashes:
            seen[h] = seen.get(h, 0) + 1
    return {h for h, n in seen.items() if n > 1}


def finish_all(server, provider):
    """The provider runs every batch to its end (the client no longer looks)."""
    st = store(server, provider)
    for b in list(st.batches.values()):
        for _ in range(4):
            st._advance(b)


def killed_after_create(server, provider, src, out):
    """``synth generate --batch`` in a subprocess, SIGKILLed once its create reached the
    provider (before the answer left)."""
    teacher, base, _ = TEACHERS[provider]
    cmd = [sys.executable, "-m", "synth", "generate", str(src), "-o", str(out), "--batch",
           "--poll-interval", "0.01", "--intent", "research", "--accept-terms", "unknown",
           "--accept-terms", "anthropic-api", "--no-progress", "-t", teacher, "--base-url",
           server.url + base]
    proc = {}

    def hook(method, route):
        if "p" in proc and (method, route) == ("POST", CREATE[provider]):
            p = proc.pop("p")
            os.kill(p.pid, signal.SIGKILL)
            p.wait(30)

    server.batch_hook = hook
    p = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    proc["p"] = p
    p.wait(120)
    server.batch_hook = None
    assert p.returncode == -signal.SIGKILL, p.stderr.read()


# -------------------------------------------------------------- odd answers to a poll
def test_an_unknown_or_missing_poll_status_is_still_running_not_a_refusal(
        tmp_path, server, monkeypatch, caplog):
    st = server.batches
    orig = st.handle
    odd = [lambda b: {**b, "status": "queued_at_gateway"},  # a word the client does not know
           lambda b: {k: v for k, v in b.items() if k != "status"}]  # a 200 without status

    def handle(method, path, query, headers, raw):
        code, obj = orig(method, path, query, headers, raw)
        if method == "GET" and path.startswith("/v1/batches/") and odd:
            obj = odd.pop(0)(obj)
        return code, obj

    monkeypatch.setattr(st, "handle", handle)
    with caplog.at_level("WARNING", logger="synth"):
        res = gen(server, "openai", prompts(tmp_path, 8), tmp_path / "out", batch=True)
    assert odd == []
    assert [r["status"] for r in rows(res)] == ["ok"] * 8
    assert "unknown status 'queued_at_gateway'" in caplog.text
    assert res.summary["retries"].get("malformed", 0) >= 1
    assert [b["state"] for b in ledger(tmp_path / "out")] == ["collected"]
    assert st.created == 1 and st.billed == 8 and not in_two_batches(server, "openai")


# ---------------------------------------- crash recovery from the listing (Anthropic)
def test_crash_recovery_adopts_its_own_batch_not_an_earlier_one_of_the_same_size(
        tmp_path, server):
    n, st = 16, server.message_batches
    src = prompts(tmp_path, n)
    # run A: the same prompts for another model, in its own directory, still running
    gen(server, "anthropic", src, tmp_path / "A", model="-other", batch=True, wait=False)
    (x,) = st.batches
    killed_after_create(server, "anthropic", src, tmp_path / "B")
    (y,) = [b for b in st.batches if b != x]
    res = gen(server, "anthropic", src, tmp_path / "B", batch=True)
    assert [r["status"] for r in rows(res)] == ["ok"] * n
    assert res.summary["batch"]["item_failures"] == {}
    assert [b["batch_id"] for b in ledger(tmp_path / "B")] == [y]
    assert st.items[x] and st.batches[x]["processing_status"] == "in_progress"  # untouched
    finish_all(server, "anthropic")
    assert st.created == 2 and st.billed == 2 * n  # A's n and B's n, nothing twice
    assert not in_two_batches(server, "anthropic")


def test_a_guessed_batch_is_never_cancelled_and_is_disowned_when_not_ours(
        tmp_path, server):
    n, st = 6, server.message_batches
    a_src, b_src = prompts(tmp_path, n, "alpha"), prompts(tmp_path, n, "beta")
    gen(server, "anthropic", a_src, tmp_path / "A", batch=True, wait=False)
    (x,) = st.batches
    st.stuck = True  # A's batch keeps running
    server.fail_next("529", 1, retry_after=0)  # B's create is refused: it lists, and guesses
    first = gen(server, "anthropic", b_src, tmp_path / "B", batch=True, wait=False)
    assert first.summary["pending"] is True and st.created == 1
    out = batch_cancel(tmp_path / "B")
    assert st.batches[x]["processing_status"] == "in_progress"  # A's batch is not B's to stop
    assert out["batches"][0]["note"].startswith("not cancelled: adopted from the listing")
    assert [(b["batch_id"], b["detail"]) for b in ledger(tmp_path / "B")] == [(x, "guessed")]
    st.stuck = False
    res = gen(server, "anthropic", b_src, tmp_path / "B", batch=True, max_retries=0)
    got = rows(res)
    assert [r["status"] for r in got] == ["ok"] * n
    assert x not in {r["batch_id"] for r in got}
    states = {b["batch_id"]: b["state"] for b in ledger(tmp_path / "B")}
    assert states.pop(x) == "foreign" and list(states.values()) == ["collected"]
    assert [r["status"] for r in rows(gen(server, "anthropic", a_src, tmp_path / "A",
                                          batch=True))] == ["ok"] * n  # A still collects
    assert st.created == 2 and st.billed == 2 * n
    assert not in_two_batches(server, "anthropic")


# --------------------------------------------- a failed create, then a failed listing
@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_a_refused_listing_after_a_failed_create_leaves_the_batch_open(
        tmp_path, server, provider):
    once = []

    def hook(method, route):
        if (method, route) == ("POST", CREATE[provider]) and not once:
            once.append(1)
            server.fail_next("404", 1)  # the listing that looks for it is refused
            raise RuntimeError("500 although the provider made the batch")

    server.batch_hook = hook
    src, out = prompts(tmp_path, 8), tmp_path / "out"
    with pytest.raises(BatchError, match="run the same command again") as e:
        gen(server, provider, src, out, batch=True)
    assert e.value.exit_code == 10
    assert [b["state"] for b in ledger(out)] in (["planned"], ["uploaded"])
    server.batch_hook = None
    res = gen(server, provider, src, out, batch=True)
    assert [r["status"] for r in rows(res)] == ["ok"] * 8
    finish_all(server, provider)
    st = store(server, provider)
    assert st.created == 1 and st.billed == 8 and not in_two_batches(server, provider)


def test_a_4xx_to_a_later_create_leaves_the_batch_open_but_to_the_first_closes_it(
        tmp_path, server):
    server.fail_next("529", 1, retry_after=0)  # the first create makes nothing
    server.batch_hook = lambda m, r: server.fail_next("400", 1) if (m, r) == (
        "GET", "/v1/messages/batches") else None  # the second create, after the listing
    src, out = prompts(tmp_path, 4), tmp_path / "out"
    with pytest.raises(BatchError, match="run the same command again"):
        gen(server, "anthropic", src, out, batch=True)
    assert [b["state"] for b in ledger(out)] == ["planned"]
    # the rerun finds nothing in the listing; its create, a first one, is refused: closed
    with pytest.raises(BatchError, match="refused the batch"):
        gen(server, "anthropic", src, out, batch=True)
    assert [b["state"] for b in ledger(out)] == ["failed"]
    server.batch_hook = None
    res = gen(server, "anthropic", src, out, batch=True)
    assert [r["status"] for r in rows(res)] == ["ok"] * 4 and server.message_batches.created == 1


# ----------------------------------------------------------------- --no-wait collects
def test_no_wait_rerun_collects_the_batches_that_ended(tmp_path, server):
    src, out = prompts(tmp_path, 4), tmp_path / "out"
    first = gen(server, "openai", src, out, batch=True, wait=False)
    assert first.summary["pending"] is True and not (out / "traces.parquet").exists()
    (b,) = server.batches.batches.values()
    while b["status"] != "completed":  # the provider finishes it meanwhile
        server.batches._advance(b)
    res = gen(server, "openai", src, out, batch=True, wait=False)
    assert res.summary.get("pending") is None and (out / "traces.parquet").exists()
    assert [r["status"] for r in rows(res)] == ["ok"] * 4 and res.summary["sent"] == 0
    assert [b["state"] for b in ledger(out)] == ["collected"]
    assert server.batches.created == 1 and server.batches.billed == 4


# ---------------------------------------------------------- another teacher's batches
def test_another_teachers_open_batch_is_left_alone(tmp_path, server, caplog):
    src, out = prompts(tmp_path, 4), tmp_path / "out"
    gen(server, "openai", src, out, batch=True, wait=False)
    with caplog.at_level("WARNING", logger="synth"):
        res = gen(server, "anthropic", src, out, batch=True)
    assert [r["status"] for r in rows(res)] == ["ok"] * 4
    assert "of another teacher are open" in caplog.text and "openai:gpt-test" in caplog.text
    assert [(b["provider"], b["state"]) for b in ledger(out)] == [
        ("openai", "submitted"), ("anthropic", "collected")]
    again = gen(server, "openai", src, out, batch=True)
    assert [r["status"] for r in rows(again)] == ["ok"] * 4 and again.summary["sent"] == 0
    assert server.batches.created == 1 and server.batches.billed == 4
    assert server.message_batches.created == 1 and server.message_batches.billed == 4


def test_another_teacher_does_not_drop_a_batch_lost_in_a_crash(tmp_path, server):
    src, out = prompts(tmp_path, 6), tmp_path / "out"
    killed_after_create(server, "openai", src, out)
    res = gen(server, "anthropic", src, out, batch=True)
    assert [r["status"] for r in rows(res)] == ["ok"] * 6
    assert [(b["provider"], b["state"]) for b in ledger(out)][0] == ("openai", "uploaded")
    again = gen(server, "openai", src, out, batch=True)
    assert [r["status"] for r in rows(again)] == ["ok"] * 6
    finish_all(server, "openai")
    assert server.batches.created == 1 and server.batches.billed == 6
    assert not in_two_batches(server, "openai")


# ---------------------------------------------- a synchronous run beside open batches
def test_a_sync_run_does_not_send_what_open_batches_hold_and_batches_never_overwrite(
        tmp_path, server, monkeypatch, caplog):
    from synth.generate.ledger import BatchLedger

    src, out = prompts(tmp_path, 5), tmp_path / "out"
    gen(server, "openai", src, out, batch=True, wait=False)
    chat = lambda: sum(r["path"] == "/v1/chat/completions"  # noqa: E731
                       for r in server.requests)
    with caplog.at_level("WARNING", logger="synth"):
        sync = gen(server, "openai", src, out)
    assert [r["status"] for r in rows(sync)] == ["error"] * 5
    assert all(r["error"].startswith("batch_pending") for r in rows(sync))
    assert sync.summary["sent"] == 0 and chat() == 0
    assert "not sent again" in caplog.text
    # an answer stored first (here: a sync run blind to the ledger) is the one that stays
    monkeypatch.setattr(BatchLedger, "open_hashes", staticmethod(lambda cache: set()),
                        raising=False)
    first = gen(server, "openai", src, out)
    assert [r["status"] for r in rows(first)] == ["ok"] * 5 and chat() == 5
    monkeypatch.undo()
    res = gen(server, "openai", src, out, batch=True)
    assert [r["status"] for r in rows(res)] == ["ok"] * 5
    assert [r["batch_id"] for r in rows(res)] == [None] * 5  # the sync answers, kept
    assert [b["state"] for b in ledger(out)] == ["collected"]


# ------------------------------------------------------------------- odd result lines
@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_odd_result_lines_and_non_object_polls_are_failures_not_crashes(
        tmp_path, server, monkeypatch, provider):
    st = store(server, provider)
    orig, spoiled = st.handle, []

    def spoil(obj):  # the first result line's answer becomes a string
        lines = obj.splitlines()
        first = orjson.loads(lines[0])
        first["response" if provider == "openai" else "result"] = "upstream timeout"
        spoiled.append(first["custom_id"])
        return b"\n".join([orjson.dumps(first), *lines[1:]]) + b"\n"

    def handle(method, path, *args):
        code, obj = orig(method, path, *args)
        if isinstance(obj, bytes) and b'"custom_id"' in obj and not spoiled and (
                b"batch_req_" in obj or path.endswith("/results")):
            obj = spoil(obj)
        return code, obj

    def hook(method, route):
        if (method, route) == ("POST", CREATE[provider]) and st.created == 1:
            server.fail_next("malformed", 1, body="[]")  # the first poll: JSON, not an object

    monkeypatch.setattr(st, "handle", handle)
    server.batch_hook = hook
    res = gen(server, provider, prompts(tmp_path, 8), tmp_path / "out", batch=True)
    assert [r["status"] for r in rows(res)] == ["ok"] * 8
    reason = "batch_item_error" if provider == "openai" else "malformed"
    assert res.summary["batch"]["item_failures"] == {reason: 1}
    assert res.summary["retries"].get("malformed", 0) >= 1
    assert st.created == 2 and sorted(map(len, batch_inputs(server, provider).values())) == [1, 8]
    assert in_two_batches(server, provider) == set(spoiled)


# ---------------------------------------------------------------------- run.json sent
def test_sent_counts_unique_requests_this_run_got_into_a_batch(tmp_path, server):
    src, out = prompts(tmp_path, 10), tmp_path / "out"
    # the upload lands, the create meets a 503: the batch is left uploaded, never created
    server.batch_hook = lambda m, r: server.fail_next("503", 1) if (m, r) == (
        "POST", "/v1/files") else None
    with pytest.raises(BatchError):
        gen(server, "openai", src, out, batch=True, max_retries=0)
    server.batch_hook = None
    res = gen(server, "openai", src, out, batch=True)  # recovers it, and creates it
    assert server.batches.created == 1 and [r["status"] for r in rows(res)] == ["ok"] * 10
    assert res.summary["sent"] == 10
    assert json.loads((out / "run.json").read_text())["sent"] == 10
    # one item fails twice inside its batch: three batches, still four requests sent
    res = gen(server, "openai", prompts(tmp_path, 4, "x", lambda i: " [[batch:error*2]]"
                                        if i == 0 else ""), tmp_path / "out2", batch=True)
    assert [r["status"] for r in rows(res)] == ["ok"] * 4
    assert server.batches.created == 4 and res.summary["sent"] == 4


# --------------------------------------------- cancel and status beside a running job
def test_cancel_is_refused_while_a_run_holds_the_directory(tmp_path, server):
    st, out = server.batches, tmp_path / "out"
    st.stuck = True
    got: dict = {}

    def run():
        try:
            got["res"] = gen(server, "openai", prompts(tmp_path, 5), out, batch=True,
                             poll_interval=0.02)
        except BaseException as e:  # noqa: BLE001 - reported below
            got["err"] = e

    t = threading.Thread(target=run)
    t.start()
    try:
        deadline = time.monotonic() + 30
        while not st.batches and time.monotonic() < deadline and t.is_alive():
            time.sleep(0.01)
        (bid,) = st.batches
        with pytest.raises(ConfigError, match="another synth run is using this directory"):
            batch_cancel(out)
        assert st.batches[bid]["status"] not in ("cancelling", "cancelled")
        assert batch_status(out)["batches"][0]["batch_id"] == bid  # status is not refused
    finally:
        st.stuck = False
        t.join(60)
    assert "err" not in got, got.get("err")
    assert [r["status"] for r in rows(got["res"])] == ["ok"] * 5
    assert got["res"].summary["batch"]["item_failures"] == {}
    assert st.created == 1 and st.billed == 5


def test_batch_status_reports_the_provider_and_writes_nothing(tmp_path, server):
    out = tmp_path / "out"
    gen(server, "openai", prompts(tmp_path, 3), out, batch=True, wait=False)
    before = ledger(out)
    seen = [batch_status(out)["batches"][0]["status"] for _ in range(2)]
    assert seen[-1] != before[0]["status"]  # the provider moved on, and status says so
    assert ledger(out) == before


# --------------------------------------------------------- --max-cost across a resume
def test_batches_in_flight_are_costed_at_todays_price_on_resume(tmp_path, server):
    pf = tmp_path / "p.yaml"
    pf.write_text("models:\n  - {provider: openai, match: gpt-test, input: 1.0, output: 2.0, "
                  "batch: 0.5}\n")
    out, src = tmp_path / "out", prompts(tmp_path, 10)
    # the worst case of one request at the batch price, as a priced run reserves it
    gen(server, "openai", src, tmp_path / "ref", batch=True, wait=False, max_tokens=100,
        price_file=pf)
    with sqlite3.connect(tmp_path / "ref" / "cache.sqlite") as db:
        (one,) = db.execute("SELECT reserved / n FROM batches").fetchone()
    assert one > 0
    gen(server, "openai", src, out, batch=True, wait=False, max_tokens=100)  # unpriced
    server.batches.stuck = True  # its 10 requests stay in flight
    res = gen(server, "openai", prompts(tmp_path, 20), out, batch=True, wait=False,
              max_tokens=100, price_file=pf, max_cost=one * 12.5)
    assert res.summary["sent"] == 2 and res.summary["stopped_by_max_cost"] is True
    assert sorted(map(len, batch_inputs(server, "openai").values())) == [2, 10, 10]


# --------------------------------------------------------------------- a cut download
@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_a_results_download_cut_short_is_downloaded_again(tmp_path, server, monkeypatch,
                                                              provider):
    st = store(server, provider)
    if provider == "anthropic":
        st.truncate_output = True  # the next results body loses the end of its last line
    else:  # the stored file is whole; one download of it is cut
        orig, cut = st.handle, []

        def handle(method, path, *args):
            code, obj = orig(method, path, *args)
            if isinstance(obj, bytes) and b"batch_req_" in obj and not cut:
                cut.append(path)
                obj = obj[:-9]
            return code, obj

        monkeypatch.setattr(st, "handle", handle)
    res = gen(server, provider, prompts(tmp_path, 8), tmp_path / "out", batch=True)
    assert [r["status"] for r in rows(res)] == ["ok"] * 8
    assert res.summary["batch"]["item_failures"] == {}
    assert st.created == 1 and st.billed == 8
    downloads = [r for r in server.requests if r["path"].endswith(("/content", "/results"))]
    assert len(downloads) == 2
