"""`synth run PIPELINE.yaml`: validation up front, one run directory, skip, resume, and the
request cache making a changed template cost only the prompts it changes. Generate stages
talk to the loopback provider server over real HTTP."""

import json
import os
import signal
import subprocess
import sys
import time

import orjson
import pyarrow.parquet as pq
import pytest
import yaml

from synth.errors import ConfigError, InputError
from synth.pipeline import load_pipeline, run_pipeline

PROMPTS = [{"id": f"p{i}", "prompt": f"question number {i} about tea and cake"}
           for i in range(6)]


def write(path, text):
    path.write_text(text)
    return path


def pipeline_file(tmp_path, server, *, stages=None, extra="", price=None, vendi=False):
    (tmp_path / "prompts.jsonl").write_text(
        "".join(json.dumps(x) + "\n" for x in PROMPTS))
    stages = stages or """\
  - name: answers
    recipe: responses
    input: prompts.jsonl
"""
    price_line = f"price_file: {price}\n" if price else ""
    return write(tmp_path / "p.yaml", f"""\
name: test-run
teacher: openai:gpt-test
intent: research
accept_terms: [unknown]
{price_line}options:
  base_url: {server.url}/v1
  max_retries: 2
  concurrency: 4
generate:
{stages}curate: {{filters: default}}
report: {{vendi: {str(vendi).lower()}}}
{extra}""")


def run(path, out, **kw):
    return run_pipeline(path, out=out, progress=False, **kw)


# ---------------------------------------------------------------------------- validation


@pytest.mark.parametrize("body,line,key,words", [
    ("name: x\nbogus: 1\n", 2, "bogus", "unknown key"),
    ("name: x\nteacher: openai:gpt-test\ngenerate:\n  - name: a\n    recipe: responses\n"
     "    prompts: [hi]\n    max_token: 5\n", 7, "generate[0].max_token",
     "did you mean max_tokens"),
    ("name: x\nteacher: openai:gpt-test\ngenerate:\n  - name: a\n    recipe: responses\n"
     "    prompts: [hi]\n    max_tokens: lots\n", 7, "generate[0].max_tokens", "integer"),
    ("name: x\nteacher: openai:gpt-test\ngenerate:\n  - name: a\n    recipe: nope\n", 5,
     "generate[0].recipe", "unknown recipe"),
    ("name: x\nteacher: openai:gpt-test\ngenerate:\n  - name: a\n    recipe: responses\n"
     "    prompts: [hi]\n  - name: a\n    recipe: responses\n    prompts: [ho]\n", 7,
     "generate[1].name", "two generate stages"),
    ("name: x\nteacher: openai:gpt-test\ngenerate:\n  - name: a\n    recipe: responses\n"
     "    prompts: [hi]\ntrain:\n  student: s\n  epoch: 2\n", 9, "train.epoch",
     "did you mean epochs"),
    ("name: x\nteacher: openai:gpt-test\ngenerate:\n  - name: a\n    recipe: responses\n"
     "    prompts: [hi]\ntrain: {student: s, loss: sft}\neval:\n  holdout: 1.5\n", 9,
     "eval.holdout", "between 0 and 1"),
    ("name: x\nteacher: openai:gpt-test\ngenerate:\n  - name: a\n    recipe: responses\n"
     "    prompts: [hi]\n    teachers:\n      - {teacher: openai:a, weight: -1}\n", 8,
     "generate[0].teachers[0].weight", ">= 0"),
    ("name: x\ngenerate:\n  - name: a\n    recipe: responses\n    prompts: [hi]\n", 3,
     "generate[0]", "no teacher"),
    ("name: Bad Name\n", 1, "name", "lower-case"),
])
def test_bad_pipeline_files_name_file_line_and_key(tmp_path, body, line, key, words):
    p = write(tmp_path / "bad.yaml", body)
    with pytest.raises((InputError, ConfigError)) as e:
        load_pipeline(p)
    msg = str(e.value)
    assert f"{p}:{line}" in msg, msg
    assert key in msg and words in msg, msg


