"""A pipeline's after-training sections: ``quantise`` (the eval stage writes the student's GGUF
files and scores them beside it) and ``route`` (the eval stage measures the student → teacher
cascade; the report draws it; ``synth estimate`` prices the routed pair)."""

from __future__ import annotations

import json

import pytest
import yaml

from synth.errors import ConfigError, InputError
from synth.pipeline import load_pipeline
from tests.test_pipeline import quickstart_for, run, write

HEAD = ("name: x\nteacher: openai:gpt-test\ngenerate:\n  - name: a\n    recipe: responses\n"
        "    prompts: [hi]\n")
TRAIN = "train: {student: s, loss: sft}\n"


def tiny_gguf(path):
    """A valid GGUF file (a header and one key, no tensors): what eval.compare may name."""
    import gguf

    w = gguf.GGUFWriter(str(path), "llama")
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@pytest.mark.parametrize("body,line,key,words", [
    (HEAD + TRAIN + "eval: {}\nquantise: [q8_0, q3]\n", 9, "quantise[1]", "not one of"),
    (HEAD + TRAIN + "quantise: [q8_0]\n", 8, "quantise", "add an eval section"),
    (HEAD + TRAIN + "eval: {}\nquantise: [q8_0, q8_0]\n", 9, "quantise", "named twice"),
    (HEAD + TRAIN + "eval: {compare: [a.gguf]}\nquantise: q8_0\n", 8, "eval.compare",
     "come from quantise"),
    (HEAD + TRAIN + "route: {target: 0.9}\n", 8, "route", "add an eval section"),
    (HEAD + TRAIN + "eval: {}\nroute:\n  threshold: 2\n", 10, "route.threshold",
     "unknown key"),
    (HEAD + TRAIN + "eval: {cascade_target: 0.8}\nroute: {target: 0.9}\n", 8,
     "eval.cascade_target", "give it once"),
    (HEAD + TRAIN + "eval: {}\nroute: {target: 1.5}\n", 9, "route.target",
     "less than or equal to 1"),
    (HEAD + TRAIN + "eval: {}\nroute: fast\n", 9, "route", "must be a mapping"),
    (HEAD + "estimate: {teacher_share: 1.5}\n", 7, "estimate.teacher_share", "0 to 1"),
])
def test_mistakes_name_file_line_and_key(tmp_path, body, line, key, words):
    tiny_gguf(tmp_path / "a.gguf")
    p = write(tmp_path / "bad.yaml", body)
    with pytest.raises((InputError, ConfigError)) as e:
        load_pipeline(p)
    msg = str(e.value)
    assert key in msg and words in msg, msg
    assert f"{p}:{line}" in msg, msg


def test_route_sets_the_cascade_and_quantise_the_files(tmp_path):
    p = write(tmp_path / "ok.yaml", HEAD + TRAIN + "eval: {}\nquantise: q4_0\nroute:\n"
              "  target: 0.9\n  price: openai:gpt-4.1-mini\n  student_usd_per_hour: 0.2\n")
    pl = load_pipeline(p)
    assert pl.quantise == ("q4_0",)
    assert {k: pl.eval[k] for k in ("cascade", "cascade_target", "cascade_price",
                                     "student_usd_per_hour")} == \
        {"cascade": True, "cascade_target": 0.9, "cascade_price": "openai:gpt-4.1-mini",
         "student_usd_per_hour": 0.2}
    assert load_pipeline(write(tmp_path / "on.yaml", HEAD + TRAIN + "eval: {}\nroute: true\n")
                         ).eval["cascade"] is True


