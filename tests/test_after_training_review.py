"""Regressions from an adversarial review of `synth eval --compare`, the pipeline's
`quantise` / `route` sections and the routed break-even: each test was written against the
code before its fix, failed there for the reason its docstring gives (and its name says),
and passes since."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from synth.errors import ConfigError, InputError
from synth.pipeline import load_pipeline
from tests.test_pipeline import quickstart_for, run, write

pytest.importorskip("transformers")
pytest.importorskip("gguf")

HEAD = ("name: x\nteacher: openai:gpt-test\ngenerate:\n  - name: a\n    recipe: responses\n"
        "    prompts: [hi]\n")
TRAIN = "train: {student: s, loss: sft}\n"


# ---------------------------------------------------------------------------- helpers


def _stub_answers(spec, prompts, *, confidence=False, **kw):
    """Stands in for synth.train.evaluation.answer_prompts on the quickstart's first-letter
    prompts (ids "fl-<word>"): the teacher and every GGUF are right on every word; the
    student is wrong, and unsure, on every third word."""
    from synth.train.evaluation import Answer

    out = []
    for i, p in enumerate(prompts):
        letter = p.id.split("fl-", 1)[-1][:1].upper() if "fl-" in p.id else "X"
        unsure = i % 3 == 0 and not spec.endswith(".gguf") and "teacher" not in spec
        text = "Q" if unsure and letter != "Q" else letter
        conf = (-5.0 if unsure else -0.1) if confidence else None
        out.append(Answer(text, text, "stop", conf, 5, 1))
    return out, {"gen_tokens": len(prompts), "gen_s": 0.5,
                 "gen_tokens_per_s": 2.0 * len(prompts)}


def _set(p: Path, **changes) -> None:
    spec = yaml.safe_load(p.read_text())
    for k, v in changes.items():
        if v is None:
            spec.pop(k, None)
        else:
            spec[k] = v
    p.write_text(yaml.safe_dump(spec, sort_keys=False))


@pytest.fixture(scope="module")
def routed_run(tmp_path_factory):
    """The quickstart (quantise + route as shipped) on a tiny byte-level BPE teacher, run
    once, with stand-in answers at the eval so the cascade picks a threshold and measures
    the teacher's share on the test half."""
    from synth.train import evaluation as E
    from tests.test_export_gguf import build_student

    d = tmp_path_factory.mktemp("routed")
    teacher = build_student(d / "teacher")
    p = quickstart_for(d, f"local:{teacher}", tiny=True, gguf=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(E, "answer_prompts", _stub_answers)
        run(p, d / "run")
    ev = json.loads((d / "run" / "eval" / "eval.json").read_text())
    assert ev["cascade"]["test"] is not None  # a measured share to price
    return d


@pytest.fixture
def routed(routed_run, tmp_path):
    """A private copy of the routed run (pipeline file, data and run directory)."""
    d = tmp_path / "copy"
    shutil.copytree(routed_run, d, symlinks=True)
    return d, d / "quickstart.yaml", d / "run"


# ------------------------------------------------------------- synth estimate, routed


@pytest.mark.parametrize("share", [1.5, True])
def test_estimate_damaged_eval_json_share_is_not_a_traceback(routed, share):
    """_routed_share (synth/pipeline/estimate/__init__.py) takes any int/float (bool
    included) as cascade.test.teacher_share and hands it to break_even, which raises a bare
    ValueError: `synth estimate` dies with a traceback on a damaged eval.json instead of
    saying "not measured" or naming the file."""
    from synth.pipeline.estimate import estimate_pipeline

    d, p, out = routed
    f = out / "eval" / "eval.json"
    ev = json.loads(f.read_text())
    ev["cascade"]["test"]["teacher_share"] = share
    f.write_text(json.dumps(ev, indent=1))
    try:
        est = estimate_pipeline(p, out=out, dry_run=0)
    except (InputError, ConfigError) as e:  # a named, one-line refusal is fine
        assert "eval.json" in str(e)
    else:
        assert 0 <= est["routing"]["teacher_share"] <= 1


def test_estimate_loses_the_measured_share_when_eval_json_holds_infinity(routed):
    """eval writes eval.json with the stdlib json, which spells a non-finite cost Infinity
    (route.student_usd_per_hour: .inf is now refused at load, but a price entry can still
    make one); _routed_share read it with orjson, which refuses Infinity: the whole file was
    dropped and the break-even said "not measured yet" although eval measured a share."""
    from synth.pipeline.estimate import estimate_pipeline

    d, p, out = routed
    f = out / "eval" / "eval.json"
    ev = json.loads(f.read_text())
    ev["cascade"]["test"]["teacher_only_per_1k_usd"] = float("inf")
    f.write_text(json.dumps(ev, indent=1))
    assert "Infinity" in f.read_text()
    measured = ev["cascade"]["test"]["teacher_share"]
    rt = estimate_pipeline(p, out=out, dry_run=0)["routing"]
    assert rt["source"].startswith("eval/eval.json"), rt["source"]
    assert rt["teacher_share"] == measured


def test_route_student_usd_per_hour_inf_is_refused_at_load(tmp_path):
    """estimate's numbers must be finite (and a teacher's weight is refused at .inf), but
    route.student_usd_per_hour: .inf passes _route's EvalConfig check (ge=0 only) and makes
    every cascade cost Infinity in eval.json."""
    p = write(tmp_path / "inf.yaml",
              HEAD + TRAIN + "eval: {}\nroute: {student_usd_per_hour: .inf}\n")
    with pytest.raises(InputError, match=r"route\.student_usd_per_hour"):
        load_pipeline(p)


def test_estimate_presents_a_share_chosen_at_another_target_as_this_pipelines(routed):
    """_routed_share reads eval/eval.json whatever target chose its threshold: after the
    pipeline's route.target changes (eval not rerun yet), synth estimate still says the
    share is "the chosen threshold on the test half" and prices the break-even with it."""
    from synth.pipeline.estimate import estimate_pipeline

    d, p, out = routed
    ev = json.loads((out / "eval" / "eval.json").read_text())
    assert ev["cascade"]["dev"]["target"] == 0.95
    spec = yaml.safe_load(p.read_text())
    _set(p, route={**spec["route"], "target": 0.5})  # a different threshold would be chosen
    rt = estimate_pipeline(p, out=out, dry_run=0)["routing"]
    assert not rt["source"].startswith("eval/eval.json: the chosen threshold"), rt


def test_estimate_takes_a_share_measured_on_no_prompt_as_measured(routed):
    """When every held-out prompt lands in the dev half, cascade.route gives the test half
    n = 0 and teacher_share 0.0; _routed_share checks only that teacher_share is a number,
    so synth estimate prices the break-even with a share "measured" on zero prompts and
    says it comes from "the chosen threshold on the test half"."""
    from synth.pipeline.estimate import estimate_pipeline

    d, p, out = routed
    f = out / "eval" / "eval.json"
    ev = json.loads(f.read_text())
    ev["cascade"]["test"].update(n=0, teacher_share=0.0, accuracy=0.0, retained=None,
                                 teacher_accuracy=0.0, student_accuracy=0.0)
    f.write_text(json.dumps(ev, indent=1))
    rt = estimate_pipeline(p, out=out, dry_run=0)["routing"]
    assert rt["source"].startswith("not measured"), rt


def test_estimate_prices_the_routed_teacher_at_zero_despite_route_price(routed):
    """README (Pipelines): route.price is "the teacher priced as the API model it stands
    for" and "synth estimate then prices the routed pair"; eval measured the teacher's cost
    per request at that price (cascade.teacher_usd_per_request), but estimate_pipeline's
    break-even prices the teacher from the generate stages (a local teacher: $0), so the
    routed share costs $0 and the break-even is "never" whatever eval measured."""
    from synth.pipeline.estimate import estimate_pipeline

    d, p, out = routed
    ev = json.loads((out / "eval" / "eval.json").read_text())
    assert ev["cascade"]["priced_as"] == "openai:gpt-4.1-mini"
    assert ev["cascade"]["teacher_usd_per_request"] > 0
    be = estimate_pipeline(p, out=out, dry_run=0)["break_even"]
    assert be["inputs"]["teacher_cost_per_request"] > 0, be["inputs"]


# ------------------------------------------------------------- pipeline file checks


def test_route_price_with_no_price_entry_is_refused_at_load(tmp_path):
    """A typo in route.price (no entry in the price table) is accepted by load_pipeline
    (_route only checks it is a string); the eval stage then runs after training with an
    unpriced cascade (priced_as null, every cost null), although "every mistake is ...
    raised before anything runs"."""
    p = write(tmp_path / "typo.yaml",
              HEAD + TRAIN + "eval: {}\nroute: {price: 'openai:gpt-4.1-mnii'}\n")
    with pytest.raises(InputError, match=r"route\.price"):
        load_pipeline(p)


def test_route_zero_without_eval_is_silently_ignored(tmp_path):
    """load_pipeline refuses `route: {}` (and `route: 0` with an eval section: "must be a
    mapping") without an eval section, but `route: 0` with none passes: the check is
    `data.get("route") not in (None, False)` and 0 == False."""
    p = write(tmp_path / "zero.yaml", HEAD + TRAIN + "route: 0\n")
    with pytest.raises(InputError, match=r"route"):
        load_pipeline(p)


def test_route_price_from_the_pipelines_price_file_prices_the_cascade(tmp_path,
                                                                      monkeypatch):
    """The pipeline's price_file prices its teachers (generate stages, estimate), but the
    eval stage's cascade looks route.price up in load_prices() without it
    (synth/train/evaluation.py _cascade; the pipeline never passes it): a teacher priced
    only in the pipeline's price file leaves the cascade unpriced."""
    from synth.train import evaluation as E
    from tests.test_export_gguf import build_student

    teacher = build_student(tmp_path / "teacher")
    p = quickstart_for(tmp_path, f"local:{teacher}", tiny=True, gguf=False)
    write(tmp_path / "prices.yaml", "models:\n  - {provider: openai, match: acme-teacher, "
          "input: 1.0, cached_input: 0.5, output: 2.0}\n")
    _set(p, price_file="prices.yaml", route={"price": "openai:acme-teacher"})
    monkeypatch.setattr(E, "answer_prompts", _stub_answers)
    run(p, tmp_path / "run")
    cas = json.loads((tmp_path / "run" / "eval" / "eval.json").read_text())["cascade"]
    assert cas["priced_as"] == "openai:acme-teacher", cas["priced_as"]


def test_eval_compare_unreadable_gguf_is_refused_at_load(tmp_path):
    """_compare_paths / check_compare accept any existing file ending in .gguf: a file that
    is no GGUF passes the load-time check and fails in the eval stage, after generation and
    training."""
    (tmp_path / "broken.gguf").write_bytes(b"GGUF")  # the header's first 4 bytes only
    p = write(tmp_path / "c.yaml", HEAD + TRAIN + "eval: {compare: [broken.gguf]}\n")
    with pytest.raises(InputError, match=r"eval\.compare"):
        load_pipeline(p)


def test_quantise_with_an_unexportable_student_fails_only_after_training(tmp_path):
    """quantise is checked for its names (and llama-quantize for q4_k_m) at load, but not
    whether the student can be exported at all: a student cut from a teacher whose
    tokenizer the GGUF export refuses (tests/tiny_models' word-level one) is only refused by
    export_gguf in the eval stage (synth/pipeline/run.py _eval), after generate and train."""
    from tests.tiny_models import build_tiny_model

    tiny = build_tiny_model(tmp_path / "tiny", seed=0)
    p = quickstart_for(tmp_path, f"local:{tiny}", tiny=True, gguf=True)
    out = tmp_path / "run"
    with pytest.raises((InputError, ConfigError), match="GGUF export|tokenizer|quantise"):
        run(p, out)
    assert not (out / "student").exists(), "refused only after training"


# ------------------------------------------------------------- eval stage skip / rerun


def test_changed_eval_compare_directory_reruns_eval(tmp_path, monkeypatch):
    """eval.compare may name a model directory; the eval stage's fingerprint hashes what
    eval names through _files_in (synth/pipeline/run.py), which hashes files only: new
    weights in the compared directory leave the stage 'unchanged' and it is skipped, its
    variants row stale."""
    from synth.train import evaluation as E
    from tests.test_export_gguf import build_student

    teacher = build_student(tmp_path / "teacher")
    other = build_student(tmp_path / "other", seed=1)
    p = quickstart_for(tmp_path, f"local:{teacher}", tiny=True, gguf=False)
    spec = yaml.safe_load(p.read_text())
    _set(p, eval={**spec["eval"], "compare": [str(other)]})
    monkeypatch.setattr(E, "answer_prompts", _stub_answers)
    out = tmp_path / "run"
    run(p, out)
    shutil.rmtree(other)
    build_student(other, seed=2)  # other weights, same path
    assert "eval" in run(p, out).ran


# ------------------------------------------------------------- synth eval --compare


def _student_and_gguf(tmp_path):
    from synth.train.gguf_export import export_gguf
    from tests.test_export_gguf import build_student

    student = build_student(tmp_path / "student")
    return student, export_gguf(student, tmp_path / "student.q8_0.gguf", quant="q8_0").out


def test_unreadable_compare_gguf_is_refused_before_any_generation(tmp_path, monkeypatch):
    """check_compare (synth/train/variants.py) checks the suffix only; a .gguf that cannot
    be read is found when it is loaded, after the student and the teacher have answered
    every prompt (the existing test_a_missing_file_is_refused_before_anything covers only a
    missing file)."""
    from synth.train import evaluation as E
    from tests.test_eval import held_rows
    from tests.test_export_gguf import build_student

    student = build_student(tmp_path / "student")
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF")
    calls = []
    real = E.answer_prompts

    def counting(spec, prompts, **kw):
        calls.append(spec)
        return real(spec, prompts, **kw)

    monkeypatch.setattr(E, "answer_prompts", counting)
    with pytest.raises(Exception):
        E.evaluate(student=str(student), teacher=str(student),
                   data=held_rows(tmp_path / "held.jsonl"), out=tmp_path / "ev",
                   max_new_tokens=4, progress=False, compare=(str(bad),))
    assert calls == [], f"models answered before the bad file was found: {calls}"


def test_student_tokens_per_s_is_measured_like_the_versions_under_cascade(tmp_path,
                                                                          monkeypatch):
    """With --cascade (a pipeline's route; the quickstart), _variants reuses the student's
    answers and speed from the confidence=True generation (logits kept, log_softmax per
    step: measured 7-14% slower on SmolLM2-135M here) while every --compare version is
    generated without: the table's tokens/s column compares two different measurements,
    against variants.py's "the same settings as the student"."""
    from synth.train import evaluation as E
    from tests.test_eval import held_rows

    student, q8 = _student_and_gguf(tmp_path)

    def answers(spec, prompts, *, confidence=False, **kw):
        a, _ = _stub_answers(spec, prompts, confidence=confidence)
        # the same model at the same speed; asking for logprobs costs time
        return a, {"gen_tokens": 100, "gen_s": 1.25 if confidence else 1.0,
                   "gen_tokens_per_s": 80.0 if confidence else 100.0}

    monkeypatch.setattr(E, "answer_prompts", answers)
    res = E.evaluate(student=str(student), teacher=str(student),
                     data=held_rows(tmp_path / "held.jsonl"), out=tmp_path / "ev",
                     max_new_tokens=4, progress=False, cascade=True, compare=(str(q8),))
    speeds = {r["name"]: r["tokens_per_s"] for r in res["variants"]["rows"]}
    assert len(set(speeds.values())) == 1, speeds


def test_compare_directory_bytes_count_one_copy_of_the_weights(tmp_path):
    """model_bytes (synth/train/variants.py) sums every *.safetensors, *.bin and *.gguf at
    a directory's top level: a model directory shipping both model.safetensors and
    pytorch_model.bin (common on the Hub; transformers loads one) is reported at twice its
    size on disk."""
    from transformers import AutoModelForCausalLM

    from synth.train.variants import model_bytes
    from tests.test_export_gguf import build_student

    d = build_student(tmp_path / "both")
    import torch

    torch.save(AutoModelForCausalLM.from_pretrained(d).state_dict(), d / "pytorch_model.bin")
    assert AutoModelForCausalLM.from_pretrained(d) is not None  # loads (one of the two)
    weights = (d / "model.safetensors").stat().st_size
    assert model_bytes(d) == pytest.approx(weights, rel=0.05)


def test_cascade_with_every_prompt_in_the_test_half_does_not_crash(tmp_path, monkeypatch):
    """Pre-existing in synth.train.cascade.sweep (not this diff), now on the pipeline's path
    through route: when no held-out prompt hashes into the dev half, sweep divides by
    n = 0 (ZeroDivisionError) and the eval stage dies after training. Here: two held-out
    prompts, q1 and q2, both in the test half."""
    from synth.train import evaluation as E
    from synth.train.cascade import split_dev_test
    from tests.test_export_gguf import build_student

    assert split_dev_test(["q1", "q2"]) == ["test", "test"]
    rows = [{"id": f"q{i}", "prompt_id": f"q{i}",
             "messages": [{"role": "user", "content": f"what is two and {i}"}],
             "response": f"it is {i + 2} .", "status": "ok", "reference": str(i + 2),
             "metadata": json.dumps({"source_id": f"q{i}"})} for i in (1, 2)]
    data = tmp_path / "held.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    student = build_student(tmp_path / "student")
    monkeypatch.setattr(E, "answer_prompts", _stub_answers)
    res = E.evaluate(student=str(student), teacher=str(student), data=data,
                     out=tmp_path / "ev", max_new_tokens=4, progress=False, task="math",
                     cascade=True)
    assert res["cascade"]["dev"]["n"] == 0


@pytest.mark.parametrize("section", ["route", "quantise"])
def test_route_or_quantise_with_eval_task_none_fails_only_after_training(tmp_path, section):
    """eval.task: none scores no answer, so the cascade (route) and the versions' table
    (quantise) cannot be measured: evaluate raises "--cascade / --compare: no held-out
    prompt has a reference" every time, but load_pipeline accepts the combination
    (synth/pipeline/config.py _route / _quantise) and the run fails in the eval stage, after
    generate and train."""
    from tests.test_export_gguf import build_student

    teacher = build_student(tmp_path / "teacher")
    p = quickstart_for(tmp_path, f"local:{teacher}", tiny=True, gguf=section == "quantise")
    spec = yaml.safe_load(p.read_text())
    _set(p, eval={**spec["eval"], "task": "none"},
         **({"route": None} if section == "quantise" else {}))
    out = tmp_path / "run"
    with pytest.raises((InputError, ConfigError), match="no held-out prompt has a reference"
                       "|task"):
        run(p, out)
    assert not (out / "student").exists(), "refused only after training"