def test_bad_pipeline_on_the_command_line_is_one_line_and_writes_nothing(tmp_path):
    p = write(tmp_path / "bad.yaml", "name: x\ngenerate: 3\n")
    r = subprocess.run([sys.executable, "-m", "synth", "run", str(p), "--out",
                        str(tmp_path / "out")], capture_output=True, text=True)
    assert r.returncode != 0
    assert r.stderr.strip().count("\n") == 0 and f"{p}:2" in r.stderr, r.stderr
    assert not (tmp_path / "out").exists()


def test_yaml_syntax_error_names_the_line(tmp_path):
    p = write(tmp_path / "bad.yaml", "name: x\nteacher: a: b\ngenerate: []\n")
    with pytest.raises(InputError) as e:
        load_pipeline(p)
    assert f"{p}:2" in str(e.value) and "not valid YAML" in str(e.value), str(e.value)


# ---------------------------------------------------------------------------- runs


def test_run_directory_holds_every_stage_and_a_rerun_skips_them_all(server, tmp_path,
                                                                     price_file):
    p = pipeline_file(tmp_path, server, price=price_file)
    out = tmp_path / "run"
    res = run(p, out)
    assert res.ran == ["generate.answers", "dataset", "curate"]
    n = server.n_requests
    assert n == len(PROMPTS)
    for rel in ("manifest.json", "pipeline.yaml", "traces.parquet", "README.md",
                "generate/answers/traces.parquet", "generate/answers/rejects.parquet",
                "generate/answers/stage.json", "curate/curated.parquet",
                "curate/rejects.parquet", "report.html"):
        assert (out / rel).is_file(), rel
    rows = pq.read_table(out / "traces.parquet").to_pylist()
    assert sorted(r["id"] for r in rows) == sorted(f"answers/p{i}:0" for i in range(6))
    assert {r["stage"] for r in rows} == {"answers"}
    stage = orjson.loads((out / "generate/answers/stage.json").read_bytes())
    t = stage["teachers"]["openai:gpt-test"]
    assert (t["requests"], t["sent"], t["accepted"]) == (6, 6, 6)
    assert t["cost_usd"] == pytest.approx(stage["cost_usd"]) and t["cost_usd"] > 0
    manifest = orjson.loads((out / "manifest.json").read_bytes())
    assert {k: v["status"] for k, v in manifest["stages"].items()} == {
        "generate.answers": "done", "dataset": "done", "curate": "done"}

    res2 = run(p, out)
    assert res2.ran == [] and res2.skipped == ["generate.answers", "dataset", "curate"]
    assert server.n_requests == n  # nothing asked again

    res3 = run(p, out, from_stage="curate")
    assert res3.ran == ["curate"] and server.n_requests == n


def test_a_damaged_output_makes_its_stage_and_the_later_ones_run_again(server, tmp_path):
    p = pipeline_file(tmp_path, server)
    out = tmp_path / "run"
    run(p, out)
    n = server.n_requests
    (out / "curate" / "curated.parquet").write_bytes(b"not what was written")
    res = run(p, out)
    assert res.ran == ["curate"] and server.n_requests == n
    pq.read_table(out / "curate" / "curated.parquet")  # rewritten, readable


def test_a_changed_template_asks_only_the_prompts_it_changes(server, tmp_path):
    tpl = write(tmp_path / "ask.j2", """---
id: test/ask
description: Ask, with a note on some prompts.
version: 1
variables: [prompt]
---
{{ prompt }}
""")
    stages = f"""\
  - name: answers
    recipe: responses
    input: prompts.jsonl
    template: {tpl}
"""
    p = pipeline_file(tmp_path, server, stages=stages)
    out = tmp_path / "run"
    run(p, out)
    n = server.n_requests
    assert n == 6
    # the edit changes the rendered prompt of p1 and p4 only
    tpl.write_text(tpl.read_text().replace(
        "{{ prompt }}\n", "{{ prompt }}{% if 'number 1 ' in prompt or 'number 4 ' in prompt "
        "%} (be brief){% endif %}\n"))
    res = run(p, out)
    assert res.ran[0] == "generate.answers"
    assert server.n_requests - n == 2
    rows = pq.read_table(out / "generate/answers/traces.parquet").to_pylist()
    hashes = {r["template_hash"] for r in rows}
    assert len(hashes) == 1  # every row names the template that made it now
    asked = [r["body"]["messages"][-1]["content"] for r in server.requests[-2:]]
    assert sorted(a.split()[2] for a in asked) == ["1", "4"]
    assert all(a.endswith("(be brief)") for a in asked)


