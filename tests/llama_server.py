"""llama.cpp's OpenAI-compatible server (llama-cpp-python's ``llama_cpp.server``, an optional
extra: ``pip install 'llama-cpp-python[server]'``, which compiles llama.cpp) on a GGUF file,
on loopback, and a plain OpenAI client asking it prompts one at a time.

Used by tests/test_llama_server.py and bench/edge.py. ``available()`` says whether it can run
here (the package and its server's dependencies import)."""

from __future__ import annotations

import contextlib
import importlib.util
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator


def available() -> bool:
    """The server's modules are installed and llama_cpp loads its compiled library (checked
    in a child process: the library stays out of the test process)."""
    if not all(importlib.util.find_spec(m) is not None
               for m in ("llama_cpp", "fastapi", "uvicorn", "sse_starlette",
                         "starlette_context", "pydantic_settings")):
        return False
    return subprocess.run([sys.executable, "-c", "import llama_cpp.server.app"],
                          capture_output=True, timeout=120).returncode == 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def llama_server(gguf: Path, *, log: Path, n_ctx: int = 1024, threads: int | None = None,
                 timeout: float = 180.0) -> Iterator[str]:
    """Serve ``gguf`` with ``python -m llama_cpp.server``; yields the base URL (``.../v1``).
    The chat template is the one the GGUF carries (``tokenizer.chat_template``)."""
    import urllib.request

    port = _free_port()
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host",
           "127.0.0.1", "--port", str(port), "--n_ctx", str(n_ctx)]
    if threads:
        cmd += ["--n_threads", str(threads)]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.time() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited {proc.returncode}: "
                                   f"{log.read_text(errors='replace')[-2000:]}")
            try:
                with urllib.request.urlopen(url + "/models", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.time() > deadline:
                raise RuntimeError(f"llama_cpp.server did not answer in {timeout:.0f} s: "
                                   f"{log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def ask(url: str, conversations: list[list[dict[str, str]]], *, max_tokens: int
        ) -> tuple[list[dict[str, Any]], float]:
    """Each conversation once, greedily (no repeat penalty), in order, through the official
    openai client;
    returns ``[{text, finish_reason, completion_tokens}]`` and the wall seconds of the
    requests (after one warm-up request, not counted)."""
    from openai import OpenAI

    client = OpenAI(base_url=url, api_key="none", max_retries=0, timeout=120)
    # llama-cpp-python's server defaults to repeat_penalty 1.1, which is not greedy decoding
    # (on the first-letter prompts it steers away from the word's own first token): 1.0
    kw = dict(model="student", temperature=0.0, max_tokens=max_tokens,
              extra_body={"repeat_penalty": 1.0})
    client.chat.completions.create(messages=conversations[0], **kw)  # warm-up
    out = []
    t0 = time.perf_counter()
    for msgs in conversations:
        r = client.chat.completions.create(messages=msgs, **kw)
        c = r.choices[0]
        out.append({"text": c.message.content or "", "finish_reason": c.finish_reason,
                    "completion_tokens": r.usage.completion_tokens if r.usage else 0})
    return out, time.perf_counter() - t0
