"""Put a real third-party gateway, LiteLLM's proxy, in front of the loopback provider server and
drive OpenAI's Batch API (/v1/files, /v1/batches) through it, offline.

    python bench/gateway_litellm.py                  # SDK round trip through the gateway, prints it
    python bench/gateway_litellm.py -- CMD ARGS...   # runs CMD with GATEWAY_URL (the proxy's /v1
                                                     # base) and GATEWAY_KEY set, returns its status

LiteLLM lives in its own virtualenv, never in synth's environment (LITELLM_BIN overrides the path):
`python -m venv /work/litellm-venv && /work/litellm-venv/bin/pip install 'litellm[proxy]==1.108.7'
'prisma<1'` (1.108.7 is what `litellm[proxy]` resolves to: 1.110.2 needs `litellm-proxy`, not on PyPI).
`prisma` is only imported, never used (no database): without it LiteLLM 1.108's error handler
crashes on every upstream error of a batch route and answers a bare 500 instead of the 404/409/...
"""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LITELLM_BIN = os.environ.get("LITELLM_BIN", "/work/litellm-venv/bin/litellm")
# LiteLLM fetches these from raw.githubusercontent.com at import unless told to use its bundled copies.
OFFLINE = {k: "True" for k in ("LITELLM_LOCAL_MODEL_COST_MAP", "LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS",
                               "LITELLM_LOCAL_AUTOROUTER_PRESETS", "LITELLM_LOCAL_BLOG_POSTS",
                               "LITELLM_LOCAL_POLICY_TEMPLATES")}
BACKEND_KEY, GATEWAY_KEY = "sk-backend-loopback", "sk-gateway-loopback"


