"""Issue 16, part 3: pipeline files that cannot hang or litter. A YAML alias bomb is refused
before anything runs; a mistake in an input, a template or the licence writes nothing; a
template cannot read another file, and its path is relative to the pipeline file; weights
and token budgets are checked; a non-UTF-8 input names its file and line; rows training
leaves out are said on the command line; an input outside the pipeline's folder is allowed
and named. Generate stages talk to the loopback provider server over real HTTP."""

import json
import logging
import os
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from synth.errors import InputError, LicenceDeniedError, UserError
from synth.pipeline import load_pipeline, run_pipeline
from tests.conftest import ROOT

PROMPTS = [{"id": f"p{i}", "prompt": f"question number {i} about tea and cake"}
           for i in range(4)]


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def pipeline(d, server, stages, *, extra="", intent="research"):
    """``d/p.yaml`` with ``stages`` under ``generate:`` and ``d/prompts.jsonl`` beside it."""
    write(d / "prompts.jsonl", "".join(json.dumps(x) + "\n" for x in PROMPTS))
    return write(d / "p.yaml", f"""\
name: files
teacher: openai:gpt-test
intent: {intent}
accept_terms: [unknown]
options:
  base_url: {server.url}/v1
  max_retries: 0
  concurrency: 2
generate:
{stages}report: {{vendi: false}}
{extra}""")


def synth(*args, cwd=ROOT, timeout=120):
    e = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    e.pop("OPENAI_API_KEY", None)
    return subprocess.run([sys.executable, "-m", "synth", *map(str, args)], cwd=cwd, env=e,
                          capture_output=True, text=True, timeout=timeout)


def one_line(p) -> str:
    assert "Traceback" not in p.stderr, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("synth: error: "), p.stderr
    return lines[0]


# ---------------------------------------------------------------------------- alias bombs


def bomb(levels: int) -> str:
    """The "billion laughs": each level an anchor of ten aliases of the one before, inside
    an inline prompt's metadata (which every row carries and the fingerprint walks)."""
    rows = ["          l0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    rows += [f"          l{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]"
             for i in range(1, levels)]
    return ("  - name: a\n    recipe: responses\n    prompts:\n      - prompt: hi\n"
            "        metadata:\n" + "\n".join(rows) + "\n")


@pytest.mark.parametrize("levels", [6, 10])
def test_an_alias_bomb_is_refused_before_anything_runs(tmp_path, server, levels):
    p = pipeline(tmp_path, server, bomb(levels))
    assert p.stat().st_size < 1200  # a few hundred bytes of YAML
    with pytest.raises(InputError) as e:
        load_pipeline(p)
    msg = str(e.value)
    assert msg.startswith(f"{p}:") and "alias" in msg and "1,000,000" in msg, msg
    assert server.n_requests == 0


def test_an_alias_bomb_on_the_command_line_is_one_line_and_writes_nothing(tmp_path, server):
    p = pipeline(tmp_path, server, bomb(10))
    r = synth("run", p, "--out", tmp_path / "out", timeout=60)  # today: hangs, fingerprinting
    assert r.returncode == 3
    assert "alias" in one_line(r)
    assert not (tmp_path / "out").exists() and server.n_requests == 0


