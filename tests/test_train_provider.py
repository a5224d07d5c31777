"""``synth train --backend openai``: curated rows → a fine-tuning job on the loopback
server's OpenAI fine-tuning routes (tests/finetune_routes.py), through real HTTP: upload,
create, poll with events, train.json and the card; a failed job; faults on every call; a
create whose answer is lost; a SIGKILL while the job runs and a rerun that attaches to the
same job; the licence check before anything is sent; the key never on disk."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys

import pytest

import synth
from synth.errors import ConfigError, FineTuneError, LicenceDeniedError
from tests.conftest import ROOT
from tests.test_export import many, write_run

KEY = "sk-test-provider-secret-123"


def _train(server, data, out, **kw):
    kw.setdefault("intent", "internal")
    return synth.train(data=data, student="gpt-4.1-nano-2025-04-14", out=out,
                       backend="openai", base_url=f"{server.url}/v1", poll_interval=0.01,
                       **kw)


@pytest.fixture
def rows(tmp_path):
    return write_run(tmp_path / "run", many(12))


def test_job_runs_and_its_model_is_recorded(server, rows, tmp_path, capsys):
    r = _train(server, rows, tmp_path / "o", epochs=2, suffix="qa", lr_multiplier=0.5)
    s = r.summary
    ft = server.fine_tuning
    assert ft.created == 1 and s["status"] == "succeeded"
    job = ft.jobs[s["job_id"]]
    assert s["fine_tuned_model"] == job["fine_tuned_model"]
    assert s["fine_tuned_model"].startswith("ft:gpt-4.1-nano-2025-04-14:synth-test:qa:")
    assert s["teacher_spec"] == "openai:" + s["fine_tuned_model"]
    assert job["hyperparameters"]["n_epochs"] == 2
    assert job["hyperparameters"]["learning_rate_multiplier"] == 0.5
    assert "batch_size" not in job["method"]["supervised"]["hyperparameters"] or \
        job["hyperparameters"]["batch_size"] == "auto"  # left to the provider
    # the uploaded file is the export, named with the run's key
    f = server.batches.files[job["training_file"]]
    assert f["purpose"] == "fine-tune" and re.fullmatch(r"synth-ft-\w+-train-[0-9a-f]{12}\.jsonl",
                                                        f["filename"])
    sent = server.batches.content[f["id"]]
    assert sent == (tmp_path / "o" / "data" / "train.jsonl").read_bytes()
    assert len(sent.splitlines()) == 24
    # trained tokens and their price (prices.yaml: gpt-4.1-nano at $1.50 / 1M; the loopback
    # host is not api.openai.com, so no price applies: unknown, never a guess)
    assert s["trained_tokens"] == job["trained_tokens"] > 0 and s["cost_usd"] is None
    saved = json.loads((tmp_path / "o" / "train.json").read_text())
    assert saved["job_id"] == s["job_id"] and saved["backend"] == "openai"
    assert saved["licence"]["decision"] == "allow"
    card = (tmp_path / "o" / "README.md").read_text()
    assert s["fine_tuned_model"] in card and s["job_id"] in card
    # the job's events, oldest first, each once
    err = capsys.readouterr().err
    assert err.index("Created fine-tuning job") < err.index("Step 1/3") < \
        err.index("Step 3/3") < err.index("successfully completed")
    assert err.count("Step 2/3") == 1


def test_training_price_applies_on_openai_host(server, rows, tmp_path, monkeypatch):
    """The price entry names api.openai.com: a --price-file entry for the host used here
    prices the same tokens (cost = tokens x rate)."""
    from synth.train import provider

    class _P:
        training = 1.5

    monkeypatch.setattr("synth.teachers.pricing.PriceTable.lookup",
                        lambda self, p, m, h=None: _P())
    s = _train(server, rows, tmp_path / "o").summary
    assert s["cost_usd"] == pytest.approx(s["trained_tokens"] * 1.5 / 1e6)
    assert provider.STATE_FILE == "finetune.json"


def test_eval_split_sends_a_validation_file(server, rows, tmp_path):
    s = _train(server, rows, tmp_path / "o", eval_split=0.25).summary
    job = server.fine_tuning.jobs[s["job_id"]]
    assert job["validation_file"] == s["files"]["test"]
    assert (tmp_path / "o" / "data" / "test.jsonl").is_file()


def test_a_job_that_fails_validation_is_an_error_naming_the_job(server, tmp_path):
    data = write_run(tmp_path / "run", many(12, response="bad [[ft:invalid]]"))
    with pytest.raises(FineTuneError, match=r"fine-tuning job ftjob-\w+ failed: Invalid "
                       r"file format\. Line 1: example rejected\. \(invalid_training_file\)"):
        _train(server, data, tmp_path / "o")
    state = json.loads((tmp_path / "o" / "finetune.json").read_text())
    assert state["status"] == "failed" and not (tmp_path / "o" / "train.json").exists()
    # a rerun reports the same job's failure; it never makes a second job
    with pytest.raises(FineTuneError, match=state["job"]):
        _train(server, data, tmp_path / "o")
    assert server.fine_tuning.created == 1


def test_faults_on_every_call_are_retried(server, rows, tmp_path):
    for kind in ("429", "500", "drop"):
        server.fail_next(kind, 1)
    s = _train(server, rows, tmp_path / "o", epochs=1).summary
    assert s["status"] == "succeeded" and server.fine_tuning.created == 1


def test_a_create_that_succeeded_but_answered_500_is_not_sent_twice(server, rows, tmp_path):
    answered = {"n": 0}

    def hook(method, route):
        if method == "POST" and route == "/v1/fine_tuning/jobs" and not answered["n"]:
            answered["n"] += 1
            raise RuntimeError("the job exists; its answer is lost")  # the server says 500

    server.batch_hook = hook
    s = _train(server, rows, tmp_path / "o").summary
    assert server.fine_tuning.created == 1 and s["status"] == "succeeded"


def test_sigkill_while_the_job_runs_then_rerun_attaches(server, rows, tmp_path,
                                                        monkeypatch):
    out = tmp_path / "o"
    cmd = [sys.executable, "-m", "synth", "train", "-d", str(rows), "-s",
           "gpt-4.1-nano-2025-04-14", "-o", str(out), "--backend", "openai", "--intent",
           "internal", "--base-url", f"{server.url}/v1", "--poll-interval", "0.01",
           "--api-key-env", "SYNTH_TEST_KEY"]
    env = {**os.environ, "SYNTH_TEST_KEY": KEY}
    monkeypatch.setattr(server, "require_key", KEY)
    proc = {}
    reads = {"n": 0}

    def hook(method, route):
        if method == "GET" and re.fullmatch(r"/v1/fine_tuning/jobs/[^/]+", route):
            reads["n"] += 1
            if reads["n"] == 3 and "p" in proc:  # running: kill the client mid-poll
                os.kill(proc["p"].pid, signal.SIGKILL)

    server.batch_hook = hook
    proc["p"] = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
    proc["p"].communicate(timeout=120)
    assert proc["p"].returncode == -signal.SIGKILL
    state = json.loads((out / "finetune.json").read_text())
    assert state["job"] and server.fine_tuning.created == 1
    server.batch_hook = None
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "attaching to this folder's fine-tuning run" in p.stderr
    assert server.fine_tuning.created == 1  # the same job, never a second
    assert len(server.batches.files) == 2  # one upload (and the job's result file)
    s = json.loads((out / "train.json").read_text())
    assert s["job_id"] == state["job"] and s["status"] == "succeeded"
    for f in out.rglob("*"):  # the key never reaches a file
        if f.is_file():
            assert KEY.encode() not in f.read_bytes(), f


def test_rows_from_anthropic_are_refused_before_anything_is_sent(server, tmp_path):
    data = write_run(tmp_path / "run", many(12, provider="anthropic", model="claude-test",
                                            base_url="https://api.anthropic.com"))
    with pytest.raises(LicenceDeniedError, match="may not fine-tune a model on OpenAI"):
        _train(server, data, tmp_path / "o")
    assert not server.batches.files and not server.fine_tuning.jobs
    assert not (tmp_path / "o").exists()


def test_openai_rows_pass_even_for_a_competing_intent(server, rows, tmp_path):
    s = _train(server, rows, tmp_path / "o", intent="competing").summary
    assert s["licence"]["decision"] == "allow"
    assert any("OpenAI's own fine-tuning" in r for r in s["licence"]["reasons"])


def test_options_that_train_here_are_refused_with_the_backend(tmp_path):
    with pytest.raises(ConfigError, match="--loss train here"):
        synth.train(data=tmp_path, student="gpt-4.1-nano", out=tmp_path / "o",
                    backend="openai", intent="internal", loss="kl")
    with pytest.raises(ConfigError, match="--backend openai needs --intent"):
        synth.train(data=tmp_path, student="gpt-4.1-nano", out=tmp_path / "o",
                    backend="openai")
    with pytest.raises(ConfigError, match="--suffix: only with --backend openai"):
        synth.train(data=tmp_path, student="s", out=tmp_path / "o", suffix="x")


def test_a_folder_with_another_students_job_is_refused(server, rows, tmp_path):
    _train(server, rows, tmp_path / "o")
    with pytest.raises(ConfigError, match="made with student 'gpt-4.1-nano-2025-04-14'"):
        synth.train(data=rows, student="gpt-4.1-mini-2025-04-14", out=tmp_path / "o",
                    backend="openai", intent="internal", base_url=f"{server.url}/v1")


def test_the_loopback_routes_read_as_the_official_sdk_expects(server):
    """The server's fine-tuning routes, driven by OpenAI's own SDK: its types parse every
    answer (so the routes follow the API reference the client was written from)."""
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="sk-x", max_retries=0)
    lines = b"".join(json.dumps({"messages": [
        {"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "a"}]}).encode()
        + b"\n" for i in range(10))
    f = client.files.create(file=("train.jsonl", lines), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(model="gpt-4.1-nano-2025-04-14", training_file=f.id,
                                         suffix="sdk", metadata={"synth_run": "k1"})
    assert job.status == "validating_files" and job.metadata == {"synth_run": "k1"}
    for _ in range(6):
        job = client.fine_tuning.jobs.retrieve(job.id)
    assert job.status == "succeeded" and job.fine_tuned_model.startswith("ft:")
    assert job.trained_tokens and job.trained_tokens > 0
    events = list(client.fine_tuning.jobs.list_events(job.id, limit=2))
    assert [e.message for e in events][:1] == ["The job has successfully completed"]
    listed = client.fine_tuning.jobs.list(metadata={"synth_run": "k1"})
    assert [j.id for j in listed.data] == [job.id]
    assert not client.fine_tuning.jobs.list(metadata={"synth_run": "other"}).data
    with pytest.raises(openai.BadRequestError):
        client.fine_tuning.jobs.create(model="not-tunable", training_file=f.id)


def test_no_wait_creates_the_job_and_a_later_run_finishes_it(server, rows, tmp_path):
    """--no-wait: upload, create, one look, exit 0 with no train.json; the same command
    again looks once more (still running: still no train.json); once the job has ended it
    writes train.json and the card. One upload, one job throughout."""
    out = tmp_path / "o"
    server.fine_tuning.steps = 4
    cmd = [sys.executable, "-m", "synth", "train", "-d", str(rows), "-s",
           "gpt-4.1-nano-2025-04-14", "-o", str(out), "--backend", "openai", "--intent",
           "internal", "--base-url", f"{server.url}/v1", "--poll-interval", "0.01",
           "--no-wait"]
    env = {**os.environ, "OPENAI_API_KEY": KEY}
    first = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                           timeout=120)
    assert first.returncode == 0, first.stderr
    state = json.loads((out / "finetune.json").read_text())
    assert state["job"] and "the same command attaches" in first.stderr
    assert state["job"] in first.stderr and not (out / "train.json").exists()
    runs, err = 1, first.stderr
    while not (out / "train.json").exists():
        p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                           timeout=120)
        assert p.returncode == 0, p.stderr
        runs, err = runs + 1, err + p.stderr
        assert runs < 12, "the job never finished"
    assert runs > 2  # it took several looks: each run looked once and left
    s = json.loads((out / "train.json").read_text())
    assert s["job_id"] == state["job"] and s["status"] == "succeeded"
    assert server.fine_tuning.created == 1 and len(server.batches.files) == 2
    # the job's events across all the runs: each printed once, in order
    steps = re.findall(r"Step (\d)/4", err)
    assert steps == ["1", "2", "3", "4"], err


def test_no_wait_is_for_a_provider_job(tmp_path):
    with pytest.raises(ConfigError, match="--wait"):
        synth.train(data=tmp_path, student="s", out=tmp_path / "o", wait=False)
