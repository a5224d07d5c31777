"""`synth eval`'s task accuracy: both models over one denominator, every held-out source
prompt with a reference, counted once; a missing, empty, cut-off or unfinished answer is
wrong; `unverifiable` only where a verifier could not run."""

from __future__ import annotations

import json

import pytest

from synth.train import evaluation as E
from synth.train.evaluation import Answer, check_answers

pytest.importorskip("transformers")


def A(text, finish="stop", raw=None):
    return Answer(text, raw if raw is not None else text, finish)


# ------------------------------------------------------------------------- the verdicts

@pytest.mark.parametrize("answer, ref, outcome, why", [
    (A("The answer is 4."), "4", "correct", "equivalent"),
    (A(""), "4", "wrong", "empty answer"),
    (A("   "), "4", "wrong", "empty answer"),
    (A(None), "4", "wrong", "empty answer"),
    (A("The answer is 4", finish="length"), "4", "wrong", "cut off at max_new_tokens"),
    (A("", raw="<think>let me see, 2 and 2 is"), "4", "wrong", "reasoning never closed"),
    (A("I am not sure what you mean."), "4", "wrong", "no final answer"),
    (A("The answer is 5."), "4", "wrong", "not equivalent"),
    (A('The first letter of the word "lantern" is "L".'), "L", "correct", "names L"),
    (A('It is "L" or "K".'), "L", "wrong", "hedged"),
    (A("It is a capital letter."), "L", "wrong", "names no letter"),
    (A("Paris"), "Paris", "correct", "exact match"),
    (A("Lyon"), "Paris", "wrong", "differs from the reference"),
])
def test_verdicts(answer, ref, outcome, why):
    [(o, r)] = check_answers([answer], [ref], max_new_tokens=8)
    assert o == outcome and why in r, (o, r)


def test_a_verifier_that_cannot_run_is_unverifiable(monkeypatch):
    import synth.curate.verify_math as vm

    monkeypatch.setattr(vm, "verify_many", lambda items, **kw: [("unverifiable", "timeout")]
                        * len(items))
    [(o, r)] = check_answers([A("The answer is 4.")], ["4"])
    assert (o, r) == ("unverifiable", "timeout")


def test_accuracy_is_over_every_prompt():
    acc = E._accuracy([("correct", "x"), ("wrong", "empty answer"), ("unverifiable", "t"),
                       ("correct", "y")])
    assert acc["n"] == 4 and acc["accuracy"] == 0.5
    assert acc["wrong_reasons"] == {"empty answer": 1}
    assert acc["unverifiable_reasons"] == {"t": 1}


# ------------------------------------------------------------------------- end to end

def held_rows(path):
    """12 source prompts: each with 3 samples from one teacher, or 2 teachers' answers
    (route: all renames them id@teacher), some failed or dropped by their recipe."""
    rows = []
    for i in range(12):
        meta = json.dumps({"source_id": f"q{i}"})
        for k in range(3 if i % 2 else 1):
            for t in (("a", "b") if i % 3 == 0 else ("a",)):
                rows.append({
                    "id": f"q{i}@{t}:{k}", "prompt_id": f"q{i}@{t}", "sample_index": k,
                    "messages": [{"role": "user", "content": f"what is two and {i}"}],
                    "response": None if i == 5 else f"it is {i + 2} .",
                    "status": "error" if i == 5 else "ok", "reference": str(i + 2),
                    "metadata": meta,
                    "drop_reason": "cot_verify: wrong" if i == 7 else None})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_garbage_on_half_the_prompts_keeps_half(tmp_path, monkeypatch):
    """Regression: accuracy was correct / (correct + wrong), an empty or cut-off answer was
    'unverifiable' and left that model's denominator, so a student answering garbage on half
    the prompts "kept 100%"."""
    from tests.tiny_models import build_tiny_model

    tiny = build_tiny_model(tmp_path / "tiny")
    data = held_rows(tmp_path / "held.jsonl")

    def answers(spec, prompts, **kw):
        assert len({p.id for p in prompts}) == len(prompts) == 12  # one per source prompt
        n = int
        out = []
        for p in prompts:
            i = n(p.id[1:])
            right = Answer(f"The answer is {i + 2}.", f"The answer is {i + 2}.", "stop")
            if spec.endswith("student") and i % 2:
                out.append(Answer("", "", "stop") if i % 4 == 1 else
                           Answer("The answer is", "The answer is", "length"))
            else:
                out.append(right)
        return out, {"gen_tokens": 1, "gen_s": 1.0, "gen_tokens_per_s": 1.0}

    monkeypatch.setattr(E, "answer_prompts", answers)
    import shutil

    shutil.copytree(tiny, tmp_path / "student")
    res = E.evaluate(student=str(tmp_path / "student"), teacher=str(tiny), data=data,
                     out=tmp_path / "ev", max_new_tokens=8, progress=False)
    task = res["task"]
    assert task["n"] == 12  # the failed (q5) and the recipe-rejected (q7) prompts count
    assert task["teacher"]["accuracy"] == 1.0
    assert task["student"]["accuracy"] == 0.5 and task["student"]["wrong"] == 6
    assert task["student"]["unverifiable"] == 0
    assert task["student"]["wrong_reasons"] == {"empty answer": 3,
                                                "cut off at max_new_tokens": 3}
    assert task["retained"] == 0.5 and task["agreement"] == 0.5
    assert task["both_correct"] == 6 and task["only_teacher"] == 6
    # token metrics read the answered rows the recipes kept: not q5 (failed), not q7
    ev = json.loads((tmp_path / "ev" / "eval.json").read_text())
    assert ev["answered_rows"] == sum(
        (3 if i % 2 else 1) * (2 if i % 3 == 0 else 1) for i in range(12) if i not in (5, 7))
    assert ev["tokens"]["target_tokens"] > 0
    # every scored prompt, both answers and verdicts, for an audit of the figures above
    lines = [json.loads(x) for x in (tmp_path / "ev" / "answers.jsonl").read_text().splitlines()]
    assert len(lines) == 12 and len({x["prompt"] for x in lines}) == 12
    assert sum(x["student"]["verdict"] == "correct" for x in lines) == 6
    cut = [x for x in lines if x["student"]["finish_reason"] == "length"]
    assert len(cut) == 3 and all(x["student"]["verdict"] == "wrong" for x in cut)


