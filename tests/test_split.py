"""The held-out split: one function, keyed on the source prompt, drawn before anything
filters, the same in `synth run`, `synth train --eval-split` and `synth export --split`.

Every input prompt here carries a marker word (``src07``) that its samples, its answers from
both teachers (``route: all``), its Evol-Instruct evolutions (the scripted teacher keeps the
instruction and adds to it) and the teacher's answers all repeat: a test reads which source
prompt a row comes from off its text, independently of synth's own key."""

from __future__ import annotations

import itertools
import json
import re

import pyarrow.parquet as pq
import pytest

from synth import rows as R
from synth.pipeline import run_pipeline
from tests.tiny_models import build_tiny_model

MARK = re.compile(r"src\d\d")
GIVEN = re.compile(r"#Given Prompt#:\n(.*?)\n\n#(?:Rewritten|Created) Prompt#:", re.S)


def markers(row) -> set[str]:
    msgs = row.get("messages") or []
    return set(MARK.findall(" ".join(m["content"] for m in msgs)))


def marker(row) -> str:
    found = markers(row)
    assert len(found) == 1, row
    return found.pop()


TAKES = itertools.count()


def responder(text, body):
    m = GIVEN.search(text)
    if m:  # an evolution keeps the instruction (and its marker) and adds to it
        return m.group(1) + " Include one concrete example and a short justification."
    if text.startswith("Here are two instructions"):
        return "Not Equal"
    if "[[reply:" in text:
        return None  # the scripted answer
    # every answer its own text (model, sample), so curation's dedup keeps them all
    return f"Echo: {text} (from {body.get('model')}, take {next(TAKES)})"


def write_jsonl(path, items):
    path.write_text("".join(json.dumps(x) + "\n" for x in items))
    return path.name


@pytest.fixture(scope="module")
def leak_run(_server, tmp_path_factory):
    """A pipeline with samples > 1 and two teachers (route: all), a cot stage whose teacher
    is wrong on every other prompt (all their samples rejected), and two Evol rounds; run
    once for the module's tests."""
    tmp = tmp_path_factory.mktemp("leak")
    server = _server
    server.reset()
    server.responder = responder
    tiny = build_tiny_model(tmp / "tiny")
    answers = write_jsonl(tmp / "answers.jsonl", [
        {"id": f"a{i}", "prompt": f"question src{i:02d} about tea", "reference": "4"}
        for i in range(30)])
    cot = write_jsonl(tmp / "cot.jsonl", [
        {"id": f"c{i}", "reference": "4",
         "prompt": f"add src{i:02d} two and two [[reply:The answer is \\boxed{{{4 + i % 2}}}]]"}
        for i in range(30, 60)])
    inst = write_jsonl(tmp / "inst.jsonl", [
        {"id": f"e{i}", "instruction": f"Explain how src{i:02d} tides work."}
        for i in range(60, 90)])
    (tmp / "p.yaml").write_text(f"""\
name: leak
teacher: openai:gpt-test
intent: research
accept_terms: [unknown]
options: {{base_url: "{server.url}/v1", max_retries: 2, concurrency: 8}}
generate:
  - name: answers
    recipe: responses
    input: {answers}
    teachers: [{{teacher: openai:gpt-test}}, {{teacher: openai:gpt-other}}]
    route: all
    samples: 2
    temperature: 1.0
  - name: cot
    recipe: cot
    input: {cot}
    samples: 2
  - name: evolved
    recipe: evol
    input: {inst}
    rounds: 2
curate: {{recipe: default}}
train: {{student: "from-teacher:layers=1", teacher: "{tiny}", loss: sft, max_steps: 2,
         batch_size: 4, max_len: 256}}
eval: {{holdout: 0.3, teacher: "{tiny}", max_new_tokens: 4}}
report: {{vendi: false}}
""")
    out = tmp / "run"
    try:
        res = run_pipeline(tmp / "p.yaml", out=out, progress=False)
    finally:
        server.reset()
    return out, res, tiny


