"""Every command that writes a directory: a new or empty ``--out``, or exactly its own
earlier output; never a file it did not write, never inside another command's output.

Regressions: ``synth export --format hf --out DIR`` deleted a ``train/keep.txt`` it did not
write and replaced the folder's ``README.md``; ``--out RUN/student`` overwrote a trained
student's model card, and the next ``synth run`` retrained the student and deleted the
export. Each refusal is one line, a non-zero exit, and nothing touched."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import pytest

import synth
from synth.curate import curate
from synth.dataset.export import export_run
from synth.dataset.merge import merge_runs
from synth.errors import ConfigError
from synth.pipeline import run_pipeline
from tests.conftest import ROOT
from tests.test_export import CARD, many, write_run
from tests.test_pipeline import pipeline_file

PROMPTS = [synth.Prompt(id=f"h{i}", messages=[{"role": "user", "content": f"hi {i}"}])
           for i in range(2)]


def tree(d):
    """Every file below ``d`` and its hash: what "nothing touched" compares."""
    return {p.relative_to(d).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(d.rglob("*")) if p.is_file()}


def cli(*args):
    return subprocess.run([sys.executable, "-m", "synth", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def one_line_error(p, code=2):
    assert p.returncode == code, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
    return lines[0]


@pytest.fixture
def src(tmp_path):
    """A generate-style run: 8 prompts, 2 samples each, with its dataset card."""
    return write_run(tmp_path / "src", many(8))


def yours(d):
    """A folder of the user's: a README and a data file no synth command wrote."""
    d.mkdir(parents=True, exist_ok=True)
    (d / "README.md").write_text("# my notes\n")
    (d / "data.csv").write_text("a,b\n1,2\n")
    return d


# ----------------------------------------------------------------------------- export

def test_export_into_a_folder_of_yours_is_refused_and_nothing_is_touched(tmp_path, src):
    out = yours(tmp_path / "mine")
    before = tree(out)
    line = one_line_error(cli("export", src, "--format", "hf", "--out", out))
    assert "is not empty" in line and "never deletes or replaces" in line
    assert tree(out) == before


def test_export_rerun_refuses_a_file_put_into_its_folders(tmp_path, src):
    out = tmp_path / "hf"
    export_run(src, format="hf", out=out, split=0.5)
    (out / "train" / "keep.txt").write_text("mine")
    before = tree(out)
    with pytest.raises(ConfigError, match=r"holds train/keep\.txt, which an earlier `synth "
                                          r"export` did not write"):
        export_run(src, format="hf", out=out)
    assert tree(out) == before
    # without it, the rerun replaces exactly the earlier export (its test/ goes), and a
    # file beside it that is none of an export's names stays
    (out / "train" / "keep.txt").unlink()
    (out / "notes.txt").write_text("mine")
    export_run(src, format="hf", out=out)
    assert not (out / "test").exists() and (out / "notes.txt").read_text() == "mine"
    files = json.loads((out / "export.json").read_text())["files"]
    assert set(files) == set(tree(out)) - {"notes.txt"}  # every file it wrote, recorded


def test_export_rerun_never_replaces_a_readme_it_did_not_write(tmp_path):
    bare = write_run(tmp_path / "bare", many(4), card=None)  # no card: the export has none
    out = tmp_path / "exp"
    export_run(bare, format="chat-jsonl", out=out)
    (out / "README.md").write_text("# mine\n")
    carded = write_run(tmp_path / "carded", many(4), card=CARD)
    with pytest.raises(ConfigError, match="holds README.md"):
        export_run(carded, format="chat-jsonl", out=out)
    assert (out / "README.md").read_text() == "# mine\n"


# ------------------------------------------------------- inside another command's output