# ------------------------------------------------------------------- the choice verifier

@pytest.mark.parametrize("answer, ref, right", [
    ('The first letter of the word "cheese" is "C".', "C", True),
    ("C", "C", True), ("c", "C", True), (" c.\n", "C", True), ("**C**", "C", True),
    ("`c`", "C", True), ("Answer: C", "C", True), ("It starts with C.", "C", True),
    ("C is the first letter of cheese.", "C", True),
    ('The first letter of the word "anchor" is "A".', "A", True),
    ("The first letter of anchor is A.", "A", True), ("A is the first letter of anchor.", "A", True),
    ('I think the answer is "I".', "I", True), ("The answer is (B).", "B", True),
    ("e.g. C", "C", True),
    ('The first letter of the word "cheese" is "S".', "C", False),
    ('The first letter of the word "cheese" is a capital letter.', "C", False),
    ('The first letter of the word "cheese" is "CH".', "C", False),
    ("cheese", "C", False), ('"C" or "K"', "C", False), ("C or K", "C", False),
    ("c or k", "C", False), ("C, maybe S", "C", False), ('It is "C", not "S".', "C", False),
    ('"carrot" is a combination of two letters: "C" and "R".', "C", False),
    ("A B C D E F G H I J K L M N O P Q R S T U V W X Y Z", "C", False),
    ("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "C", False), ("A-Z", "A", False), ("", "C", False),
    ("I'm not sure.", "I", False),
    # hedges are wrong whichever letter is the reference (a review found "x or y" scored
    # right against y: the first letter was read as a word)
    ("A or C", "C", False), ("A or C", "A", False), ("Either A or C", "C", False),
    ("I or J", "J", False), ("c or k", "K", False), ("either b or c", "C", False),
    ("The first letter is b or p", "P", False), ("It is a or c", "C", False),
    ("A vs C", "C", False), ("A and C both seem right", "C", False),
    # ... and a letter that is also a word still counts when a verb judges it
    ("The answer is A because Paris is the capital.", "A", True), ("A would be correct.", "A", True),
    ("A seems right.", "A", True), ("The answer is I because", "I", True),
    ("The answer is c because it is", "C", True), ("I would say A", "A", True),
    ("I might go with C", "C", True), ("a carrot starts with c", "C", True),
    ("The answer is a.", "A", True), ("A can of soup starts with S", "S", True),
])
def test_choice_verifier_names_exactly_one_letter(answer, ref, right):
    from synth.curate.verify_choice import check_choice

    assert (check_choice(answer, ref)[0] == "correct") is right



def test_a_unit_is_its_source_prompts_own_row_whatever_the_order():
    """An evolution that carries a reference of its own never replaces its root's prompt and
    reference, whichever row comes first."""
    from synth.train.evaluation import task_units

    root = {"prompt_id": "p5", "prompt": "root question", "reference": "C", "metadata": None}
    child = {"prompt_id": "p5-evol1", "prompt": "evolved question", "reference": "B",
             "metadata": {"source_id": "p5"}}
    for rows in ([root, child], [child, root]):
        (unit,) = task_units(rows, path="x.jsonl")
        assert (unit.key, unit.reference, unit.rows) == ("p5", "C", 2)
        assert unit.messages[-1]["content"] == "root question"
    (unit,) = task_units([child], path="x.jsonl")  # no root row: the descendant's
    assert unit.reference == "B"