def test_the_pipeline_splits_source_prompts_before_anything_filters(leak_run):
    out, res, _ = leak_run
    assert res.ran == ["generate.answers", "generate.cot", "generate.evolved", "dataset",
                       "split", "curate", "train", "eval"]
    train = pq.read_table(out / "split/train.parquet").to_pylist()
    held = pq.read_table(out / "split/heldout.parquet").to_pylist()
    t_src, h_src = {marker(r) for r in train}, {marker(r) for r in held}
    assert t_src and h_src and not t_src & h_src
    assert all(r["split"] == "train" for r in train) and all(r["split"] == "heldout"
                                                             for r in held)
    # every kind of descendant is on one side with its source, and each kind occurs
    by_src: dict[str, list] = {}
    for r in train + held:
        by_src.setdefault(marker(r), []).append(r)
    kinds = {"two teachers": 0, "two samples": 0, "round 2": 0}
    for rows in by_src.values():
        kinds["two teachers"] += len({r["model"] for r in rows}) > 1
        kinds["two samples"] += len({r["sample_index"] for r in rows}) > 1
        kinds["round 2"] += any(json.loads(r["metadata"] or "{}").get("depth") == 2
                                for r in rows)
    assert all(kinds.values()), kinds
    # the held-out side keeps what its recipe rejected: prompts the teacher got wrong
    wrong = {f"src{i:02d}" for i in range(31, 60, 2)}
    assert wrong & h_src
    for s in wrong & h_src:
        assert all(r["drop_reason"] for r in by_src[s]), s
    # curation only ever saw the training side
    curated = pq.read_table(out / "curate/curated.parquet").to_pylist()
    assert curated and {marker(r) for r in curated} <= t_src
    # eval scored every held-out source prompt with a reference, rejected or not
    ev = json.loads((out / "eval/eval.json").read_text())
    with_ref = {s for s in h_src if int(s[3:]) < 60}
    assert ev["task"]["n"] == len(with_ref) and wrong & with_ref
    for side in ("student", "teacher"):
        t = ev["task"][side]
        assert t["correct"] + t["wrong"] + t["unverifiable"] == ev["task"]["n"]


def test_export_split_keeps_every_source_prompt_on_one_side(leak_run, tmp_path):
    from synth.dataset.export import export_run

    out, _, _ = leak_run
    res = export_run(out / "traces.parquet", format="chat-jsonl", out=tmp_path / "exp",
                     split=0.7)

    def side(name):
        lines = (tmp_path / "exp" / name).read_text().splitlines()
        return {marker(json.loads(x)) for x in lines}

    train, test = side("train.jsonl"), side("test.jsonl")
    assert train and test and not train & test
    assert res.summary["prompts"] == {"train": len(train), "test": len(test)}
    # at the same share and seed, the pipeline's held-out prompts
    held = {marker(r) for r in pq.read_table(out / "split/heldout.parquet").to_pylist()}
    assert test <= held


def test_train_eval_split_keeps_every_source_prompt_on_one_side(leak_run, tmp_path):
    import synth
    from synth.train import data as D
    from synth.train.student import load_pretrained

    out, _, tiny = leak_run
    rows = D.load_rows(out / "traces.parquet")
    tok = load_pretrained(str(tiny)).tokenizer
    examples, _ = D.build_examples(rows, tok, max_len=256)
    train, held = D.split_examples(examples, 0.3)
    t_src = {marker(rows.rows[e.row]) for e in train}
    h_src = {marker(rows.rows[e.row]) for e in held}
    assert t_src and h_src and not t_src & h_src
    # the trainer holds out exactly these
    res = synth.train(data=out / "traces.parquet", student="from-teacher:layers=1",
                      teacher=str(tiny), out=tmp_path / "s", eval_split=0.3, max_steps=1,
                      max_len=256, progress=False)
    assert res.summary["data"]["heldout_examples"] == len(held)
    assert res.summary["data"]["train_examples"] == len(train)


def test_source_key_rules():
    assert R.source_key({"prompt_id": "p@openai_x", "metadata": '{"source_id": "p"}'}) == "p"
    assert R.source_key({"prompt_id": "p", "metadata": None}) == "p"
    assert R.source_key({"prompt_id": "p", "metadata": {"source_id": "q"}}) == "q"
    one = R.source_key({"messages": [{"role": "user", "content": "hi"}], "response": "a"})
    two = R.source_key({"messages": [{"role": "user", "content": "hi"},
                                     {"role": "assistant", "content": "b"}]})
    assert one == two  # a trailing answer is not part of the prompt


