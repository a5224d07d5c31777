"""``synth eval --cascade``: routing between student and teacher on the student's mean token
logprob; the threshold chosen on the dev half, reported on the test half."""

from __future__ import annotations

import json
import math
import shutil

import pytest

from synth.train import cascade as C


def test_sweep_picks_the_cheapest_threshold_that_keeps_the_target():
    # confident answers are right, unsure ones wrong; the teacher is right on all but one
    conf = [-0.1, -0.2, -0.3, -2.0, -2.5, None, -0.15, -3.0]
    s_ok = [True, True, True, False, False, False, True, False]
    t_ok = [True, True, True, True, True, True, True, False]
    r = C.sweep(conf, s_ok, t_ok, teacher_usd=0.01, student_usd=0.001, target=0.95)
    assert r["teacher_accuracy"] == 7 / 8 and r["student_accuracy"] == 4 / 8
    ch = r["chosen"]
    # sending the 4 lowest (None counts lowest) reaches 7/8 = the teacher's; 3 do not
    assert ch["teacher_share"] == 0.5 and ch["accuracy"] == 7 / 8
    assert ch["threshold"] == -0.3  # below -0.3 goes to the teacher
    assert ch["cost_per_1k_usd"] == pytest.approx(1000 * (0.5 * 0.01 + 0.001))
    ends = r["points"][0], r["points"][-1]
    # "-inf": the student answers all but the answer with no tokens (no confidence at all)
    assert ends[0]["threshold"] == "-inf" and ends[0]["teacher_share"] == 1 / 8
    assert ends[1]["threshold"] == "+inf" and ends[1]["teacher_share"] == 1.0
    json.dumps(r, allow_nan=False)  # every figure is plain JSON


def test_nothing_short_of_the_teacher_reaches_the_target():
    r = C.sweep([-1.0, -0.5], [False, False], [True, True], teacher_usd=None,
                student_usd=None, target=1.0)
    assert r["chosen"]["threshold"] == "+inf" and r["chosen"]["teacher_share"] == 1.0
    assert r["chosen"]["cost_per_1k_usd"] is None  # no price: no cost, never a guess


def test_route_reports_a_threshold_on_other_prompts():
    t = C.route([-0.1, -2.0, None], [True, False, False], [True, True, False], "-0.5",
                teacher_usd=0.02, student_usd=None)
    assert t["teacher_share"] == pytest.approx(2 / 3) and t["accuracy"] == pytest.approx(2 / 3)
    assert t["saving"] == pytest.approx(1 - 2 / 3)
    assert C.mean_logprob({"logprobs": [-1.0, -3.0, float("-inf")]}) == -2.0
    assert C.mean_logprob({"logprobs": []}) is None and C.mean_logprob(None) is None


def test_the_split_is_stable_and_roughly_even():
    keys = [f"p{i}" for i in range(400)]
    sides = C.split_dev_test(keys)
    assert sides == C.split_dev_test(keys)
    assert 150 < sides.count("dev") < 250


def test_eval_cascade_end_to_end(tmp_path, monkeypatch):
    """The student is right exactly when it is confident: the threshold chosen on the dev
    half sends the unsure prompts to the teacher, and on the test half the cascade keeps the
    teacher's accuracy while the teacher sees only those."""
    pytest.importorskip("transformers")
    from synth.train import evaluation as E
    from synth.train.evaluation import Answer
    from tests.test_eval import held_rows
    from tests.tiny_models import build_tiny_model

    tiny = build_tiny_model(tmp_path / "tiny")
    data = held_rows(tmp_path / "held.jsonl")

    def answers(spec, prompts, confidence=False, **kw):
        out = []
        for p in prompts:
            i = int(p.id[1:])
            if spec.endswith("student"):
                assert confidence
                good = i % 3 != 1
                text = f"The answer is {i + 2 if good else i + 9}."
                out.append(Answer(text, text, "stop", -0.1 if good else -3.0 - i / 100,
                                  10, 5))
            else:
                out.append(Answer(f"The answer is {i + 2}.", None, "stop", None, 10, 5))
        return out, {"gen_tokens": 60, "gen_s": 1.2, "gen_tokens_per_s": 50.0}

    monkeypatch.setattr(E, "answer_prompts", answers)
    shutil.copytree(tiny, tmp_path / "student")
    res = E.evaluate(student=str(tmp_path / "student"), teacher=str(tiny), data=data,
                     out=tmp_path / "ev", max_new_tokens=8, progress=False, cascade=True,
                     cascade_price="openai:gpt-4.1", student_usd_per_hour=0.36)
    cas = res["cascade"]
    dev, test = cas["dev"], cas["test"]
    assert dev["n"] + test["n"] == 12
    assert dev["chosen"]["accuracy"] == dev["teacher_accuracy"] == 1.0
    assert test["accuracy"] == 1.0 and test["retained"] == 1.0
    wrong = sum(1 for i in range(12) if i % 3 == 1 and C.split_dev_test([f"q{i}"])[0] ==
                "test")
    assert test["teacher_share"] == pytest.approx(wrong / test["n"])
    # gpt-4.1 at $2 / $8 per 1M: 10 in + 5 out tokens a request; the student 0.1 s at $0.36/h
    assert cas["teacher_usd_per_request"] == pytest.approx((10 * 2 + 5 * 8) / 1e6)
    assert cas["student_usd_per_request"] == pytest.approx(0.1 * 0.36 / 3600)
    assert test["saving"] > 0
    saved = json.loads((tmp_path / "ev" / "eval.json").read_text())
    assert saved["cascade"]["test"]["threshold"] == test["threshold"]
    png = (tmp_path / "ev" / "cascade.png").read_bytes()
    assert png.startswith(b"\x89PNG") and saved["cascade"]["plot"].endswith("cascade.png")
    lines = [json.loads(x) for x in (tmp_path / "ev" / "answers.jsonl").read_text()
             .splitlines()]
    assert all(isinstance(x["student"]["confidence"], float) for x in lines)


def test_confidence_comes_from_the_students_own_generation(tmp_path):
    """No stand-in: a tiny model generates with its chosen-token logprobs, and each answer's
    confidence is their mean (finite, at most 0)."""
    pytest.importorskip("transformers")
    from synth.records import Prompt
    from synth.train.evaluation import answer_prompts
    from tests.tiny_models import build_tiny_model

    tiny = build_tiny_model(tmp_path / "tiny")
    prompts = [Prompt(id=f"p{i}", messages=[{"role": "user", "content": f"say {i}"}])
               for i in range(3)]
    plain, _ = answer_prompts(str(tiny), prompts, max_new_tokens=6)
    sure, _ = answer_prompts(str(tiny), prompts, max_new_tokens=6, confidence=True)
    assert [a.raw for a in plain] == [a.raw for a in sure]  # the same greedy answers
    assert all(a.confidence is not None and math.isfinite(a.confidence) and
               a.confidence <= 0 for a in sure)
    assert all(a.confidence is None for a in plain)