def test_only_and_from_select_stages(server, tmp_path):
    p = pipeline_file(tmp_path, server)
    out = tmp_path / "run"
    with pytest.raises(ConfigError, match="has not run"):
        run(p, out, only="curate")
    run(p, out)
    res = run(p, out, only="answers")
    assert res.ran == ["generate.answers", "dataset"]
    with pytest.raises(ConfigError, match="not a stage"):
        run(p, out, only="training")
    with pytest.raises(ConfigError, match="one of them"):
        run(p, out, only="curate", from_stage="curate")


def test_a_run_directory_of_another_pipeline_is_refused(server, tmp_path):
    p = pipeline_file(tmp_path, server)
    out = tmp_path / "run"
    run(p, out)
    other = write(tmp_path / "q.yaml", p.read_text().replace("name: test-run",
                                                             "name: other"))
    with pytest.raises(ConfigError, match="holds the run of pipeline 'test-run'"):
        run(other, out)


def test_two_teachers_split_by_weight_with_provenance(server, tmp_path, price_file):
    stages = """\
  - name: answers
    recipe: responses
    input: prompts.jsonl
    teachers:
      - {teacher: openai:gpt-test, weight: 1}
      - {teacher: openai:gpt-test-b, weight: 1}
"""
    p = pipeline_file(tmp_path, server, stages=stages, price=price_file)
    out = tmp_path / "run"
    run(p, out)
    stage = orjson.loads((out / "generate/answers/stage.json").read_bytes())
    t = stage["teachers"]
    assert set(t) == {"openai:gpt-test", "openai:gpt-test-b"}
    assert t["openai:gpt-test"]["requests"] + t["openai:gpt-test-b"]["requests"] == 6
    rows = pq.read_table(out / "traces.parquet").to_pylist()
    by = {r["model"] for r in rows}
    assert by == {"gpt-test", "gpt-test-b"}
    # the same split on a rerun: routing is a stable function of the prompt id
    run(p, out, from_stage="answers")
    rows2 = pq.read_table(out / "traces.parquet").to_pylist()
    assert {r["id"]: r["model"] for r in rows} == {r["id"]: r["model"] for r in rows2}