def test_no_command_writes_inside_a_run_directory(server, tmp_path, src):
    """The issue's drill: ``export --out RUN/student``; and the same for every command."""
    run = tmp_path / "run"
    run_pipeline(pipeline_file(tmp_path, server), out=run, progress=False)
    before = tree(run)
    for args in (["export", run, "--format", "chat-jsonl", "--out", run / "student"],
                 ["export", src, "--format", "hf", "--out", run / "curate" / "hf"],
                 ["curate", src, "--recipe", "default", "--out", run / "mine"],
                 ["merge", src, "--intent", "research", "--accept-terms", "unknown",
                  "--out", run / "merged"],
                 ["run", tmp_path / "p.yaml", "--out", run / "again"]):
        line = one_line_error(cli(*args))
        assert f"is inside {run}, the output of `synth run`" in line, args
    with pytest.raises(ConfigError, match="is inside .*`synth run`"):
        synth.generate(prompts=PROMPTS[:1], teacher="openai:gpt-test", out=run / "generate" / "x",
                       base_url=f"{server.url}/v1", intent="research", progress=False)
    with pytest.raises(ConfigError, match="is inside .*`synth run`"):
        synth.train(data=src, student="from-teacher:layers=1", teacher="t", loss="sft",
                    out=run / "student" / "more")
    with pytest.raises(ConfigError, match="is inside .*`synth run`"):
        synth.evaluate(student="s", teacher="t", data=src, out=run / "eval" / "more")
    assert tree(run) == before


def test_nor_inside_an_export_or_a_curation(tmp_path, src):
    exp = tmp_path / "exp"
    export_run(src, format="chat-jsonl", out=exp)
    with pytest.raises(ConfigError, match="is inside .*the output of `synth export`"):
        export_run(src, format="hf", out=exp / "hf")
    cur = tmp_path / "cur"
    curate(src, filters="default", out=cur)
    with pytest.raises(ConfigError, match="is inside .*the output of `synth curate`"):
        curate(src, filters="default", out=cur / "plots")


# ------------------------------------------------------------------ a folder of yours

def test_every_command_refuses_a_folder_of_yours(server, tmp_path, src):
    out = yours(tmp_path / "mine")
    before = tree(out)
    calls = {
        "synth curate": lambda: curate(src, filters="default", out=out),
        "synth merge": lambda: merge_runs([src], out=out, intent="research",
                                          accept_terms=("unknown",)),
        "synth export": lambda: export_run(src, format="chat-jsonl", out=out),
        "synth generate": lambda: synth.generate(
            prompts=PROMPTS[:1], teacher="openai:gpt-test", out=out,
            base_url=f"{server.url}/v1", intent="research", progress=False),
        "synth train": lambda: synth.train(data=src, student="from-teacher:layers=1",
                                           teacher="t", loss="sft", out=out),
        "synth eval": lambda: synth.evaluate(student="s", teacher="t", data=src, out=out),
        "synth run": lambda: run_pipeline(pipeline_file(tmp_path, server), out=out,
                                          progress=False),
    }
    for command, call in calls.items():
        with pytest.raises(ConfigError, match=f"is not empty .*holds no earlier output of "
                                              f"`{command}`"):
            call()
        assert tree(out) == before, command


def test_a_run_directory_is_not_a_curation(server, tmp_path, src):
    """A folder that holds another command's output says whose it is."""
    gen = tmp_path / "gen"
    synth.generate(prompts=PROMPTS, teacher="openai:gpt-test", out=gen,
                   base_url=f"{server.url}/v1", intent="research", progress=False)
    with pytest.raises(ConfigError, match="holds an output of `synth generate`"):
        curate(src, filters="default", out=gen)


# ------------------------------------------------------------- reruns into their own

def test_reruns_into_their_own_output_work(server, tmp_path, src):
    cur = tmp_path / "cur"
    curate(src, filters="default", out=cur)
    (cur / "notes.txt").write_text("mine")  # none of a curation's names: left alone
    curate(src, filters="default", out=cur)
    assert (cur / "notes.txt").read_text() == "mine"
    (cur / "plots" / "mine.png").write_bytes(b"x")  # its plots/ is replaced whole: refused
    with pytest.raises(ConfigError, match=r"holds plots/mine\.png"):
        curate(src, filters="default", out=cur)
    merged = tmp_path / "merged"
    for _ in range(2):
        merge_runs([src], out=merged, intent="research", accept_terms=("unknown",))
    assert json.loads((merged / "merge.json").read_text())["rows"] == 16
    gen = tmp_path / "gen"
    for _ in range(2):
        res = synth.generate(prompts=PROMPTS[:1], teacher="openai:gpt-test", out=gen,
                             base_url=f"{server.url}/v1", intent="research", progress=False)
    assert res.summary["from_cache"] == 1


