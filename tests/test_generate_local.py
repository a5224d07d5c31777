"""`synth generate` with the local teacher: a tiny random model (fast) and SmolLM2 (slow)."""

import json
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

import synth
from tests.conftest import ROOT, logprobs_bytes
from tests.tiny_models import build_tiny_model


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


def write_prompts(path, n):
    path.write_text("".join(json.dumps({"id": f"p{i}", "prompt": f"tell me about {i} cats"})
                            + "\n" for i in range(n)))
    return path


def test_local_rows_logprobs_and_resume(tmp_path, tiny):
    src = write_prompts(tmp_path / "in.jsonl", 12)
    kw = dict(input=src, teacher=f"local:{tiny}", out=tmp_path / "run", max_tokens=40,
              logprobs=20, progress=False, accept_terms=("unknown",))
    res = synth.generate(**kw)
    rows = res.table().to_pylist()
    assert res.summary["status"] == {"ok": 12, "error": 0} and res.summary["sent"] == 12
    r = rows[0]
    assert r["provider"] == "local" and r["base_url"] is None and r["cost_usd"] == 0.0
    assert r["params"]["dtype"] == "fp32" and r["params"]["top_logprobs"] == 20
    lp = r["logprobs"]
    assert len(lp["token_ids"]) == len(lp["tokens"]) == r["output_tokens"] > 0
    assert all(len(ids) == 20 for ids in lp["top_token_ids"])
    # compact storage: the whole logprobs column over all generated tokens
    lp_bytes = logprobs_bytes(res.traces)
    n_tokens = sum(x["output_tokens"] for x in rows)
    assert lp_bytes / n_tokens <= 300, f"{lp_bytes / n_tokens:.0f} bytes/token at K=20"

    again = synth.generate(**kw)
    assert again.summary["sent"] == 0 and again.summary["from_cache"] == 12
    assert again.table().to_pylist() == rows


def test_dtype_is_part_of_the_request(tmp_path, tiny):
    src = write_prompts(tmp_path / "in.jsonl", 2)
    # a random checkpoint has no registry entry: its terms must be accepted explicitly
    a = synth.generate(input=src, teacher=f"local:{tiny}", out=tmp_path / "a", max_tokens=8,
                       progress=False, accept_terms=("unknown",))
    ha = {r["request_hash"] for r in a.table().to_pylist()}
    b = synth.generate(input=src, teacher=f"local:{tiny}", out=tmp_path / "a", max_tokens=8,
                       dtype="bf16", progress=False, accept_terms=("unknown",))
    assert b.summary["sent"] == 2  # bf16 answers are different answers: not from the fp32 cache
    hb = {r["request_hash"] for r in b.table().to_pylist()}
    assert not ha & hb


def test_local_refuses_reasoning_switch(tmp_path, tiny):
    src = write_prompts(tmp_path / "in.jsonl", 1)
    with pytest.raises(synth.ConfigError, match="--reasoning"):
        synth.generate(input=src, teacher=f"local:{tiny}", out=tmp_path / "r", reasoning=True)
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_readme_quickstart_on_smollm2(tmp_path):
    """README command (1), shortened: the embedded teacher over the example prompts."""
    out = tmp_path / "quickstart"
    p = subprocess.run([sys.executable, "-m", "synth", "generate", "examples/prompts.jsonl",
                        "--teacher", "local:smollm2-135m-instruct", "--intent", "research",
                        "--out", str(out), "--max-tokens", "24"], cwd=ROOT,
                       capture_output=True, text=True,
                       timeout=600)
    assert p.returncode == 0, p.stderr
    rows = pq.read_table(out / "traces.parquet").to_pylist()
    assert len(rows) == 16 and all(r["status"] == "ok" for r in rows)
    assert all(r["response"] for r in rows)
    assert rows[0]["model_version"] == "smollm2-135m-instruct@sha256:b179c9523d0e"
    summary = json.loads((out / "run.json").read_text())
    assert summary["tokens"]["output"] > 16 * 5
    assert rows[0]["licence_entries"] == ["smollm2-135m-instruct"]
    assert summary["licence"]["decision"] in ("allow", "warn")
    assert "license: apache-2.0" in (out / "README.md").read_text()