def test_q4_k_m_without_llama_quantize_is_refused_at_load(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no llama-quantize anywhere
    p = write(tmp_path / "k.yaml", HEAD + TRAIN + "eval: {}\nquantise: [q4_k_m]\n")
    with pytest.raises(InputError, match=r"quantise\[0\].*llama-quantize on PATH"):
        load_pipeline(p)


def test_quickstart_with_quantise_and_route_on_a_tiny_model(tmp_path):
    """The quickstart pipeline (quantise + route sections as shipped) on a tiny byte-level
    BPE model: the eval stage writes and scores each GGUF, measures the cascade, the report
    shows both, a rerun skips everything, and the estimate prices the routed pair with the
    share eval measured."""
    pytest.importorskip("transformers")
    pytest.importorskip("gguf")
    from synth.pipeline import estimate_pipeline
    from tests.test_export_gguf import build_student

    teacher = build_student(tmp_path / "teacher")
    p = quickstart_for(tmp_path, f"local:{teacher}", tiny=True, gguf=True)
    spec = yaml.safe_load(p.read_text())
    assert spec["quantise"] == ["q8_0", "q4_0"] and spec["route"]  # as shipped
    out = tmp_path / "run"
    res = run(p, out)
    assert res.ran[-1] == "eval"
    ev = json.loads((out / "eval" / "eval.json").read_text())
    rows = ev["variants"]["rows"]
    assert [r["format"] for r in rows] == ["fp32", "Q8_0", "Q4_0"]
    assert all(r["n"] == ev["task"]["n"] for r in rows)
    for q in ("q8_0", "q4_0"):
        assert (out / "eval" / f"student.{q}.gguf").stat().st_size == \
            next(r["bytes"] for r in rows if r["name"] == f"student.{q}.gguf")
    cas = ev["cascade"]
    assert cas["priced_as"] == "openai:gpt-4.1-mini" and cas["dev"]["n"] + \
        (cas["test"]["n"] if cas["test"] else 0) <= ev["task"]["n"]
    html = (out / "report.html").read_text()
    assert "variants-table" in html and "cascade-table" in html
    assert html.count("data:image/png;base64") >= 3  # training, variants, cascade
    manifest = json.loads((out / "manifest.json").read_text())
    assert "eval/student.q8_0.gguf" in manifest["stages"]["eval"]["outputs"]
    again = run(p, out)
    assert again.ran == []
    # the random teacher scores 0: no threshold keeps 95% of nothing, nothing to price
    assert cas["test"] is None
    rt = estimate_pipeline(p, out=out, dry_run=0)["routing"]
    assert rt["teacher_share"] == 0.0 and "not measured" in rt["source"]
    # answers with a signal (the student unsure and wrong on every third word): the eval
    # stage, run again, chooses a threshold and the estimate prices what it measured
    from synth.train import evaluation as E
    from tests.test_after_training_review import _stub_answers

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(E, "answer_prompts", _stub_answers)
        assert run(p, out, only="eval").ran == ["eval"]
    cas = json.loads((out / "eval" / "eval.json").read_text())["cascade"]
    assert cas["test"]["n"] > 0 and 0 < cas["test"]["teacher_share"] < 1
    est = estimate_pipeline(p, out=out, dry_run=0)
    rt, inputs = est["routing"], est["break_even"]["inputs"]
    assert rt["teacher_share"] == inputs["teacher_share"] == cas["test"]["teacher_share"]
    # what eval measured replaces the assumptions: the teacher at route.price per request,
    # the student's pace, the student's hourly cost from route
    assert inputs["teacher_cost_per_request"] == cas["teacher_usd_per_request"] > 0
    assert inputs["student_requests_per_hour"] == \
        round(3600 / cas["student_s_per_request"], 1)
    assert inputs["student_cost_per_hour"] == 0.10
    assert not {"student_requests_per_hour", "student_cost_per_hour"} & set(est["assumed"])


def test_break_even_pays_the_routed_share_of_the_teacher():
    from synth.pipeline.estimate import break_even

    kw = dict(distil_cost_usd=100.0, teacher_cost_per_request=0.01, requests_per_day=1000,
              student_cost_per_hour=0.1, student_requests_per_hour=1800)
    alone, routed = break_even(**kw), break_even(**kw, teacher_share=0.2)
    # the teacher's day is 1,000 × $0.01 = $10; routed, $2 of it is still paid
    assert routed["routed_teacher_per_day_usd"] == pytest.approx(2.0)
    ppu = routed["student_per_day_usd"]["pay_per_use"]
    assert ppu == pytest.approx(alone["student_per_day_usd"]["pay_per_use"] + 2.0, abs=1e-6)
    assert routed["break_even_days"]["pay_per_use"] == pytest.approx(100 / (10 - ppu),
                                                                     rel=1e-4)
    assert any("routed" in a for a in routed["assumptions"])
    # the teacher sees everything: the student only adds cost
    assert break_even(**kw, teacher_share=1.0)["break_even_days"]["pay_per_use"] == "never"
    with pytest.raises(ValueError, match="teacher_share"):
        break_even(**kw, teacher_share=1.5)


def test_eval_compare_files_are_relative_to_the_pipeline_file(tmp_path, monkeypatch):
    (tmp_path / "sub").mkdir()
    tiny_gguf(tmp_path / "sub" / "other.gguf")
    p = write(tmp_path / "sub" / "c.yaml", HEAD + TRAIN + "eval: {compare: [other.gguf]}\n")
    monkeypatch.chdir(tmp_path)  # not the pipeline's folder
    assert load_pipeline(p).eval["compare"] == [str(tmp_path / "sub" / "other.gguf")]
    bad = write(tmp_path / "sub" / "d.yaml", HEAD + TRAIN + "eval:\n  compare: [gone.gguf]\n")
    with pytest.raises(InputError, match=r"d\.yaml:9.*eval\.compare.*gone\.gguf: not a "):
        load_pipeline(bad)


def test_exportable_reads_a_gguf_by_its_metadata_or_its_converted_copy(tmp_path,
                                                                        monkeypatch):
    """check_exportable on a GGUF synth has not converted reads its metadata; once loaded
    (converted), the copy's config and tokenizer are checked instead: the same verdict."""
    from synth.errors import InputError as Bad
    from synth.models import load_model
    from synth.train.gguf_export import check_exportable
    from tests.tiny_models import build_tiny_gguf

    with pytest.raises(Bad, match="tokenizer None"):
        check_exportable(str(tiny_gguf(tmp_path / "bare.gguf")))  # llama, no tokenizer
    good = build_tiny_gguf(tmp_path / "bpe" / "tiny.gguf")
    check_exportable(f"local:{good}")  # by its metadata: llama, gpt2
    load_model(str(good))  # its converted copy now exists: the GGUF is not parsed again
    from synth.train import gguf_export

    monkeypatch.setattr(gguf_export, "read_gguf", lambda p: 1 / 0)
    check_exportable(f"local:{good}")