def test_an_interrupted_generate_resumes_but_never_over_your_readme(server, tmp_path):
    gen = tmp_path / "gen"
    synth.generate(prompts=PROMPTS[:1], teacher="openai:gpt-test", out=gen,
                   base_url=f"{server.url}/v1", intent="research", progress=False)
    for name in ("run.json", "traces.parquet", "README.md"):  # as if killed before the end
        (gen / name).unlink()
    (gen / "README.md").write_text("# mine\n")
    with pytest.raises(ConfigError, match="holds README.md"):
        synth.generate(prompts=PROMPTS[:1], teacher="openai:gpt-test", out=gen,
                       base_url=f"{server.url}/v1", intent="research", progress=False)
    (gen / "README.md").unlink()
    res = synth.generate(prompts=PROMPTS[:1], teacher="openai:gpt-test", out=gen,
                         base_url=f"{server.url}/v1", intent="research", progress=False)
    assert res.summary["from_cache"] == 1


def test_eval_writes_beside_a_student_never_over_its_files(tmp_path, monkeypatch):
    pytest.importorskip("transformers")
    import shutil

    from synth.train import evaluation as E
    from tests.test_eval import held_rows
    from tests.tiny_models import build_tiny_model

    tiny = build_tiny_model(tmp_path / "tiny")
    data = held_rows(tmp_path / "held.jsonl")
    monkeypatch.setattr(E, "answer_prompts", lambda spec, prompts, **kw: (
        [E.Answer("The answer is 4.", "The answer is 4.", "stop") for _ in prompts],
        {"gen_tokens": 1, "gen_s": 1.0, "gen_tokens_per_s": 1.0}))
    student = tmp_path / "student"
    shutil.copytree(tiny, student)
    (student / "train.json").write_text(json.dumps({"student": "x", "loss": "kl"}))
    kw = dict(teacher=str(tiny), data=data, max_new_tokens=8, progress=False)
    (student / "answers.jsonl").write_text("mine\n")
    with pytest.raises(ConfigError, match=r"\(the student's folder\): holds answers\.jsonl"):
        E.evaluate(student=str(student), **kw)
    (student / "answers.jsonl").unlink()
    model = tree(student)
    for _ in range(2):  # by default beside the student; a rerun replaces its own
        E.evaluate(student=str(student), **kw)
    after = tree(student)
    assert {k: after[k] for k in model} == model
    assert set(after) - set(model) == {"eval.json", "answers.jsonl"}
    with pytest.raises(ConfigError, match="--out: needed when --student"):
        E.evaluate(student="from-teacher:layers=1", **kw)


# ------------------------------------------------------- a run's own stage folders

def test_a_rerun_never_deletes_a_file_put_into_a_stage_folder(server, tmp_path):
    p = pipeline_file(tmp_path, server)
    run = tmp_path / "run"
    run_pipeline(p, out=run, progress=False)
    (run / "curate" / "plots" / "mine.png").write_bytes(b"mine")
    before = tree(run)
    with pytest.raises(ConfigError, match=r"holds .*curate/plots/mine\.png, which `synth run` "
                                          r"did not write \(its curate stage"):
        run_pipeline(p, out=run, progress=False, from_stage="curate")
    assert tree(run) == before
    (run / "curate" / "plots" / "mine.png").unlink()
    res = run_pipeline(p, out=run, progress=False, from_stage="curate")
    assert res.ran == ["curate"]


def test_an_estimate_killed_mid_dry_run_is_resumed_by_the_run(server, tmp_path):
    from synth.pipeline.estimate import estimate_pipeline

    p = pipeline_file(tmp_path, server)
    run = tmp_path / "run"
    estimate_pipeline(p, out=run, dry_run=2)
    (run / "estimate.json").unlink()  # as if killed while its dry run asked: caches only
    n = server.n_requests
    res = run_pipeline(p, out=run, progress=False)
    assert "generate.answers" in res.ran and server.n_requests - n == 6 - 2  # none paid twice


def test_estimate_refuses_another_pipelines_run(server, tmp_path):
    from synth.pipeline.estimate import estimate_pipeline

    p = pipeline_file(tmp_path, server)
    run = tmp_path / "run"
    run_pipeline(p, out=run, progress=False)
    other = tmp_path / "q.yaml"
    other.write_text(p.read_text().replace("name: test-run", "name: other"))
    before = tree(run)
    with pytest.raises(ConfigError, match="holds the run of pipeline 'test-run'"):
        estimate_pipeline(other, out=run, dry_run=1)
    assert tree(run) == before