def test_one_split_function_and_its_convention():
    keys = [f"k{i}" for i in range(2000)]
    held = [k for k in keys if R.is_heldout(k, 0.25)]
    assert 0.2 < len(held) / len(keys) < 0.3
    # nested shares nest: a prompt held out at 0.1 is held out at 0.25
    assert {k for k in keys if R.is_heldout(k, 0.1)} <= set(held)
    assert not any(R.is_heldout(k, 0.0) for k in keys)
    # another seed is another draw
    assert {k for k in keys if R.is_heldout(k, 0.25, seed=1)} != set(held)
    from synth.dataset.export import split_side

    assert all((split_side(k, 0.75) == "test") == R.is_heldout(k, 0.25) for k in keys)


def test_every_command_means_the_same_rows_by_a_run_directory(leak_run, tmp_path):
    """One answer to "where are the rows of this path": train and export read the rows the
    student trains on (curated), eval the held-out split; held-out rows are refused for
    training, curation and export."""
    from synth.curate import read_rows as curate_rows
    from synth.dataset.export import export_run
    from synth.errors import InputError
    from synth.train import data as D

    out, _, _ = leak_run
    assert R.locate(out).file == out / "curate/curated.parquet"
    assert R.locate(out, heldout=True).file == out / "split/heldout.parquet"
    assert D.load_rows(out).path == out / "curate/curated.parquet"
    res = export_run(out, format="chat-jsonl", out=tmp_path / "e")
    assert res.summary["data_file"] == str(out / "curate/curated.parquet")
    for read in (D.load_rows, curate_rows,
                 lambda p: export_run(p, format="chat-jsonl", out=tmp_path / "e2")):
        with pytest.raises(InputError, match="held out for evaluation"):
            read(out / "split/heldout.parquet")


def test_a_run_directory_means_its_pipeline_not_its_leftover_files(leak_run, tmp_path):
    """Which rows a run directory means comes from the pipeline it ran and its manifest: an
    interrupted split, or curated rows older than the split (a curation from before the
    pipeline held prompts out), are refused rather than read with held-out prompts in them;
    and a second --split of a pipeline's training side is refused."""
    import shutil

    from synth.dataset.export import export_run
    from synth.errors import ConfigError, InputError

    src, _, _ = leak_run
    out = tmp_path / "run"
    shutil.copytree(src, out, ignore=shutil.ignore_patterns("train", "eval"))
    manifest = json.loads((out / "manifest.json").read_text())

    def with_stages(**change):
        m = json.loads(json.dumps(manifest))
        for key, fields in change.items():
            m["stages"][key].update(fields)
        (out / "manifest.json").write_text(json.dumps(m))

    with_stages()
    assert R.locate(out).file == out / "curate/curated.parquet"
    with pytest.raises(ConfigError, match="already holds source prompts out"):
        export_run(out, format="chat-jsonl", out=tmp_path / "e", split=0.7)

    with_stages(split={"status": "running"})
    with pytest.raises(InputError, match="split stage has not finished"):
        R.locate(out)
    split_done = manifest["stages"]["split"]["finished_at"]
    with_stages(curate={"finished_at": split_done - 60})
    with pytest.raises(InputError, match="curated rows predate its split"):
        R.read_rows(out)
    # the pipeline without curation trains on the split's training side, even with a
    # curated file left behind
    text = (out / "pipeline.yaml").read_text()
    (out / "pipeline.yaml").write_text(text.replace("curate: {recipe: default}\n", ""))
    assert R.locate(out).file == out / "split/train.parquet"


def test_eval_refuses_rows_it_trained_on(leak_run):
    from synth.errors import InputError

    out, _, _ = leak_run
    with pytest.raises(InputError, match="training side of a held-out split") as e:
        R.read_rows(out / "split/train.parquet", purpose="eval")
    assert e.value.field == "split"
