"""The command line as a user meets it: real processes, real sockets, real signals."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pyarrow.parquet as pq
import pytest

from tests.conftest import ROOT

# The loopback models are in no licence registry: accept their unknown terms explicitly.
LICENCE = ["--intent", "research", "--accept-terms", "unknown"]
CONTENT = ["id", "prompt_id", "sample_index", "messages", "response", "reasoning", "status",
           "error", "finish_reason", "model_version", "request_hash", "input_tokens",
           "output_tokens", "cost_usd", "params"]


def synth(*args, env=None, timeout=120):
    e = {**os.environ, **(env or {})}
    e.pop("OPENAI_API_KEY", None) if env is None or "OPENAI_API_KEY" not in env else None
    return subprocess.run([sys.executable, "-m", "synth", *map(str, args)], cwd=ROOT, env=e,
                          capture_output=True, text=True, timeout=timeout)


def one_line_error(proc):
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


@pytest.mark.parametrize("content, code, needle", [
    (b'{"id": 1, "prompt": "a"}\n{"id": 2, "prompt": \n', 3, "in.jsonl:2: not valid JSON"),
    (b'{"id": 1, "messages": [{"role": "user"}]}\n', 3, "in.jsonl:1: field 'messages[0].content'"),
    (b'{"id": 1, "prompt": "\xff"}\n', 3, "in.jsonl:1: not valid UTF-8"),
    (b"", 3, "in.jsonl: file is empty"),
])
def test_bad_input_one_line_no_output(tmp_path, server, content, code, needle):
    src = tmp_path / "in.jsonl"
    src.write_bytes(content)
    out = tmp_path / "out"
    p = synth("generate", src, "--teacher", "openai:gpt-test", "--out", out,
              "--base-url", f"{server.url}/v1", *LICENCE)
    assert p.returncode == code
    assert needle in one_line_error(p)
    assert not out.exists() and server.n_requests == 0


@pytest.mark.parametrize("args, code, needle", [
    (["--teacher", "opneai:gpt-4o"], 2, "unknown provider 'opneai'"),
    (["--teacher", "gpt-4o"], 2, "expected PROVIDER:MODEL"),
    (["--teacher", "openai:gpt-4o"], 2, "OPENAI_API_KEY is not set"),
    (["--teacher", "anthropic:claude-x"], 2, "ANTHROPIC_API_KEY is not set"),
    (["--teacher", "openai:m", "--base-url", "http://x", "--api-key-env", "NOPE_KEY"], 2,
     "NOPE_KEY is not set"),
    (["--teacher", "openai:m", "--base-url", "http://127.0.0.1:9/v1"], 4,
     "--base-url http://127.0.0.1:9/v1: cannot connect"),
    (["--teacher", "openai:m", "--base-url", "ftp://x"], 2, "--base-url"),
    (["--teacher", "openai:m", "--base-url", "http://127.0.0.1:9/v1", "--samples", "0"], 2,
     "--samples"),
    (["--teacher", "local:no-such-model"], 5, "no-such-model"),
])
def test_bad_options_one_line_no_output(tmp_path, args, code, needle):
    src = tmp_path / "in.jsonl"
    src.write_text('{"id": 1, "prompt": "hi"}\n')
    out = tmp_path / "out"
    p = synth("generate", src, "--out", out, *args, *LICENCE,
              env={"ANTHROPIC_API_KEY": "", "OPENAI_API_KEY": ""})
    assert p.returncode == code, p.stderr
    assert needle in one_line_error(p)
    assert not out.exists()


def test_generate_writes_the_run_directory(tmp_path, server):
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"id": i, "prompt": f"q {i}"}) + "\n" for i in range(5)))
    out = tmp_path / "out"
    p = synth("generate", src, "-t", "openai:gpt-test", "-o", out, "--base-url",
              f"{server.url}/v1", "--samples", "2", *LICENCE)
    assert p.returncode == 0, p.stderr
    assert "10 rows (10 ok, 0 error)" in p.stderr
    assert sorted(x.name for x in out.iterdir()) == [".lock", "README.md", "cache.sqlite", "run.json",
                                                     "traces.parquet"]
    assert pq.read_table(out / "traces.parquet").num_rows == 10
    assert json.loads((out / "run.json").read_text())["status"] == {"ok": 10, "error": 0}


def test_sigkill_then_rerun_sends_only_unfinished_requests(tmp_path, server):
    n = 120
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"id": i, "prompt": f"slow question {i} [[delay:0.03]]"})
                           + "\n" for i in range(n)))
    out, ref = tmp_path / "killed", tmp_path / "uninterrupted"
    base = ["-t", "openai:gpt-test", "--base-url", f"{server.url}/v1", "--concurrency", "4",
            *LICENCE]
    proc = subprocess.Popen([sys.executable, "-m", "synth", "generate", str(src), "-o",
                             str(out), *base], cwd=ROOT, stderr=subprocess.DEVNULL)
    cache = out / "cache.sqlite"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if cache.exists():
            try:
                with sqlite3.connect(cache) as db:
                    done = db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
            except sqlite3.OperationalError:
                done = 0
            if done >= n // 3:
                break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "traces.parquet").exists() and not (out / "run.json").exists()
    with sqlite3.connect(cache) as db:
        survived = db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
    assert n // 3 <= survived < n
    sent_before = server.n_requests

    p = synth("generate", src, "-o", out, *base)
    assert p.returncode == 0, p.stderr
    assert server.n_requests - sent_before == n - survived  # exactly the unfinished ones
    assert sent_before <= survived + 4 + 1  # at most the in-flight ones were lost

    p = synth("generate", src, "-o", ref, *base)
    assert p.returncode == 0, p.stderr
    resumed = pq.read_table(out / "traces.parquet").select(CONTENT).to_pylist()
    clean = pq.read_table(ref / "traces.parquet").select(CONTENT).to_pylist()
    assert resumed == clean


def test_one_run_per_directory(tmp_path, server):
    import fcntl

    src = tmp_path / "in.jsonl"
    src.write_text('{"id": 1, "prompt": "hi"}\n')
    out = tmp_path / "out"
    out.mkdir()
    with open(out / ".lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        p = synth("generate", src, "-t", "openai:gpt-test", "-o", out, "--base-url",
                  f"{server.url}/v1", *LICENCE)
    assert p.returncode == 2
    assert "another synth run is using this directory" in one_line_error(p)
    assert server.n_requests == 0


def test_ctrl_c_keeps_the_cache_and_says_how_to_resume(tmp_path, server):
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"id": i, "prompt": f"q {i} [[delay:0.05]]"}) + "\n"
                           for i in range(200)))
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "synth", "generate", str(src), "-o",
                             str(out), "-t", "openai:gpt-test", "--base-url",
                             f"{server.url}/v1", "--concurrency", "2", *LICENCE], cwd=ROOT,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while server.n_requests < 10 and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "run the same command to resume" in err and "Traceback" not in err
    assert not (out / "traces.parquet").exists()
    with sqlite3.connect(out / "cache.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM responses").fetchone()[0] >= 5