# ------------------------------------------------- names alone never make a folder synth's

def test_files_that_only_share_synths_names_are_yours(server, tmp_path, src):
    """A project folder with its own estimate.json, cache.sqlite, train_log.jsonl and
    checkpoints/: outputs below it are fine, and it is not taken for an unfinished run."""
    import sqlite3

    proj = yours(tmp_path / "proj")
    (proj / "estimate.json").write_text('{"my": 1}')
    (proj / "train_log.jsonl").write_text('{"epoch": 1}\n')
    (proj / "checkpoints" / "step-1").mkdir(parents=True)
    (proj / "checkpoints" / "step-1" / "state.json").write_text('{"mine": true}')
    with sqlite3.connect(proj / "cache.sqlite") as db:
        db.execute("CREATE TABLE notes (x)")
    export_run(src, format="chat-jsonl", out=proj / "exports" / "x")
    before = tree(proj)
    for call in (lambda: run_pipeline(pipeline_file(tmp_path, server), out=proj,
                                      progress=False),
                 lambda: synth.generate(prompts=PROMPTS[:1], teacher="openai:gpt-test",
                                        out=proj, base_url=f"{server.url}/v1",
                                        intent="research", progress=False),
                 lambda: synth.train(data=src, student="from-teacher:layers=1", teacher="t",
                                     loss="sft", out=proj, resume=True)):
        with pytest.raises(ConfigError, match="is not empty .*holds no earlier output"):
            call()
    assert tree(proj) == before


def test_a_lock_file_is_never_followed_or_truncated(tmp_path, src):
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me")
    out = tmp_path / "cur"
    out.mkdir()
    (out / ".lock").symlink_to(precious)
    with pytest.raises(synth.errors.OutputError, match="cannot create the lock file"):
        curate(src, filters="default", out=out)
    assert precious.read_text() == "keep me"


def test_eval_by_default_inside_a_run_says_to_pass_out(server, tmp_path, src):
    run = tmp_path / "run"
    run_pipeline(pipeline_file(tmp_path, server), out=run, progress=False)
    student = run / "student"
    student.mkdir()
    (student / "train.json").write_text(json.dumps({"student": "x", "loss": "kl"}))
    line = one_line_error(cli("eval", "--student", student, "--teacher", "t", "--data", src))
    assert "(the student's folder): is inside" in line and "pass --out" in line


def test_holding_a_directory_again_is_a_no_op_but_another_thread_is_refused(tmp_path):
    """A run's own dataset merge takes the lock the run holds; a second writer does not."""
    import threading

    from synth.io import exclusive_dir

    errors = []

    def other():
        try:
            with exclusive_dir(tmp_path):
                pass
        except ConfigError as e:
            errors.append(str(e))

    with exclusive_dir(tmp_path):
        with exclusive_dir(tmp_path):  # the same call chain: already held
            t = threading.Thread(target=other)
            t.start()
            t.join()
    assert len(errors) == 1 and "another synth run is using this directory" in errors[0]
    with exclusive_dir(tmp_path):  # released: free again
        pass


def test_a_failed_merge_leaves_nothing_or_the_earlier_merge(tmp_path, src, monkeypatch):
    import synth.io as io

    real = io.write_atomic

    def disk_full(path, data):
        if path.name == "README.md":
            raise synth.errors.OutputError("cannot write: No space left on device",
                                           path=str(path))
        return real(path, data)

    kw = dict(intent="research", accept_terms=("unknown",))
    monkeypatch.setattr(io, "write_atomic", disk_full)
    with pytest.raises(synth.errors.OutputError):
        merge_runs([src], out=tmp_path / "new", **kw)
    assert not (tmp_path / "new").exists()  # nothing behind, not even .lock
    monkeypatch.setattr(io, "write_atomic", real)
    merge_runs([src], out=tmp_path / "m", **kw)
    before = tree(tmp_path / "m")
    monkeypatch.setattr(io, "write_atomic", disk_full)
    with pytest.raises(synth.errors.OutputError):
        merge_runs([src], out=tmp_path / "m", **kw)
    assert tree(tmp_path / "m") == before  # the earlier merge, whole