def test_recursive_aliases_and_bombs_in_template_front_matter_are_refused(tmp_path):
    from synth.templates import load_template

    with pytest.raises(InputError, match="refers to a node that contains it") as e:
        load_pipeline(write(tmp_path / "r.yaml", "name: r\ngenerate: &g [*g]\n"))
    assert f"{tmp_path / 'r.yaml'}:2" in str(e.value)
    levels = "".join(f"l{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 9))
    t = write(tmp_path / "t.j2", "---\nid: x/y\ndescription: d\nversion: 1\nvariables: "
              "[prompt]\nl0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
              f"{levels}---\n{{{{ prompt }}}}\n")
    with pytest.raises(InputError, match="alias bomb") as e:
        load_template(t)
    assert str(e.value).startswith(f"{t}:")


def test_modest_aliases_still_work(tmp_path, server):
    stages = ("  - name: a\n    recipe: responses\n    input: prompts.jsonl\n"
              "    teachers:\n      - &t {teacher: openai:gpt-test, weight: 1}\n"
              "      - {<<: *t, teacher: openai:gpt-test2}\n")
    p = load_pipeline(pipeline(tmp_path, server, stages))
    assert [(r.teacher, r.weight) for r in p.generate[0].routes] == [
        ("openai:gpt-test", 1), ("openai:gpt-test2", 1)]


# ---------------------------------------------------------------------------- no litter


MISTAKES = {
    "missing input": ("  - {name: a, recipe: responses, input: nope.jsonl}\n", InputError,
                      "nope.jsonl: no such file"),
    "bad input line": ("  - {name: a, recipe: responses, input: bad.jsonl}\n", InputError,
                       "bad.jsonl:2: field 'messages[0].role'"),
    "missing template": ("  - {name: a, recipe: responses, input: prompts.jsonl, "
                         "template: gone.j2}\n", InputError, "gone.j2: no such template"),
    "template render": ("  - {name: a, recipe: responses, input: prompts.jsonl, "
                        "template: needs.j2}\n", InputError,
                        "needs.j2:5: field 'topic': required variable not given"),
    "licence": ("  - {name: a, recipe: responses, input: prompts.jsonl, "
                "teacher: 'openai:gpt-4o'}\n", LicenceDeniedError, "may not teach"),
}


@pytest.mark.parametrize("case", sorted(MISTAKES))
def test_a_mistake_in_an_input_template_or_licence_writes_nothing(tmp_path, server, case):
    stages, err, words = MISTAKES[case]
    write(tmp_path / "bad.jsonl", json.dumps({"prompt": "ok"}) + "\n" + json.dumps(
        {"messages": [{"role": "bot", "content": "hi"}]}) + "\n")
    write(tmp_path / "needs.j2", "---\nid: t/needs\ndescription: d\nversion: 1\n"
          "variables: [prompt, topic]\n---\n{{ topic }}: {{ prompt }}\n")
    p = pipeline(tmp_path, server, stages,
                 intent="competing" if case == "licence" else "research")
    out = tmp_path / "run"
    with pytest.raises(err) as e:
        run_pipeline(p, out=out, progress=False)
    assert words in str(e.value), str(e.value)
    assert not out.exists()  # no .lock, pipeline.yaml, manifest.json or stage folder
    assert server.n_requests == 0


@pytest.mark.parametrize("case", ["missing input", "template render", "licence"])
def test_estimate_makes_nothing_on_a_mistake_either(tmp_path, server, case):
    from synth.pipeline.estimate import estimate_pipeline

    stages, err, words = MISTAKES[case]
    write(tmp_path / "needs.j2", "---\nid: t/needs\ndescription: d\nversion: 1\n"
          "variables: [prompt, topic]\n---\n{{ topic }}: {{ prompt }}\n")
    p = pipeline(tmp_path, server, stages,
                 intent="competing" if case == "licence" else "research")
    with pytest.raises(err, match=words):
        estimate_pipeline(p, out=tmp_path / "run", dry_run=1)
    assert not (tmp_path / "run").exists() and server.n_requests == 0


def test_a_rerun_whose_generate_stages_are_unchanged_needs_no_api_key(tmp_path, server,
                                                                      monkeypatch):
    """The licence is checked up front, but a stage skipped as unchanged sends nothing, so
    retraining on a machine without the teacher's key still works."""
    p = pipeline(tmp_path, server, "  - {name: a, recipe: responses, input: prompts.jsonl}\n")
    p.write_text(p.read_text().replace("  concurrency: 2\n",
                                       "  concurrency: 2\n  api_key_env: SYNTH_TEST_KEY\n"))
    monkeypatch.setenv("SYNTH_TEST_KEY", "k")
    out = tmp_path / "run"
    run_pipeline(p, out=out, progress=False)
    monkeypatch.delenv("SYNTH_TEST_KEY")
    res = run_pipeline(p, out=out, progress=False, from_stage="dataset")
    assert res.ran == ["dataset"] and res.skipped == ["generate.a"]
    assert server.n_requests == len(PROMPTS)


def test_only_a_stage_whose_earlier_stages_never_ran_writes_nothing(tmp_path, server):
    from synth.errors import ConfigError

    p = pipeline(tmp_path, server, "  - {name: a, recipe: responses, input: prompts.jsonl}\n",
                 extra="curate: default\n")
    with pytest.raises(ConfigError, match="--only: stage generate.a has not run"):
        run_pipeline(p, out=tmp_path / "run", only="curate", progress=False)
    assert not (tmp_path / "run").exists()
    run_pipeline(p, out=tmp_path / "run", progress=False)  # the directory is still free


def test_a_mistake_on_the_command_line_writes_nothing_either(tmp_path, server):
    p = pipeline(tmp_path, server, MISTAKES["missing input"][0])
    r = synth("run", p, "--out", tmp_path / "run")
    assert r.returncode == 3 and "nope.jsonl: no such file" in one_line(r)
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------------------- templates


def test_a_template_that_includes_a_file_is_one_line(tmp_path, server):
    t = write(tmp_path / "inc.j2", "---\nid: t/inc\ndescription: d\nversion: 1\n"
              "variables: [prompt]\n---\n{{ prompt }}\n{% include \"/etc/passwd\" %}\n")
    p = pipeline(tmp_path, server, "  - {name: a, recipe: responses, input: prompts.jsonl, "
                 "template: inc.j2}\n")
    r = synth("run", p, "--out", tmp_path / "run")
    assert r.returncode == 3
    line = one_line(r)
    assert f"{t}:8: field 'body': {{% include %}} is not allowed" in line, line
    assert "root:" not in r.stderr + r.stdout  # the file was never read
    assert not (tmp_path / "run").exists() and server.n_requests == 0


@pytest.mark.parametrize("tag", ['{% import "x.j2" as x %}', '{% extends "x.j2" %}',
                                 '{% from "x.j2" import y %}'])
def test_no_template_reads_another_file(tmp_path, tag):
    from synth.templates import parse_template

    with pytest.raises(InputError, match="is not allowed") as e:
        parse_template("---\nid: t/x\ndescription: d\nversion: 1\nvariables: [prompt]\n---\n"
                       f"{{{{ prompt }}}}\n{tag}\n", path="x.j2")
    assert str(e.value).startswith("x.j2:8:")


def test_an_error_in_a_template_expression_is_an_input_error(tmp_path):
    from synth.templates import parse_template

    t = parse_template("---\nid: t/x\ndescription: d\nversion: 1\nvariables: [prompt]\n---\n"
                       "{{ prompt }}\n{{ 1 / 0 }}\n", path="x.j2")
    with pytest.raises(InputError, match="x.j2:8: field 'body': render failed: "
                                         "ZeroDivisionError"):
        t.render(prompt="hi")


def test_a_template_path_without_j2_is_relative_to_the_pipeline_file(tmp_path, server,
                                                                       monkeypatch):
    body = "---\nid: t/wrap\ndescription: d\nversion: 1\nvariables: [prompt]\n---\n{}\n"
    d = tmp_path / "project"
    write(d / "wrap.tpl", body.format("from the pipeline folder: {{ prompt }}"))
    write(tmp_path / "elsewhere" / "wrap.tpl", body.format("from the cwd: {{ prompt }}"))
    p = pipeline(d, server, "  - {name: a, recipe: responses, input: prompts.jsonl, "
                 "template: wrap.tpl}\n")
    monkeypatch.chdir(tmp_path / "elsewhere")
    run_pipeline(p, out=tmp_path / "run", progress=False)
    asked = [r["body"]["messages"][-1]["content"] for r in server.requests]
    assert len(asked) == len(PROMPTS)
    assert all(a.startswith("from the pipeline folder: ") for a in asked), asked
    # a shipped name is still a shipped template, and a missing file is named as such
    assert load_pipeline(write(d / "q.yaml", p.read_text().replace(
        "wrap.tpl", "responses/answer"))).generate[0].params.template == "responses/answer"
    with pytest.raises(InputError, match="no such template file"):
        run_pipeline(write(d / "q.yaml", p.read_text().replace("wrap.tpl", "gone.tpl")),
                     out=tmp_path / "run2", progress=False)
    assert not (tmp_path / "run2").exists()


def test_a_filter_set_without_yaml_is_found_beside_the_pipeline_file(tmp_path, server,
                                                                      monkeypatch):
    d = tmp_path / "project"
    write(d / "mine", "steps:\n  - exact_dedup\n")  # no suffix: a file here, not a name
    write(tmp_path / "elsewhere" / "mine", "steps: [nonsense\n")
    p = pipeline(d, server, "  - {name: a, recipe: responses, input: prompts.jsonl}\n",
                 extra="curate: mine\n")
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert load_pipeline(p).curate == {"filters": str(d / "mine")}


def test_curate_recipe_is_the_old_spelling_of_filters(tmp_path, server):
    stage = "  - {name: a, recipe: responses, input: prompts.jsonl}\n"

    def curate_line(line):
        return pipeline(tmp_path, server, stage, extra=f"curate: {line}\n")

    for line in ("default", "{filters: default}", "{recipe: default}"):
        assert load_pipeline(curate_line(line)).curate == {"filters": "default"}
    for line, field in (("{filters: nope}", "curate.filters"),
                        ("{recipe: nope}", "curate.recipe")):
        with pytest.raises(InputError, match="no such filter set") as e:
            load_pipeline(curate_line(line))
        assert (e.value.line, e.value.field) == (12, field)
    with pytest.raises(InputError, match="give filters or its old name recipe, not both"):
        load_pipeline(curate_line("{filters: default, recipe: default}"))
    # a run directory curated under the old spelling is up to date under the new one
    out = tmp_path / "run"
    assert "curate" in run_pipeline(curate_line("{recipe: default}"), out=out,
                                    progress=False).ran
    res = run_pipeline(curate_line("{filters: default}"), out=out, progress=False)
    assert res.ran == [] and "curate" in res.skipped


def test_a_topics_file_that_is_not_utf8_names_its_line(tmp_path):
    from synth.recipes.textbook import read_topics

    (tmp_path / "topics.txt").write_bytes("tides\nphotosynthesis\ncaf\xe9\n".encode("latin-1"))
    with pytest.raises(InputError, match=r"topics\.txt:3: not valid UTF-8 text: byte 0xe9"):
        read_topics(tmp_path / "topics.txt", tmp_path)
    (tmp_path / "t2.txt").write_bytes(b"\xef\xbb\xbftides\r\n# a note\n\nwaves\n")
    assert read_topics(tmp_path / "t2.txt", tmp_path) == ["tides", "waves"]


# ---------------------------------------------------------------------------- numbers


@pytest.mark.parametrize("weight", [".nan", ".inf", "-.inf", "-1"])
def test_a_weight_must_be_a_finite_number(tmp_path, server, weight):
    stages = ("  - name: a\n    recipe: responses\n    input: prompts.jsonl\n"
              "    teachers:\n"
              f"      - {{teacher: openai:gpt-test, weight: {weight}}}\n"
              "      - {teacher: openai:gpt-test2, weight: 1}\n")
    p = pipeline(tmp_path, server, stages)
    with pytest.raises(InputError) as e:
        load_pipeline(p)
    msg = str(e.value)
    assert f"{p}:14: field 'generate[0].teachers[0].weight': must be a finite number" in msg


def test_an_estimate_number_must_be_finite(tmp_path, server):
    p = pipeline(tmp_path, server, "  - {name: a, recipe: responses, input: prompts.jsonl}\n",
                 extra="estimate: {requests_per_day: .inf}\n")
    with pytest.raises(InputError, match="estimate.requests_per_day': must be a finite"):
        load_pipeline(p)


@pytest.mark.parametrize("where,key,line", [
    ("stage", "generate[0].max_tokens", 13),
    ("options", "options.max_tokens", 9),
    ("route", "generate[0].teachers[0].max_tokens", 14),
])
def test_a_token_budget_beyond_any_model_is_refused_naming_the_field(tmp_path, server, where,
                                                                      key, line):
    big = 100_000_000_000_000  # what `1e14` means, written as the integer YAML reads
    stage = "  - name: a\n    recipe: responses\n    input: prompts.jsonl\n"
    if where == "stage":
        stage += f"    max_tokens: {big}\n"
    elif where == "route":
        stage += f"    teachers:\n      - {{teacher: openai:gpt-test, max_tokens: {big}}}\n"
    p = pipeline(tmp_path, server, stage)
    if where == "options":
        p.write_text(p.read_text().replace("  concurrency: 2\n",
                                           f"  concurrency: 2\n  max_tokens: {big}\n"))
    with pytest.raises(InputError) as e:
        load_pipeline(p)
    msg = str(e.value)
    assert f"{p}:{line}: field '{key}'" in msg and "at most 1,000,000" in msg, msg
    r = synth("run", p, "--out", tmp_path / "run")
    assert r.returncode == 3 and key in one_line(r)
    assert not (tmp_path / "run").exists() and server.n_requests == 0


# ---------------------------------------------------------------------------- UTF-8


def test_an_eval_token_budget_beyond_any_model_is_refused(tmp_path):
    p = write(tmp_path / "e.yaml", "name: x\nteacher: openai:gpt-test\ngenerate:\n"
              "  - {name: a, recipe: responses, prompts: [hi]}\n"
              "train: {student: s, loss: sft}\neval:\n  max_new_tokens: 100000000000000\n")
    with pytest.raises(InputError, match=r"e.yaml:7: field 'eval.max_new_tokens': .* at most "
                                         "1,000,000"):
        load_pipeline(p)


def test_a_non_utf8_input_names_the_file_and_line(tmp_path, server):
    lines = [json.dumps({"id": "a", "prompt": "tea"}), json.dumps({"id": "b", "prompt": "x"}),
             json.dumps({"id": "c", "prompt": "café"}, ensure_ascii=False)]
    (tmp_path / "latin.jsonl").write_bytes(("\n".join(lines) + "\n").encode("latin-1"))
    p = pipeline(tmp_path, server, "  - {name: a, recipe: responses, input: latin.jsonl}\n")
    r = synth("run", p, "--out", tmp_path / "run")
    assert r.returncode == 3
    line = one_line(r)
    assert f"{tmp_path / 'latin.jsonl'}:3: not valid UTF-8 text: byte 0xe9" in line, line
    assert "save the file as UTF-8" in line
    assert not (tmp_path / "run").exists()


def test_utf16_is_named_and_a_utf8_byte_order_mark_is_read(tmp_path):
    from synth.inputs import read_prompts

    text = json.dumps({"id": "a", "prompt": "café"}, ensure_ascii=False) + "\n"
    (tmp_path / "w.jsonl").write_bytes(text.encode("utf-16"))
    with pytest.raises(InputError, match=r"w.jsonl:1: not valid UTF-8 text: the file is "
                                         "UTF-16"):
        read_prompts(tmp_path / "w.jsonl")
    (tmp_path / "b.jsonl").write_bytes(text.encode("utf-8-sig"))
    assert read_prompts(tmp_path / "b.jsonl")[0].messages[-1]["content"] == "café"


# ---------------------------------------------------------------------------- skipped rows


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    pytest.importorskip("transformers")
    from tests.tiny_models import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "m", seed=0)


