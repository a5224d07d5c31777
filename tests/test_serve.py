"""``synth serve``: the routed pair behind one OpenAI-compatible endpoint, through real HTTP
with the official SDK: a tiny student, the loopback provider server as the teacher."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT

openai = pytest.importorskip("openai")
pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def student(tmp_path_factory):
    from tests.tiny_models import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("serve") / "student")


def _start(student, server, threshold, key=None):
    cmd = [sys.executable, "-m", "synth", "serve", "-s", str(student), "-t", "openai:gpt-test",
           "--base-url", f"{server.url}/v1", "--threshold", str(threshold), "--port", "0",
           "--max-tokens", "8"]
    env = dict(os.environ)
    if key:
        cmd += ["--api-key-env", "SYNTH_SERVE_KEY"]
        env["SYNTH_SERVE_KEY"] = key
    p = subprocess.Popen(cmd, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = p.stderr.readline()
        if line.startswith("synth serve: http://"):
            return p, line.split()[2]
        if not line and p.poll() is not None:
            break
    p.kill()
    raise AssertionError(f"synth serve did not start: {p.stderr.read()}")


def _ask(url, text, **kw):
    client = openai.OpenAI(base_url=url, api_key="unused", max_retries=0)
    return client.chat.completions.create(model="routed", messages=[
        {"role": "user", "content": text}], **kw)


def test_confident_answers_come_from_the_student_unsure_from_the_teacher(student, server):
    low, url = _start(student, server, -1e9)  # every answer is confident enough
    try:
        r = _ask(url, "repeat the cat")
        assert r.model_extra["synth"]["routed_to"] == "student"
        conf = r.model_extra["synth"]["confidence"]
        assert isinstance(conf, float) and conf <= 0
        assert r.model == str(student) and server.n_requests == 0
    finally:
        low.terminate()
        low.wait(30)
    high, url = _start(student, server, 1e9)  # never confident enough
    try:
        r = _ask(url, "what is 2+2 [[reply:4]]")
        assert r.model_extra["synth"]["routed_to"] == "teacher"
        assert r.choices[0].message.content == "4" and r.model == "openai:gpt-test"
        assert r.usage.total_tokens > 0 and server.n_requests == 1
        # the student still answered first: its confidence is reported
        assert isinstance(r.model_extra["synth"]["confidence"], float)
        import json
        import urllib.request

        stats = json.load(urllib.request.urlopen(url.removesuffix("/v1") + "/synth/stats"))
        assert stats["teacher"] == 1 and stats["student"] == 0
        models = openai.OpenAI(base_url=url, api_key="x").models.list()
        assert {m.id for m in models.data} == {str(student), "openai:gpt-test"}
        with pytest.raises(openai.BadRequestError):
            openai.OpenAI(base_url=url, api_key="x", max_retries=0).chat.completions.create(
                model="routed", messages=[])
        # a teacher that refuses the request: a 502 naming it, the key nowhere
        with pytest.raises(openai.APIStatusError) as e:
            _ask(url, "fail please [[fault:400]]")
        assert e.value.status_code == 502 and "the teacher failed" in str(e.value)
    finally:
        high.terminate()
        high.wait(30)


def test_the_teachers_key_never_reaches_a_client(student, server, monkeypatch):
    key = "sk-serve-secret-42"
    monkeypatch.setattr(server, "require_key", "sk-the-right-one")
    p, url = _start(student, server, 1e9, key=key)
    try:
        with pytest.raises(openai.APIStatusError) as e:
            _ask(url, "hello")
        assert e.value.status_code == 502 and key not in str(e.value.response.text)
    finally:
        p.terminate()
        p.wait(30)