def test_a_killed_generate_stage_resumes_from_its_cache(server, tmp_path):
    stages = """\
  - name: answers
    recipe: responses
    input: prompts.jsonl
    concurrency: 1
"""
    prompts = [{"id": f"k{i}", "prompt": f"slow question {i} [[delay:0.25]]"}
               for i in range(10)]
    p = pipeline_file(tmp_path, server, stages=stages)
    (tmp_path / "prompts.jsonl").write_text("".join(json.dumps(x) + "\n" for x in prompts))
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    proc = subprocess.Popen([sys.executable, "-m", "synth", "run", str(p), "--out", str(out),
                             "--no-progress"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while server.n_requests < 4 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    first = server.n_requests
    assert 4 <= first < 10
    manifest = orjson.loads((out / "manifest.json").read_bytes())
    assert manifest["stages"]["generate.answers"]["status"] == "running"
    res = run(p, out)
    assert "generate.answers" in res.ran
    # every answer that landed before the kill came from the cache: at most the one in
    # flight when it died is asked again (counted by prompt, not by when the server saw the
    # request: one sent just before the kill may be counted after `first` was read)
    contents = [r["body"]["messages"][-1]["content"] for r in server.requests]
    assert len(set(contents)) == 10  # every prompt was answered, across the two runs
    assert len(contents) - len(set(contents)) <= 1, sorted(contents)
    m = orjson.loads((out / "manifest.json").read_bytes())["stages"]["generate.answers"]
    assert m["status"] == "done" and m["resumed"] is True
    assert pq.read_table(out / "traces.parquet").num_rows == 10


# ---------------------------------------------------------------------------- quickstart


def quickstart_for(tmp_path, teacher: str, *, tiny: bool, gguf: bool = False
                   ) -> "os.PathLike":
    """examples/quickstart.yaml, its data files beside it, with the teacher replaced (and,
    for a random tiny model, numbers small enough for the fast suite; its quantise section
    only with ``gguf``: tests/tiny_models' word-level tokenizer has no GGUF form)."""
    import shutil

    from tests.conftest import ROOT

    shutil.copytree(ROOT / "examples" / "data", tmp_path / "data")
    spec = yaml.safe_load((ROOT / "examples" / "quickstart.yaml").read_text())
    spec["teacher"] = teacher
    spec["accept_terms"] = ["unknown"]  # a local directory has no registry entry
    if tiny:
        spec["report"] = {"vendi": False}  # MiniLM's load would be most of the test
        spec["options"] = {"max_tokens": 12, "concurrency": 8, "logprobs": 5}
        for g in spec["generate"]:
            g["max_tokens"] = 12
        first = tmp_path / "data" / "first-letter.jsonl"  # 40 of the 480 words
        first.write_text("".join(first.read_text().splitlines(keepends=True)[:40]))
        # a random model never stops by itself: every answer would be 'truncated'
        write(tmp_path / "tiny.yaml", "name: tiny\nsteps:\n  - drop_errors\n  - empty\n")
        spec["curate"] = {"filters": "tiny.yaml"}
        spec["train"].update(student="from-teacher:layers=1", epochs=1, max_steps=2,
                             batch_size=4, max_len=128)
        spec["eval"].update(max_new_tokens=4, holdout=0.3)
        if not gguf:
            spec.pop("quantise", None)
    p = tmp_path / "quickstart.yaml"
    p.write_text(yaml.safe_dump(spec, sort_keys=False))
    return p


def test_quickstart_pipeline_end_to_end_on_a_tiny_model(tmp_path):
    pytest.importorskip("transformers")
    from tests.tiny_models import build_tiny_model

    tiny = build_tiny_model(tmp_path / "tiny", seed=0)
    p = quickstart_for(tmp_path, f"local:{tiny}", tiny=True)
    out = tmp_path / "run"
    res = run(p, out)
    assert res.ran == ["generate.letters", "generate.evolved", "dataset", "split", "curate",
                       "train", "eval"]
    for rel in ("student/config.json", "student/README.md", "student/train_log.jsonl",
                "eval/eval.json", "report.html", "README.md", "split/heldout.parquet"):
        assert (out / rel).is_file(), rel
    held = {r["prompt_id"] for r in pq.read_table(out / "split/heldout.parquet").to_pylist()}
    trained = {r["prompt_id"] for r in pq.read_table(out / "split/train.parquet").to_pylist()}
    assert held and trained and not held & trained
    ev = json.loads((out / "eval" / "eval.json").read_text())
    letters = [r for r in held if r.startswith("fl-")]
    assert ev["task"]["n"] == len(letters)  # every held-out word, whatever the tiny model said
    again = run(p, out)
    assert again.ran == [] and len(again.skipped) == 7


@pytest.mark.quickstart
def test_quickstart_for_real_with_smollm2(tmp_path):
    """README command (1): the embedded teacher, the real pipeline file (minutes on 2 cores,
    so not in the default run: `python -m pytest -m quickstart`)."""
    pytest.importorskip("transformers")
    p = quickstart_for(tmp_path, "local:smollm2-135m-instruct", tiny=False)
    out = tmp_path / "run"
    res = run(p, out)
    assert "eval" in res.ran
    ev = json.loads((out / "eval" / "eval.json").read_text())
    assert ev["params"]["student"] < ev["params"]["teacher"]
    task = ev["task"]  # the goal of README command (1): a student that works
    assert task["n"] >= 100 and task["retained"] >= 0.9, task
    answers = (out / "eval" / "answers.jsonl").read_text().splitlines()
    assert len(answers) == task["n"]  # every scored prompt, for an audit
    assert (out / "report.html").stat().st_size > 10_000
    # quantise: each GGUF file answered the same prompts in transformers, keeping the student
    rows = ev["variants"]["rows"]
    assert [r["format"] for r in rows] == ["fp32", "Q8_0", "Q4_0"]
    assert all(r["n"] == task["n"] and r["retained"] >= 0.9 for r in rows), rows
    # ...and llama.cpp's server serves the q8_0 file (with the optional llama extra)
    from tests import llama_server as L

    if L.available():
        from synth.train.evaluation import Answer, check_answers

        lines = [json.loads(x) for x in answers]
        with L.llama_server(out / "eval" / "student.q8_0.gguf",
                            log=tmp_path / "llama.log") as url:
            got, _ = L.ask(url, [x["messages"] for x in lines], max_tokens=32)
        v = check_answers([Answer(g["text"], g["text"], g["finish_reason"]) for g in got],
                          [x["reference"] for x in lines], max_new_tokens=32)
        acc = sum(o == "correct" for o, _ in v) / len(v)
        assert acc >= 0.9 * task["teacher"]["accuracy"], (acc, got[:5])


# ---------------------------------------------------------------------------- estimate, export


def test_estimate_before_the_run_and_the_run_never_pays_twice(server, tmp_path, price_file):
    from synth.pipeline import estimate_pipeline

    p = pipeline_file(tmp_path, server, price=price_file)
    out = tmp_path / "run"
    est = estimate_pipeline(p, out=out, dry_run=2)
    assert server.n_requests == 2  # the dry run
    (entry,) = est["stages"]
    assert (entry["stage"], entry["teacher"], entry["requests"]) == ("answers",
                                                                      "openai:gpt-test", 6)
    assert entry["dry_run_requests"] == 2 and entry["cost_usd"] > 0
    assert est["break_even"] is not None and est["assumed"]["student_cost_per_hour"] == 0.10
    assert json.loads((out / "estimate.json").read_text())["total_cost_usd"] == \
        est["total_cost_usd"]
    run(p, out)
    assert server.n_requests == 6  # 2 from the dry run's cache, 4 sent
    html = (out / "report.html").read_text()
    assert "estimate" in html.lower()


def test_cli_run_estimate_and_export(server, tmp_path, price_file):
    p = pipeline_file(tmp_path, server, price=price_file)
    out = tmp_path / "run"

    def synth(*args):
        return subprocess.run([sys.executable, "-m", "synth", *map(str, args)],
                              capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": os.getcwd()})

    r = synth("estimate", p, "--out", out, "--dry-run", "1")
    assert r.returncode == 0, r.stderr
    assert "answers" in r.stdout and "openai:gpt-test" in r.stdout
    r = synth("run", p, "--out", out, "--no-progress")
    assert r.returncode == 0, r.stderr
    assert "generate.answers" in r.stderr and "report" in r.stderr
    r = synth("run", p, "--out", out, "--no-progress")
    assert r.returncode == 0 and "unchanged, skipped" in r.stderr, r.stderr
    assert "report.vendi is false" in (out / "report.html").read_text()
    r = synth("export", out, "--format", "chat-jsonl", "--out", tmp_path / "exp")
    assert r.returncode == 0, r.stderr
    lines = (tmp_path / "exp" / "train.jsonl").read_text().splitlines()
    assert len(lines) == 6 and json.loads(lines[0])["messages"][-1]["role"] == "assistant"
    r = synth("export", out, "--format", "parquet", "--out", tmp_path / "exp2")
    assert r.returncode != 0 and r.stderr.count("\n") == 1 and "--format" in r.stderr


def test_a_killed_train_stage_resumes_from_its_checkpoint(tmp_path):
    pytest.importorskip("transformers")
    from tests.tiny_models import build_tiny_model

    tiny = build_tiny_model(tmp_path / "tiny", seed=0)
    p = quickstart_for(tmp_path, f"local:{tiny}", tiny=True)
    spec = yaml.safe_load(p.read_text())
    spec["train"].update(max_steps=200, save_every=5, keep_checkpoints=2)
    spec.pop("eval")
    spec.pop("route")  # it measures what eval does
    p.write_text(yaml.safe_dump(spec, sort_keys=False))
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    proc = subprocess.Popen([sys.executable, "-m", "synth", "run", str(p), "--out", str(out),
                             "--no-progress"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    ckpts = out / "student" / "checkpoints"
    while time.time() < deadline and proc.poll() is None and \
            not any(ckpts.glob("step-*/state.json")):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert any(ckpts.glob("step-*/state.json")), "training never checkpointed"
    stage = orjson.loads((out / "manifest.json").read_bytes())["stages"]["train"]
    assert stage["status"] == "running"
    res = run(p, out)
    assert res.ran == ["train"]
    m = orjson.loads((out / "manifest.json").read_bytes())["stages"]["train"]
    assert m["status"] == "done" and m["resumed"] is True
    steps = [json.loads(x)["step"] for x in
             (out / "student" / "train_log.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 201))  # one curve: no step twice, none missing