def test_synth_train_says_which_rows_it_skipped(tmp_path, tiny):
    rows = []
    for i in range(8):
        words = "the quick brown fox " * (12 if i in (2, 5) else 1)
        rows.append({"id": f"r{i}", "prompt_id": f"p{i}", "status": "ok",
                     "messages": [{"role": "user", "content": f"repeat {words}"}],
                     "response": words.strip()})
    rows[7]["status"] = "error"
    data = write(tmp_path / "rows.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    r = synth("train", "--data", data, "--student", tiny, "--out", tmp_path / "s",
              "--max-len", "48", "--max-steps", "1", "--batch-size", "2", timeout=300)
    assert r.returncode == 0, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert "skipped 3 rows (status=error: 1, longer than max_len 48: 2)" in last, r.stderr


def test_synth_run_says_which_rows_its_train_stage_skipped(tmp_path, server, tiny):
    long = " ".join(["tea"] * 60)
    write(tmp_path / "mixed.jsonl", "".join(
        json.dumps({"id": f"m{i}", "prompt": long if i % 3 == 0 else f"cake {i}"}) + "\n"
        for i in range(9)))
    p = pipeline(tmp_path, server, "  - {name: a, recipe: responses, input: mixed.jsonl}\n",
                 extra=f"train: {{student: '{tiny}', loss: sft, max_len: 64, max_steps: 1, "
                       "batch_size: 2}\n")
    r = synth("run", p, "--out", tmp_path / "run", "--no-progress", timeout=300)
    assert r.returncode == 0, r.stderr
    train = [ln for ln in r.stderr.splitlines() if ln.startswith("✔ train:")]
    assert len(train) == 1 and "skipped 3 rows (longer than max_len 64: 3)" in train[0], \
        r.stderr