def config(backend: str) -> str:
    # POST /v1/files (no model named) reads files_settings and fails with "files_settings is not
    # set" without it; every other files/batches route takes its credentials from the first
    # model_list deployment whose provider is openai. So both are needed; neither needs a database.
    return (f"model_list:\n  - model_name: loopback\n    litellm_params: {{model: openai/gpt-4o-mini, "
            f"api_base: '{backend}/v1', api_key: {BACKEND_KEY}}}\n"
            f"files_settings:\n  - {{custom_llm_provider: openai, api_base: '{backend}/v1', "
            f"api_key: {BACKEND_KEY}}}\n"
            f"general_settings: {{master_key: {GATEWAY_KEY}}}\n")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(tmp: Path, procs: list[subprocess.Popen]) -> tuple[str, str, Path]:
    """Start both servers, appending each to ``procs`` at once so a failed start still stops it."""
    backend = subprocess.Popen([sys.executable, "-m", "tests.provider_server", "--port", "0",
                                "--require-key", BACKEND_KEY], cwd=ROOT, stdout=subprocess.PIPE,
                               text=True)
    procs.append(backend)
    url = backend.stdout.readline().strip()  # the server prints its URL once it listens
    if not url.startswith("http://"):
        raise RuntimeError("the loopback server did not start")
    (tmp / "litellm.yaml").write_text(config(url))
    # No OPENAI_* / DATABASE_URL from the caller's shell: a real key must never be a fallback,
    # and a DATABASE_URL would switch the proxy to Postgres-backed managed files.
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OPENAI_", "AZURE_")) and k != "DATABASE_URL"}
    env.update(OFFLINE, NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost")
    port, log = free_port(), tmp / "litellm.log"
    procs.append(subprocess.Popen([LITELLM_BIN, "--config", str(tmp / "litellm.yaml"), "--host",
                                   "127.0.0.1", "--port", str(port)], env=env,
                                  stdout=log.open("w"), stderr=subprocess.STDOUT))
    gateway, t0 = f"http://127.0.0.1:{port}", time.monotonic()
    while True:  # /health/liveliness needs no key; the proxy takes ~7 s to import and start
        if procs[1].poll() is not None or time.monotonic() - t0 > 120:
            raise RuntimeError("LiteLLM did not start:\n" + log.read_text()[-3000:])
        try:
            urllib.request.urlopen(gateway + "/health/liveliness", timeout=2).read()
            break
        except OSError:
            time.sleep(0.3)
    print(f"backend {url}  gateway {gateway} (up in {time.monotonic() - t0:.1f}s)  log {log}",
          file=sys.stderr)
    return url, gateway, log


def stop(procs: list[subprocess.Popen]) -> None:
    for p in reversed(procs):  # gateway first, then the server it talks to
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def round_trip(gateway: str, backend: str) -> bool:
    """Upload, create (with metadata), poll, download, compare with the backend's own answers."""
    import openai
    gw = openai.OpenAI(base_url=gateway + "/v1", api_key=GATEWAY_KEY, max_retries=0)
    direct = openai.OpenAI(base_url=backend + "/v1", api_key=BACKEND_KEY, max_retries=0)
    bodies = [{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"question {i}"}]}
              for i in range(3)]
    bodies[2]["max_tokens"] = 1  # one answer cut short, to compare finish_reason too
    lines = "".join(json.dumps({"custom_id": f"k1-{i}", "method": "POST",
                                "url": "/v1/chat/completions", "body": b}) + "\n"
                    for i, b in enumerate(bodies))
    checks: dict[str, bool] = {}
    # The name must end in .jsonl: LiteLLM refuses any other batch upload with a 400 itself.
    f = gw.files.create(file=("k1-input.jsonl", io.BytesIO(lines.encode())), purpose="batch")
    print(f"uploaded   {f.id} filename={f.filename!r} bytes={f.bytes}")
    checks["filename kept"] = f.filename == "k1-input.jsonl"
    b = gw.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions",
                          completion_window="24h", metadata={"synth_batch": "k1"})
    print(f"created    {b.id} status={b.status} metadata={b.metadata}")
    seen = [b.status]
    for _ in range(20):  # the loopback batch moves one status per GET
        if b.status in ("completed", "failed", "expired", "cancelled"):
            break
        b = gw.batches.retrieve(b.id)
        seen.append(b.status)
    print(f"polled     {' -> '.join(seen)} counts={b.request_counts.model_dump()}")
    checks["completed"] = b.status == "completed"
    checks["metadata kept"] = b.metadata == {"synth_batch": "k1"}
    out = {}
    if b.output_file_id:
        for line in gw.files.content(b.output_file_id).text.splitlines():
            item = json.loads(line)
            out[item["custom_id"]] = item["response"]["body"]
    for i, body in enumerate(bodies):
        want = direct.chat.completions.create(**body)
        got = out.get(f"k1-{i}", {})
        same = (got.get("choices", [{}])[0].get("message", {}).get("content")
                == want.choices[0].message.content
                and got["choices"][0]["finish_reason"] == want.choices[0].finish_reason
                and got.get("usage", {}).get("total_tokens") == want.usage.total_tokens)
        print(f"answer     k1-{i}: {got.get('choices', [{}])[0].get('message', {}).get('content')!r}"
              f" == backend /v1/chat/completions: {same}")
        checks[f"answer k1-{i}"] = same
    listed = gw.files.list(purpose="batch")
    checks["files listed"] = f.id in [x.id for x in listed.data]
    page = gw.batches.list(limit=2)
    checks["batches listed"] = b.id in [x.id for x in page.data]
    print(f"listed     files?purpose=batch: {len(listed.data)} (ours: {checks['files listed']});"
          f" batches?limit=2: {len(page.data)} has_more={page.has_more}"
          f" (ours: {checks['batches listed']})")
    c = gw.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions",
                          completion_window="24h")
    c1 = gw.batches.cancel(c.id)
    c2 = gw.batches.retrieve(c.id)
    print(f"cancelled  {c.id}: {c.status} -> {c1.status} -> {c2.status}")
    checks["cancel"] = c2.status == "cancelled"
    try:
        gw.batches.retrieve("batch_doesnotexist")
        checks["404 passes through"] = False
    except openai.APIStatusError as e:
        print(f"unknown id HTTP {e.status_code}: {e.message[:100]}")
        checks["404 passes through"] = e.status_code == 404
    bad = [k for k, ok in checks.items() if not ok]
    print("ALL OK" if not bad else f"FAILED: {', '.join(bad)}")
    return not bad


def main(argv: list[str]) -> int:
    cmd = argv[argv.index("--") + 1:] if "--" in argv else []
    if not Path(LITELLM_BIN).exists():
        print(f"no LiteLLM at {LITELLM_BIN} (set LITELLM_BIN)", file=sys.stderr)
        return 2
    # SIGTERM must unwind through the finally below, or the two servers outlive us.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    procs: list[subprocess.Popen] = []
    with tempfile.TemporaryDirectory(prefix="gateway-litellm-") as tmp:
        try:
            backend, gateway, log = start(Path(tmp), procs)
            if cmd:
                env = dict(os.environ, GATEWAY_URL=gateway + "/v1", GATEWAY_KEY=GATEWAY_KEY)
                return subprocess.call(cmd, env=env)
            ok = round_trip(gateway, backend)
            if not ok:
                print(log.read_text()[-3000:], file=sys.stderr)
            return 0 if ok else 1
        finally:
            stop(procs)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