# ---------------------------------------------------------------------------- outside files


def test_an_input_outside_the_pipeline_folder_is_read_and_named(tmp_path, server, caplog,
                                                                 monkeypatch):
    d = tmp_path / "project"
    shared = write(tmp_path / "shared" / "prompts.jsonl",
                   "".join(json.dumps(x) + "\n" for x in PROMPTS[:2]))
    monkeypatch.chdir(tmp_path / "shared")  # relative to the pipeline file, never the cwd
    for given in ("../shared/prompts.jsonl", str(shared)):
        p = pipeline(d, server, f"  - {{name: a, recipe: responses, input: '{given}'}}\n")
        out = tmp_path / f"run{len(given)}"
        with caplog.at_level(logging.WARNING, logger="synth"):
            caplog.clear()
            run_pipeline(p, out=out, progress=False)
        assert pq.read_table(out / "traces.parquet").num_rows == 2
        named = [r.getMessage() for r in caplog.records if "outside" in r.getMessage()]
        assert named == [f"{p}:10: field 'generate[0].input': reads {shared}, outside the "
                         "pipeline file's folder"], named
    # inside the folder: nothing to say
    p = pipeline(d, server, "  - {name: a, recipe: responses, input: prompts.jsonl}\n")
    with caplog.at_level(logging.WARNING, logger="synth"):
        caplog.clear()
        run_pipeline(p, out=tmp_path / "inside", progress=False)
    assert not [r for r in caplog.records if "outside" in r.getMessage()]


def test_every_yaml_reader_refuses_a_bomb(tmp_path):
    """Price tables, licence files and filter sets share the one loader."""
    from synth.curate.filterset import load_filter_set
    from synth.licences import load_registry
    from synth.teachers.pricing import load_prices

    levels = "".join(f"l{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 9))
    f = write(tmp_path / "b.yaml", "l0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, "
              f"lol]\n{levels}")
    for load in (load_filter_set, load_registry, load_prices):
        with pytest.raises(UserError, match="alias bomb"):
            load(f)


def test_a_bomb_in_a_run_directory_or_a_dataset_card_is_refused(tmp_path):
    """A run directory or a dataset card may come from anyone: reading which rows a run
    trains on, or exporting with its card, parses their YAML through the same loader."""
    from synth import rows as R
    from synth.dataset.export import export_run
    from tests.test_export import many, write_run

    levels = "".join(f"l{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 9))
    head = f"l0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n{levels}"
    run = tmp_path / "run"
    run.mkdir()
    write(run / "pipeline.yaml", head)
    write(run / "manifest.json", json.dumps({"pipeline": "x", "stages": {}}))
    with pytest.raises(InputError, match="alias bomb"):
        R.locate(run)
    src = write_run(tmp_path / "src", many(2), card=f"---\n{head}---\n# card\n")
    with pytest.raises(InputError, match=r"README\.md:\d+: .*alias bomb"):
        export_run(src, format="chat-jsonl", out=tmp_path / "exp")
    assert not (tmp_path / "exp").exists()
